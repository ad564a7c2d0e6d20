# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""git_deploy_rollout: the controller's steps of a rollout, run in the controller process
(no module run anywhere). Documentation: plugins/modules/git_deploy_rollout.py.

Each step reads the rollout (registered as ``git_deploy_rollout``) and every host's
state (``git_deploy_host``), decides with module_utils/rollout.py, does the controller's
git work with dulwich (module_utils/gitrepo.py) and returns the rollout, updated.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import getpass
import json
import os
import shutil
import socket
import tempfile
import time

from ansible.module_utils.urls import open_url
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.gitdeploy.rollout.plugins.module_utils import announce, gitrepo, hooks, tagging
from ansible_collections.gitdeploy.rollout.plugins.module_utils import rollout as decide
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import check_name
from ansible_collections.gitdeploy.rollout.plugins.plugin_utils import delivery

display = Display()

ROLLOUT = "git_deploy_rollout"
HOST = "git_deploy_host"
STEPS = ("select", "start", "gate", "tag", "push", "choose", "sync", "publish", "report", "status")
SPEC = dict(
    step=dict(type="str", required=True, choices=list(STEPS)),
    action=dict(type="str", default="deploy", choices=["deploy", "revert", "status", "unlock", "freeze", "unfreeze"]),
    env=dict(type="str", default=""),
    prefix=dict(type="str"),
    repo=dict(type="path"),
    repo_url=dict(type="str", default="", no_log=False),
    version=dict(type="str", default="HEAD"),
    cache_dir=dict(type="path"),
    ref=dict(type="str", default="HEAD"),
    tag=dict(type="str", default=""),
    message=dict(type="str", default=""),
    date_format=dict(type="str", default=tagging.DEFAULT_DATE_FORMAT),
    remote=dict(type="str", default="origin"),
    push=dict(type="bool", default=True),
    max_bundle_bytes=dict(type="int", default=0),
    new_tag=dict(type="bool", default=False),
    allow_dirty=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
    serial=dict(type="list", elements="raw", default=[]),
    max_failures=dict(type="int", default=0),
    canary_wait=dict(type="int", default=0),
    keep_tags=dict(type="int", default=0),
    batch=dict(type="int"),
    rollback_on_failure=dict(type="bool", default=True),
    hook_dir=dict(type="str", default="deploy"),
    hook_timeout=dict(type="int", default=600),
    support_email=dict(type="str", default=""),
    sync_fail_message=dict(type="str", default=""),
    user=dict(type="str"),
    announce_on=dict(type="list", elements="str", default=list(announce.EVENTS)),
    announce_project=dict(type="str", default=""),
    announce_webhook_url=dict(type="str", default="", no_log=True),
    announce_webhook_fields=dict(type="dict", default={}),
    announce_mail=dict(type="raw", default=[]),
    announce_mail_from=dict(type="str", default=""),
    smtp_tls=dict(type="str", default="starttls", choices=["starttls", "ssl", "none"]),
    announce_log_hooks=dict(type="bool", default=True),
    announce_max_commits=dict(type="int", default=announce.MAX_COMMITS),
    announce_max_files=dict(type="int", default=announce.MAX_FILES),
    announce_timeout=dict(type="int", default=10),
    smtp_password=dict(type="str", default="", no_log=True),
    mailed=dict(type="dict"),
    host_settings=dict(type="dict", default={}),
    all_hosts=dict(type="bool", default=False),
)
WEBHOOK_OK = (200, 201, 202, 204)
# Options never kept in the rollout record (it is every controller step's result): the
# steps that need them are given them again.
SECRET = ("repo_url", "announce_webhook_url", "smtp_password")
NOT_SETTINGS = SECRET + ("step", "action", "mailed", "host_settings", "all_hosts", "batch")


class StepFailed(Exception):
    """The step fails the task (run once: every host stops); nothing was changed."""


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def controller_user(task_vars):
    """Who runs the rollout: AWX's user, else USER or LOGNAME, else the login name."""
    for value in (task_vars.get("awx_user_name"), os.environ.get("USER"), os.environ.get("LOGNAME")):
        if value:
            return str(value)
    try:
        return getpass.getuser()
    except Exception:  # pylint: disable=broad-except
        return "unknown"


