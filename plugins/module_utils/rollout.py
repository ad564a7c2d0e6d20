# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollout's decisions: pure functions over the rollout and what each host reported.

A rollout runs in steps, each a barrier every host passes before any goes on::

    deploy: start -> lock -> tag -> prepare -> push -> switch (batch by batch) -> sync -> post-sync -> finish -> report
    revert: start -> lock -> choose -> prepare -> switch (batch by batch) -> finish -> report

Two records carry it, both plain dicts (they travel as Ansible registered results):

* the **rollout** (one for the whole run, made on the controller): ``id``, ``action``,
  ``env``, ``user``, ``controller``, ``start``, ``hosts`` (the rollout's host order, fixed
  at the start), ``first_host``, ``batches``, ``max_failures``, ``rollback_on_failure``,
  ``tag``, ``commit``, ``repo``, ``deploy_file``, ``previous_tag``, ``noop_tag``, and
  ``failures`` of the controller's own steps (tag, choose, sync);
* the **host state** (one per host, grown by every step): ``steps`` (what each step did,
  with its duration), ``probe`` (what the host has: live, settled and previous tag,
  releases, history, the objects of its store, its lock), ``locked``, ``lock_skipped``,
  ``start_tag``, ``resuming``, ``switched``, ``hooks`` (the phases the release has hooks
  for), ``failure`` and ``dropped`` (the step in which the host became unreachable).

Everything here decides from those records alone, the same way on every host and on
the controller: which hosts failed and whether the rollout goes on, the first failure,
the result, no-op and resume, the revert target, the history record, the status table
and the summary. No I/O.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import uuid

from ansible_collections.gitdeploy.rollout.plugins.module_utils import rolling

DEPLOY = "deploy"
REVERT = "revert"
ACTIONS = (DEPLOY, REVERT)

# Where a failure can happen, in the order a rollout passes them (push: the tag upstream,
# once every host is prepared).
PHASES = ("start", "lock", "choose", "tag", "prepare", "pre-sync", "push", "switch", "check", "sync", "post-sync",
          "finish")
# A failure in one of these stops the rollout whatever max_failures says: nothing is live
# yet (lock, choose, tag, prepare, pre-sync, push), or the failure is the environment's
# (sync).
FATAL = ("start", "lock", "choose", "tag", "prepare", "pre-sync", "push", "sync")
# What the push step does with the rollout tag (tag_fate).
PUSH, DROP, KEEP = "push", "drop", "keep"
CONTROLLER = "controller"

SUCCESS = "success"
ROLLED_BACK = "rolled_back"
FAILED = "failed"
UNCHANGED = "unchanged"
REFUSED = "refused"

STATUS_HISTORY = 10
# How often a rollout that waits for a lock (git_deploy_lock_wait) asks for it again (seconds).
LOCK_POLL = 3
# The steps a host takes part in (lock-first: the first host's lock, before the others').
HOST_STEPS = ("lock-first", "lock", "prepare", "switch", "check", "post-sync", "finish")


# -- the plan -------------------------------------------------------------------------

def rollout_id(moment, awx_job_id=None):
    """One id per rollout, in every lock, log line and history record of it: the AWX job's,
    else the UTC time and 48 random bits (two rollouts sharing an id would share locks)."""
    if awx_job_id is not None:
        return "awx-%s" % awx_job_id
    return "%s-%s" % (moment.strftime("%Y%m%dT%H%M%SZ"), uuid.uuid4().hex[:12])


def plan(hosts, serial=None):
    """The rollout's host order (play order), its first host and the switch batches.

    The first host is locked alone, before the others: of rollouts of one inventory started
    together, the one that gets it goes on. Fixed once at the start: a host that drops out
    later never changes which host is "first" or which batch another host is in.
    """
    hosts = list(hosts)
    return {"hosts": hosts, "first_host": hosts[0] if hosts else None, "batches": rolling.batches(hosts, serial)}


