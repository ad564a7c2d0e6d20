# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One host's part of each rollout step, in one run on the target.

Each step composes the same module_utils the single-purpose modules use (``lock``,
``store``, ``release``, ``hooks``, ``journal``) so that a step is one Python start on
the host:

* ``probe``: what the host has (live/settled/previous tag, releases, history, dirty,
  its lock, the objects of its store) -- status, and every step's first look;
* ``lock``: take the rollout lock (unless the tag is live and finished here already),
  then probe;
* ``prepare``: keep (or take) the lock, fetch the transferred bundle, check the release
  out, link shared paths, write the deploy file, run the pre-sync hooks;
* ``switch``: keep the lock, make the release live, run post-tree-update (and post-reset
  on a revert), then the health checks (git_deploy_checks);
* ``check``: keep the lock, run the health checks again (the canary, after its wait);
* ``post-sync``: keep the lock, run the post-sync hooks;
* ``finish``: roll back if told to, log the outcome, archive the log, append the history
  record, pass the announcement to the log hooks, release the lock;
* ``abort``: the unlock playbook -- post-abort hooks, an ``aborted`` record, release.

A step never raises for a failure of the rollout: it returns it (``failure``: phase,
hook, message) so that the controller can decide for the whole fleet. Target side:
Python 3.8+, the ``git`` binary, the standard library.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import tempfile
import time

from ansible_collections.gitdeploy.rollout.plugins.module_utils import journal, lock
from ansible_collections.gitdeploy.rollout.plugins.module_utils import rollout as decide
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import Layout, check_name
from ansible_collections.gitdeploy.rollout.plugins.module_utils.release import (
    ReleaseError, ReleaseTree, check_keep, write_json)
from ansible_collections.gitdeploy.rollout.plugins.module_utils.store import Store, StoreError

STEPS = ("probe", "lock", "prepare", "switch", "check", "post-sync", "finish", "abort", "freeze", "unfreeze")
LOG_LEVELS = {decide.SUCCESS: "notice", decide.ROLLED_BACK: "warning"}


class Failed(Exception):
    """A failure of this host's step: ``phase`` and ``hook`` say where."""

    def __init__(self, phase, msg, hook=None):
        super(Failed, self).__init__(msg)
        self.phase = phase
        self.msg = msg
        self.hook = hook


