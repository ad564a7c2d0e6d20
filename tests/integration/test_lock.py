"""git_deploy_lock / git_deploy_lock_info on real SSH hosts (the ``deployment`` fixture).

Each test runs its steps as one small playbook (``play``): every step registers its
result and ignores errors, and a last task prints them all, so the test asserts on
real module results without paying for one ``ansible`` process per step. The race
test starts real concurrent ``ansible`` processes instead.

The test hosts are sshd instances on this machine, so a test may plant or inspect the
target's files directly (a stale or corrupt lock, a block file, modes).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import stat
import subprocess

from conftest import BIN, ansible_env

HOST = "prod1"
LOCK = "gitdeploy.rollout.git_deploy_lock"
INFO = "gitdeploy.rollout.git_deploy_lock_info"
UNLOCK_PROD = "ansible-playbook gitdeploy.rollout.unlock -e env=prod -e force=true"
ALICE = dict(deploy_id="d1", owner="alice@ctl", env="prod", action="deploy",
             tag="prod-20261121-101500", reason="ticket OPS-1234")
BOB = dict(deploy_id="d2", owner="bob@ctl", env="prod", action="deploy", tag="prod-20261121-111500")
_playbooks = itertools.count()


def lock(**args):
    return {LOCK: args}


def info(**args):
    return {INFO: args}


class Steps(list):
    """The registered results of a playbook's steps, in order; ``output`` is its stdout and stderr on one line."""

    output = ""


def play(deployment, tmp_path, tasks, host=HOST):
    """Run ``tasks`` on ``host`` as one playbook; return their results (:class:`Steps`)."""
    names = ["step_%d" % i for i in range(len(tasks))]
    tasks = [dict(task, name=name, register=name, ignore_errors=True) for name, task in zip(names, tasks)]
    tasks.append({"name": "collect", "vars": {"collected": "{{ [%s] }}" % ", ".join(names)},
                  "ansible.builtin.debug": {"var": "collected"}})
    playbook = tmp_path / ("play-%d.yml" % next(_playbooks))
    playbook.write_text(json.dumps([{"hosts": host, "gather_facts": False, "tasks": tasks}], indent=1))
    proc = deployment.playbook(playbook, check=False)
    at = proc.stdout.find("=> ", proc.stdout.find("TASK [collect]"))
    assert at > 0, "%s\n%s" % (proc.stdout, proc.stderr)
    collected, _end = json.JSONDecoder().raw_decode(proc.stdout, at + 3)
    steps = Steps(collected["collected"])
    steps.output = " ".join((proc.stdout + proc.stderr).split())
    return steps


def root(deployment):
    return str(deployment.root(HOST))


def lock_file(deployment):
    return deployment.root(HOST) / ".git-deploy" / "lock"