def check_settings(values):
    """A host's settings (role variable name -> value) that a rollout cannot work with raise
    ValueError saying which and why: the deploy root, the releases to keep, the hook dir, the
    health checks."""
    if "git_deploy_root" in values:
        root = values["git_deploy_root"]
        if not isinstance(root, str) or not root.startswith("/") or root.strip("/") == "":
            raise ValueError("git_deploy_root must be an absolute path other than '/' (got %s)" % (root,))
    if "git_deploy_keep_releases" in values:
        keep = values["git_deploy_keep_releases"]
        try:
            count = int(keep)
        except (TypeError, ValueError):
            count = 0
        if isinstance(keep, bool) or count < 1:
            raise ValueError("git_deploy_keep_releases must be 1 or more (got %s): the live release and the previous "
                             "one are never deleted" % (keep,))
    if "git_deploy_hook_dir" in values:
        hook_dir = values["git_deploy_hook_dir"]
        parts = str(hook_dir or "").split("/")
        if not hook_dir or str(hook_dir).startswith("/") or ".." in parts:
            raise ValueError("git_deploy_hook_dir must be a relative path inside the release, without '..' (got %s)"
                             % (hook_dir,))
    if "git_deploy_checks" in values:
        from ansible_collections.gitdeploy.rollout.plugins.module_utils import checks
        checks.normalize(values["git_deploy_checks"])


def new_state(host):
    return {"host": host, "steps": [], "probe": {}, "locked": False, "lock_skipped": False, "start_tag": None,
            "resuming": False, "switched": False, "release": None, "hooks": [], "failure": None, "dropped": None,
            "rolled_back": False, "recorded": False}


def batch_of(rollout, host):
    for index, batch in enumerate(rollout.get("batches") or []):
        if host in batch:
            return index
    return None


# -- failures -----------------------------------------------------------------------

def failure(host, phase, msg, hook=None, batch=None):
    return {"host": host, "phase": phase, "hook": hook or "", "msg": str(msg or "failed")[:2000], "batch": batch}


def dropout(host, step):
    return failure(host, step or "unknown",
                   "host unreachable (it dropped out of the rollout during %s)" % (step or "an unknown step"))


def _phase_index(phase):
    return PHASES.index(phase) if phase in PHASES else len(PHASES)


def failures(rollout, fleet, alive):
    """Every failure of the rollout, first first: by phase, then switch batch, then host order.

    ``fleet`` maps each host of the rollout to its state (None: no step reported yet);
    ``alive`` are the hosts still in the play. A host that left the play without a
    failure of its own dropped out (unreachable).
    """
    order = {host: index for index, host in enumerate(rollout.get("hosts") or [])}
    found = [dict(f, host=CONTROLLER) for f in rollout.get("failures") or []]
    alive = set(alive)
    for host in rollout.get("hosts") or []:
        state = fleet.get(host) or {}
        if state.get("failure"):
            found.append(state["failure"])
        elif host not in alive:
            found.append(dropout(host, state.get("dropped")))
    return sorted(found, key=lambda f: (_phase_index(f["phase"]), f.get("batch") or 0,
                                        order.get(f["host"], -1)))


def failed_hosts(found):
    """The hosts (not the controller) with a failure, each once, in the order of ``found``."""
    hosts = []
    for item in found:
        if item["host"] != CONTROLLER and item["host"] not in hosts:
            hosts.append(item["host"])
    return hosts


def aborted(rollout, found):
    """Whether the rollout stops: a failure before anything went live (or of the sync hook),
    or more failed hosts than ``max_failures`` tolerates."""
    if rollout.get("refused"):
        return True
    if any(f["phase"] in FATAL for f in found):
        return True
    return len(failed_hosts(found)) > int(rollout.get("max_failures") or 0)


def first_failure(found):
    return found[0] if found else None