class Step:
    """The work of one step on one host; ``params`` are the module's options."""

    def __init__(self, params, run_command, git="git", check_mode=False, host=None, tmpdir=None):
        self.p = params
        self.tmpdir = tmpdir
        self.check_mode = check_mode
        self.host = host or lock.hostname()
        self.name = params.get("host") or self.host
        self.layout = Layout(params["root"], params.get("lock_dir"))
        self.tree = ReleaseTree(params["root"], run_command, git=git, check_mode=check_mode,
                                deploy_file_name=params.get("deploy_file_name") or ".deploy",
                                hook_dir=params.get("hook_dir") or "deploy",
                                submodules=params.get("submodules", True) is not False)
        self.store = Store(self.layout.repo, run_command, git)
        self.warnings = []
        self.notes = []
        self.changed = False
        self.state = {}
        for key in ("tag", "start_tag", "deploy_id", "env"):
            if params.get(key):
                check_name(params[key], key)

    # -- the pieces --------------------------------------------------------------------
    @property
    def tag(self):
        return self.p.get("tag")

    def log(self, line, phase):
        if self.check_mode:
            return
        journal.log(self.layout.active_log, line, id=self.p.get("deploy_id"), user=self.p.get("user"),
                    env=self.p.get("env"), tag=self.tag, phase=phase)

    def request(self, state=lock.PRESENT, force=None, hold=False):
        return lock.Request(
            state=state, deploy_id=self.p.get("deploy_id"), owner=self.p.get("owner"), env=self.p.get("env"),
            action=self.p.get("action"), tag=self.tag, reason=self.p.get("reason") or None,
            ttl=self.p.get("ttl") or lock.DEFAULT_TTL, force=self.p.get("force") if force is None else force,
            force_lock=self.p.get("force_lock"), root=self.layout.root, block_file=self.p.get("block_file") or None,
            hold=hold, freeze_file=self.layout.freeze).check()

    def take_lock(self):
        """Take the lock; a refusal is a failure of phase lock."""
        try:
            decision = lock.apply(self.request(), self.layout.lock, self.layout.active_log,
                                  check_mode=self.check_mode, host=self.host)
        except lock.LockError as exc:
            raise Failed("lock", str(exc))
        except OSError as exc:
            raise Failed("lock", "Cannot take lock %s on %s: %s. Check that the deploy user may write to %s."
                         % (self.layout.lock, self.host, exc, os.path.dirname(self.layout.lock)))
        self.warnings += decision.warnings
        if decision.failed:
            if decision.held:
                self.state["held_by"] = lock.describe(decision.record)
            raise Failed("lock", decision.msg)
        self.changed = self.changed or decision.changed
        self.state["locked"] = True
        self.state["held_by"] = None
        return decision

    def hold_lock(self, phase):
        """Before changing anything: the lock must still be this rollout's; it is renewed (its
        expiry pushed a TTL ahead), so that a rollout longer than the TTL keeps it."""
        if self.check_mode:
            return
        try:
            decision = lock.apply(self.request(hold=True), self.layout.lock, self.layout.active_log, host=self.name)
        except (lock.LockError, OSError) as exc:
            # A full disk cannot take the renewed record: still this rollout's lock, it goes on.
            if lock.is_mine(lock.read_lock(self.layout.lock), self.p.get("deploy_id")):
                self.warnings.append("%s: could not renew the lock %s (%s); it is still this rollout's until it "
                                     "expires" % (self.name, self.layout.lock, exc))
                return
            raise Failed(phase, "cannot renew the lock %s on %s: %s" % (self.layout.lock, self.name, exc))
        self.warnings += decision.warnings
        if decision.failed:
            self.state["locked"] = False
            raise Failed(phase, decision.msg)

    def probe(self):
        """What the host has, as the rollout's decisions read it."""
        limit = self.p.get("history_limit")
        described = self.tree.describe(self.p.get("strategy") or "releases", 0 if limit is None else limit)
        self.warnings += self.tree.warnings
        self.tree.warnings = []
        keys = ("live_tag", "live_commit", "previous_tag", "settled_tag", "dirty", "history", "failed_tags")
        found = dict((k, described[k]) for k in keys)
        # Every tag the history names (a revert goes only to a tag that was deployed here).
        records, _corrupt = journal.read_history(self.layout.history)
        found["history_tags"] = sorted(set(r["tag"] for r in records if isinstance(r.get("tag"), str)))
        # The bad releases (a rollout of them failed or was rolled back), and those a revert to
        # the previous rollout passes over.
        found["bad_tags"] = journal.bad_tags(records)
        found["skipped_bad"] = journal.bad_since(records, found["previous_tag"]) if found["previous_tag"] else []
        # git_deploy_keep_tags never deletes a tag the host's last keep_tags records name.
        keep = self.p.get("keep_tags") or 0
        found["recent_tags"] = sorted(set(r["tag"] for r in records[-keep:] if isinstance(r.get("tag"), str))) \
            if keep > 0 else []
        found["releases"] = [dict((k, r[k]) for k in ("name", "commit", "complete", "failed"))
                             for r in described["releases"]]
        found["store"] = self.store.haves(self.tag, self.p.get("commit"))
        found["lock"] = lock.info(self.layout.lock, self.p.get("block_file") or None, self.p.get("deploy_id"),
                                  host=self.host)
        found["freeze"] = lock.read_freeze(self.layout.freeze)
        return found

    def run_hooks(self, phase, release, action=None, rollout_tag=None, start_tag=None, ignore=False, **extra):
        """Run one phase of hooks of ``release``; a fatal failure raises :class:`Failed`."""
        # Imported here: a step that runs no hook does not pay for it.
        from ansible_collections.gitdeploy.rollout.plugins.module_utils import hooks
        action = action or hooks.hook_action(self.p.get("action"), phase)
        try:
            summary = hooks.run_phase(
                release, self.p.get("hook_dir") or "deploy", phase, self.p["env"], action,
                rollout_tag=rollout_tag or self.tag, start_tag=start_tag or self.p.get("start_tag") or None,
                root=self.layout.root, timeout=self.p.get("hook_timeout") or hooks.DEFAULT_TIMEOUT,
                log_file=extra.pop("log_file", self.layout.active_log), check_mode=self.check_mode, **extra)
        except (hooks.HookError, OSError) as exc:
            if ignore:
                self.warnings.append("%s hooks of %s not run: %s" % (phase, release, exc))
                return None
            raise Failed(phase, str(exc))
        self.warnings += summary["warnings"]
        self.changed = self.changed or summary["ran"] > 0
        if summary["failure"] and not ignore:
            raise Failed(phase, summary["failure"], hook=summary["failed_hook"])
        if summary["hooks"]:
            self.notes.append("%s: %s" % (phase, summary["msg"]))
        return summary

    def _tree_call(self, phase, func, *args):
        try:
            return func(*args)
        except (ReleaseError, ValueError) as exc:
            raise Failed(phase, str(exc))
        except (IOError, OSError) as exc:
            raise Failed(phase, "%s on %s: %s; check the permissions and free space of %s" % (
                type(exc).__name__, getattr(exc, "filename", None) or self.layout.root, exc, self.layout.root))
        finally:
            self.warnings += self.tree.warnings
            self.tree.warnings = []

    def make_live(self, tag, commit, deploy_file, force, phase):
        strategy = self.p.get("strategy") or "releases"
        keep = check_keep(self.p.get("keep_releases") or 5)
        before = len(self.tree.actions)
        if strategy == "in_place":
            done = self._tree_call(phase, self.tree.switch_in_place, tag, commit, deploy_file, force)
        else:
            # Pruned at finish, once the outcome is known: until then, the release a revert would go
            # back to depends on whether this rollout sticks or is rolled back.
            done = self._tree_call(phase, self.tree.switch_release, tag, commit, keep, force, False)
        self.changed = self.changed or len(self.tree.actions) > before
        return done

    def prune(self):
        """The releases keep_releases no longer needs, now that the history has this rollout."""
        keep = check_keep(self.p.get("keep_releases") or 5)
        before = len(self.tree.actions)
        try:
            pruned = self._tree_call("finish", self.tree.prune, keep)
        except Failed as exc:
            self.warnings.append("%s could not delete old releases: %s" % (self.name, exc.msg))
            return
        if pruned:
            self.state["pruned"] = pruned
            self.notes.append("deleted old releases %s" % ", ".join(pruned))
        self.changed = self.changed or len(self.tree.actions) > before

    # -- the steps ----------------------------------------------------------------------
    def do_probe(self):
        self.state["probe"] = self.probe()
        self.notes.append("live %s" % (self.state["probe"]["live_tag"] or "nothing"))

    def do_lock(self):
        unless = self.p.get("unless_live")
        if unless:
            probe = self.probe()
            if decide.already_live(probe, unless):
                self.state.update(probe=probe, lock_skipped=True)
                self.notes.append("%s is live and finished here already: not locked" % unless)
                return
        decision = self.take_lock()
        self.notes.append(decision.msg if decision.action != lock.ACQUIRE else
                          "locked until %s" % decision.record["expires"])
        self.state["probe"] = self.probe()

    def do_prepare(self):
        tag, commit = self.tag, self.p["commit"]
        if self.p.get("take_lock"):
            self.take_lock()
        else:
            self.hold_lock("prepare")
        try:
            if self.p.get("bundle_data") and not self.check_mode:
                self.changed = self.ingest_inline(tag, commit) or self.changed
            elif self.p.get("bundle") and not self.check_mode:
                self.changed = self.store.ingest(tag, commit, self.p["bundle"], self.p["bundle_size"],
                                                 self.p["bundle_sha256"]) or self.changed
            elif not self.check_mode:
                found = self.store.peeled_commit("refs/tags/%s" % tag)
                if found != commit:
                    raise Failed("prepare", "tag %s is not in %s%s: the controller sent no objects for it; re-run "
                                 "the rollout" % (tag, self.layout.repo, " (it points to %s)" % found if found else ""))
        except StoreError as exc:
            raise Failed("prepare", exc.msg)
        _kind, _target, live = self.tree.current_state()
        probe = {"live_tag": live, "settled_tag": self.tree.settled_tag()}
        self.state.update(resuming=decide.resuming(probe, tag), start_tag=decide.start_tag(probe, tag))
        before = len(self.tree.actions)
        if (self.p.get("strategy") or "releases") == "in_place":
            done = self._tree_call("prepare", self.tree.prepare_in_place, tag, commit, self.p.get("force"))
        else:
            done = self._tree_call("prepare", self.tree.prepare_release, tag, commit, self.p.get("deploy_file"),
                                   self.p.get("shared_paths") or [], self.p.get("force"))
        self.changed = self.changed or len(self.tree.actions) > before
        self.state["release"] = done["release"]
        from ansible_collections.gitdeploy.rollout.plugins.module_utils import hooks
        hook_dir = self.p.get("hook_dir") or "deploy"
        present = os.path.isdir(done["release"])
        unknown = hooks.unknown_phases(done["release"], hook_dir, self.p["env"]) if present else []
        if unknown:
            raise Failed("prepare", "%s in %s: no hook phase is named so, so it would never run (phases: %s). Rename "
                         "it; nothing live was changed" % (", ".join(unknown), done["release"], ", ".join(hooks.PHASES)))
        self.state["hooks"] = hooks.phases_present(done["release"], hook_dir, self.p["env"]) if present else []
        self.notes.append("prepared %s in %s" % (tag, done["release"]) if len(self.tree.actions) > before
                          else "%s was prepared already" % tag)
        self.log("prepared %s (%s) in %s" % (tag, commit, done["release"]), "prepare")
        if self.p.get("action") == decide.DEPLOY and self.state["start_tag"] != tag:
            self.run_hooks("pre-sync", done["release"])

    def ingest_inline(self, tag, commit):
        """A small bundle that came with the module's arguments: checked and fetched like a file."""
        handle, path = tempfile.mkstemp(suffix=".bundle", dir=self.tmpdir)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(base64.b64decode(self.p["bundle_data"]))
            return self.store.ingest(tag, commit, path, self.p["bundle_size"], self.p["bundle_sha256"])
        finally:
            os.unlink(path)

    def incoming(self, tag):
        """Where the hooks of ``tag``'s release are before it goes live (its tree, or the hooks an
        in_place rollout exported)."""
        if (self.p.get("strategy") or "releases") == "in_place":
            return self.tree.hooks_path(tag)
        return self.layout.release(tag)

    def do_switch(self):
        tag = self.tag
        self.hold_lock("switch")
        _kind, _target, live = self.tree.current_state()
        if live != tag and os.path.isdir(self.incoming(tag)):
            # A revert's pre-sync (it prepared nothing: the release is usually here already), then
            # git-deploy's pre-pull, just before this host's live tree changes (out of the load balancer).
            try:
                if self.p.get("action") == decide.REVERT:
                    self.run_hooks("pre-sync", self.incoming(tag))
                self.run_hooks("pre-pull", self.incoming(tag))
            except Failed as exc:
                raise Failed("switch", exc.msg, exc.hook)
        done = self.make_live(tag, self.p.get("commit"), self.p.get("deploy_file"), self.p.get("force"), "switch")
        switched = bool(done.get("changed_current")) or bool(self.p.get("resuming"))
        self.state.update(switched=switched, release=done["release"], live_tag=tag)
        if not switched:
            self.notes.append("%s was live already" % tag)
            return
        start = self.p.get("start_tag") or "nothing"
        if done.get("changed_current"):
            line = "switched current to %s (was %s)" % (tag, start)
        else:
            line = "finishing the unfinished rollout of %s (was %s)" % (tag, start)
        self.notes.append(line)
        self.log(line, "switch")
        try:
            self.run_hooks("post-pull", done["release"])
            self.run_hooks("post-tree-update", done["release"])
            if self.p.get("action") == decide.REVERT:
                self.run_hooks("post-reset", done["release"])
        except Failed as exc:
            raise Failed("switch", exc.msg, exc.hook)
        self.run_checks(done["release"])

    def run_checks(self, release):
        """git_deploy_checks, in the release just made live. A failure fails the host (the rollout
        rolls back), except on a revert: it is reported, and the revert stands."""
        if not self.p.get("checks"):
            return
        # Imported here: a step without checks does not pay for them.
        from ansible_collections.gitdeploy.rollout.plugins.module_utils import checks
        try:
            listed = checks.normalize(self.p["checks"])
        except ValueError as exc:
            raise Failed("check", "git_deploy_checks: %s" % exc)
        if self.check_mode:
            self.notes.append("would run %d check(s)" % len(listed))
            return
        results = checks.run(listed, cwd=release)
        self.state["checks"] = results
        for item in results:
            self.log(checks.describe(item), "check")
        failed = checks.first_failed(results)
        if failed is None:
            self.notes.append("checks %s" % decide.check_cell(results))
            return
        msg = "check %s failed on %s: %s" % (failed["name"], self.name, failed["msg"])
        if decide.revert_stands(self.p.get("action")):
            self.warnings.append("%s (the revert stands: a revert is not undone by its checks)" % msg)
            self.notes.append("checks %s" % decide.check_cell(results))
            return
        raise Failed("check", msg, hook=failed["name"])

    def do_check(self):
        """The checks again, on a host that switched in an earlier batch (the canary, after its wait)."""
        self.hold_lock("check")
        self.run_checks(self.layout.current)

    def do_post_sync(self):
        self.hold_lock("post-sync")
        self.run_hooks("post-sync", self.layout.current)

    def rollback(self):
        """Put the tag this host started from back (the rollout failed after it switched)."""
        tag, start = self.tag, self.p.get("start_tag")
        if start:
            if os.path.isdir(self.incoming(start)):
                self.run_hooks("pre-pull", self.incoming(start), action="abort", rollout_tag=start, start_tag=tag,
                               ignore=True)
            try:
                done = self.make_live(start, None, None, True, "finish")
            except Failed as exc:
                self.warnings.append("could not roll %s back to %s: %s" % (self.host, start, exc.msg))
                self.log("rollback to %s failed: %s" % (start, exc.msg), "rollback")
                return
            self.log("rolled back to %s" % start, "rollback")
            # git-deploy's abort, exit codes ignored: the way back must not stop halfway.
            for phase in ("post-pull", "post-tree-update", "post-reset", "post-abort"):
                self.run_hooks(phase, done["release"], action="abort", rollout_tag=start, start_tag=tag,
                               ignore=True)
            self.state["live_tag"] = start
            self.notes.append("rolled back to %s" % start)
        else:
            self.log("rolled back to nothing (first rollout: current left on the failed release)", "rollback")
            self.notes.append("nothing to roll back to (first rollout)")
        try:
            self.tree.mark_failed(tag, self.p.get("commit"))
        except (IOError, OSError) as exc:
            self.warnings.append("could not mark %s failed: %s" % (tag, exc))
        self.state["rolled_back"] = True
        self.changed = True

    def do_finish(self):
        # A host whose lock another rollout took is that rollout's now: nothing is touched.
        self.hold_lock("finish")
        if self.p.get("rollback"):
            self.rollback()
        if self.p.get("post_sync"):
            try:
                self.run_hooks("post-sync", self.layout.current)
            except Failed as exc:
                self.warnings.append("post-sync failed on %s: %s (the revert stands)" % (self.name, exc.msg))
        record = self.p.get("record")
        outcome = (record or {}).get("result") or "nothing to record"
        if record is not None and not self.check_mode:
            # The history first, then the log's archive: a crash in between loses no line of the log.
            try:
                self.log("%s %s" % (self.p.get("action"), outcome), "finish")
                journal.append_history(self.layout.history, dict(record, end=journal.isoformat(journal.utcnow())))
                self.state["recorded"] = True
                journal.archive(self.layout.active_log, self.layout.archive_log)
            except (IOError, OSError) as exc:
                self.warnings.append("%s could not record %s %s (%s) in its history: %s (it is unlocked anyway)"
                                     % (self.name, self.p.get("action"), self.p.get("deploy_id"), outcome, exc))
            self.changed = True
        if self.state.get("recorded") and (self.p.get("strategy") or "releases") == "releases":
            self.prune()
        announce = self.p.get("announce") or {}
        if announce.get("message") and os.path.isdir(self.layout.current):
            summary = self.run_hooks("log", self.layout.current, log_file=self.layout.archive_log,
                                     log_level=announce.get("level") or "notice", log_message=announce["message"],
                                     log_announce=True, ignore=True)
            self.state["announced"] = bool(summary) and not summary["ignored_failures"]
        self.release_lock()
        self.notes.insert(0, outcome)

    def release_lock(self, deploy_id=None, force=False):
        request = self.request(lock.ABSENT, force=force)
        request.deploy_id = deploy_id or request.deploy_id
        try:
            decision = lock.apply(request, self.layout.lock, self.layout.active_log, check_mode=self.check_mode,
                                  host=self.host)
        except (lock.LockError, OSError) as exc:
            raise Failed("finish", "could not release the lock %s on %s: %s" % (self.layout.lock, self.host, exc))
        self.warnings += decision.warnings
        if decision.failed:
            raise Failed("finish", decision.msg)
        self.changed = self.changed or decision.changed
        self.state["locked"] = False
        return decision

    def do_abort(self):
        held = lock.info(self.layout.lock, host=self.host)
        if not held["locked"]:
            self.notes.append("not locked")
            return
        record = held["lock"] or {}
        owner = self.p.get("owner")
        if not self.p.get("force") and record.get("owner") != owner:
            raise Failed("abort", "%s: the lock is held by %s (rollout %s, %s of %s since %s). If that rollout is "
                         "dead, release it with: ansible-playbook gitdeploy.rollout.unlock -e env=%s -e force=true"
                         % (self.name, record.get("owner") or "?", record.get("deploy_id") or "?",
                            record.get("action") or "?", record.get("tag") or "?", record.get("created") or "?",
                            self.p["env"]))
        dead = record.get("deploy_id") or ""
        self.run_hooks("post-abort", self.layout.current, action="abort", rollout_tag=record.get("tag") or None)
        if not self.check_mode:
            journal.log(self.layout.active_log, "abort of rollout %s by %s" % (dead or "?", owner), id=dead,
                        user=self.p.get("user"), env=self.p["env"], tag=record.get("tag") or "", phase="abort")
            journal.archive(self.layout.active_log, self.layout.archive_log)
            journal.append_history(self.layout.history, {
                "id": dead, "action": "abort", "env": self.p["env"], "tag": record.get("tag") or "",
                "user": self.p.get("user"), "controller": self.p.get("controller"),
                "start": self.p.get("start"), "result": "aborted", "end": journal.isoformat(journal.utcnow())})
        self.release_lock(deploy_id=dead or None, force=True)
        self.notes.append("released the lock of rollout %s" % (dead or "?"))

    def do_freeze(self):
        """Stop every rollout of this host until unfreeze: the freeze record says who, why and since when."""
        if not (self.p.get("reason") or "").strip():
            raise Failed("freeze", "say why rollouts stop: -e reason='...' (it is shown to everyone they refuse)")
        record = {"by": self.p.get("owner") or self.p.get("user") or "?", "reason": self.p.get("reason") or "",
                  "env": self.p["env"], "since": journal.isoformat(journal.utcnow()), "id": self.p.get("deploy_id")}
        current = lock.read_freeze(self.layout.freeze)
        if current is not None:
            self.notes.append("frozen already, since %s by %s" % (current.get("since") or "?", current.get("by") or "?"))
            self.state["freeze"] = current
            return
        if not self.check_mode:
            journal.ensure_dir(self.layout.state)
            write_json(self.layout.freeze, record)
        self.changed = True
        self.state["freeze"] = record
        self.notes.append("frozen: %s" % (record["reason"] or "no reason given"))

    def do_unfreeze(self):
        current = lock.read_freeze(self.layout.freeze)
        self.state["freeze"] = None
        if current is None:
            self.notes.append("not frozen")
            return
        if not self.check_mode:
            os.unlink(self.layout.freeze)
        self.changed = True
        self.notes.append("unfrozen (frozen since %s by %s)" % (current.get("since") or "?", current.get("by") or "?"))

    # -- one run -------------------------------------------------------------------------
    def run(self, step):
        """Do ``step``; return the report: changed, note, failure, state (what to remember), warnings."""
        started = time.monotonic()
        failure = None
        try:
            getattr(self, "do_" + step.replace("-", "_"))()
        except Failed as exc:
            failure = decide.failure(self.name, exc.phase, exc.msg, hook=exc.hook)
        except lock.LockError as exc:
            failure = decide.failure(self.name, step, str(exc))
        seconds = round(time.monotonic() - started, 3)
        logged = step in ("prepare", "switch", "check", "post-sync")
        if logged and not failure:
            try:
                self.log("%s done in %.3fs" % (step, seconds), step)
            except OSError:
                pass
        return {"changed": self.changed, "failure": failure, "state": self.state, "warnings": self.warnings,
                "note": "; ".join(self.notes), "seconds": seconds, "actions": list(self.tree.actions)}
