"""Unit tests for plugins/module_utils/lock.py: records, staleness, decisions, messages, file operations."""

from __future__ import annotations

import contextlib
import datetime
import json
import multiprocessing
import os
import stat
import subprocess
import sys

import pytest

from hosts import collections_path

sys.path.insert(0, str(collections_path()))

from ansible_collections.gitdeploy.rollout.plugins.module_utils import lock  # noqa: E402
from ansible_collections.gitdeploy.rollout.plugins.module_utils.journal import isoformat  # noqa: E402
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import Layout  # noqa: E402

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 21, 10, 15, 0, tzinfo=UTC)
PATH = "/srv/app/.git-deploy/lock"
UNLOCK_PROD = "ansible-playbook gitdeploy.rollout.unlock -e env=prod -e force=true"


def request(**kw):
    base = dict(state="present", deploy_id="d2", owner="bob@ctl", env="prod", action="deploy",
                tag="prod-20261121-101500", reason=None, ttl=3600, root="/srv/app")
    base.update(kw)
    return lock.Request(**base).check()


def holder(**kw):
    """Alice's record, taken 30 minutes before NOW and valid until 30 minutes after it."""
    record = {"deploy_id": "d1", "owner": "alice@ctl", "env": "prod", "action": "deploy",
              "tag": "prod-20261121-091500", "reason": "ticket OPS-1", "created": "2026-11-21T09:45:00Z",
              "expires": "2026-11-21T10:45:00Z", "host": "web1", "root": "/srv/app"}
    record.update(kw)
    return record


def stale_holder():
    return holder(expires="2026-11-21T10:00:00Z")


def decide(existing, req, block=None, now=NOW):
    return lock.decide(existing, req, now, PATH, "web1", block)


# -- record ---------------------------------------------------------------------------------------
def test_build_record_has_every_field_and_expiry_from_ttl():
    record = lock.build_record(request(ttl=600, reason="why"), NOW, "web1")
    assert set(record) == set(lock.RECORD_FIELDS)
    assert record["created"] == "2026-11-21T10:15:00Z"
    assert record["expires"] == "2026-11-21T10:25:00Z"
    assert (record["deploy_id"], record["owner"], record["host"], record["root"]) == ("d2", "bob@ctl", "web1", "/srv/app")
    assert lock.parse_record(json.dumps(record)) == record