def tag_fate(rollout, found):
    """What becomes of the tag the tag step cut, once every host is prepared: PUSH it upstream;
    DROP it when the rollout stopped before anything went live (git-deploy cuts no tag when
    pre-sync fails, so it never counts as the environment's last rollout); KEEP it as it is
    when this rollout did not cut it (an existing tag reused, a no-op, check mode)."""
    if rollout.get("noop") or not rollout.get("tag"):
        return KEEP
    if aborted(rollout, found):
        return DROP if rollout.get("tag_created") else KEEP
    return PUSH


def lock_wait(report, waited, wait, poll=LOCK_POLL):
    """Seconds to wait before asking for a lock again, or None to stop asking: the lock run
    (``report``) was refused only because another rollout holds the lock, and less than
    ``wait`` seconds were spent waiting so far (``waited``)."""
    held_by = (report.get("state") or {}).get("held_by")
    if not report.get("failure") or not held_by or not wait or waited >= wait:
        return None
    return min(poll, wait - waited)


def lock_wait_line(host, held_by, waited, wait):
    return "%s: the lock is held by %s; waiting for it (%.0f of %d s)" % (host, held_by, waited, wait)


# -- no-op, resume ----------------------------------------------------------------------

def already_live(probe, tag):
    """A host where ``tag`` is live *and* recorded as finished, with no local edits: nothing to do."""
    return bool(tag) and probe.get("live_tag") == tag and probe.get("settled_tag") == tag and not probe.get("dirty")


def is_noop(rollout, fleet):
    """A deploy of a tag that is already live and finished on every host."""
    hosts = rollout.get("hosts") or []
    return (rollout.get("action") == DEPLOY and bool(rollout.get("noop_tag")) and bool(hosts)
            and all((fleet.get(h) or {}).get("lock_skipped") for h in hosts))


def resuming(probe, tag):
    """A host an unfinished rollout (a controller crash) already switched to ``tag``:
    it counts as switching, and its hooks run again."""
    return probe.get("live_tag") == tag and probe.get("settled_tag") != tag


def start_tag(probe, tag):
    """The tag a host goes back to if this rollout fails: what its last finished rollout left
    live when an unfinished one switched it already, else what is live."""
    return (probe.get("settled_tag") if resuming(probe, tag) else probe.get("live_tag")) or None


# -- what a host does at each step --------------------------------------------------------

def any_switched(fleet):
    return any((state or {}).get("switched") for state in fleet.values())


def any_hooks(fleet, phase):
    return any(phase in ((state or {}).get("hooks") or []) for state in fleet.values())


def release_ready(probe, tag, commit):
    """Whether the complete release of ``tag`` (from ``commit``) is on the host already."""
    for release in probe.get("releases") or []:
        if release.get("name") == tag:
            return bool(release.get("complete")) and (not commit or release.get("commit") == commit)
    return False


def step_decision(step, rollout, fleet, alive, host, batch=None):
    """``(run, reason)``: whether ``host`` does its part of ``step`` now, or why not.

    ``step`` is lock-first, lock, prepare, switch (with ``batch``), post-sync or finish.
    """
    if step not in HOST_STEPS:
        raise ValueError("unknown step %r" % (step,))
    state = fleet.get(host) or {}
    found = failures(rollout, fleet, alive)
    stop = aborted(rollout, found)
    if step == "lock-first":
        if host != rollout.get("first_host"):
            return False, "waits for %s, which is locked first" % rollout.get("first_host")
        return True, None
    if step == "lock":
        if host == rollout.get("first_host"):
            return False, "locked first"
        if stop:
            return False, "the rollout stopped: %s" % describe_failure(first_failure(found))
        return True, None
    if step == "finish":
        if not state.get("locked"):
            return False, "holds no lock of this rollout"
        return True, None
    if stop:
        return False, "the rollout stopped: %s" % describe_failure(first_failure(found))
    if is_noop(rollout, fleet):
        return False, "nothing to do"
    if state.get("failure"):
        return False, "failed earlier"
    if step == "prepare":
        if not (state.get("locked") or state.get("lock_skipped")):
            return False, "not locked"
        if (rollout.get("action") == REVERT and not state.get("lock_skipped")
                and release_ready(state.get("probe") or {}, rollout.get("tag"), rollout.get("commit"))):
            return False, "release %s is here already" % rollout.get("tag")
        return True, None
    if step == "switch":
        if batch_of(rollout, host) != batch:
            return False, "switches in batch %s" % ((batch_of(rollout, host) or 0) + 1)
        return True, None
    if step == "check":
        if batch_of(rollout, host) != 0:
            return False, "not in the canary batch"
        if not state.get("switched"):
            return False, "did not switch"
        if not (state.get("settings") or {}).get("checks"):
            return False, "no git_deploy_checks"
        return True, None
    if step == "post-sync":
        if not any_hooks(fleet, "post-sync"):
            return False, "the release has no post-sync hooks"
        if not state.get("switched"):
            return False, "did not switch"
    return True, None