def mail_recipients(value):
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value or [] if str(v).strip()]


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        given = set(self._task.args)
        valid, args = self.validate_argument_spec(argument_spec=SPEC)
        self.task_vars = task_vars
        self.rollout = dict((task_vars.get(ROLLOUT) or {}).get("rollout") or {})
        step = args["step"]
        if step not in ("select", "start"):
            # What the start step was given stands for the whole rollout (templated once);
            # what this task is given explicitly comes on top.
            args = dict(args, **(self.rollout.get("settings") or {}))
            args.update((key, value) for key, value in valid.validated_parameters.items() if key in given)
        self.args = args
        self.url = args["repo_url"]
        if step not in ("select", "start"):
            # Every controller step is a barrier: it sees every host's state once, and
            # the hosts' next step decides from that snapshot.
            self.rollout.update(fleet=self.fleet(), alive=self.alive())
        try:
            out = getattr(self, "step_" + step)()
        except StepFailed as exc:
            result.update(failed=True, msg=self.mask(str(exc)))
            return result
        except gitrepo.GitError as exc:
            result.update(failed=True, msg=self.mask(exc.msg))
            return result
        result.update(out or {})
        result.setdefault("changed", False)
        result["rollout"] = self.rollout
        return result

    # -- helpers ------------------------------------------------------------------------
    def mask(self, text):
        return gitrepo.mask_secrets(text, self.url) if text else text

    def fleet(self):
        """Every host's state, as registered by its last step (None: it reported nothing yet)."""
        hostvars = self.task_vars["hostvars"]
        return dict((h, (hostvars[h].get(HOST) or {}).get("state")) for h in self.rollout.get("hosts") or [])

    def alive(self):
        return list(self.task_vars.get("ansible_play_hosts") or [])

    def source(self, fetch=True):
        """The repository the rollout is cut from: a cache of repo_url (fetched first unless
        ``fetch`` is false), or the checkout."""
        if not gitrepo.HAS_DULWICH:
            raise StepFailed("the Python library dulwich is required on the controller (pip install dulwich): "
                             "%s" % gitrepo.DULWICH_IMPORT_ERROR)
        if self.args["repo_url"]:
            return gitrepo.open_cache(self.args["repo_url"], self.args["cache_dir"], fetch=fetch)
        return gitrepo.open_checkout(self.args["repo"] or os.getcwd())

    def ref(self):
        ref = self.args["ref"]
        if self.args["repo_url"] and ref == "HEAD":
            return self.args["version"] or ref
        return ref

    def tag_rollout(self, check_mode, **kwargs):
        # The tag is named after the rollout's start: the name the preview showed, and the hooks of
        # pre-start saw, is the name that is cut (unless another rollout took it meanwhile).
        if self.rollout.get("start"):
            kwargs.setdefault("now", datetime.datetime.strptime(self.rollout["start"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=datetime.timezone.utc))
        source = self.source()
        try:
            out = gitrepo.tag_rollout(
                source, env=self.args["env"], prefix=self.args["prefix"] or self.args["env"],
                message=self.args["message"] or None, date_format=self.args["date_format"], remote=self.args["remote"],
                push=kwargs.pop("push", self.args["push"]), deployed_by=self.rollout.get("user"), deploy_id=self.rollout.get("id"),
                check_mode=check_mode, hostname=self.rollout.get("controller"), **kwargs)
        finally:
            source.close()
        for warning in out.pop("warnings", []):
            display.warning(self.mask(warning))
        return out

    # -- select (play 1, on localhost) ------------------------------------------------------
    def step_select(self):
        """The environment: -e env, else the prefix of -e tag; a plain name of a non-empty group."""
        env, tag = self.args["env"], self.args["tag"]
        if not env and tag:
            check_name(tag, "tag")
            parsed = tagging.parse_tag(tag, self.args["date_format"])
            if parsed is None:
                raise StepFailed("tag %s is not a rollout tag (<env>-%s): name the environment with -e env=<env>"
                                 % (tag, self.args["date_format"]))
            env = parsed.prefix
        groups = self.task_vars.get("groups") or {}
        names = sorted(g for g in groups if g not in ("all", "ungrouped"))
        if env == "all" and self.args["all_hosts"] and groups.get("all"):
            return {"env": env, "hosts": list(groups["all"])}
        valid = True
        try:
            check_name(env, "env")
        except ValueError:
            valid = False
        if not valid or env in ("all", "ungrouped") or not groups.get(env):
            raise StepFailed("env=%s is not a deployable environment: it must be the plain name (letters, digits, "
                             "'.', '_', '-') of a non-empty inventory group. Groups here: %s."
                             % (str(env)[:80], ", ".join(names)))
        return {"env": env, "hosts": list(groups[env])}

    # -- start ---------------------------------------------------------------------------
    def refuse_awx_misuse(self):
        tv = self.task_vars
        if tv.get("awx_job_launch_type") == "workflow" and tv.get("awx_workflow_job_name") == tv.get(
                "awx_job_template_name") and tv.get("awx_job_template_name"):
            raise StepFailed(
                "This %s of %s runs as one slice of a sliced AWX job (job template \"%s\" launched with job slicing "
                "above 1): every slice gets only part of the environment's hosts, so each would cut its own tag and "
                "lock only its own hosts. Nothing was changed. Set \"Job Slicing\" to 1 on the job template (and do "
                "not prompt for it on launch), then launch it again. (A workflow named exactly like the job template "
                "looks the same to the playbook: rename the workflow.)"
                % (self.args["action"], self.args["env"], tv.get("awx_job_template_name")))
        rolls_out = self.args["action"] in (decide.DEPLOY, decide.REVERT)
        if tv.get("awx_job_id") is not None and not self.args["repo_url"] and rolls_out:
            raise StepFailed(
                "Under AWX the project checkout holds the playbooks, not your application: set git_deploy_repo_url "
                "(and git_deploy_version) for %s in the inventory's group vars or the job template's extra vars. "
                "Nothing was changed." % self.args["env"])

    def check_settings(self, hosts):
        """Every host's settings, before anything is touched anywhere: the role variables named in
        ``host_settings`` as each host has them (this host's value when the inventory sets none)."""
        hostvars, own = self.task_vars["hostvars"], self.args["host_settings"]
        for host in hosts:
            values = dict((name, hostvars[host].get(name, value)) for name, value in own.items())
            try:
                decide.check_settings(values)
            except ValueError as exc:
                raise StepFailed("%s: %s. Set it in group_vars/%s.yml. Nothing was changed."
                                 % (host, exc, self.args["env"]))

    def step_start(self):
        """Check every host's settings, name the rollout, fix its hosts and batches, and preview
        its tag (nothing is written)."""
        self.refuse_awx_misuse()
        args, moment = self.args, now_utc()
        hosts = list(self.task_vars.get("ansible_play_hosts_all") or [])
        self.check_settings(hosts)
        try:
            self.rollout = dict(decide.plan(hosts, args["serial"]))
        except ValueError as exc:
            raise StepFailed("%s. Nothing was changed." % exc)
        self.rollout.update(
            settings=dict((k, v) for k, v in args.items() if k not in NOT_SETTINGS),
            id=decide.rollout_id(moment, self.task_vars.get("awx_job_id")), action=args["action"], env=args["env"],
            prefix=args["prefix"] or args["env"], user=args["user"] or controller_user(self.task_vars),
            controller=socket.gethostname(), start=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            max_failures=args["max_failures"], rollback_on_failure=args["rollback_on_failure"], failures=[],
            canary_wait=args["canary_wait"],
            tag=None, commit=None, repo=None, deploy_file=None, previous_tag=None, noop_tag=None,
            announce={"on": list(args["announce_on"]),
                      "project": announce.project_name(args["announce_project"], args["repo_url"], None)})
        self.fetch_tags()
        if args["action"] == decide.DEPLOY:
            preview = self.tag_rollout(True, ref=self.ref(), allow_dirty=args["allow_dirty"], force=args["force"],
                                       new_tag=args["new_tag"])
            self.rollout.update(tag=preview["tag"], commit=preview["commit"], repo=preview["repo"],
                                deploy_file=preview["deploy_file"], previous_tag=preview["previous_tag"],
                                noop_tag=None if preview["created"] else preview["tag"])
            self.rollout["announce"]["project"] = announce.project_name(
                args["announce_project"], args["repo_url"], preview["repo"])
            out = {"changed": False, "msg": "%s %s: %s (%s)%s" % (
                args["action"], self.rollout["id"], preview["tag"], preview["commit"][:12],
                "" if preview["created"] else ", tagged already")}
            if self._task.diff and preview.get("log"):
                out["diff"] = {"prepared": preview["log"]}
            return out
        if args["action"] == decide.REVERT and args["tag"]:
            self.revert_info(args["tag"])
        return {"msg": "%s %s of %s" % (args["action"], self.rollout["id"], args["env"])}

    def fetch_tags(self):
        """The remote's tags, into the checkout, before anything is decided (git-deploy fetches
        before it processes): another operator's rollout is the last one, and "previous". A cache
        of repo_url is fetched whole when it is opened."""
        if self.args["repo_url"]:
            return
        source = self.source()
        try:
            got = gitrepo.fetch_tags(source, self.args["remote"])
        finally:
            source.close()
        if got["differ"]:
            differ = ", ".join(got["differ"])
            display.warning("the tag(s) %s of %s differ from the remote's %s: the ones here are kept (git fetch --tags "
                            "--force %s takes the remote's)" % (differ, source.path, got["url"], self.args["remote"]))
        if got["fetched"]:
            display.display("fetched %d tag(s) from %s" % (len(got["fetched"]), got["url"]))

    def revert_info(self, tag):
        """The tag a revert goes back to, checked on the controller: it exists, and is of this environment."""
        source = self.source()
        try:
            info = gitrepo.rollout_info(source, tag=tag, date_format=self.args["date_format"])["tag"]
            repo = source.path
        finally:
            source.close()
        prefix = self.rollout["prefix"]
        if info["env"] != prefix:
            raise StepFailed("%s cannot be reverted to on %s: it is a rollout of %s, not of %s. Nothing was changed. "
                             "List the rollouts with: ansible-playbook gitdeploy.rollout.status -e env=%s"
                             % (tag, self.rollout["env"], info["env"], prefix, self.rollout["env"]))
        self.rollout.update(tag=tag, commit=info["commit"], repo=repo, deploy_file=info.get("message") or "")
        self.rollout["announce"]["project"] = announce.project_name(
            self.args["announce_project"], self.args["repo_url"], repo)

    # -- gate ------------------------------------------------------------------------------
    def step_gate(self):
        """A barrier: every host finished the step before; the next one decides from what they reported.
        Before the second switch batch, the canary (the first) is held git_deploy_canary_wait seconds;
        ``canary_hold`` tells the role to check it again before the batch switches."""
        fleet, alive = self.rollout["fleet"], self.rollout["alive"]
        found = decide.failures(self.rollout, fleet, alive)
        if decide.aborted(self.rollout, found):
            return {"msg": "the rollout stopped: first failure on %s" % decide.describe_failure(found[0] if found else None),
                    "canary_hold": False}
        hold = self.args["batch"] is not None and decide.canary_hold(self.rollout, fleet, alive, self.args["batch"])
        if hold and not self._task.check_mode:
            wait = self.rollout["canary_wait"]
            display.display("holding the canary (%s) %d s before batch %d switches"
                            % (", ".join(self.rollout["batches"][0]), wait, self.args["batch"] + 1))
            time.sleep(wait)
        return {"msg": "%d host(s) go on" % len(alive), "canary_hold": hold}

    # -- tag ----------------------------------------------------------------------------
    def step_tag(self):
        """Cut the rollout tag once every host is locked (a rollout that lost the race cuts nothing),
        and build the bundle each host needs; it is pushed upstream only once every host is prepared."""
        fleet, alive = self.rollout["fleet"], self.rollout["alive"]
        if decide.is_noop(self.rollout, fleet):
            self.rollout["noop"] = True
            return {"msg": "%s (%s) is already live on every host of %s: nothing to do."
                           % (self.rollout["tag"], self.rollout["commit"][:12], self.rollout["env"])}
        if decide.aborted(self.rollout, decide.failures(self.rollout, fleet, alive)):
            return {"skipped": True, "msg": "not every host is locked: no tag"}
        failed = self.start_hooks(("pre-start",))
        if failed:
            return {"msg": "pre-start failed, no tag was cut: %s" % failed}
        try:
            cut = self.tag_rollout(self._task.check_mode, ref=self.ref(), allow_dirty=self.args["allow_dirty"],
                                   force=self.args["force"], new_tag=self.args["new_tag"], push=False)
        except gitrepo.GitError as exc:
            self.rollout["failures"] = self.rollout["failures"] + [decide.failure(
                decide.CONTROLLER, "tag", self.mask(exc.msg))]
            return {"msg": self.mask(exc.msg)}
        self.rollout.update(tag=cut["tag"], commit=cut["commit"], deploy_file=cut["deploy_file"],
                            previous_tag=cut["previous_tag"],
                            tag_created=bool(cut["created"]) and not self._task.check_mode)
        msg = "%s %s" % ("cut" if cut["created"] else "using", cut["tag"])
        weighed = self.deliveries()
        failed = None if self.rollout.get("refused") else self.start_hooks(("post-start",))
        if failed:
            msg += "; post-start failed, the tag will be dropped: %s" % failed
        return {"changed": bool(cut["created"]), "msg": "%s%s" % (msg, weighed)}

    def deliveries(self):
        """Build (or find in the cache) the bundle of every host that lacks the tag, once per
        distinct store: prepare then only copies it. A bundle that cannot be built (an object
        missing on the controller) or is above max_bundle_bytes refuses the rollout before any
        host is touched."""
        fleet, commit, sizes, fetched = self.rollout["fleet"], self.rollout["commit"], {}, False
        for host in self.rollout["alive"]:
            state = fleet.get(host) or {}
            store = (state.get("probe") or {}).get("store") or {}
            if not (state.get("locked") or state.get("lock_skipped")) or not delivery.needed(store, commit):
                continue
            settings = state.get("settings") or {}
            submodules = delivery.submodules_of(settings)
            key = (tuple(sorted(store.get("haves") or [])), bool(store.get("commit_present")), submodules)
            if key in sizes:
                continue
            if submodules and self.args["repo_url"] and not fetched:
                # Only now: a rollout whose hosts all have the tag fetches no submodule.
                fetched, error = True, self.fetch_modules(commit)
                if error:
                    self.rollout["refused"] = "%s Nothing was changed." % error
                    return ": %s" % error
            try:
                sizes[key] = delivery.build(
                    self.rollout["repo"], self.rollout["tag"], commit, store, settings.get("cache_dir"),
                    self._task.check_mode, host, max_bytes=self.args["max_bundle_bytes"],
                    submodules=submodules)[1]["bytes"]
            except delivery.DeliveryFailed as exc:  # too big, a missing object: before any host is touched
                self.rollout["refused"] = "%s Nothing was changed." % self.mask(str(exc))
                return ": %s" % self.mask(str(exc))
        if not sizes:
            return ""
        return ", %d bundle(s) of %s" % (len(sizes), ", ".join(delivery.human(b) for b in sorted(set(sizes.values()))))

    def fetch_modules(self, commit):
        """Fetch the submodules ``commit`` pins into the cache of repo_url (the bundle brings them
        from there); the error message, or None."""
        try:
            source = self.source(fetch=False)
        except gitrepo.GitError as exc:
            return self.mask(exc.msg)
        try:
            gitrepo.fetch_modules(source, commit)
        except gitrepo.GitError as exc:
            return self.mask(exc.msg)
        finally:
            source.close()
        return None

    # -- push -----------------------------------------------------------------------------
    def step_push(self):
        """Push the rollout tag upstream once every host is prepared (pre-sync passed), or drop it
        when the rollout stopped before anything went live: git-deploy cuts no tag then."""
        tag = self.rollout.get("tag")
        fate = decide.tag_fate(self.rollout, decide.failures(self.rollout, self.rollout["fleet"],
                                                             self.rollout["alive"]))
        if fate == decide.KEEP:
            return {"skipped": True, "msg": "%s stays as it is" % (tag or "no tag")}
        if fate == decide.PUSH and not self.args["push"]:
            return {"msg": "%s stays local (push is off)" % tag}
        if self._task.check_mode:
            return {"changed": True, "msg": "%s would be %s" % (tag, "pushed" if fate == decide.PUSH else "dropped")}
        source = self.source(fetch=False)
        try:
            if fate == decide.DROP:
                dropped = gitrepo.drop_tag(source, tag)
                self.rollout["tag_dropped"] = dropped
                return {"changed": dropped, "msg": "dropped %s from %s: the rollout stopped before anything went "
                                                   "live, nothing was pushed" % (tag, source.path)}
            pushed, url = gitrepo.publish_tag(source, self.args["remote"], tag)
        except gitrepo.GitError as exc:
            self.rollout["failures"] = self.rollout["failures"] + [decide.failure(
                decide.CONTROLLER, "push", self.mask(exc.msg))]
            return {"msg": self.mask(exc.msg)}
        finally:
            source.close()
        if url is None:
            return {"msg": "%s stays local (no remote)" % tag}
        return {"changed": pushed, "msg": "%s %s %s" % (tag, "pushed to" if pushed else "is already at", self.mask(url))}

    # -- choose (revert) -------------------------------------------------------------------
    def step_choose(self):
        """The rollout a revert goes back to, from what every host reported when it was locked."""
        fleet, alive = self.rollout["fleet"], self.rollout["alive"]
        if decide.aborted(self.rollout, decide.failures(self.rollout, fleet, alive)):
            return {"skipped": True, "msg": "not every host is locked"}
        tag, error = decide.revert_target(self.args["tag"], fleet, self.rollout["env"], force=self.args["force"])
        if error is None and not self.rollout.get("commit"):
            try:
                self.revert_info(tag)
            except (StepFailed, gitrepo.GitError) as exc:
                error = self.mask(getattr(exc, "msg", None) or str(exc))
        if error:
            self.rollout["refused"] = error
            return {"msg": error}
        self.rollout["previous_tag"] = decide.common_live_tag(self.rollout, fleet)
        skipped = [] if self.args["tag"] else decide.skipped_bad(fleet)
        if skipped:
            display.display("reverting %s to %s, the newest good rollout before %s: skipped the bad release(s) %s "
                            "(failed or rolled back)" % (self.rollout["env"], tag, self.rollout["previous_tag"],
                                                         ", ".join(skipped)))
        msg = "reverting %s from %s to %s" % (self.rollout["env"], self.rollout["previous_tag"], tag)
        failed = self.start_hooks(("pre-start",))
        weighed = "" if failed else self.deliveries()
        failed = failed or (None if self.rollout.get("refused") else self.start_hooks(("post-start",)))
        if failed:
            msg += ": stopped before any host changed, start hook failed: %s" % failed
        return {"msg": msg + weighed, "skipped_bad": skipped}

    # -- the controller's hooks -----------------------------------------------------------
    def controller_hooks(self, phases, hosts=None):
        """Run ``phases`` of the rollout commit's hooks in turn here, on the controller (pre-start,
        post-start, the sync hook), from one copy of its hook directory; stop at the first that
        fails. Each phase's summary (hooks.run_phase), by phase, for the phases that ran."""
        rollout, done = self.rollout, {}
        first = self.rollout["fleet"].get(rollout["hosts"][0]) or {}
        start_tag = first.get("start_tag") or decide.start_tag(first.get("probe") or {}, rollout["tag"])
        workdir = tempfile.mkdtemp(prefix="git-deploy-hooks-")
        try:
            tree = os.path.join(workdir, "tree")
            os.mkdir(tree)
            deploy_path = os.path.join(workdir, "deploy-file")
            with open(deploy_path, "w") as handle:
                handle.write(rollout.get("deploy_file") or "")
            for phase in phases:
                try:
                    if not done:
                        hooks.export_hook_dir(rollout["repo"], rollout["commit"], self.args["hook_dir"], tree)
                    done[phase] = hooks.run_phase(
                        tree, self.args["hook_dir"], phase, rollout["env"], hooks.hook_action(rollout["action"], phase),
                        rollout_tag=rollout["tag"], start_tag=start_tag, timeout=self.args["hook_timeout"],
                        hosts=hosts, deploy_file_path=deploy_path, deploy_text=rollout.get("deploy_file") or "",
                        check_mode=self._task.check_mode)
                except (hooks.HookError, OSError) as exc:
                    done[phase] = {"failure": str(exc), "failed_hook": None, "ran": 0, "warnings": [], "msg": str(exc)}
                for warning in done[phase]["warnings"]:
                    display.warning(warning)
                if done[phase]["failure"]:
                    break
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return done

    def start_hooks(self, phases):
        """git-deploy's pre-start (before the tag is cut) or post-start (after), on the controller
        once every host is locked: a failure stops the rollout before any host changes."""
        for phase, summary in self.controller_hooks(phases).items():
            if summary["failure"]:
                self.rollout["failures"] = self.rollout["failures"] + [decide.failure(
                    decide.CONTROLLER, "start", "%s hook failed: %s" % (phase, summary["failure"]),
                    hook=summary["failed_hook"])]
                display.display(decide.step_line(decide.CONTROLLER, phase, "FAILED", 0, summary["failure"]))
                return summary["failure"]
        return None

    # -- sync -------------------------------------------------------------------------------
    def step_sync(self):
        """deploy/sync/<env>.sync, once, on the controller, once every host is live (the barrier
        before the finish). It fails a deploy (the hosts roll back); a revert stands and says so."""
        fleet, alive = self.rollout["fleet"], self.rollout["alive"]
        found = decide.failures(self.rollout, fleet, alive)
        if decide.aborted(self.rollout, found) or decide.is_noop(self.rollout, fleet) or not decide.any_switched(fleet):
            return {"skipped": True, "msg": "no host switched"}
        rollout = self.rollout
        summary = self.controller_hooks(("sync",), [h for h in rollout["hosts"] if h in alive])["sync"]
        if summary["failure"]:
            msg = "%s\n%s" % (hooks.fail_whale(self.args["sync_fail_message"] or None, summary["failed_hook"] or "?",
                                               self.args["support_email"] or None), summary["failure"])
            display.display(decide.step_line(decide.CONTROLLER, "sync", "FAILED", 0, summary["failure"]))
            if decide.revert_stands(rollout["action"]):
                display.warning("%s\n(the revert stands: it is not undone by its sync hook)" % msg)
            else:
                rollout["failures"] = rollout["failures"] + [decide.failure(decide.CONTROLLER, "sync", msg,
                                                                            hook=summary["failed_hook"])]
            return {"msg": msg}
        return {"changed": summary["ran"] > 0, "msg": summary["msg"]}

    # -- publish: the revert marker, the announcement ---------------------------------------------
    def step_publish(self):
        fleet, alive = self.rollout["fleet"], self.rollout["alive"]
        outcome = decide.result(self.rollout, fleet, alive)
        out = {"outcome": outcome, "undelivered": [], "announcement": None, "mail": None, "mail_ready": False}
        if outcome in (decide.UNCHANGED, decide.REFUSED):
            return out
        if self.rollout["action"] == decide.REVERT and outcome == decide.SUCCESS:
            self.mark_reverted()
        if decide.prunes_tags(self.rollout, fleet, alive, self.args["keep_tags"]):
            out["pruned_tags"] = self.prune_tags()
        event = announce.event_of(self.rollout["action"], outcome)
        if event not in self.rollout["announce"]["on"]:
            return out
        found = decide.failures(self.rollout, fleet, alive)
        facts = dict(self.rollout, result=outcome, deploy_id=self.rollout["id"], hosts=self.rollout["hosts"],
                     failed_hosts=decide.failed_hosts(found), failure=decide.first_failure(found),
                     support_email=self.args["support_email"], project=self.rollout["announce"]["project"],
                     previous_tag=self.rollout.get("previous_tag") or "")
        changes = None
        try:
            from ansible_collections.gitdeploy.rollout.plugins.module_utils.changes import changes_between
            changes, _log_hooks = changes_between(self.rollout["repo"], facts["previous_tag"] or None,
                                                  self.rollout["commit"], self.args["announce_max_commits"],
                                                  self.args["announce_max_files"])
        except Exception as exc:  # pylint: disable=broad-except
            display.warning("cannot tell what changed from %s to %s: %s (the announcement goes out without the "
                            "changes)" % (facts["previous_tag"] or "the start", self.rollout["tag"], exc))
        message = announce.compose(facts, changes, max_commits=self.args["announce_max_commits"],
                                   max_files=self.args["announce_max_files"])
        out["announcement"] = message
        if self._task.check_mode:
            for line in message["text"].splitlines():
                display.display(line)
            return out
        url = self.args["announce_webhook_url"]
        if url:
            out["undelivered"] += self.post(url, dict(message["payload"], **self.args["announce_webhook_fields"]))
        to = mail_recipients(self.args["announce_mail"])
        if to:
            installed = self._shared_loader_obj.module_loader.find_plugin("community.general.mail") is not None
            out["mail"] = {
                "to": to, "subject": message["subject"], "text": message["text"],
                "sender": self.args["announce_mail_from"] or "%s@%s" % (self.rollout["user"],
                                                                        self.rollout["controller"]),
                "secure": {"starttls": "starttls", "ssl": "always", "none": "never"}[self.args["smtp_tls"]],
                "headers": ["X-Git-Deploy-Event=%s" % message["event"], "X-Git-Deploy-Env=%s" % self.rollout["env"],
                            "X-Git-Deploy-Tag=%s" % self.rollout["tag"]]}
            out["mail_ready"] = installed
            if not installed:
                out["undelivered"].append({
                    "channel": "mail to %s" % ", ".join(to),
                    "msg": "the module community.general.mail is not installed on this controller; install the "
                           "collection community.general (ansible-galaxy collection install community.general, or "
                           "pip install ansible) or stop setting git_deploy_announce_mail"})
        return out

    def post(self, url, payload):
        try:
            response = open_url(url, data=json.dumps(payload), method="POST", timeout=self.args["announce_timeout"],
                                headers={"Content-Type": "application/json"})
            status = response.getcode()
            if status in WEBHOOK_OK:
                return []
            why = "HTTP status %s" % status
        except Exception as exc:  # pylint: disable=broad-except
            why = str(exc)
        return [{"channel": "webhook", "msg": why}]

    def prune_tags(self):
        """git_deploy_keep_tags: delete the environment's rollout tags (and their revert markers)
        beyond the newest keep_tags, upstream and on the controller, never one a host needs
        (rollout.protected_tags). Check mode lists them. A failure is a warning: the rollout is done."""
        keep, prefix = self.args["keep_tags"], self.rollout["prefix"]
        protected = decide.protected_tags(self.rollout, self.rollout["fleet"])
        try:
            source = self.source(fetch=False)
        except (StepFailed, gitrepo.GitError) as exc:
            display.warning("old rollout tags not pruned: %s" % self.mask(getattr(exc, "msg", None) or str(exc)))
            return []
        try:
            url, upstream = gitrepo.remote_tags(source, self.args["remote"])
            # The rollout's own tag counts among the newest even in check mode, where it was not cut.
            names = set(gitrepo.tag_refs(source.repo)) | set(upstream) | {self.rollout["tag"]}
            doomed = tagging.tags_to_prune(names, prefix, keep, protected, self.args["date_format"])
            if doomed and not self._task.check_mode:
                gitrepo.delete_tags(source, url, doomed)
        except gitrepo.GitError as exc:
            display.warning("old rollout tags of %s not pruned (the rollout itself is done): %s"
                            % (self.rollout["env"], self.mask(exc.msg)))
            return []
        finally:
            source.close()
        if doomed:
            display.display("%s %d old rollout tag(s) of %s (keep_tags %d%s): %s" % (
                "would delete" if self._task.check_mode else "deleted", len(doomed), prefix, keep,
                ", upstream and here" if url else ", here", ", ".join(doomed)))
        return doomed

    def mark_reverted(self):
        """git-deploy's ``<tag>_reverted`` marker on the rollout reverted away from; a failure is a warning."""
        previous, tag = self.rollout.get("previous_tag"), self.rollout["tag"]
        if not previous or previous == tag:
            return
        try:
            self.tag_rollout(self._task.check_mode, ref=tag, revert_of=previous)
        except gitrepo.GitError as exc:
            display.warning("the revert is done, but the marker %s could not be made: %s"
                            % (tagging.marker_for(previous), self.mask(exc.msg)))

    # -- report ---------------------------------------------------------------------------------
    def step_report(self):
        """Publish the outcome (set_stats), print the summary, say what was not announced."""
        fleet, alive = self.rollout["fleet"], self.rollout["alive"]
        published = (self.task_vars.get(ROLLOUT) or {})
        outcome = decide.result(self.rollout, fleet, alive)
        found = decide.failures(self.rollout, fleet, alive)
        stats = decide.outcome_stats(self.rollout, fleet, alive, outcome)
        if outcome == decide.UNCHANGED:
            for key in ("git_deploy_last_id", "git_deploy_last_previous_tag", "git_deploy_last_failed_hosts"):
                stats.pop(key)
        undelivered = list(published.get("undelivered") or [])
        mailed = self.args["mailed"] or {}
        if mailed.get("failed") or mailed.get("result"):
            undelivered.append({"channel": "mail to %s" % ", ".join((published.get("mail") or {}).get("to") or []),
                                "msg": str(mailed.get("msg") or mailed.get("result") or "")})
        for host in self.rollout.get("hosts") or []:
            state = fleet.get(host) or {}
            if state.get("announced") is False:
                undelivered.append({"channel": "log hooks on %s" % host, "msg": "a log hook failed (see its log)"})
        secrets = announce.secret_variants([self.args["announce_webhook_url"], self.args["smtp_password"]])
        for item in undelivered:
            display.warning("announcement by %s not sent: %s (the rollout itself is not affected)" % (
                announce.mask(item["channel"], secrets),
                announce.clip(announce.mask(item["msg"], secrets), announce.MAX_MESSAGE) or "no reason given"))
        if outcome == decide.UNCHANGED:
            lines = ["%s (%s) is already live on every host of %s: nothing to do." % (
                self.rollout["tag"], (self.rollout["commit"] or "")[:12], self.rollout["env"])]
        elif outcome == decide.REFUSED:
            lines = ["%s of %s refused: %s Locks released." % (self.rollout["action"], self.rollout["env"],
                                                               self.rollout["refused"])]
        else:
            lines = decide.summary_lines(self.rollout, fleet, outcome)
        for line in lines:
            display.display(line)
        failed = outcome in (decide.FAILED, decide.ROLLED_BACK, decide.REFUSED)
        msg = lines[0]
        if outcome in (decide.FAILED, decide.ROLLED_BACK):
            msg = decide.fail_message(self.rollout, found)
        return {"ansible_stats": {"data": stats, "per_host": False, "aggregate": True}, "outcome": outcome,
                "rollout_failed": failed, "msg": msg}

    # -- status -----------------------------------------------------------------------------------
    def step_status(self):
        hosts = [h for h in self.rollout.get("hosts") or [] if h in self.rollout["alive"]]
        table = decide.status(self.rollout["env"], hosts, self.rollout["fleet"])
        for line in decide.status_lines(table):
            display.display(line)
        return {"status": table, "ansible_stats": {"data": {"git_deploy_last_status": table}, "per_host": False,
                                                   "aggregate": True}}