@pytest.mark.parametrize("text, problem", [
    ("", "empty"),
    ("   \n", "empty"),
    ("{not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"deploy_id": "d1"}', "missing field 'owner'"),
    (json.dumps(holder(expires="tomorrow")), "'expires' is not an ISO 8601 time"),
    (json.dumps(holder(deploy_id="")), "missing field 'deploy_id'"),
    (json.dumps(holder(env=5)), "'env' is not a string"),
])
def test_parse_record_rejects_what_is_not_a_lock_record(text, problem):
    with pytest.raises(ValueError, match=problem):
        lock.parse_record(text)


def test_parse_record_keeps_unknown_fields_and_optional_nulls():
    record = holder(env=None, extra="kept")
    assert lock.parse_record(json.dumps(record)) == record


@pytest.mark.parametrize("text", ["2026-11-21T10:15:00Z", "2026-11-21T10:15:00+00:00",
                                  "2026-11-21T11:15:00+01:00", "2026-11-21T09:45:00-0030", "2026-11-21T10:15:00",
                                  "2026-11-21 10:15:00z"])
def test_parse_time_accepts_iso_utc_offsets_and_naive_as_utc(text):
    assert lock.parse_time(text) == NOW


def test_parse_time_keeps_fractions_of_any_length():
    assert lock.parse_time("2026-11-21T10:15:00.5Z") == NOW.replace(microsecond=500000)
    assert lock.parse_time("2026-11-21T10:15:00.1234567Z") == NOW.replace(microsecond=123456)


@pytest.mark.parametrize("value", ["", "now", None, 12, "2026-11-21", "2026-13-01T00:00:00Z", "2026-11-21T10:15:00+1"])
def test_parse_time_rejects_non_times(value):
    with pytest.raises(ValueError):
        lock.parse_time(value)


def test_expired_at_and_after_expiry_stale_a_clock_margin_later():
    record = holder(expires=isoformat(NOW))
    assert lock.is_expired(record, NOW)
    assert lock.is_expired(record, NOW + datetime.timedelta(seconds=1))
    assert not lock.is_expired(record, NOW - datetime.timedelta(seconds=1))
    assert not lock.is_stale(record, NOW + lock.CLOCK_MARGIN - datetime.timedelta(seconds=1))
    assert lock.is_stale(record, NOW + lock.CLOCK_MARGIN)


@pytest.mark.parametrize("kw, problem", [
    (dict(deploy_id=None), "deploy_id is required to take the lock"),
    (dict(state="absent", deploy_id=None), "deploy_id is required to release"),
    (dict(env="prod; rm -rf /"), "env .* is not a plain name"),
    (dict(tag="../x"), "tag .* is not a plain name"),
    (dict(deploy_id="a b"), "deploy_id .* is not a plain name"),
    (dict(ttl=0), "ttl must be a positive"),
    (dict(owner="alice\nmallory"), "owner .* single line"),
    (dict(state="held"), "state must be"),
])
def test_request_check_refuses_bad_requests(kw, problem):
    with pytest.raises(ValueError, match=problem):
        request(**kw)


def test_request_absent_with_force_needs_no_deploy_id():
    assert request(state="absent", deploy_id=None, force=True).force


# -- decisions: acquire ------------------------------------------------------------------------------
def test_free_lock_is_acquired():
    decision = decide(None, request())
    assert decision.action == lock.ACQUIRE and decision.changed
    assert decision.record["deploy_id"] == "d2" and decision.record["expires"] == "2026-11-21T11:15:00Z"
    assert decision.taken_over is None and decision.log is None
    assert "taken by bob@ctl" in decision.msg


def test_own_lock_is_renewed_a_ttl_from_now():
    mine = holder(deploy_id="d2")  # created 09:45, expires 10:45; now is 10:15, ttl 3600
    decision = decide(mine, request())
    assert decision.action == lock.RENEW and not decision.changed  # still this rollout's lock
    assert decision.record == dict(mine, expires="2026-11-21T11:15:00Z")
    assert decision.record["created"] == mine["created"] and not decision.warnings
    assert "renewed until 2026-11-21T11:15:00Z" in decision.msg


def test_own_expired_lock_is_renewed_with_a_warning():
    decision = decide(holder(deploy_id="d2", expires="2026-11-21T10:00:00Z"), request())
    assert decision.action == lock.RENEW and decision.record["expires"] == "2026-11-21T11:15:00Z"
    assert "had expired at 2026-11-21T10:00:00Z" in decision.warnings[0]


@pytest.mark.parametrize("existing, what", [
    (None, "there is no lock any more"),
    (holder(), "it was taken over by alice@ctl (deploy d1"),
    (lock.CorruptLock("x", "not JSON"), "the lock file is corrupt (not JSON)"),
])
def test_a_rollout_that_lost_its_lock_is_told_who_has_it(existing, what):
    decision = decide(existing, request(hold=True))
    assert decision.action == lock.FAIL and not decision.changed
    assert "This rollout (deploy d2) no longer holds lock %s on web1: %s" % (PATH, what) in decision.msg
    assert "changes nothing more" in decision.msg
    assert decide(holder(deploy_id="d2"), request(hold=True)).action == lock.RENEW


def test_lock_of_another_rollout_refuses_with_everything_the_on_call_needs():
    decision = decide(holder(), request(env="staging"))
    assert decision.action == lock.FAIL and not decision.changed
    assert decision.record == holder()
    msg = decision.msg
    for part in ("alice@ctl", "deploy d1", "since 2026-11-21T09:45:00Z", "deploy of tag prod-20261121-091500",
                 "to env prod", "reason: ticket OPS-1", "expires at 2026-11-21T10:45:00Z", PATH, "on web1",
                 UNLOCK_PROD):
        assert part in msg, part
    assert "\n" not in msg


def test_only_a_live_lock_of_another_rollout_is_worth_waiting_for():
    assert decide(holder(), request()).held
    assert not decide(None, request()).held
    assert not decide(stale_holder(), request()).held  # taken over
    assert not decide(lock.CorruptLock("x", "not JSON"), request()).held
    assert not decide(holder(), request(hold=True)).held  # lost: waiting would not get it back
    assert not decide(None, request(block_file="/etc/B"), block="freeze").held
    assert not decide(holder(), request(block_file="/etc/B"), block="freeze").held


def test_a_frozen_host_refuses_every_new_lock_even_with_force_but_not_a_rollout_under_way(tmp_path):
    frozen = {"by": "alice@ctl", "since": "2026-12-04T09:00:00Z", "reason": "release\nfreeze", "env": "prod"}
    for req in (request(), request(force=True), request(force_lock=True)):
        decision = lock.decide(None, req, NOW, PATH, "web1", None, frozen)
        assert decision.action == lock.FAIL and not decision.held
        assert decision.msg == ("Rollouts are frozen on web1 since 2026-12-04T09:00:00Z by alice@ctl: release freeze. "
                                "Nothing was changed. They resume after: ansible-playbook gitdeploy.rollout.unfreeze "
                                "-e env=prod")
    assert lock.decide(holder(deploy_id="d2"), request(), NOW, PATH, "web1", None, frozen).action == lock.RENEW
    assert lock.decide(holder(deploy_id="d2"), request(hold=True), NOW, PATH, "web1", None, frozen).action == lock.RENEW
    # The record on disk: missing, a record, or something unreadable that still freezes.
    path = tmp_path / "freeze"
    assert lock.read_freeze(str(path)) is None and lock.read_freeze(None) is None
    path.write_text(json.dumps(frozen))
    assert lock.read_freeze(str(path)) == frozen
    path.write_text("not json")
    assert "is not JSON" in lock.read_freeze(str(path))["reason"]


def test_held_by_message_falls_back_to_requested_env_then_placeholder():
    assert "-e env=staging -e" in lock.held_by_message(holder(env=None), PATH, "web1", env="staging")
    assert "-e env=<env> -e" in lock.held_by_message(holder(env=None, action=None, tag=None), PATH)


def test_stale_lock_of_another_rollout_is_taken_over_with_a_warning_and_a_log_line():
    decision = decide(stale_holder(), request())
    assert decision.action == lock.TAKEOVER and decision.changed
    assert decision.taken_over == stale_holder()
    assert decision.record["deploy_id"] == "d2"
    assert "alice@ctl" in decision.warnings[0] and "expired at 2026-11-21T10:00:00Z" in decision.warnings[0]
    assert "took over stale lock" in decision.log and "deploy d1" in decision.log


def test_force_lock_takes_over_a_live_lock_and_records_whom():
    decision = decide(holder(), request(force_lock=True))
    assert decision.action == lock.TAKEOVER
    assert decision.taken_over == holder()
    assert decision.log.startswith("forced takeover of lock %s from alice@ctl (deploy d1" % PATH)
    assert "Forced takeover" in decision.warnings[0]


def test_force_alone_never_takes_over_a_live_lock():
    decision = decide(holder(), request(force=True))
    assert decision.action == lock.FAIL and decision.record == holder()
    assert "alice@ctl" in decision.msg and "force_lock=true" in decision.msg
    assert decide(stale_holder(), request(force=True)).action == lock.TAKEOVER  # an expired one: yes


def test_force_on_own_lock_renews_it():
    assert decide(holder(deploy_id="d2"), request(force=True)).action == lock.RENEW


def test_corrupt_lock_refuses_with_path_content_and_the_fix():
    corrupt = lock.CorruptLock("garbage{", "not JSON (Expecting value)")
    decision = decide(corrupt, request())
    assert decision.action == lock.FAIL and decision.record is None
    for part in ("corrupt", PATH, "'garbage{'", "cat %s" % PATH, UNLOCK_PROD):
        assert part in decision.msg, part


def test_force_replaces_a_corrupt_lock():
    corrupt = lock.CorruptLock("garbage{", "not JSON")
    assert decide(corrupt, request(force_lock=True)).action == lock.TAKEOVER
    decision = decide(corrupt, request(force=True))
    assert decision.action == lock.TAKEOVER
    assert decision.taken_over == {"corrupt": True, "content": "garbage{", "error": "not JSON"}
    assert "corrupt lock" in decision.log


def test_block_file_refuses_a_new_lock_with_its_reason():
    decision = decide(None, request(block_file="/etc/ROLLOUTS_BLOCKED"), block="freeze until Monday -- ops")
    assert decision.action == lock.FAIL
    assert "/etc/ROLLOUTS_BLOCKED exists" in decision.msg and "freeze until Monday -- ops" in decision.msg
    assert "on web1" in decision.msg and "force=true" in decision.msg


def test_block_and_live_holder_are_both_reported():
    decision = decide(holder(), request(block_file="/etc/B"), block="freeze")
    assert decision.action == lock.FAIL
    assert "freeze" in decision.msg and "alice@ctl" in decision.msg


def test_block_does_not_let_a_stale_lock_be_taken_over():
    assert decide(stale_holder(), request(block_file="/etc/B"), block="freeze").action == lock.FAIL


def test_force_overrides_the_block_with_a_warning():
    decision = decide(None, request(block_file="/etc/B", force=True), block="freeze")
    assert decision.action == lock.ACQUIRE
    assert "freeze" in decision.warnings[0]


def test_block_does_not_affect_a_lock_already_held():
    assert decide(holder(deploy_id="d2"), request(block_file="/etc/B"), block="freeze").action == lock.RENEW


# -- decisions: release ------------------------------------------------------------------------------
def test_release_without_lock_changes_nothing():
    decision = decide(None, request(state="absent"))
    assert decision.action == lock.NOOP and not decision.changed and decision.record is None


def test_release_of_own_lock():
    decision = decide(holder(deploy_id="d2"), request(state="absent"))
    assert decision.action == lock.RELEASE and decision.changed
    assert decision.record is None and decision.taken_over is None and decision.log is None


def test_release_of_someone_elses_lock_is_refused_naming_the_holder():
    decision = decide(holder(), request(state="absent"))
    assert decision.action == lock.FAIL
    assert decision.record == holder()
    for part in ("Not releasing lock", "alice@ctl", "deploy d1", "not to deploy d2", UNLOCK_PROD):
        assert part in decision.msg, part


def test_release_of_someone_elses_stale_lock_is_refused_too():
    assert decide(stale_holder(), request(state="absent")).action == lock.FAIL


def test_forced_release_removes_any_lock_and_records_whom():
    decision = decide(holder(), request(state="absent", deploy_id=None, force=True, owner="carol@ctl"))
    assert decision.action == lock.RELEASE
    assert decision.taken_over == holder()
    assert decision.log.startswith("forced release by carol@ctl of lock %s of alice@ctl" % PATH)


def test_corrupt_lock_release_needs_force():
    corrupt = lock.CorruptLock("x", "not JSON")
    refused = decide(corrupt, request(state="absent"))
    assert refused.action == lock.FAIL and "Cannot release lock" in refused.msg
    forced = decide(corrupt, request(state="absent", force=True))
    assert forced.action == lock.RELEASE and forced.taken_over["corrupt"] is True


# -- file operations ----------------------------------------------------------------------------------
def clock():
    return NOW


def lock_path(tmp_path):
    return Layout(str(tmp_path / "root")).lock


def test_apply_acquires_atomically_leaving_one_complete_file(tmp_path):
    path = lock_path(tmp_path)
    decision = lock.apply(request(), path, clock=clock, host="web1")
    assert decision.action == lock.ACQUIRE
    with open(path) as handle:
        assert json.load(handle) == decision.record
    assert os.listdir(os.path.dirname(path)) == ["lock"]  # no temporary file left behind
    later = NOW + datetime.timedelta(seconds=600)
    again = lock.apply(request(), path, clock=lambda: later, host="web1")
    assert again.action == lock.RENEW and again.record == dict(decision.record, expires="2026-11-21T11:25:00Z")
    with open(path) as handle:
        assert json.load(handle) == again.record  # the file says so: renewed, not just reported
    assert os.listdir(os.path.dirname(path)) == ["lock"]


@pytest.mark.parametrize("umask, dir_mode, file_mode", [
    (0o022, 0o750, 0o640), (0o002, 0o770, 0o660), (0o000, 0o770, 0o660), (0o077, 0o700, 0o600),
])
def test_modes_follow_the_umask_and_are_never_world_writable(tmp_path, umask, dir_mode, file_mode):
    path = lock_path(tmp_path)
    old = os.umask(umask)
    try:
        lock.apply(request(), path, clock=clock)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == dir_mode
    assert stat.S_IMODE(os.stat(path).st_mode) == file_mode


def test_create_lock_never_overwrites(tmp_path):
    path = str(tmp_path / "lock")
    assert lock.create_lock(path, holder())
    assert not lock.create_lock(path, holder(deploy_id="other"))
    assert lock.read_lock(path) == holder()
    assert os.listdir(str(tmp_path)) == ["lock"]


def test_apply_takeover_release_and_log(tmp_path):
    layout = Layout(str(tmp_path / "root"))
    lock.apply(request(deploy_id="d1", owner="alice@ctl"), layout.lock, layout.active_log, clock=clock)
    assert lock.apply(request(force=True), layout.lock, layout.active_log, clock=clock).action == lock.FAIL
    forced = lock.apply(request(force_lock=True), layout.lock, layout.active_log, clock=clock)
    assert forced.action == lock.TAKEOVER and forced.taken_over["owner"] == "alice@ctl"
    assert lock.read_lock(layout.lock)["deploy_id"] == "d2"
    with open(layout.active_log) as handle:
        line = handle.read()
    assert line.startswith(isoformat(datetime.datetime.now(UTC))[:10])
    assert "id=d2 user=bob@ctl env=prod tag=prod-20261121-101500 phase=lock forced takeover" in line
    assert lock.apply(request(state="absent"), layout.lock, layout.active_log, clock=clock).action == lock.RELEASE
    assert not os.path.exists(layout.lock)
    assert lock.apply(request(state="absent"), layout.lock, clock=clock).action == lock.NOOP


def test_apply_check_mode_touches_nothing(tmp_path):
    path = lock_path(tmp_path)
    decision = lock.apply(request(), path, check_mode=True, clock=clock)
    assert decision.action == lock.ACQUIRE
    assert not os.path.exists(str(tmp_path / "root"))


def test_apply_release_without_lock_dir_creates_nothing(tmp_path):
    path = lock_path(tmp_path)
    assert lock.apply(request(state="absent"), path, clock=clock).action == lock.NOOP
    assert not os.path.exists(str(tmp_path / "root"))


def test_apply_blocked_creates_nothing(tmp_path):
    block = tmp_path / "BLOCKED"
    block.write_text("freeze")
    decision = lock.apply(request(block_file=str(block)), lock_path(tmp_path), clock=clock)
    assert decision.action == lock.FAIL and "freeze" in decision.msg
    assert not os.path.exists(str(tmp_path / "root"))


def test_read_lock_reports_corrupt_files(tmp_path):
    path = tmp_path / "lock"
    assert lock.read_lock(str(path)) is None
    path.write_text("half a rec")
    corrupt = lock.read_lock(str(path))
    assert isinstance(corrupt, lock.CorruptLock) and corrupt.head == "half a rec" and "not JSON" in corrupt.error
    path.write_text("x" * 500)
    assert lock.read_lock(str(path)).head.endswith("...")
    path.unlink()
    path.mkdir()
    assert "is a directory" in lock.read_lock(str(path)).error


def test_read_block(tmp_path):
    block = tmp_path / "BLOCKED"
    assert lock.read_block(None) is None
    assert lock.read_block(str(block)) is None
    block.write_text("freeze\nuntil Monday\n")
    assert lock.read_block(str(block)) == "freeze until Monday"
    block.write_text("")
    assert lock.read_block(str(block)) == "(the block file is empty)"


def test_info_reports_every_state(tmp_path):
    path = str(tmp_path / "lock")
    free = lock.info(path, clock=clock, host="web1")
    assert (free["locked"], free["lock"], free["stale"], free["corrupt"], free["blocked"], free["mine"]) == (
        False, None, False, False, False, False)
    lock.create_lock(path, stale_holder())
    held = lock.info(path, deploy_id="d1", clock=clock, host="web1")
    assert held["locked"] and held["stale"] and held["mine"] and held["lock"] == stale_holder()
    other = lock.info(path, deploy_id="zz", clock=clock)
    assert not other["mine"] and "alice@ctl" in other["msg"] and "expired" in other["msg"]
    with open(path, "w") as handle:
        handle.write("{}")
    bad = lock.info(path, block_file=path, clock=clock)
    assert bad["locked"] and bad["corrupt"] and bad["lock"] is None and bad["content"] == "{}"
    assert bad["blocked"] and bad["block_reason"] == "{}"


def test_dir_mutex_times_out_with_a_readable_error(tmp_path):
    with lock.dir_mutex(str(tmp_path)) as held:
        assert held
        with pytest.raises(lock.LockError, match="did not finish within 0 seconds"):
            with lock.dir_mutex(str(tmp_path), timeout=0.05):
                pass


def _contender(args):
    path, deploy_id = args
    decision = lock.apply(request(deploy_id=deploy_id), path)
    return decision.action, decision.msg


def test_race_between_processes_has_exactly_one_winner(tmp_path):
    path = lock_path(tmp_path)
    ids = ["r%02d" % i for i in range(12)]
    with multiprocessing.get_context("fork").Pool(len(ids)) as pool:
        outcomes = pool.map(_contender, [(path, i) for i in ids])
    winners = [msg for action, msg in outcomes if action == lock.ACQUIRE]
    assert len(winners) == 1
    assert all(action == lock.FAIL and "is held by bob@ctl" in msg for action, msg in outcomes
               if action != lock.ACQUIRE)
    assert lock.read_lock(path)["deploy_id"] in winners[0]
    assert os.listdir(os.path.dirname(path)) == ["lock"]


# -- takeover and release are compare-and-swap; leftovers; odd lock paths ---------------------------
def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_leftovers_of_a_killed_rollout_are_cleaned_at_the_next_lock(tmp_path):
    path = lock_path(tmp_path)
    directory = os.path.dirname(path)
    os.makedirs(directory)
    dead = os.path.join(directory, ".lock.%d.0a1b2c.tmp" % dead_pid())
    aside = os.path.join(directory, ".lock.%d.0a1b2d.stale" % dead_pid())
    mine = os.path.join(directory, ".lock.%d.0a1b2e.tmp" % os.getpid())
    for name in (dead, aside, mine):
        open(name, "w").close()
    lock.apply(request(), path, clock=clock)
    assert not os.path.exists(dead) and not os.path.exists(aside)
    assert os.path.exists(mine)  # a live process's file is never touched


def test_a_symlink_at_the_lock_path_is_a_clear_error(tmp_path):
    path = lock_path(tmp_path)
    os.makedirs(os.path.dirname(path))
    os.symlink("/nowhere/lock", path)
    found = lock.read_lock(path)
    assert isinstance(found, lock.CorruptLock) and "is a symlink (to /nowhere/lock)" in found.error
    refused = lock.apply(request(), path, clock=clock)
    assert refused.action == lock.FAIL and "is a symlink" in refused.msg and "rm %s" % path in refused.msg
    forced = lock.apply(request(force=True), path, clock=clock)
    assert forced.action == lock.TAKEOVER and not os.path.islink(path)
    assert lock.read_lock(path)["deploy_id"] == "d2"


def test_set_aside_gives_back_a_lock_that_changed_since_it_was_read(tmp_path):
    path = lock_path(tmp_path)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as handle:
        json.dump(holder(deploy_id="d3", owner="carol@ctl"), handle)  # not the record decided on
    assert lock.set_aside(path, stale_holder()) is None
    assert lock.read_lock(path)["deploy_id"] == "d3"
    assert sorted(os.listdir(os.path.dirname(path))) == ["lock"]
    assert not lock.take_over(path, lock.build_record(request(), NOW, "web1"), stale_holder())
    assert not lock.release(path, stale_holder())
    assert lock.read_lock(path)["deploy_id"] == "d3"


def test_of_two_takeovers_of_one_stale_lock_one_wins(tmp_path):
    path = lock_path(tmp_path)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as handle:
        json.dump(stale_holder(), handle)
    first = lock.build_record(request(deploy_id="d2"), NOW, "web1")
    second = lock.build_record(request(deploy_id="d4"), NOW, "web2")
    assert lock.take_over(path, first, stale_holder())
    assert not lock.take_over(path, second, stale_holder())  # it decided on the stale record: gone now
    assert lock.read_lock(path)["deploy_id"] == "d2"


def test_no_takeover_where_the_directory_cannot_be_locked(tmp_path, monkeypatch):
    path = lock_path(tmp_path)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as handle:
        json.dump(stale_holder(), handle)

    @contextlib.contextmanager
    def no_flock(directory, timeout=lock.MUTEX_TIMEOUT):
        yield False  # what dir_mutex yields where flock is not supported (NFS, say)

    monkeypatch.setattr(lock, "dir_mutex", no_flock)
    refused = lock.apply(request(), path, clock=clock)
    assert refused.action == lock.FAIL and "cannot be locked with flock" in refused.msg
    assert lock.read_lock(path) == stale_holder()
    os.unlink(path)
    assert lock.apply(request(), path, clock=clock).action == lock.ACQUIRE  # a free lock: link is exclusive


def test_a_lock_just_expired_is_respected_for_a_clock_margin():
    """Hosts sharing a lock_dir may disagree on the time: a lock is taken over only
    CLOCK_MARGIN after its expiry (judged by this host's clock)."""
    just = holder(expires=(NOW - datetime.timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    refused = decide(just, request())
    assert refused.action == lock.FAIL
    assert "expired at" in refused.msg and "60 s later" in refused.msg and UNLOCK_PROD in refused.msg
    later = decide(just, request(), now=NOW + lock.CLOCK_MARGIN)
    assert later.action == lock.TAKEOVER
    # Its own lock, just expired, is renewed with a warning (nobody could have taken it yet).
    own = decide(just, request(deploy_id="d1"))
    assert own.action == lock.RENEW and own.warnings