def revert_stands(action):
    """Whether a failure after the switch - a check, the sync hook, post-sync - is only reported,
    the release staying live: on a revert (undoing it would put back the release it takes away),
    not on a deploy (it fails the rollout, and the switched hosts roll back)."""
    return action == REVERT


def post_sync_at_finish(rollout, fleet, alive, host):
    """Whether ``host`` runs its post-sync hooks in its finish run: on a revert that stands, on a
    host that switched. (A revert usually prepares nothing, so which releases have post-sync hooks
    is not known before; in the finish run they cost no round trip of their own.)"""
    state = fleet.get(host) or {}
    return (rollout.get("action") == REVERT and bool(state.get("switched")) and not state.get("failure")
            and not aborted(rollout, failures(rollout, fleet, alive)))


def canary_hold(rollout, fleet, alive, batch):
    """Whether the rollout holds before switching ``batch`` (git_deploy_canary_wait): it is the
    second batch, the first (the canary) switched, and nothing stopped the rollout. After the
    wait the canary's checks run again, and the next batch switches only if they pass."""
    return (batch == 1 and float(rollout.get("canary_wait") or 0) > 0 and len(rollout.get("batches") or []) > 1
            and not aborted(rollout, failures(rollout, fleet, alive))
            and any((fleet.get(h) or {}).get("switched") for h in rollout["batches"][0]))


def needs_rollback(rollout, fleet, alive, host):
    """Whether ``host`` goes back to its start tag at the finish: it switched, and the rollout
    (or this host) failed, and automatic rollback is on."""
    state = fleet.get(host) or {}
    if not state.get("switched") or not rollout.get("rollback_on_failure", True):
        return False
    return bool(state.get("failure")) or aborted(rollout, failures(rollout, fleet, alive))


def result(rollout, fleet, alive):
    """success, rolled_back or failed (unchanged for a no-op, refused for a revert that could not start)."""
    if rollout.get("refused"):
        return REFUSED
    if is_noop(rollout, fleet):
        return UNCHANGED
    if not aborted(rollout, failures(rollout, fleet, alive)):
        return SUCCESS
    if rollout.get("rollback_on_failure", True) and any_switched(fleet):
        return ROLLED_BACK
    return FAILED


def leaves_record(rollout, found):
    """Whether the hosts record the rollout: not when it never got every lock (or was refused
    before anything changed) - it changed nothing, so it leaves nothing."""
    first = first_failure(found)
    return not rollout.get("refused") and not (first and first["phase"] == "lock")


# -- revert -------------------------------------------------------------------------------

def bad_release(fleet, tag):
    """``(host, record)`` of the first host (in host order) where ``tag`` is a bad release (its
    newest rollout there failed or was rolled back), or None."""
    for host in sorted(fleet):
        record = (((fleet.get(host) or {}).get("probe") or {}).get("bad_tags") or {}).get(tag)
        if record:
            return host, record
    return None


