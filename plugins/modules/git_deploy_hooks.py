#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: git_deploy_hooks
short_description: Run the git-deploy hooks of one phase
version_added: 0.1.0
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
description:
  - Runs the executable hooks of one rollout phase from a release's hook tree, the way
    git-deploy does, first C(<hook_dir>/apps/common/<phase>.*), then
    C(<hook_dir>/apps/<env>/<phase>.*), each group in sort order.
  - Phase V(sync) runs the single sync hook C(<hook_dir>/sync/<env>.sync) instead, with
    git-deploy's C(DEPLOY_*) variables; the rollout role runs it once, on the controller.
  - Every hook runs with the release as working directory, directly (never through a
    shell), in its own process group, with a time limit; a hook that runs too long is
    killed together with its children.
  - Only executable files run. A hook that is not executable is skipped with a warning;
    names ending in C(.bak) or C(~) are skipped. Symbolic links inside the hook tree work,
    but a hook whose real path is outside the release is refused and no hook of the phase
    runs.
  - A hook that exits non-zero stops the phase and fails the task, except where failures
    are ignored (see the notes); ignored failures are reported as warnings and in
    RV(ignored_failures).
  - The full output of every hook is appended to O(log_file); the result keeps at most
    O(output_limit) bytes of each stream.
  - In check mode the hooks that would run are listed in order, with their phase and
    prefix, and nothing runs (git-deploy's dry run).
options:
  release:
    description:
      - The release tree the hooks come from; also the working directory of every hook
        and the value of E(GIT_DEPLOY_RELEASE).
      - Required unless O(repo) and O(commit) are given. With O(repo), the hooks come from
        the commit and this (if given) is only the working directory.
    type: path
  hook_dir:
    description:
      - Directory of the hook tree, relative to the release.
    type: str
    default: deploy
  phase:
    description:
      - The phase whose hooks run.
    type: str
    required: true
    choices: [pre-start, post-start, pre-pull, post-pull, pre-sync, post-tree-update, post-sync, post-reset, post-abort, log, sync]
  env:
    description:
      - The environment (host group and hook prefix); selects C(apps/<env>/) and
        C(sync/<env>.sync). Exported as E(GIT_DEPLOY_PREFIX).
    type: str
    required: true
  action:
    description:
      - The git-deploy action running the phase, exported as E(GIT_DEPLOY_ACTION). Decides whether
        failures of V(post-pull), V(post-tree-update) and V(post-reset) hooks are ignored (during V(revert) and V(abort)).
      - Default is the action of a one-step deploy that runs O(phase) (V(start) for V(pre-start) to
        V(post-start), V(sync) for V(pre-sync), V(sync) and V(post-sync), V(finish) for V(log), V(abort)
        for V(post-reset) and V(post-abort)).
    type: str
    choices: [start, sync, finish, revert, abort, hotfix, manual-sync, release, tag]
  rollout_tag:
    description:
      - The tag being rolled out (E(GIT_DEPLOY_ROLLOUT_TAG), E(DEPLOY_ROLLOUT_TAG)); also
        the C(tag=) field of log lines.
    type: str
  start_tag:
    description:
      - The tag that was live when the rollout started (E(GIT_DEPLOY_START_TAG),
        E(DEPLOY_ROLLBACK_TAG)).
    type: str
  root:
    description:
      - The host's C(git_deploy_root), exported as E(GIT_DEPLOY_ROOT).
      - When given, O(log_file) defaults to C(<root>/logs/git-deploy-active.log), except
        for phase V(sync), which runs on the controller.
    type: path
  timeout:
    description:
      - Seconds each hook may run. After that its whole process group gets SIGTERM, then
        SIGKILL a few seconds later, and the hook counts as failed.
    type: int
    default: 600
  output_limit:
    description:
      - Bytes of stdout and of stderr kept per hook in the result (the last ones, since the end
        of the output is where errors are). The log file always gets everything.
    type: int
    default: 65536
  log_file:
    description:
      - File the full output of every hook is appended to, one line per output line,
        prefixed with the time and the C(env=), C(tag=) and C(phase=) fields of the
        rollout journal.
      - Defaults to the active rollout log under O(root); without either, output is only
        kept in the result.
    type: path
  log_level:
    description:
      - For phase V(log) the level of the message, exported as E(GIT_DEPLOY_LOG_LEVEL)
        (syslog level names).
    type: str
    default: info
    choices: [emerg, alert, crit, err, warning, notice, info, debug]
  log_message:
    description:
      - For phase V(log) the message, exported as E(GIT_DEPLOY_LOG_MESSAGE).
    type: str
    default: ''
  log_announce:
    description:
      - For phase V(log) whether the message should be announced (chat, mail),
        exported as E(GIT_DEPLOY_LOG_ANNOUNCE) (C(1) or C(0)).
    type: bool
    default: false
  hosts:
    description:
      - For phase V(sync) the hosts of the rollout, exported space separated as
        E(DEPLOY_HOSTS).
    type: list
    elements: str
    default: []
  deploy_file:
    description:
      - For phase V(sync) the text of the C(.deploy) file. The sync hook gets it as
        E(DEPLOY_DEPLOY_TEXT) and in a temporary file named by E(DEPLOY_DEPLOY_FILE).
    type: str
    default: ''
  fail_message:
    description:
      - For phase V(sync) the message shown when the sync hook fails (git-deploy's
        C(deploy.message-on-sync-hook-fail-whale)). C({SYNC_HOOK}) and
        C({SUPPORT_EMAIL}) are replaced by the hook's path and O(support_email).
      - Defaults to a "DON'T PANIC" text saying what to do next.
    type: str
  support_email:
    description:
      - For phase V(sync) who to contact if the sync hook fails (C({SUPPORT_EMAIL})).
    type: str
  repo:
    description:
      - A git repository on the host running the module (usually the controller). With
        O(commit), the hooks are taken from O(hook_dir) of that commit (exported to a
        temporary directory) instead of from O(release).
      - Needs the Python library dulwich on that host.
    type: path
  commit:
    description:
      - With O(repo), the commit (id, tag or branch name) whose hooks run.
    type: str
notes:
  - "Phases and what a failing hook does:"
  - "V(pre-start): before the rollout tag is made; a failure stops the rollout."
  - "V(post-start): after the start of a rollout; a failure stops the rollout."
  - "V(pre-sync): on every host before the release goes live; a failure stops the rollout."
  - "V(pre-pull), V(post-pull): just before and after the live tree changes; a failure stops a deploy; a
    V(post-pull) failure is ignored during revert and abort."
  - "V(post-tree-update): after the live tree changed (deploy, revert, abort); a
    failure stops a deploy but is ignored during revert and abort (an automatic rollback is an abort)."
  - "V(sync): the single C(sync/<env>.sync) hook, once, on the controller; a failure fails
    the rollout with the O(fail_message)."
  - "V(post-sync): on every host after the sync; a failure fails a deploy (a revert stands and reports it)."
  - "V(post-reset): after the live tree was put back (abort, revert); failures
    are ignored during revert and abort."
  - "V(post-abort): after an abort; a failure fails the task."
  - "V(log): with a log message in E(GIT_DEPLOY_LOG_LEVEL), E(GIT_DEPLOY_LOG_MESSAGE) and
    E(GIT_DEPLOY_LOG_ANNOUNCE); failures are always ignored."
  - "Every hook gets E(GIT_DEPLOY_ACTION), E(GIT_DEPLOY_PHASE), E(GIT_DEPLOY_PREFIX),
    E(GIT_DEPLOY_HOOK_PREFIX) (C(common) or the environment), E(GIT_DEPLOY_ROLLOUT_TAG),
    E(GIT_DEPLOY_START_TAG), E(GIT_DEPLOY_RELEASE) and E(GIT_DEPLOY_ROOT); unknown
    values are empty strings."
  - "The sync hook also gets E(DEPLOY_ROLLOUT_TAG), E(DEPLOY_ROLLBACK_TAG),
    E(DEPLOY_DEPLOY_FILE), E(DEPLOY_DEPLOY_TEXT), E(DEPLOY_ROLLOUT_PREFIX) and
    E(DEPLOY_HOSTS)."
  - Children that a hook leaves running (daemons it restarts) are not killed when the
    hook exits; their open output pipes are read for two more seconds at most.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: lists the hooks that would run, in order, and runs none of them.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - name: git-deploy, writing deploy hooks
    description: The hook tree, phases and variables this module follows.
    link: https://github.com/git-deploy/git-deploy#writing-deploy-hooks
"""

EXAMPLES = r"""
- name: Run the pre-sync hooks of the prepared release
  gitdeploy.rollout.git_deploy_hooks:
    release: "{{ git_deploy_root }}/releases/{{ rollout_tag }}"
    root: "{{ git_deploy_root }}"
    phase: pre-sync
    env: prod
    rollout_tag: "{{ rollout_tag }}"
    start_tag: "{{ start_tag }}"

- name: Restart services after a revert (failures are warnings)
  gitdeploy.rollout.git_deploy_hooks:
    release: "{{ git_deploy_root }}/current"
    root: "{{ git_deploy_root }}"
    phase: post-tree-update
    action: revert
    env: prod
    timeout: 120

- name: Pass a message to the log hooks
  gitdeploy.rollout.git_deploy_hooks:
    release: "{{ git_deploy_root }}/current"
    root: "{{ git_deploy_root }}"
    phase: log
    env: prod
    log_level: notice
    log_message: "rollout of {{ rollout_tag }} finished"
    log_announce: true

- name: Run the sync hook once, on the controller, from the tagged commit
  gitdeploy.rollout.git_deploy_hooks:
    repo: "{{ playbook_dir }}/.."
    commit: "{{ rollout_tag }}"
    phase: sync
    env: prod
    rollout_tag: "{{ rollout_tag }}"
    start_tag: "{{ start_tag }}"
    hosts: "{{ ansible_play_hosts }}"
    deploy_file: "{{ tag_result.deploy_file }}"
    support_email: ops@example.com
  delegate_to: localhost
  run_once: true

- name: Show which hooks a phase would run
  gitdeploy.rollout.git_deploy_hooks:
    release: /srv/app/current
    phase: post-tree-update
    env: prod
  check_mode: true
  register: plan
"""

RETURN = r"""
hooks:
  description: Every hook of the phase in run order, including skipped ones.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Path of the hook on the host that ran the module.
      type: str
      sample: /srv/app/releases/prod-20261121-101500/deploy/apps/common/pre-sync.010_check.sh
    name:
      description: File name of the hook.
      type: str
      sample: pre-sync.010_check.sh
    prefix:
      description: C(common) or the environment (E(GIT_DEPLOY_HOOK_PREFIX)).
      type: str
      sample: common
    phase:
      description: The phase.
      type: str
      sample: pre-sync
    rc:
      description: Exit status; null if the hook did not run; negative if killed by a signal.
      type: int
      sample: 0
    stdout:
      description: The last O(output_limit) bytes of standard output.
      type: str
    stderr:
      description: The last O(output_limit) bytes of standard error.
      type: str
    duration:
      description: Seconds the hook ran.
      type: float
      sample: 0.042
    truncated:
      description: Whether output was cut to O(output_limit).
      type: bool
    timed_out:
      description: Whether the hook was killed after O(timeout) seconds.
      type: bool
    skipped:
      description: Whether the hook did not run (see RV(hooks[].reason)).
      type: bool
    reason:
      description: Why it was skipped, that its failure was ignored, or C(check mode) text.
      type: str
      sample: not executable (chmod +x /srv/app/deploy/apps/prod/pre-sync.020_x to run it)
failed_hook:
  description: Path of the hook that failed the task, null if none did.
  returned: always
  type: str
  sample: /srv/app/releases/prod-20261121-101500/deploy/apps/prod/pre-sync.020_restart.sh
ignored_failures:
  description: Hooks that failed where failures are ignored.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Path of the hook.
      type: str
    rc:
      description: Its exit status.
      type: int
    timed_out:
      description: Whether it was killed after O(timeout) seconds.
      type: bool
    reason:
      description: Why the failure was ignored.
      type: str
hook_dir:
  description: The hook directory the hooks were looked up in.
  returned: always
  type: str
  sample: /srv/app/releases/prod-20261121-101500/deploy
log_file:
  description: Where hook output was appended, null if nowhere.
  returned: always
  type: str
  sample: /srv/app/logs/git-deploy-active.log
commit:
  description: The full commit id the hooks were exported from.
  returned: when O(repo) is given
  type: str
msg:
  description: What happened, in one sentence; on failure what failed and how to reproduce it.
  returned: always
  type: str
"""

import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gitdeploy.rollout.plugins.module_utils.hooks import (
    ACTIONS,
    LOG_LEVELS,
    PHASES,
    HookError,
    hook_action,
    export_hook_dir,
    fail_whale,
    run_phase,
)
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import (
    Layout,
    check_name,
    check_relative,
    check_root,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            release=dict(type="path"),
            hook_dir=dict(type="str", default="deploy"),
            phase=dict(type="str", required=True, choices=list(PHASES)),
            env=dict(type="str", required=True),
            action=dict(type="str", choices=list(ACTIONS)),
            rollout_tag=dict(type="str"),
            start_tag=dict(type="str"),
            root=dict(type="path"),
            timeout=dict(type="int", default=600),
            output_limit=dict(type="int", default=65536),
            log_file=dict(type="path"),
            log_level=dict(type="str", default="info", choices=list(LOG_LEVELS)),
            log_message=dict(type="str", default=""),
            log_announce=dict(type="bool", default=False),
            hosts=dict(type="list", elements="str", default=[]),
            deploy_file=dict(type="str", default=""),
            fail_message=dict(type="str"),
            support_email=dict(type="str"),
            repo=dict(type="path"),
            commit=dict(type="str"),
        ),
        required_one_of=[("release", "repo")],
        required_together=[("repo", "commit")],
        supports_check_mode=True,
    )
    p = module.params
    phase, env = p["phase"], p["env"]
    try:
        check_name(env, "env")
        hook_dir = check_relative(p["hook_dir"], "hook_dir")
        for key in ("rollout_tag", "start_tag"):
            if p[key]:
                check_name(p[key], key)
        root = check_root(p["root"]) if p["root"] else None
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds, got %s" % p["timeout"])
    if p["output_limit"] < 0:
        module.fail_json(msg="output_limit must be 0 or more bytes, got %s" % p["output_limit"])
    release = os.path.abspath(p["release"]) if p["release"] else None
    if release and not os.path.isdir(release):
        if module.check_mode:
            # A check-mode rollout prepares nothing: there are no hooks to list yet.
            module.warn("release %s is not prepared (check mode): its %s hooks cannot be listed"
                        % (release, phase))
            module.exit_json(changed=False, hooks=[], failed_hook=None, ignored_failures=[])
        module.fail_json(msg="release %s does not exist or is not a directory: prepare it first "
                             "(gitdeploy.rollout.git_deploy_release state=prepared)" % release)
    log_file = p["log_file"]
    if not log_file and root and phase != "sync":
        log_file = Layout(root).active_log

    result = dict(changed=False, hooks=[], failed_hook=None, ignored_failures=[], log_file=log_file,
                  hook_dir=os.path.join(release or "", hook_dir))
    workdir = tempfile.mkdtemp(prefix="git-deploy-hooks-", dir=module.tmpdir)
    try:
        source = release
        if p["repo"]:
            source = os.path.join(workdir, "tree")
            try:
                os.mkdir(source)
                result["commit"], _found = export_hook_dir(p["repo"], p["commit"], hook_dir, source)
            except ImportError as exc:
                module.fail_json(msg=missing_required_lib("dulwich"), exception=str(exc), **result)
            except HookError as exc:
                module.fail_json(msg=str(exc), **result)
            except Exception as exc:  # dulwich: not a repository, corrupt objects
                module.fail_json(msg="cannot read hooks of %s from repository %s: %s"
                                     % (p["commit"], p["repo"], exc), **result)
        deploy_path = os.path.join(workdir, "deploy-file")
        with open(deploy_path, "w") as handle:
            handle.write(p["deploy_file"])
        action = p["action"] or hook_action("deploy", phase)
        try:
            summary = run_phase(
                source, hook_dir, phase, env, action, cwd=release or source, rollout_tag=p["rollout_tag"],
                start_tag=p["start_tag"],
                root=root, timeout=p["timeout"], output_limit=p["output_limit"], log_file=log_file,
                log_level=p["log_level"], log_message=p["log_message"], log_announce=p["log_announce"],
                hosts=p["hosts"], deploy_file_path=deploy_path, deploy_text=p["deploy_file"],
                check_mode=module.check_mode)
        except HookError as exc:
            module.fail_json(msg=str(exc), **result)
        except OSError as exc:
            module.fail_json(msg="cannot run %s hooks from %s: %s (log file %s)"
                                 % (phase, os.path.join(source, hook_dir), exc, log_file), **result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    for warning in summary["warnings"]:
        module.warn(warning)
    result.update(changed=summary["ran"] > 0, hooks=summary["hooks"], hook_dir=summary["hook_dir"],
                  failed_hook=summary["failed_hook"], ignored_failures=summary["ignored_failures"])
    if summary["failure"]:
        msg = summary["failure"]
        if phase == "sync":
            msg = "%s\n%s" % (fail_whale(p["fail_message"], summary["failed_hook"], p["support_email"]), msg)
        module.fail_json(msg=msg, **result)
    result["msg"] = summary["msg"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
