"""The rollout's decisions (module_utils/rollout.py): who goes on, what failed first, the
result, no-op and resume, the revert target, the history record, status and summary."""

from __future__ import annotations

import pytest

from ansible_collections.gitdeploy.rollout.plugins.module_utils import rollout as r

HOSTS = ["web2", "web1", "web3"]


def make_rollout(**extra) -> dict:
    rollout = dict(r.plan(HOSTS, extra.pop("serial", None)), id="20261203T101500Z-ab12", action=r.DEPLOY,
                   env="prod", tag="prod-20261203-101500", commit="c" * 40, user="alice", controller="ctl",
                   start="2026-12-03T10:15:00Z", max_failures=0, rollback_on_failure=True, failures=[],
                   noop_tag=None, previous_tag="prod-20261202-090000")
    rollout.update(extra)
    return rollout


def state(host, **extra) -> dict:
    value = r.new_state(host)
    value.update(locked=True)
    value.update(extra)
    return value


def fleet(**states) -> dict:
    found = {h: state(h) for h in HOSTS}
    found.update(states)
    return found


# -- the plan -------------------------------------------------------------------------------

def test_plan_keeps_play_order_locks_the_first_host_first_and_cuts_batches():
    plan = r.plan(HOSTS, [1, "100%"])
    assert plan["hosts"] == HOSTS
    assert plan["first_host"] == "web2"  # the play's first host: the run-once lock task runs there
    assert plan["batches"] == [["web2"], ["web1", "web3"]]
    assert r.plan([], None) == {"hosts": [], "first_host": None, "batches": []}
    with pytest.raises(ValueError):
        r.plan(HOSTS, ["0"])


def test_batch_of():
    rollout = make_rollout(serial=[1, "100%"])
    assert [r.batch_of(rollout, h) for h in HOSTS] == [0, 1, 1]
    assert r.batch_of(rollout, "other") is None


# -- failures ----------------------------------------------------------------------------------

def test_failures_are_ordered_by_phase_then_batch_then_host_order():
    rollout = make_rollout(serial=[1, "100%"])
    found = r.failures(rollout, fleet(
        web3=state("web3", failure=r.failure("web3", "switch", "boom", batch=1)),
        web2=state("web2", failure=r.failure("web2", "switch", "bang", batch=0)),
        web1=state("web1", failure=r.failure("web1", "pre-sync", "no", hook="/h/pre-sync.010")),
    ), HOSTS)
    assert [(f["host"], f["phase"]) for f in found] == [("web1", "pre-sync"), ("web2", "switch"), ("web3", "switch")]
    assert r.first_failure(found)["hook"] == "/h/pre-sync.010"
    assert r.first_failure([]) is None


def test_a_host_that_left_the_play_dropped_out_in_its_step():
    rollout = make_rollout()
    found = r.failures(rollout, fleet(web3=state("web3", dropped="switch")), ["web2", "web1"])
    assert found == [r.dropout("web3", "switch")]
    assert "dropped out of the rollout during switch" in found[0]["msg"]
    unknown = r.failures(rollout, fleet(web3=None), ["web2", "web1"])
    assert unknown[0]["phase"] == "unknown"


def test_controller_failures_come_in_their_phase():
    rollout = make_rollout(failures=[r.failure("anything", "sync", "DON'T PANIC")])
    found = r.failures(rollout, fleet(web2=state("web2", failure=r.failure("web2", "post-sync", "late"))), HOSTS)
    assert [(f["host"], f["phase"]) for f in found] == [("controller", "sync"), ("web2", "post-sync")]
    assert r.failed_hosts(found) == ["web2"]


@pytest.mark.parametrize("phase", ["lock", "tag", "prepare", "pre-sync", "sync", "choose"])
def test_a_failure_before_anything_is_live_or_of_the_sync_hook_always_stops(phase):
    rollout = make_rollout(max_failures=5)
    found = [r.failure("web1", phase, "x")]
    assert r.aborted(rollout, found)