def skipped_bad(fleet):
    """The bad releases a revert to the previous rollout passed over, newest first, over every host."""
    found = []
    for host in sorted(fleet):
        for tag in (((fleet.get(host) or {}).get("probe") or {}).get("skipped_bad") or []):
            if tag not in found:
                found.append(tag)
    return found


def revert_target(tag, fleet, env, force=False):
    """``(tag, error)``: the tag a revert goes back to, or why none can be chosen.

    An explicit ``tag`` wins; otherwise the previous rollout, which every host must agree on
    (it is never a bad release: the hosts' previous skips them). The tag must have been live on
    these hosts before (their history or releases); a bad release needs ``force``.
    """
    probes = [(state or {}).get("probe") or {} for state in fleet.values()]
    if not tag:
        previous = []
        for probe in probes:
            if probe.get("previous_tag") not in previous:
                previous.append(probe.get("previous_tag"))
        if len(previous) > 1:
            return None, ("Cannot choose a rollout to revert %s to: the hosts disagree on the previous rollout "
                          "(%s). Name one with -e tag=<tag> (see: ansible-playbook gitdeploy.rollout.status -e env=%s)."
                          % (env, ", ".join(str(p) for p in previous), env))
        tag = previous[0] if previous else None
        if not tag:
            return None, ("Cannot choose a rollout to revert %s to: no earlier successful rollout is recorded on its "
                          "hosts. Name one with -e tag=<tag> (see: ansible-playbook gitdeploy.rollout.status -e env=%s)."
                          % (env, env))
    known = set()
    for probe in probes:
        known.update(probe.get("history_tags") or [])
        known.update(r.get("tag") for r in probe.get("history") or [])
        known.update(r.get("name") for r in probe.get("releases") or [])
    if tag not in known:
        return None, ("%s cannot be reverted to on %s: it was never deployed to these hosts. Nothing was changed. "
                      "List the rollouts with: ansible-playbook gitdeploy.rollout.status -e env=%s" % (tag, env, env))
    bad = bad_release(fleet, tag)
    if bad and not force:
        host, record = bad
        first = ("first failure: %s in phase %s, " % (record.get("failed_host") or host, record.get("failed_phase"))
                 if record.get("failed_phase") else "")
        return None, ("%s is a bad release: its %s %s %s (%s%s). Nothing was changed. Revert to it anyway with "
                      "-e force=true" % (tag, record.get("action") or "rollout", record.get("id") or "?",
                                         "was rolled back" if record.get("result") == "rolled_back" else "failed",
                                         first, record.get("end") or "?"))
    return tag, None


def common_live_tag(rollout, fleet):
    """The tag live on the first host (in rollout order) that has one: what a revert goes back from."""
    for host in rollout.get("hosts") or []:
        live = ((fleet.get(host) or {}).get("probe") or {}).get("live_tag")
        if live:
            return live
    return None


# -- tag retention (git_deploy_keep_tags) -----------------------------------------------------------

def protected_tags(rollout, fleet):
    """The tags git_deploy_keep_tags never deletes: the rollout's own and the one it went from,
    and, on every host, what is live, what a revert would go back to, what the last finished
    rollout left live, where this rollout started, and every tag its last N history records
    name (the lock step's ``recent_tags``)."""
    found = set(t for t in (rollout.get("tag"), rollout.get("previous_tag")) if t)
    for state in fleet.values():
        state = state or {}
        probe = state.get("probe") or {}
        found.update(t for t in (probe.get("live_tag"), probe.get("previous_tag"), probe.get("settled_tag"),
                                 state.get("start_tag"), state.get("live_tag")) if t)
        found.update(probe.get("recent_tags") or [])
    return found


