# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller half of git_deploy_push: ask the target what it has, build (or reuse) the
bundle of what it lacks, copy it over the task's own connection, have the target fetch it.

Documentation lives with the target half, plugins/modules/git_deploy_push.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.gitdeploy.rollout.plugins.module_utils import bundle
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import check_name
from ansible_collections.gitdeploy.rollout.plugins.plugin_utils import delivery
from ansible_collections.gitdeploy.rollout.plugins.modules.git_deploy_push import OPTIONS

MODULE = "gitdeploy.rollout.git_deploy_push"


class PushFailed(Exception):
    """A failure to report as the task's result: ``msg`` plus what is known so far."""

    def __init__(self, msg, result=None):
        super(PushFailed, self).__init__(msg)
        self.msg = msg
        self.result = dict(result or {})


class ActionModule(ActionBase):

    TRANSFERS_FILES = True
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        task_vars = task_vars or {}
        host = task_vars.get("inventory_hostname", "?")

        try:
            _validated, args = self.validate_argument_spec(argument_spec=OPTIONS)
            try:
                check_name(args["tag"], "tag")
            except ValueError as exc:
                raise PushFailed(str(exc))
            if not bundle.is_sha(args["commit"]):
                raise PushFailed("commit %r is not a full 40-character lower-case commit id"
                                 % (args["commit"],))
            result.update(self._push(args, task_vars, host))
        except PushFailed as exc:
            result.update(exc.result)
            result.update(failed=True, msg=exc.msg)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _module(self, args, task_vars, **internal):
        module_args = dict(args)
        module_args.update(internal)
        return self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)

    def _push(self, args, task_vars, host):
        tag, commit = args["tag"], args["commit"]
        out = dict(changed=False, bytes=0, objects=0, haves=[], prerequisites=[],
                   transferred=False, tag=tag, commit=commit)

        target = self._module(args, task_vars, _mode="haves")
        if target.get("failed"):
            target.update({k: v for k, v in out.items() if k not in target})
            return target
        out.update(haves=target["haves"], repo=target["repo"], changed=bool(target.get("changed")))
        if not delivery.needed(target, commit):
            return out
        try:
            built, info = delivery.build(args["repo"], tag, commit, target, args["cache_dir"],
                                         self._task.check_mode, host, max_bytes=args["max_bytes"],
                                         submodules=args["submodules"])
        except delivery.DeliveryFailed as exc:
            raise PushFailed("%s. Inspect it with: git --git-dir=%s show --no-patch %s" % (exc, target["repo"], tag)
                             if target.get("tag_commit") else str(exc), result=out)
        out.update(info, changed=True)
        if built is None:
            return out
        if self._task.diff:
            out["diff"] = dict(
                before_header="%s:%s refs/tags/%s" % (host, target["repo"], tag),
                after_header="%s:%s refs/tags/%s" % (host, target["repo"], tag),
                before="absent\n",
                after="%s (%d objects, %d bytes delivered)\n" % (commit, built.objects, built.size),
            )
        if self._task.check_mode:
            return out

        remote = delivery.transfer(self, built, tag)
        out["transferred"] = True
        fetched = self._module(args, task_vars, _mode="ingest", _bundle=remote,
                               _bundle_size=built.size, _bundle_sha256=built.sha256)
        if fetched.get("failed"):
            if fetched.get("damaged"):
                delivery.forget(built, args["cache_dir"])
            fetched.update({k: v for k, v in out.items() if k not in fetched})
            return fetched
        out["changed"] = bool(fetched.get("changed")) or out["changed"]
        return out
