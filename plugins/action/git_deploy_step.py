# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller half of git_deploy_step: decide whether this host takes part in the step
(module_utils/rollout.py, from the rollout and every host's state), build and transfer
the bundle for prepare, run the step on the target once, remember what it did, and print
one line. Documentation lives with the target half, plugins/modules/git_deploy_step.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.gitdeploy.rollout.plugins.module_utils import announce
from ansible_collections.gitdeploy.rollout.plugins.module_utils import rollout as decide
from ansible_collections.gitdeploy.rollout.plugins.modules.git_deploy_step import OPTIONS
from ansible_collections.gitdeploy.rollout.plugins.plugin_utils import delivery

display = Display()

MODULE = "gitdeploy.rollout.git_deploy_step"
# The role registers the controller steps' result as ROLLOUT, every host step's as HOST, and
# the first host's lock (run once, so registered on every host) as FIRST.
ROLLOUT = "git_deploy_rollout"
HOST = "git_deploy_host"
FIRST = "git_deploy_first"
SPEC = OPTIONS
# The steps that read the host's settings from their options (module_defaults); the steps
# after the lock take them from the host's state (templated once per host, not per step),
# and validate only their own few options.
FIRST_STEPS = ("lock", "probe", "abort", "freeze", "unfreeze")
# The steps that run on every host they are given, whatever the rollout's state, and fail
# their task when they fail (the playbooks of one step: status, unlock, freeze, unfreeze).
ALWAYS = ("probe", "abort", "freeze", "unfreeze")
LATER_SPEC = dict((k, OPTIONS[k]) for k in ("step", "lock_first", "batch"))
# What a step sends to the target, beyond the host's settings.
SETTINGS = ("root", "env", "lock_dir", "ttl", "block_file", "strategy", "submodules", "deploy_file_name", "shared_paths",
            "keep_releases", "hook_dir", "hook_timeout", "force", "force_lock", "checks", "keep_tags")
# What the first step keeps of its options for the steps after it.
KEPT = SETTINGS + ("reason", "cache_dir", "announce_log_hooks", "lock_wait")


class ActionModule(ActionBase):

    # The remote tmp dir is made only for a bundle (plugin_utils/delivery.py): no round trip
    # to the host before the step decides whether it runs there at all.
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        first_step = self._task.args.get("step") in FIRST_STEPS
        _valid, args = self.validate_argument_spec(argument_spec=SPEC if first_step else LATER_SPEC)
        host = task_vars.get("inventory_hostname")
        step = args["step"]
        rollout = (task_vars.get(ROLLOUT) or {}).get("rollout") or {}
        # The fleet as the last controller step saw it (reading every host's variables here,
        # on every host, would cost a get_vars per host and per host), with this host's own
        # state, fresh. The lock round after the first host's needs only that host's state.
        fleet = dict(rollout.get("fleet") or {})
        alive = list(rollout.get("alive") or task_vars.get("ansible_play_hosts") or [])
        state = dict((task_vars.get(HOST) or {}).get("state") or decide.new_state(host))
        first = rollout.get("first_host")
        if step == "lock" and not args["lock_first"] and first:
            fleet[first] = (task_vars.get(FIRST) or {}).get("state")
            if host == first:
                state = dict(fleet[first] or state)
        fleet[host] = state
        if first_step:
            state["settings"] = dict((k, args[k]) for k in KEPT if args.get(k) is not None)
        args = dict(state.get("settings") or {}, **args)
        try:
            return self._step(step, args, rollout, fleet, alive, host, state, task_vars, result)
        except AnsibleConnectionFailure as exc:
            return self._unreachable(step, args, state, result, "host unreachable: %s" % exc)
        finally:
            try:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            except AnsibleConnectionFailure:
                # The step is done; the next one finds the host unreachable. The remote tmp
                # dir stays (in remote_tmp); Ansible's own cleanup must not try again.
                self._connection._shell.tmpdir = None

    # -- what this host does ------------------------------------------------------------
    def _step(self, step, args, rollout, fleet, alive, host, state, task_vars, result):
        if step in ALWAYS:
            run, reason, extra = True, None, {}
        else:
            name = "lock-first" if step == "lock" and args["lock_first"] else step
            run, reason = decide.step_decision(name, rollout, fleet, alive, host, args.get("batch"))
            extra = self._inputs(step, args, rollout, fleet, alive, host, state) if run else {}
        entry = {"step": step, "batch": args.get("batch"), "ran": run, "changed": False, "seconds": 0.0,
                 "note": reason or ""}
        if run:
            report = self._run_on_target(step, args, rollout, state, extra, task_vars, host, entry)
            if report is None:
                return self._unreachable(step, args, state, result, entry["note"])
            state.update(report.get("state") or {})
            entry.update(changed=bool(report.get("changed")), seconds=report.get("seconds", 0.0),
                         note=report.get("note") or "")
            failure = report.get("failure")
            if failure:
                failure = dict(failure, host=host, batch=args.get("batch"))
                state["failure"] = state.get("failure") or failure
                entry["note"] = failure["msg"]
            for warning in report.get("warnings") or []:
                self._display_warning(warning)
            status = "FAILED" if failure else ("changed" if entry["changed"] else "ok")
            line = decide.step_line(host, step, status, entry["seconds"], entry["note"])
            if not (step in ALWAYS and failure) and step != "probe":
                display.display(line)
        else:
            failure = None
            line = decide.step_line(host, step, "skipped", 0, reason)
        state["steps"] = state["steps"] + [entry]
        result.update(changed=entry["changed"], step=entry, state=state, failure=failure, msg=line)
        if not run:
            result["skipped"] = True
        if step in ALWAYS and step != "probe" and failure:
            return dict(failed=True, msg=failure["msg"], changed=entry["changed"])
        return result

    def _unreachable(self, step, args, state, result, msg):
        """The host cannot be reached: it drops out of the rollout in this step. It leaves the play too,
        except in the first host's lock round: that task runs once, and an unreachable host there would
        end the play for every host before the report; the rollout stops anyway (nothing was locked)."""
        entry = {"step": step, "batch": args.get("batch"), "ran": True, "changed": False, "seconds": 0.0,
                 "note": msg}
        state.update(dropped=step, steps=state["steps"] + [entry])
        if args.get("lock_first"):
            state["failure"] = decide.dropout(state["host"], step)
            result.update(state=state, step=entry, failure=state["failure"], msg=msg)
        else:
            result.update(unreachable=True, msg=msg, state=state, step=entry, failure=None)
        return result

    def _display_warning(self, warning):
        display.warning(warning)

    def _inputs(self, step, args, rollout, fleet, alive, host, state):
        """What the target needs for ``step``, decided here for the whole fleet."""
        probe = state.get("probe") or {}
        tag = rollout.get("tag")
        inputs = {}
        if step == "lock":
            inputs["unless_live"] = rollout.get("noop_tag")
        if step in ("switch", "post-sync", "finish") and state.get("start_tag") is None and not state.get("release"):
            # A revert whose release was there already was not prepared: its start is what the lock saw.
            state.update(start_tag=decide.start_tag(probe, tag), resuming=decide.resuming(probe, tag))
        if step == "prepare":
            inputs["take_lock"] = bool(state.get("lock_skipped"))
        if step == "switch":
            inputs.update(start_tag=state.get("start_tag"), resuming=bool(state.get("resuming")))
        if step == "finish":
            outcome = decide.result(rollout, fleet, alive)
            found = decide.failures(rollout, fleet, alive)
            rollback = decide.needs_rollback(rollout, fleet, alive, host)
            inputs.update(start_tag=state.get("start_tag"), rollback=rollback,
                          post_sync=decide.post_sync_at_finish(rollout, fleet, alive, host))
            if decide.leaves_record(rollout, found):
                inputs["record"] = decide.history_record(rollout, state, outcome, decide.first_failure(found))
            inputs["announce"] = self._log_announcement(args, rollout, fleet, state, outcome)
        return inputs

    def _log_announcement(self, args, rollout, fleet, state, outcome):
        """The message for the log hooks (GIT_DEPLOY_LOG_ANNOUNCE=1), or None."""
        settings = rollout.get("announce") or {}
        event = announce.event_of(rollout.get("action"), outcome)
        if (not args.get("announce_log_hooks", True) or self._task.check_mode or outcome in (decide.REFUSED, decide.UNCHANGED)
                or event not in (settings.get("on") or [])):
            return None
        facts = dict(rollout, result=outcome, previous_tag=rollout.get("previous_tag") or state.get("start_tag"))
        level = {"deploy": "notice", "revert": "notice", "rollback": "warning"}.get(event, "err")
        return {"message": announce.subject(facts, event), "level": level}

    # -- the run on the target ------------------------------------------------------------
    def _module_args(self, step, args, rollout, state, extra):
        module_args = dict((k, args[k]) for k in SETTINGS if args.get(k) is not None)
        module_args.update(step=step, action=rollout.get("action") or "deploy", deploy_id=rollout.get("id"),
                           host=state.get("host"),
                           user=rollout.get("user"), controller=rollout.get("controller"), start=rollout.get("start"),
                           tag=rollout.get("tag"), commit=rollout.get("commit"),
                           deploy_file=rollout.get("deploy_file"), reason=args.get("reason"))
        if rollout.get("user"):
            module_args["owner"] = "%s@%s" % (rollout["user"], rollout.get("controller"))
        if step == "abort":
            module_args["action"] = "abort"
        if step == "probe":
            module_args["history_limit"] = decide.STATUS_HISTORY
        module_args.update((k, v) for k, v in extra.items() if v is not None)
        return dict((k, v) for k, v in module_args.items() if v is not None)

    def _wait_for_lock(self, report, args, rollout, state, extra, task_vars, host, started):
        """git_deploy_lock_wait: while another rollout holds this host's lock, ask again every few
        seconds (saying who holds it), until it is free or the wait is over."""
        wait = args.get("lock_wait") or 0
        while True:
            pause = decide.lock_wait(report, time.monotonic() - started, wait)
            if pause is None or self._task.check_mode:
                return report
            display.display(decide.lock_wait_line(host, report["state"]["held_by"], time.monotonic() - started, wait))
            time.sleep(pause)
            report = self._execute_module(module_name=MODULE, task_vars=task_vars,
                                          module_args=self._module_args("lock", args, rollout, state, extra))

    def _run_on_target(self, step, args, rollout, state, extra, task_vars, host, entry):
        """Run the step module once; None when the host is unreachable (``entry`` says why)."""
        started = time.monotonic()
        built = None
        try:
            if step == "prepare":
                store = (state.get("probe") or {}).get("store") or {}
                if delivery.needed(store, rollout.get("commit")):
                    built, info = delivery.build(rollout.get("repo"), rollout.get("tag"), rollout.get("commit"),
                                                 store, args.get("cache_dir"), self._task.check_mode, host,
                                                 submodules=delivery.submodules_of(args))
                    entry["bytes"] = info["bytes"]
                    if built is not None and not self._task.check_mode:
                        extra.update(delivery.send(self, built, rollout["tag"]))
            report = self._execute_module(module_name=MODULE, task_vars=task_vars,
                                          module_args=self._module_args(step, args, rollout, state, extra))
            if step == "lock":
                report = self._wait_for_lock(report, args, rollout, state, extra, task_vars, host, started)
        except AnsibleConnectionFailure as exc:
            entry["note"] = "host unreachable: %s" % exc
            display.display(decide.step_line(host, step, "UNREACHABLE", time.monotonic() - started, entry["note"]))
            return None
        except delivery.DeliveryFailed as exc:
            report = {"failure": decide.failure(host, "prepare", str(exc))}
        if report.get("unreachable"):
            entry["note"] = "host unreachable: %s" % report.get("msg")
            return None
        if report.get("failed"):
            msg = report.get("msg") or "the step failed on the target"
            phase = "lock" if step == "lock" else ("prepare" if step == "prepare" else step)
            report = {"failure": decide.failure(host, phase, msg), "changed": report.get("changed")}
        if built is not None and "damaged" in ((report.get("failure") or {}).get("msg") or ""):
            delivery.forget(built, args.get("cache_dir"))
        report["seconds"] = round(time.monotonic() - started, 3)
        return report