def prunes_tags(rollout, fleet, alive, keep):
    """Whether the rollout prunes old tags: keep_tags is set, the rollout succeeded, and every
    host reported (a host that dropped out might have one of them live)."""
    hosts = rollout.get("hosts") or []
    return (int(keep or 0) > 0 and result(rollout, fleet, alive) == SUCCESS
            and all(h in alive and (fleet.get(h) or {}).get("probe") for h in hosts))


# -- records and messages ---------------------------------------------------------------------

def durations(state):
    """Seconds each step took on a host, by step name (switch batches add up)."""
    found = {}
    for entry in state.get("steps") or []:
        if entry.get("ran"):
            found[entry["step"]] = round(found.get(entry["step"], 0.0) + float(entry.get("seconds") or 0.0), 3)
    return found


def history_record(rollout, state, outcome, first):
    """The record a host appends to its history when the rollout finishes."""
    first = first or {}
    return {
        "id": rollout.get("id"),
        "action": rollout.get("action"),
        "env": rollout.get("env"),
        "tag": rollout.get("tag"),
        "commit": rollout.get("commit"),
        "previous_tag": state.get("start_tag") or "",
        "user": rollout.get("user"),
        "controller": rollout.get("controller"),
        "start": rollout.get("start"),
        "result": outcome,
        "failed_host": first.get("host", ""),
        "failed_phase": first.get("phase", ""),
        "failed_hook": first.get("hook", ""),
        "durations": durations(state),
        "checks": [dict((k, c.get(k)) for k in ("name", "ok", "tries", "seconds")) for c in state.get("checks") or []],
    }


def describe_failure(item):
    if not item:
        return "no failure"
    text = "%s in phase %s" % (item["host"], item["phase"])
    if item.get("hook") and item["phase"] == "check":
        text += " (check %s)" % item["hook"]
    elif item.get("hook"):
        text += " (hook %s)" % item["hook"]
    return text


def fail_message(rollout, found):
    """The closing message of a rollout that failed."""
    first = first_failure(found) or failure("?", "?", "host unreachable or dropped out")
    where = failed_hosts(found) or [CONTROLLER]
    text = "%s %s of %s to %s failed on %s: first failure on %s: %s." % (
        rollout.get("action"), rollout.get("id"), rollout.get("tag"), rollout.get("env"), ", ".join(where),
        describe_failure(first), first["msg"].rstrip(". "))
    if rollout.get("rollback_on_failure", True):
        return text + " Every switched host is back on its previous release; locks released."
    return text + " Automatic rollback is off: hosts that switched stay on the new release; locks released."


def step_line(host, step, status, seconds, note):
    """One line per host per step, as the rollout prints them."""
    return "%-12s %-9s %-8s %6.2fs  %s" % (host, step, status, seconds or 0.0, " ".join(str(note or "").split()))


def summary_lines(rollout, fleet, outcome):
    """The closing table: host, tag live now, result, and each step's duration."""
    steps = ["lock", "prepare", "switch", "post-sync", "finish"]
    head = "%s %s of %s to %s: %s" % (rollout.get("action"), rollout.get("id"), rollout.get("tag"),
                                      rollout.get("env"), outcome)
    columns = " ".join("%9s" % s for s in steps)
    lines = [head, "%-12s %-28s %-10s %s  %s" % ("host", "live", "result", columns, "checks")]
    for host in rollout.get("hosts") or []:
        state = fleet.get(host) or {}
        took = durations(state)
        if state.get("dropped"):
            status = "unreachable"
        elif state.get("failure"):
            status = "failed"
        elif state.get("rolled_back"):
            status = "rolled back"
        else:
            status = "ok"
        live = state.get("live_tag") or (state.get("probe") or {}).get("live_tag") or "-"
        lines.append("%-12s %-28s %-10s %s  %s" % (host, live, status, " ".join(
            ("%8.2fs" % took[s]) if s in took else "%9s" % "-" for s in steps), check_cell(state.get("checks"))))
    if rollout.get("tag_dropped"):
        lines.append("%s was deleted from the controller's repository, never pushed: the rollout stopped before "
                     "anything went live, so it is not a rollout of %s." % (rollout.get("tag"), rollout.get("env")))
    return lines