def test_switch_and_post_sync_failures_count_against_max_failures():
    found = [r.failure("web1", "switch", "x"), r.failure("web1", "post-sync", "y"), r.failure("web2", "switch", "z")]
    assert r.failed_hosts(found) == ["web1", "web2"]
    assert r.aborted(make_rollout(max_failures=1), found)
    assert not r.aborted(make_rollout(max_failures=2), found)
    assert not r.aborted(make_rollout(), [])
    assert r.aborted(make_rollout(refused="no target"), [])


# -- no-op and resume ------------------------------------------------------------------------

def test_noop_only_when_every_host_is_live_and_finished_on_the_tag():
    tag = "prod-20261203-101500"
    probe = {"live_tag": tag, "settled_tag": tag, "dirty": False}
    assert r.already_live(probe, tag)
    assert not r.already_live(dict(probe, settled_tag="prod-old"), tag)  # switched by a rollout that died
    assert not r.already_live(dict(probe, dirty=True), tag)
    assert not r.already_live(probe, None)
    rollout = make_rollout(noop_tag=tag)
    skipped = {h: state(h, locked=False, lock_skipped=True) for h in HOSTS}
    assert r.is_noop(rollout, skipped)
    assert not r.is_noop(rollout, dict(skipped, web3=state("web3")))
    assert not r.is_noop(make_rollout(), skipped)
    assert not r.is_noop(make_rollout(noop_tag=tag, action=r.REVERT), skipped)


def test_resume_starts_from_what_the_last_finished_rollout_left():
    tag = "prod-2"
    crashed = {"live_tag": tag, "settled_tag": "prod-1"}
    assert r.resuming(crashed, tag) and r.start_tag(crashed, tag) == "prod-1"
    normal = {"live_tag": "prod-1", "settled_tag": "prod-1"}
    assert not r.resuming(normal, tag) and r.start_tag(normal, tag) == "prod-1"
    assert r.start_tag({}, tag) is None


# -- who does what at each step ----------------------------------------------------------------

def test_the_first_host_locks_alone_and_the_others_only_if_it_got_the_lock():
    rollout = make_rollout()
    assert r.step_decision("lock-first", rollout, {}, HOSTS, "web2") == (True, None)
    assert r.step_decision("lock-first", rollout, {}, HOSTS, "web1")[0] is False
    assert r.step_decision("lock", rollout, fleet(), HOSTS, "web1") == (True, None)
    assert r.step_decision("lock", rollout, fleet(), HOSTS, "web2")[0] is False
    refused = fleet(web2=state("web2", locked=False, failure=r.failure("web2", "lock", "held by mallory")))
    run, reason = r.step_decision("lock", rollout, refused, HOSTS, "web1")
    assert not run and "web2 in phase lock" in reason