def plant(path, **record):
    """Write a lock file the way an earlier rollout would have left it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(ALICE, created="2026-01-01T09:00:00Z", expires="2026-01-01T10:00:00Z",
                                    host=socket.gethostname(), **record)))


def test_acquire_reacquire_release(deployment, tmp_path):
    r = root(deployment)
    acquired, again, mine, released, nothing, free = play(deployment, tmp_path, [
        lock(root=r, **ALICE), lock(root=r, **ALICE), info(root=r, deploy_id="d1"),
        lock(root=r, deploy_id="d1", state="absent"), lock(root=r, deploy_id="d1", state="absent"), info(root=r),
    ])
    assert acquired["changed"] and not acquired.get("failed")
    assert acquired["path"] == str(lock_file(deployment))
    assert {k: acquired["lock"][k] for k in ALICE} == ALICE
    assert acquired["lock"]["root"] == r and acquired["taken_over"] is None
    # Asking again renews the lock: same record, expiry a TTL from the second request.
    assert not again["changed"] and again["lock"] == dict(acquired["lock"], expires=again["lock"]["expires"])
    assert again["lock"]["expires"] >= acquired["lock"]["expires"] and "renewed until" in again["msg"]
    assert mine["locked"] and mine["mine"] and not mine["stale"] and mine["lock"] == again["lock"]
    assert released["changed"] and released["lock"] is None
    assert not nothing["changed"] and not nothing.get("failed")
    assert not free["locked"] and free["lock"] is None
    assert not lock_file(deployment).exists()


def test_lock_of_another_rollout_is_refused_and_never_released_by_it(deployment, tmp_path):
    r = root(deployment)
    taken, refused, not_released = play(deployment, tmp_path, [
        lock(root=r, **ALICE), lock(root=r, **BOB), lock(root=r, deploy_id="d2", state="absent"),
    ])
    assert taken["changed"]
    held = taken["lock"]
    assert refused["failed"] and not refused["changed"] and refused["lock"] == held
    for part in ("is held by alice@ctl", "deploy d1", "since %s" % held["created"], "deploy of tag prod-20261121-101500",
                 "to env prod", "reason: ticket OPS-1234", "expires at %s" % held["expires"],
                 "%s on %s" % (lock_file(deployment), socket.gethostname()), UNLOCK_PROD):
        assert part in refused["msg"], part
    assert not_released["failed"] and "Not releasing lock" in not_released["msg"]
    assert "alice@ctl" in not_released["msg"] and "not to deploy d2" in not_released["msg"]
    assert json.loads(lock_file(deployment).read_text()) == held
    # Not world-writable: 0750/0640 with the usual umask.
    assert stat.S_IMODE(lock_file(deployment).stat().st_mode) & 0o002 == 0
    assert stat.S_IMODE(lock_file(deployment).parent.stat().st_mode) & 0o002 == 0
    assert stat.S_IMODE(lock_file(deployment).stat().st_mode) == 0o640


def test_force_lock_takes_over_and_force_releases_and_the_log_says_who_forced_whom(deployment, tmp_path):
    r = root(deployment)
    steps = play(deployment, tmp_path, [
        lock(root=r, **ALICE), lock(root=r, force=True, **BOB), lock(root=r, force_lock=True, **BOB),
        lock(root=r, state="absent", force=True, owner="carol@ctl"),
    ])
    refused, forced, released = steps[1:]
    # force alone never takes over a lock its holder keeps renewing: that needs force_lock.
    assert refused["failed"] and refused["lock"]["deploy_id"] == "d1" and "force_lock=true" in refused["msg"]
    assert forced["changed"] and forced["taken_over"]["deploy_id"] == "d1"
    assert forced["lock"]["deploy_id"] == "d2" and forced["lock"]["owner"] == "bob@ctl"
    assert released["changed"] and released["taken_over"]["deploy_id"] == "d2" and released["lock"] is None
    assert "[WARNING]: Forced takeover of lock" in steps.output
    log = (deployment.root(HOST) / "logs" / "git-deploy-active.log").read_text().splitlines()
    assert len(log) == 2
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ id=d2 user=bob@ctl env=prod tag=prod-20261121-111500 "
                    r"phase=lock forced takeover of lock \S+ from alice@ctl \(deploy d1", log[0]), log[0]
    assert "user=carol@ctl phase=lock forced release by carol@ctl of lock" in log[1]
    assert "bob@ctl (deploy d2" in log[1]
    assert not lock_file(deployment).exists()


def test_expired_lock_is_taken_over_with_a_warning(deployment, tmp_path):
    plant(lock_file(deployment))
    r = root(deployment)
    steps = play(deployment, tmp_path, [info(root=r), lock(root=r, **BOB)])
    before, taken = steps
    assert before["locked"] and before["stale"] and not before["mine"]
    assert taken["changed"] and taken["taken_over"]["deploy_id"] == "d1"
    assert taken["lock"]["deploy_id"] == "d2"
    assert "[WARNING]: Took over stale lock" in steps.output
    assert "from alice@ctl (deploy d1" in steps.output and "expired at 2026-01-01T10:00:00Z" in steps.output
    assert json.loads(lock_file(deployment).read_text())["deploy_id"] == "d2"
    assert "took over stale lock" in (deployment.root(HOST) / "logs" / "git-deploy-active.log").read_text()


def test_block_file_blocks_new_rollouts_unless_forced(deployment, tmp_path):
    block = tmp_path / "ROLLOUTS_BLOCKED"
    block.write_text("Black Friday freeze until Monday -- ops\n")
    r = root(deployment)
    steps = play(deployment, tmp_path, [
        lock(root=r, block_file=str(block), **ALICE), info(root=r, block_file=str(block)),
        lock(root=r, block_file=str(block), force=True, **ALICE),
    ])
    blocked, state, forced = steps
    assert blocked["failed"] and not blocked["changed"]
    assert "Black Friday freeze until Monday -- ops" in blocked["msg"] and str(block) in blocked["msg"]
    assert state["blocked"] and state["block_reason"] == "Black Friday freeze until Monday -- ops"
    assert not state["locked"]
    assert forced["changed"] and forced["lock"]["deploy_id"] == "d1"
    assert "[WARNING]: Overriding the block with force" in steps.output


def test_lock_dir_interlocks_two_roots_on_one_host(deployment, tmp_path):
    app, static = root(deployment), str(deployment.root(HOST).parent / "static")
    shared = str(tmp_path / "shared-locks")
    first, second, seen, released, now_free = play(deployment, tmp_path, [
        lock(root=app, lock_dir=shared, **ALICE), lock(root=static, lock_dir=shared, **BOB),
        info(root=static, lock_dir=shared, deploy_id="d2"),
        lock(root=app, lock_dir=shared, deploy_id="d1", state="absent"), lock(root=static, lock_dir=shared, **BOB),
    ])
    assert first["changed"] and first["path"] == shared + "/lock"
    assert second["failed"] and "alice@ctl" in second["msg"] and "root %s" % app in second["msg"]
    assert seen["locked"] and not seen["mine"] and seen["lock"]["root"] == app
    assert released["changed"]
    assert now_free["changed"] and now_free["lock"]["root"] == static
    assert json.loads((tmp_path / "shared-locks" / "lock").read_text())["deploy_id"] == "d2"
    assert not lock_file(deployment).exists()


def test_check_mode_reports_and_touches_nothing(deployment, tmp_path):
    r, untouched, shared = root(deployment), deployment.root(HOST).parent / "untouched", tmp_path / "never-created"
    would, would_too, _taken, would_fail, would_release, seen = play(deployment, tmp_path, [
        dict(lock(root=str(untouched), **ALICE), check_mode=True),
        dict(lock(root=r, lock_dir=str(shared), **ALICE), check_mode=True),
        lock(root=r, **ALICE),
        dict(lock(root=r, **BOB), check_mode=True),
        dict(lock(root=r, deploy_id="d1", state="absent"), check_mode=True),
        dict(info(root=r), check_mode=True),
    ])
    assert would["changed"] and would["would_acquire"] and not would["would_fail"]
    assert would["lock"]["deploy_id"] == "d1" and would_too["would_acquire"]
    assert not untouched.exists() and not shared.exists()
    assert would_fail["failed"] and would_fail["would_fail"] and "is held by alice@ctl" in would_fail["msg"]
    assert would_release["changed"] and would_release["would_release"] and would_release["lock"] is None
    assert seen["locked"] and seen["lock"]["deploy_id"] == "d1"
    assert json.loads(lock_file(deployment).read_text())["deploy_id"] == "d1"


def test_corrupt_lock_file_is_reported_and_replaced_only_with_force(deployment, tmp_path):
    lock_file(deployment).parent.mkdir(parents=True)
    lock_file(deployment).write_text('{"deploy_id": "d1", "own')
    r = root(deployment)
    refused, seen, forced = play(deployment, tmp_path, [
        lock(root=r, **BOB), info(root=r), lock(root=r, force=True, **BOB),
    ])
    assert refused["failed"] and "corrupt" in refused["msg"] and str(lock_file(deployment)) in refused["msg"]
    assert '{"deploy_id": "d1", "own' in refused["msg"] and UNLOCK_PROD in refused["msg"]
    assert seen["corrupt"] and seen["locked"] and seen["lock"] is None
    assert forced["changed"] and forced["taken_over"]["corrupt"] is True
    assert json.loads(lock_file(deployment).read_text())["deploy_id"] == "d2"


def test_race_of_eight_rollouts_has_exactly_one_winner(deployment):
    r = root(deployment)
    env = ansible_env()
    procs = [
        subprocess.Popen(
            [str(BIN / "ansible"), "-i", str(deployment.inventory), HOST, "-m", LOCK,
             "-a", json.dumps(dict(BOB, root=r, deploy_id="race%d" % i, owner="racer%d@ctl" % i))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
        for i in range(8)
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        marker = re.search(r"^%s \| (\w+)!? => " % HOST, stdout, re.M)
        assert marker, stdout + stderr
        result, _end = json.JSONDecoder().raw_decode(stdout, marker.end())
        results.append((marker.group(1), result))
    winners = [result for status, result in results if status == "CHANGED"]
    assert len(winners) == 1, results
    winner = winners[0]["lock"]
    for status, loser in results:
        if status == "CHANGED":
            continue
        assert status == "FAILED"
        assert "is held by %s (deploy %s" % (winner["owner"], winner["deploy_id"]) in loser["msg"]
        assert UNLOCK_PROD in loser["msg"]
    assert json.loads(lock_file(deployment).read_text()) == winner
    assert os.listdir(str(lock_file(deployment).parent)) == ["lock"]