def check_cell(results):
    """The summary's checks column: ``2/2 ok``, ``FAILED <name>``, or ``-`` (none ran)."""
    if not results:
        return "-"
    for item in results:
        if not item.get("ok"):
            return "FAILED %s" % item.get("name")
    return "%d/%d ok" % (len(results), len(results))


def outcome_stats(rollout, fleet, alive, outcome):
    """What the rollout publishes with set_stats (AWX artifacts, ansible-runner)."""
    return {
        "git_deploy_last_id": rollout.get("id"),
        "git_deploy_last_env": rollout.get("env"),
        "git_deploy_last_action": rollout.get("action"),
        "git_deploy_last_tag": rollout.get("tag"),
        "git_deploy_last_commit": rollout.get("commit"),
        "git_deploy_last_previous_tag": rollout.get("previous_tag") or "",
        "git_deploy_last_hosts": list(rollout.get("hosts") or []),
        "git_deploy_last_failed_hosts": failed_hosts(failures(rollout, fleet, alive)),
        "git_deploy_last_result": outcome,
    }


# -- status -----------------------------------------------------------------------------------

def status(env, hosts, fleet):
    """The environment's status: every host's live release and lock, drift, the history."""
    rows = []
    for host in hosts:
        probe = (fleet.get(host) or {}).get("probe") or {}
        lock = probe.get("lock") or {}
        rows.append({
            "host": host,
            "live_tag": probe.get("live_tag"),
            "live_commit": probe.get("live_commit"),
            "previous_tag": probe.get("previous_tag"),
            "dirty": bool(probe.get("dirty")),
            "locked": bool(lock.get("locked")),
            "lock": lock.get("lock"),
            "stale": bool(lock.get("stale")),
            "corrupt": bool(lock.get("corrupt")),
            "blocked": bool(lock.get("blocked")),
            "block_reason": lock.get("block_reason"),
            "frozen": probe.get("freeze"),
        })
    live_tags = []
    for row in rows:
        if row["live_tag"] not in live_tags:
            live_tags.append(row["live_tag"])
    first = ((fleet.get(hosts[0]) or {}).get("probe") or {}) if hosts else {}
    history = list(reversed((first.get("history") or [])[-STATUS_HISTORY:]))
    return {"env": env, "live_tags": live_tags, "drift": len(live_tags) > 1 or any(r["dirty"] for r in rows),
            "hosts": rows, "history": history}


def status_lines(table):
    lines = ["env %s: %s" % (table["env"], "DRIFT, hosts differ" if table["drift"] else "consistent")]
    for row in table["hosts"]:
        lock = "unlocked"
        if row["locked"]:
            record = row["lock"] or {}
            holder = "%s (%s %s since %s)" % (record.get("owner", "?"), record.get("action") or "rollout",
                                              record.get("deploy_id", "?"), record.get("created", "?")) \
                if record else "?"
            lock = "locked by " + holder + (" STALE" if row["stale"] else "") + (" CORRUPT" if row["corrupt"] else "")
        flags = (" BLOCKED" if row["blocked"] else "") + (" DIRTY" if row["dirty"] else "")
        frozen = row.get("frozen")
        if frozen:
            flags += " FROZEN by %s since %s: %s" % (
                frozen.get("by") or "?", frozen.get("since") or "?", frozen.get("reason") or "no reason given")
        lines.append("%-10s live %-26s previous %-26s %s%s" % (row["host"], row["live_tag"] or "-",
                                                               row["previous_tag"] or "-", lock, flags))
    lines.append("history (newest first):")
    for record in table["history"]:
        fields = tuple(record.get(key, "?") for key in ("end", "action", "tag", "result", "user"))
        lines.append("  %s %-7s %-26s %-11s by %s" % fields)
    return lines