@pytest.mark.parametrize("values, problem", [
    ({"git_deploy_root": "srv/app"}, "git_deploy_root must be an absolute path other than '/' (got srv/app)"),
    ({"git_deploy_root": "/"}, "git_deploy_root"),
    ({"git_deploy_root": "//"}, "git_deploy_root"),
    ({"git_deploy_keep_releases": 0}, "git_deploy_keep_releases must be 1 or more (got 0)"),
    ({"git_deploy_keep_releases": "many"}, "git_deploy_keep_releases"),
    ({"git_deploy_keep_releases": True}, "git_deploy_keep_releases"),
    ({"git_deploy_hook_dir": "../.."}, "git_deploy_hook_dir must be a relative path"),
    ({"git_deploy_hook_dir": "/etc"}, "git_deploy_hook_dir"),
    ({"git_deploy_hook_dir": ""}, "git_deploy_hook_dir"),
])
def test_settings_a_rollout_cannot_work_with(values, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        r.check_settings(values)


def test_good_settings():
    r.check_settings({"git_deploy_root": "/srv/app", "git_deploy_keep_releases": "3", "git_deploy_hook_dir": "ops/deploy"})
    r.check_settings({})


def test_prepare_needs_a_lock_and_a_revert_skips_hosts_that_have_the_release():
    rollout = make_rollout()
    assert r.step_decision("prepare", rollout, fleet(), HOSTS, "web1") == (True, None)
    assert r.step_decision("prepare", rollout, fleet(web1=state("web1", locked=False)), HOSTS, "web1")[0] is False
    skipped = fleet(web1=state("web1", locked=False, lock_skipped=True))
    assert r.step_decision("prepare", rollout, skipped, HOSTS, "web1") == (True, None)
    revert = make_rollout(action=r.REVERT, tag="prod-1", commit="a" * 40)
    here = {"releases": [{"name": "prod-1", "commit": "a" * 40, "complete": True}]}
    with_release = fleet(web1=state("web1", probe=here))
    assert r.step_decision("prepare", revert, with_release, HOSTS, "web1")[0] is False
    assert r.step_decision("prepare", revert, with_release, HOSTS, "web2") == (True, None)
    unfinished = {"releases": [{"name": "prod-1", "commit": "a" * 40, "complete": False}]}
    assert r.step_decision("prepare", revert, fleet(web1=state("web1", probe=unfinished)), HOSTS, "web1")[0]


def test_switch_goes_batch_by_batch_and_stops_after_a_failed_batch():
    rollout = make_rollout(serial=[1, "100%"])
    assert r.step_decision("switch", rollout, fleet(), HOSTS, "web2", 0) == (True, None)
    assert r.step_decision("switch", rollout, fleet(), HOSTS, "web1", 0)[0] is False
    assert r.step_decision("switch", rollout, fleet(), HOSTS, "web1", 1) == (True, None)
    canary_failed = fleet(web2=state("web2", switched=True, failure=r.failure("web2", "switch", "hook", batch=0)))
    assert r.step_decision("switch", rollout, canary_failed, HOSTS, "web1", 1)[0] is False
    tolerant = make_rollout(serial=[1, "100%"], max_failures=1)
    assert r.step_decision("switch", tolerant, canary_failed, HOSTS, "web1", 1) == (True, None)
    assert r.step_decision("switch", tolerant, canary_failed, HOSTS, "web2", 1)[0] is False


def test_post_sync_is_a_step_only_when_the_release_has_post_sync_hooks():
    rollout = make_rollout()
    switched = {h: state(h, switched=True) for h in HOSTS}
    run, reason = r.step_decision("post-sync", rollout, switched, HOSTS, "web1")
    assert not run and "no post-sync hooks" in reason
    with_hooks = {h: state(h, switched=True, hooks=["pre-sync", "post-sync"]) for h in HOSTS}
    assert r.step_decision("post-sync", rollout, with_hooks, HOSTS, "web1") == (True, None)
    with_hooks["web3"]["switched"] = False
    assert r.step_decision("post-sync", rollout, with_hooks, HOSTS, "web3")[0] is False


def test_finish_runs_on_every_locked_host_whatever_happened():
    rollout = make_rollout(failures=[r.failure("c", "tag", "push refused")])
    assert r.step_decision("finish", rollout, fleet(), HOSTS, "web1") == (True, None)
    assert r.step_decision("finish", rollout, fleet(web1=state("web1", locked=False)), HOSTS, "web1")[0] is False
    with pytest.raises(ValueError):
        r.step_decision("dance", rollout, fleet(), HOSTS, "web1")


def test_nothing_runs_in_a_noop_rollout():
    rollout = make_rollout(noop_tag="prod-20261203-101500")
    skipped = {h: state(h, locked=False, lock_skipped=True) for h in HOSTS}
    assert r.step_decision("prepare", rollout, skipped, HOSTS, "web1") == (False, "nothing to do")


# -- rollback and result ---------------------------------------------------------------------

def test_rollback_of_switched_hosts_when_the_rollout_or_the_host_failed():
    failed = fleet(web3=state("web3", switched=True, failure=r.failure("web3", "post-sync", "x")),
                   web1=state("web1", switched=True), web2=state("web2"))
    rollout = make_rollout()
    assert r.needs_rollback(rollout, failed, HOSTS, "web1")
    assert r.needs_rollback(rollout, failed, HOSTS, "web3")
    assert not r.needs_rollback(rollout, failed, HOSTS, "web2")  # never switched
    assert not r.needs_rollback(make_rollout(rollback_on_failure=False), failed, HOSTS, "web1")
    # Tolerated: the rollout goes on, only the failed host goes back.
    tolerant = make_rollout(max_failures=1)
    assert r.needs_rollback(tolerant, failed, HOSTS, "web3") and not r.needs_rollback(tolerant, failed, HOSTS, "web1")
    assert not r.needs_rollback(rollout, fleet(web1=state("web1", switched=True)), HOSTS, "web1")


def test_a_revert_stands_whatever_fails_after_its_switch_and_a_deploy_does_not():
    assert r.revert_stands(r.REVERT)
    assert not r.revert_stands(r.DEPLOY)


def test_a_revert_runs_post_sync_in_the_finish_of_each_host_that_switched():
    revert = make_rollout(action=r.REVERT)
    switched = fleet(web1=state("web1", switched=True), web2=state("web2", switched=True))
    assert r.post_sync_at_finish(revert, switched, HOSTS, "web1")
    assert not r.post_sync_at_finish(revert, switched, HOSTS, "web3")  # did not switch
    # A deploy runs post-sync in a step of its own.
    assert not r.post_sync_at_finish(make_rollout(), switched, HOSTS, "web1")
    # A revert that stopped (a host failed its switch) rolls back instead.
    stopped = fleet(web1=state("web1", switched=True), web2=state("web2", failure=r.failure("web2", "switch", "x")))
    assert not r.post_sync_at_finish(revert, stopped, HOSTS, "web1")
    assert not r.post_sync_at_finish(revert, stopped, HOSTS, "web2")
    # Tolerated by max_failures: the others go on and run it.
    assert r.post_sync_at_finish(make_rollout(action=r.REVERT, max_failures=1), stopped, HOSTS, "web1")


def test_result():
    rollout = make_rollout()
    assert r.result(rollout, fleet(), HOSTS) == r.SUCCESS
    before_switch = fleet(web1=state("web1", failure=r.failure("web1", "pre-sync", "x")))
    assert r.result(rollout, before_switch, HOSTS) == r.FAILED
    after_switch = fleet(web1=state("web1", switched=True, failure=r.failure("web1", "switch", "x")))
    assert r.result(rollout, after_switch, HOSTS) == r.ROLLED_BACK
    assert r.result(make_rollout(rollback_on_failure=False), after_switch, HOSTS) == r.FAILED
    assert r.result(make_rollout(refused="never deployed"), fleet(), HOSTS) == r.REFUSED
    noop = make_rollout(noop_tag="prod-20261203-101500")
    assert r.result(noop, {h: state(h, locked=False, lock_skipped=True) for h in HOSTS}, HOSTS) == r.UNCHANGED


def test_a_rollout_that_never_got_every_lock_leaves_no_record():
    rollout = make_rollout()
    assert not r.leaves_record(rollout, [r.failure("web2", "lock", "held")])
    assert r.leaves_record(rollout, [r.failure("web2", "prepare", "disk full")])
    assert r.leaves_record(rollout, [])
    assert not r.leaves_record(make_rollout(refused="no"), [])


def test_the_tag_is_pushed_once_every_host_is_prepared_and_dropped_when_the_rollout_stopped():
    cut = make_rollout(tag_created=True)
    assert r.tag_fate(cut, []) == r.PUSH
    # A pre-sync (or prepare) failure stops the rollout before anything is live: git-deploy
    # cuts no tag then, so the tag this rollout cut goes.
    assert r.tag_fate(cut, [r.failure("web1", "pre-sync", "no", hook="/h/pre-sync.010")]) == r.DROP
    assert r.tag_fate(make_rollout(tag_created=True, refused="too big"), []) == r.DROP
    # A tag this rollout did not cut (reused, or check mode) is never deleted ...
    assert r.tag_fate(make_rollout(tag_created=False), [r.failure("web1", "prepare", "disk full")]) == r.KEEP
    # ... but it is pushed when the rollout goes on (a re-run completes a failed push).
    assert r.tag_fate(make_rollout(tag_created=False), []) == r.PUSH
    assert r.tag_fate(make_rollout(tag_created=True, noop=True), []) == r.KEEP
    assert r.tag_fate(make_rollout(tag_created=True, tag=None), []) == r.KEEP
    dropped = make_rollout(tag_created=True, tag_dropped=True)
    assert r.summary_lines(dropped, fleet(), r.FAILED)[-1].startswith(
        "prod-20261203-101500 was deleted from the controller's repository, never pushed")
    assert "never pushed" not in " ".join(r.summary_lines(make_rollout(), fleet(), r.FAILED))
    # A push failure comes before anything is live: fatal, whatever max_failures says.
    tolerant = make_rollout(tag_created=True, max_failures=2)
    assert r.tag_fate(tolerant, [r.failure(r.CONTROLLER, "push", "refused")]) == r.DROP
    assert r.aborted(tolerant, [r.failure(r.CONTROLLER, "push", "refused")])
    assert r.first_failure(r.failures(dict(tolerant, failures=[r.failure(r.CONTROLLER, "push", "x")]), fleet(
        web1=state("web1", failure=r.failure("web1", "pre-sync", "y"))), HOSTS))["phase"] == "pre-sync"


# -- revert -----------------------------------------------------------------------------------

def probes(*entries) -> dict:
    return {h: state(h, probe=p) for h, p in zip(HOSTS, entries)}


def test_revert_target_is_the_tag_given_or_the_previous_rollout_every_host_agrees_on():
    seen = {"previous_tag": "prod-1", "history": [{"tag": "prod-1"}, {"tag": "prod-2"}], "releases": []}
    assert r.revert_target("", probes(seen, seen, seen), "prod") == ("prod-1", None)
    assert r.revert_target("prod-2", probes(seen, seen, seen), "prod") == ("prod-2", None)
    other = dict(seen, previous_tag="prod-0")
    tag, error = r.revert_target("", probes(seen, other, seen), "prod")
    assert tag is None and "disagree on the previous rollout (prod-1, prod-0)" in error
    tag, error = r.revert_target("", probes({}, {}, {}), "prod")
    assert tag is None and "no earlier successful rollout" in error and "-e tag=" in error


def test_revert_target_must_have_been_deployed_here():
    seen = {"previous_tag": None, "history": [], "releases": [{"name": "prod-3"}], "history_tags": ["prod-2"]}
    assert r.revert_target("prod-3", probes(seen, seen, seen), "prod") == ("prod-3", None)
    assert r.revert_target("prod-2", probes(seen, seen, seen), "prod") == ("prod-2", None)  # pruned, in the history
    tag, error = r.revert_target("prod-9", probes(seen, seen, seen), "prod")
    assert tag is None and "never deployed to these hosts" in error and "Nothing was changed" in error


def test_a_revert_to_a_bad_release_needs_force_and_the_skipped_ones_are_named():
    bad = {"id": "r-7", "action": "deploy", "result": "rolled_back", "end": "2026-12-04T10:00:00Z",
           "failed_host": "web1", "failed_phase": "check"}
    good = {"previous_tag": "prod-1", "history_tags": ["prod-1", "prod-2", "prod-3"], "skipped_bad": ["prod-3"]}
    marked = dict(good, bad_tags={"prod-3": bad})
    tag, error = r.revert_target("prod-3", probes(good, marked, good), "prod")
    assert tag is None and error == (
        "prod-3 is a bad release: its deploy r-7 was rolled back (first failure: web1 in phase check, 2026-12-04T10:00:00Z). "
        "Nothing was changed. Revert to it anyway with -e force=true")
    assert r.revert_target("prod-3", probes(good, marked, good), "prod", force=True) == ("prod-3", None)
    assert r.revert_target("", probes(good, marked, good), "prod") == ("prod-1", None)
    assert r.skipped_bad(probes(good, marked, dict(good, skipped_bad=["prod-4", "prod-3"]))) == ["prod-3", "prod-4"]
    assert r.bad_release(probes(good, good, good), "prod-3") is None


def test_revert_goes_back_from_the_tag_live_on_the_first_host():
    rollout = make_rollout()
    assert r.common_live_tag(rollout, probes({}, {"live_tag": "prod-2"}, {"live_tag": "prod-3"})) == "prod-2"
    assert r.common_live_tag(rollout, {}) is None


# -- records and messages ----------------------------------------------------------------------

def test_history_record_with_step_durations():
    host = state("web1", start_tag="prod-1", steps=[
        {"step": "lock", "ran": True, "seconds": 0.2}, {"step": "switch", "ran": True, "seconds": 0.3},
        {"step": "switch", "ran": True, "seconds": 0.1}, {"step": "post-sync", "ran": False, "seconds": 0.0}])
    record = r.history_record(make_rollout(), host, r.ROLLED_BACK, r.failure("web3", "post-sync", "x", hook="/h"))
    assert record["durations"] == {"lock": 0.2, "switch": 0.4}
    assert (record["previous_tag"], record["result"], record["failed_host"], record["failed_phase"],
            record["failed_hook"]) == ("prod-1", r.ROLLED_BACK, "web3", "post-sync", "/h")
    assert r.history_record(make_rollout(), state("web2"), r.SUCCESS, None)["failed_host"] == ""


def test_fail_message_names_the_first_failure_and_what_became_of_the_hosts():
    found = [r.failure("web3", "post-sync", "hook exited 3.", hook="/r/deploy/apps/prod/post-sync.010")]
    text = r.fail_message(make_rollout(), found)
    assert "failed on web3: first failure on web3 in phase post-sync (hook /r/deploy/apps/prod/post-sync.010): " \
           "hook exited 3." in text
    assert "Every switched host is back" in text
    assert "Automatic rollback is off" in r.fail_message(make_rollout(rollback_on_failure=False), found)
    assert "failed on controller" in r.fail_message(make_rollout(), [r.failure("controller", "tag", "refused")])


def test_step_line_is_one_line():
    line = r.step_line("web1", "prepare", "ok", 0.5, "two\nlines")
    assert "\n" not in line and line.startswith("web1") and "0.50s" in line and "two lines" in line


def test_summary_and_stats():
    states = fleet(web3=state("web3", dropped="switch"), web1=state("web1", rolled_back=True, live_tag="prod-1"))
    lines = r.summary_lines(make_rollout(), states, r.ROLLED_BACK)
    assert lines[0].endswith(": rolled_back")
    rows = {line.split()[0]: line for line in lines[2:]}
    assert "unreachable" in rows["web3"] and "rolled back" in rows["web1"] and "prod-1" in rows["web1"]
    stats = r.outcome_stats(make_rollout(), states, ["web1", "web2"], r.ROLLED_BACK)
    assert stats["git_deploy_last_failed_hosts"] == ["web3"]
    assert stats["git_deploy_last_hosts"] == HOSTS and stats["git_deploy_last_result"] == r.ROLLED_BACK


def test_status_table_drift_locks_and_history():
    lock = {"locked": True, "stale": True, "corrupt": False, "blocked": False, "block_reason": None,
            "lock": {"owner": "ghost@gone", "action": "deploy", "deploy_id": "dead-7", "created": "2026-01-01T00:00:00Z"}}
    history = [{"end": "2026-12-0%dT00:00:00Z" % i, "action": "deploy", "tag": "prod-%d" % i, "result": "success",
                "user": "alice"} for i in range(1, 13)]
    states = probes({"live_tag": "prod-2", "history": history}, {"live_tag": "prod-1"},
                    {"live_tag": "prod-2", "lock": lock, "dirty": True})
    table = r.status("prod", HOSTS, states)
    assert table["live_tags"] == ["prod-2", "prod-1"] and table["drift"]
    assert [h["host"] for h in table["hosts"]] == HOSTS
    assert [h["tag"] for h in table["history"]][:2] == ["prod-12", "prod-11"] and len(table["history"]) == 10
    lines = r.status_lines(table)
    assert lines[0] == "env prod: DRIFT, hosts differ"
    assert "locked by ghost@gone (deploy dead-7 since 2026-01-01T00:00:00Z) STALE DIRTY" in lines[3]
    assert lines[4] == "history (newest first):"
    calm = r.status("prod", ["web1"], {"web1": state("web1", probe={"live_tag": "prod-1"})})
    assert not calm["drift"] and r.status_lines(calm)[0] == "env prod: consistent"
    frozen = {"by": "alice@ctl", "since": "2026-12-04T09:00:00Z", "reason": "release freeze", "env": "prod"}
    cold = r.status("prod", ["web1"], {"web1": state("web1", probe={"live_tag": "prod-1", "freeze": frozen})})
    assert cold["hosts"][0]["frozen"] == frozen
    assert r.status_lines(cold)[1].endswith("FROZEN by alice@ctl since 2026-12-04T09:00:00Z: release freeze")


def test_rollout_ids_started_in_one_second_never_collide():
    import datetime
    import re
    moment = datetime.datetime(2026, 11, 21, 10, 15, 0)
    ids = [r.rollout_id(moment) for _n in range(20000)]
    assert len(set(ids)) == len(ids)
    assert all(re.match(r"^20261121T101500Z-[0-9a-f]{12}$", i) for i in ids)
    assert r.rollout_id(moment, awx_job_id=42) == "awx-42"


# -- waiting for a lock -----------------------------------------------------------------------

def test_a_lock_is_waited_for_only_while_another_rollout_holds_it_and_time_is_left():
    held = {"failure": r.failure("web1", "lock", "held"), "state": {"held_by": "mallory@elsewhere"}}
    assert r.lock_wait(held, 0.4, 10) == r.LOCK_POLL
    assert r.lock_wait(held, 8.5, 10) == 1.5  # never past the deadline
    assert r.lock_wait(held, 10.0, 10) is None
    assert r.lock_wait(held, 0.4, 0) is None  # git_deploy_lock_wait 0: fail at once
    # Taken, or refused for another reason (a block file, a corrupt lock): no wait.
    assert r.lock_wait({"failure": None, "state": {"held_by": None}}, 0.4, 10) is None
    assert r.lock_wait({"failure": r.failure("web1", "lock", "blocked"), "state": {}}, 0.4, 10) is None
    assert r.lock_wait_line("web1", "mallory@elsewhere (deploy x)", 3.2, 60) == (
        "web1: the lock is held by mallory@elsewhere (deploy x); waiting for it (3 of 60 s)")


# -- health checks and the canary ---------------------------------------------------------------

CHECKS = {"checks": [{"name": "web", "port": 8080}]}


def test_a_failed_check_counts_against_max_failures_and_is_named():
    failed = r.failure("web1", "check", "check web failed on web1: HTTP 503", hook="web")
    rollout = make_rollout()
    assert r.aborted(rollout, [failed]) and not r.aborted(make_rollout(max_failures=1), [failed])
    assert r.describe_failure(failed) == "web1 in phase check (check web)"
    assert r.failures(rollout, fleet(web3=state("web3", failure=r.failure("web3", "switch", "x")),
                                     web1=state("web1", failure=failed)), HOSTS)[0]["phase"] == "switch"


def test_the_canary_is_held_before_the_second_batch_only():
    rollout = make_rollout(serial=[1, "100%"], canary_wait=30)
    switched = fleet(web2=state("web2", switched=True))
    assert r.canary_hold(rollout, switched, HOSTS, 1)
    assert not r.canary_hold(rollout, switched, HOSTS, 0)
    assert not r.canary_hold(make_rollout(serial=[1, 1, 1], canary_wait=30), switched, HOSTS, 2)
    assert not r.canary_hold(make_rollout(serial=[1, "100%"]), switched, HOSTS, 1)
    assert not r.canary_hold(make_rollout(canary_wait=30), switched, HOSTS, 1)  # one batch: no canary
    assert not r.canary_hold(rollout, fleet(), HOSTS, 1)  # the canary did not switch
    failed = fleet(web2=state("web2", switched=True, failure=r.failure("web2", "check", "down", hook="web")))
    assert not r.canary_hold(rollout, failed, HOSTS, 1)


def test_the_canary_check_runs_on_the_first_batch_hosts_that_switched_and_have_checks():
    rollout = make_rollout(serial=[1, "100%"], canary_wait=30)
    states = fleet(web2=state("web2", switched=True, settings=CHECKS), web1=state("web1", settings=CHECKS))
    assert r.step_decision("check", rollout, states, HOSTS, "web2") == (True, None)
    assert r.step_decision("check", rollout, states, HOSTS, "web1") == (False, "not in the canary batch")
    states["web2"] = state("web2", switched=True)
    assert r.step_decision("check", rollout, states, HOSTS, "web2") == (False, "no git_deploy_checks")


def test_check_results_go_to_the_history_and_the_summary():
    results = [{"name": "web", "kind": "url", "ok": True, "tries": 2, "seconds": 1.5, "msg": "HTTP 200"},
               {"name": "db", "kind": "port", "ok": False, "tries": 1, "seconds": 0.1, "msg": "refused"}]
    record = r.history_record(make_rollout(), state("web1", checks=results), r.ROLLED_BACK, None)
    assert record["checks"] == [{"name": "web", "ok": True, "tries": 2, "seconds": 1.5},
                                {"name": "db", "ok": False, "tries": 1, "seconds": 0.1}]
    lines = r.summary_lines(make_rollout(), fleet(web1=state("web1", checks=results),
                                                  web2=state("web2", checks=results[:1])), r.ROLLED_BACK)
    rows = {line.split()[0]: line for line in lines[2:]}
    assert lines[1].endswith("checks") and rows["web1"].endswith("FAILED db") and rows["web2"].endswith("1/1 ok")
    assert rows["web3"].endswith(" -")


def test_checks_that_cannot_run_are_refused_at_the_start():
    with pytest.raises(ValueError, match="check web must have exactly one of"):
        r.check_settings({"git_deploy_checks": [{"name": "web"}]})
    r.check_settings({"git_deploy_checks": [{"name": "web", "url": "http://127.0.0.1/health", "retries": 3}]})


# -- tag retention ----------------------------------------------------------------------------

def test_keep_tags_never_deletes_what_a_host_needs():
    states = fleet(
        web2=state("web2", start_tag="prod-5", live_tag="prod-9",
                   probe={"live_tag": "prod-5", "previous_tag": "prod-4", "settled_tag": "prod-5",
                          "recent_tags": ["prod-2", "prod-4", "prod-5"]}),
        web1=state("web1", probe={"live_tag": "prod-3", "previous_tag": None, "recent_tags": ["prod-3"]}))
    rollout = make_rollout(tag="prod-9", previous_tag="prod-5")
    assert r.protected_tags(rollout, states) == {"prod-9", "prod-5", "prod-4", "prod-3", "prod-2"}


def test_keep_tags_prunes_only_after_a_success_every_host_reported():
    probed = {h: state(h, probe={"live_tag": "prod-1"}) for h in HOSTS}
    assert r.prunes_tags(make_rollout(), probed, HOSTS, 3)
    assert not r.prunes_tags(make_rollout(), probed, HOSTS, 0)
    assert not r.prunes_tags(make_rollout(), probed, HOSTS[:2], 3)  # one dropped out: its live tag is unknown
    failed = dict(probed, web1=state("web1", probe={"live_tag": "prod-1"}, failure=r.failure("web1", "switch", "x")))
    assert not r.prunes_tags(make_rollout(), failed, HOSTS, 3)
