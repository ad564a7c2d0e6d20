"""Reliability: races, crashes, host failures and bad input lose nothing.

Every scenario runs the real ``ansible-playbook`` of the collection's playbooks against
the sshd test hosts, from a real application checkout (``make_app``: the sample
application plus a *control hook* in every phase that the test steers through files,
see ``reliability_helpers``). Scenarios and guarantees: docs/reliability.md.

No test sleeps to synchronise: a test makes a hook block at a known point, waits (with
a deadline) for the hook to say it got there, acts (kill -9 the controller, kill a
host's sshd, start a competing rollout), then lets it go.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import alive, snapshot  # noqa: E402
from hosts import Fleet, ensure_sshd  # noqa: E402
from reliability_helpers import (  # noqa: E402
    Control,
    Rollouts,
    complete_release,
    diff_snapshots,
    expire_lock,
    history,
    live,
    lock_path,
    lock_record,
    make_app,
    rollout_tags,
    wait_for,
    world_writable,
    write_inventory,
)

PROD = ("prod1", "prod2", "prod3")
UNLOCK = "gitdeploy.rollout.unlock"


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path / "src")


@pytest.fixture
def ctl(deployment):
    control = Control(deployment.workdir / "roots")
    yield control
    control.go()  # never leave a hook blocked on a target


@pytest.fixture
def rollouts(deployment, app, tmp_path):
    runner = Rollouts(deployment.inventory, app, tmp_path / "runs")
    yield runner
    runner.cleanup()


def roots(deployment, hosts=PROD) -> list:
    return [deployment.root(h) for h in hosts]


def connection_uid(deployment) -> int:
    user = json.loads(deployment.inventory.read_text())["all"]["children"]["prod"]["hosts"]["prod1"]["ansible_user"]
    return pwd.getpwnam(user).pw_uid


def assert_refused_by(run, holder: dict) -> None:
    """``run`` failed and says who holds the lock and how to clear it."""
    out = run.output
    assert run.rc != 0, str(run)
    assert holder["deploy_id"] in out, (holder, str(run))
    assert holder["owner"] in out, (holder, str(run))
    assert UNLOCK in out, str(run)
    assert "Traceback" not in out, str(run)


def assert_consistent(deployment, tag, hosts=PROD) -> None:
    for host in hosts:
        root = deployment.root(host)
        assert complete_release(root) == tag, host
        assert not lock_path(root).exists(), (host, lock_record(root))


# -- races -------------------------------------------------------------------------------

def test_ten_concurrent_deploys_exactly_one_proceeds(deployment, app, rollouts, ctl):
    """10 real ansible-playbook deploy.yml -e env=prod at once, same checkout: one rolls
    out, nine fail naming the holder and change nothing; no tag of theirs, no lock left."""
    ctl.hold("pre-sync")
    runs = [rollouts.start("deploy", name=f"deploy-{i}", env="prod") for i in range(10)]
    # The winner blocks in pre-sync with every lock held; the others must give up meanwhile.
    ctl.wait_reached("pre-sync", PROD, runs)
    wait_for(lambda: sum(r.poll() is not None for r in runs) >= 9,
             "nine of the ten rollouts to give up while one holds the locks", runs)
    [winner] = [r for r in runs if r.poll() is None]
    losers = [r for r in runs if r is not winner]

    holders = [lock_record(root) for root in roots(deployment)]
    assert len({h["deploy_id"] for h in holders}) == 1, holders
    holder = holders[0]
    [tag] = {ctl.reached("pre-sync", h).split()[1] for h in PROD}
    for loser in losers:
        assert_refused_by(loser, holder)
    # A rollout that never happened leaves no tag (git-deploy tags at sync time).
    assert rollout_tags(app) == [tag]
    # Locks, logs and state are not world-writable; hooks run as the connection user.
    for root in roots(deployment):
        assert world_writable([root / ".git-deploy", root / "logs"]) == []
    for host in PROD:
        assert ctl.uid("pre-sync", host) == connection_uid(deployment)

    ctl.go()
    assert winner.wait() == 0, str(winner)
    assert_consistent(deployment, tag)
    for root in roots(deployment):
        assert [(r["id"], r["result"]) for r in history(root)] == [(holder["deploy_id"], "success")]
        hooks = (root / "hooks.log").read_text().split("\n")
        assert {line.split()[4] for line in hooks if line} == {tag}, hooks
        assert world_writable([root / ".git-deploy", root / "logs", root / "releases"]) == []
    assert rollout_tags(app) == [tag]
    assert app.upstream_tags() == [tag]


def test_deploy_and_revert_exclude_each_other(deployment, app, rollouts, ctl):
    """A revert while a deploy holds the locks is refused and changes nothing, and the
    other way round; each winner then finishes normally."""
    rollouts.run("deploy", env="prod")
    app.change("app.txt", "version 2\n", "version 2")
    rollouts.run("deploy", env="prod")
    tag1, tag2 = rollout_tags(app)
    app.change("app.txt", "version 3\n", "version 3")

    # 1. The deploy holds the locks (blocked in pre-sync): the revert is refused.
    ctl.hold("pre-sync")
    deploy = rollouts.start("deploy", env="prod")
    ctl.wait_reached("pre-sync", PROD, [deploy])
    holder = lock_record(deployment.root("prod1"))
    tags, before = app.upstream_tags(), snapshot(roots(deployment))
    revert = rollouts.run("revert", check=False, env="prod")
    assert_refused_by(revert, holder)
    assert diff_snapshots(before, snapshot(roots(deployment))) == []
    assert app.upstream_tags() == tags
    ctl.reset()
    assert deploy.wait() == 0, str(deploy)
    [tag3] = [t for t in rollout_tags(app) if t not in (tag1, tag2)]
    assert_consistent(deployment, tag3)

    # 2. The revert holds the locks (blocked in post-tree-update): the deploy is refused.
    ctl.hold("post-tree-update")
    revert = rollouts.start("revert", env="prod")
    ctl.wait_reached("post-tree-update", PROD, [revert])
    holder = lock_record(deployment.root("prod1"))
    app.change("app.txt", "version 4\n", "version 4")
    tags, before = app.upstream_tags(), snapshot(roots(deployment))
    deploy = rollouts.run("deploy", check=False, env="prod")
    assert_refused_by(deploy, holder)
    assert diff_snapshots(before, snapshot(roots(deployment))) == []
    assert app.upstream_tags() == tags, "the refused deploy left a tag"
    ctl.reset()
    assert revert.wait() == 0, str(revert)
    assert_consistent(deployment, tag2)
    for root in roots(deployment):
        assert [r["action"] for r in history(root)] == ["deploy", "deploy", "deploy", "revert"]


def test_environments_sharing_hosts_interlock_through_lock_dir(ssh_fleet, tmp_path):
    """blue and green are two applications; machine prod1 serves both (two deploy roots,
    one git_deploy_lock_dir). While blue rolls out, green is refused (its other host is
    left unlocked and untouched); once blue is done, green rolls out."""
    base = tmp_path / "roots"
    lock_dirs = {alias: base / f"{real}-lock" for alias, real in
                 [("a-blue", "prod1"), ("a-green", "prod1"), ("b-blue", "prod2"), ("c-green", "prod3")]}
    inventory = write_inventory(
        ssh_fleet, base,
        {"blue": {"a-blue": "prod1", "b-blue": "prod2"}, "green": {"a-green": "prod1", "c-green": "prod3"}},
        host_vars={alias: {"git_deploy_lock_dir": str(path)} for alias, path in lock_dirs.items()})
    app = make_app(tmp_path / "src", envs=("blue", "green"))
    rollouts = Rollouts(inventory, app, tmp_path / "runs")
    ctl = Control(base)
    root = {alias: base / alias / "root" for alias in lock_dirs}
    try:
        ctl.hold("pre-sync")
        blue = rollouts.start("deploy", env="blue")
        ctl.wait_reached("pre-sync", ["a-blue", "b-blue"], [blue])
        holder = lock_record(root["a-blue"], lock_dirs["a-blue"])
        assert holder and holder["env"] == "blue"
        # One lock per machine, in the lock_dir: not in the roots.
        assert not lock_path(root["a-blue"]).exists()
        green_before = snapshot([root["a-green"], root["c-green"]])
        green = rollouts.run("deploy", check=False, env="green")
        assert_refused_by(green, holder)
        assert "a-green" in green.output
        assert not lock_path(root["c-green"], lock_dirs["c-green"]).exists()
        assert diff_snapshots(green_before, snapshot([root["a-green"], root["c-green"]])) == []
        assert rollout_tags(app, "green") == []
        ctl.reset()
        assert blue.wait() == 0, str(blue)
        [blue_tag] = rollout_tags(app, "blue")

        rollouts.run("deploy", env="green")
        [green_tag] = rollout_tags(app, "green")
        for alias, tag in [("a-blue", blue_tag), ("b-blue", blue_tag), ("a-green", green_tag), ("c-green", green_tag)]:
            assert complete_release(root[alias]) == tag
            assert not lock_path(root[alias], lock_dirs[alias]).exists()
    finally:
        ctl.go()
        rollouts.cleanup()


# -- crashes: kill -9 of the controller ------------------------------------------------------

BIG = 24 * 1024 * 1024  # incompressible bytes: the transfer takes a while


def remote_bundles(deployment, hosts=PROD) -> list:
    """Bundles being (or having been) copied into the hosts' remote tmp dirs: (path, size)."""
    found = []
    for host in hosts:
        for path in (deployment.workdir / "roots" / host / "tmp").glob("**/*.bundle"):
            try:
                found.append((path, path.stat().st_size))
            except FileNotFoundError:
                pass
    return found


def hook_lines(deployment, host) -> list:
    """``<host> <phase> <prefix> <action> <tag> <hook>`` lines the record hooks wrote (complete runs only)."""
    path = deployment.root(host) / "hooks.log"
    return path.read_text().splitlines() if path.exists() else []


def status_line(output: str, host: str) -> str:
    lines = [line for line in output.splitlines() if line.strip().strip('"').startswith(host + " ")]
    assert lines, f"no status line for {host}:\n{output[-4000:]}"
    return lines[0]


def assert_crashed_safely(deployment, rollouts, expected_live: dict) -> dict:
    """After a kill -9 of the controller: every host's ``current`` is a complete release
    (the expected one), every host keeps the dead rollout's lock, and status shows it."""
    for host, tag in expected_live.items():
        assert complete_release(deployment.root(host)) == tag, host
    locks = [lock_record(deployment.root(h)) for h in PROD]
    assert all(locks), locks
    assert len({lock["deploy_id"] for lock in locks}) == 1, locks
    dead = locks[0]
    status = rollouts.run("status", env="prod")
    assert "Traceback" not in status.output
    for host in PROD:
        line = status_line(status.output, host)
        assert f"locked by {dead['owner']}" in line, line
        assert dead["deploy_id"] in line, f"status does not name the dead rollout {dead['deploy_id']}: {line}"
    return dead


def test_controller_killed_before_any_switch(deployment, app, rollouts, ctl):
    """kill -9 during the transfer of a large bundle, then after every host prepared:
    nothing live changed; the dead rollout's locks show in status; an expired lock is
    taken over, unlock -e force=true clears them; a fresh deploy and a revert work."""
    rollouts.run("deploy", env="prod")
    [tag1] = rollout_tags(app)
    (app.path / "big.bin").write_bytes(os.urandom(BIG))
    app.commit("version 2, with a big file", push=True)

    # 1. During the transfer: the trigger is the bundle file appearing in a host's remote
    #    tmp dir (Ansible's put is writing it); the kill follows within milliseconds.
    run = rollouts.start("deploy", env="prod", name="killed-in-transfer")
    seen = wait_for(lambda: remote_bundles(deployment), "a bundle to be copied to a host", [run], interval=0.002)
    run.kill()
    after = remote_bundles(deployment)
    [full] = [p.stat().st_size for p in (rollouts.logs / "cache" / "gitdeploy" / "bundles").glob("*.bundle")
              if p.stat().st_size > BIG // 2]
    rollouts.observe(f"transfer kill: bundle {full} bytes; on the hosts at the trigger "
                     f"{[(p.parts[-4], s) for p, s in seen]}, after the kill {[(p.parts[-4], s) for p, s in after]}")
    dead = assert_crashed_safely(deployment, rollouts, {h: tag1 for h in PROD})
    [cut] = [t for t in rollout_tags(app) if t != tag1]
    for host in PROD:
        releases = deployment.root(host) / "releases"
        assert sorted(p.name for p in releases.iterdir() if not p.name.startswith(".")) == [tag1], host
    # A host whose transfer the kill cut short never fetched the partial bundle. (A host
    # whose copy was complete may have fetched it - the module on the target runs to its
    # end - objects only, nothing live.)
    for path, size in after:
        if size < full:
            host = path.parts[-4]
            assert not (deployment.root(host) / "repo.git" / "refs" / "tags" / cut).exists(), host

    # Recovery 1: the dead rollout's TTL ran out: the next rollout takes the locks over.
    for host in PROD:
        expire_lock(deployment.root(host))

    # 2. After prepare: every host prepared the release and blocks in pre-sync.
    ctl.hold("pre-sync")
    run = rollouts.start("deploy", env="prod", name="killed-after-prepare")
    ctl.wait_reached("pre-sync", PROD, [run])
    [tag2] = {ctl.reached("pre-sync", h).split()[1] for h in PROD}
    run.kill()
    assert "stale" in run.output.lower() and dead["deploy_id"] in run.output, run.summary()
    for host in PROD:
        assert (deployment.root(host) / "releases" / tag2 / ".deploy").is_file()
    assert_crashed_safely(deployment, rollouts, {h: tag1 for h in PROD})
    ctl.reset()

    # Recovery 2: unlock -e force=true, then a fresh deploy, then a revert.
    rollouts.run("unlock", env="prod", force=True)
    for host in PROD:
        assert not lock_path(deployment.root(host)).exists()
    rollouts.run("deploy", env="prod")
    assert_consistent(deployment, tag2)
    assert (deployment.root("prod1") / "current" / "big.bin").stat().st_size == BIG
    rollouts.run("revert", env="prod")
    assert_consistent(deployment, tag1)
    assert rollout_tags(app) == [tag1, tag2]


def test_controller_killed_after_switching(deployment, app, rollouts, ctl):
    """kill -9 mid-switch (canary switched, the rest not), during post-sync, and once the
    hosts record the rollout (log archive): every host stays on a complete release, the
    locks show in status, unlock/TTL + a fresh deploy bring one tag back, revert works."""
    rollouts.run("deploy", env="prod")
    [tag1] = rollout_tags(app)
    app.change("app.txt", "version 2\n", "version 2")

    # 3. Mid-switch: batches [1, 100%]; the canary prod1 switched and blocks in post-tree-update.
    ctl.hold("post-tree-update", "prod1")
    run = rollouts.start("deploy", env="prod", name="killed-mid-switch", git_deploy_serial=[1, "100%"])
    ctl.wait_reached("post-tree-update", ["prod1"], [run])
    tag2 = ctl.reached("post-tree-update", "prod1").split()[1]
    run.kill()
    dead = assert_crashed_safely(deployment, rollouts, {"prod1": tag2, "prod2": tag1, "prod3": tag1})
    ctl.reset()
    rollouts.run("unlock", env="prod", force=True)
    for host in PROD:
        assert not lock_path(deployment.root(host)).exists()
        assert (history(deployment.root(host))[-1]["id"], history(deployment.root(host))[-1]["result"]) == (
            dead["deploy_id"], "aborted")

    # 4. During post-sync: a fresh deploy brings every host to tag2; the controller dies in
    #    post-sync (prod2 and prod3 block there).
    problems = []
    ctl.hold("post-sync", "prod2")
    ctl.hold("post-sync", "prod3")
    run = rollouts.start("deploy", env="prod", name="killed-in-post-sync")
    ctl.wait_reached("post-sync", ["prod2", "prod3"], [run])
    run.kill()
    assert_crashed_safely(deployment, rollouts, {h: tag2 for h in PROD})
    # The dead canary rollout switched prod1 but never finished its post-tree-update hooks;
    # the rollout that completes tag2 on the fleet must run them there (and post-sync).
    done = [line.split()[1] for line in hook_lines(deployment, "prod1") if f" {tag2} " in f"{line} "]
    for phase in ("post-tree-update", "post-sync"):
        if phase not in done:
            problems.append(f"prod1 serves {tag2}, switched by the killed rollout, but no {phase} hook of "
                            f"{tag2} ever completed there (resumed rollout skipped it): {done}")
    ctl.reset()
    # Recovery through the TTL this time, and a deploy of the same commit: every host is
    # live on tag2 already, but that rollout never finished (no post-sync on prod1, no
    # record anywhere): it must be finished, not reported as "nothing to do".
    for host in PROD:
        expire_lock(deployment.root(host))
    resumed = rollouts.run("deploy", env="prod", name="resume-after-post-sync")
    if "nothing to do" in resumed.output:
        problems.append(f"after the post-sync crash, a deploy of {tag2} says 'nothing to do': the dead "
                        f"rollout's post-sync hooks never complete and no host records {tag2} (and the "
                        "dead rollout's locks are left in place)")
    else:
        assert "stale" in resumed.output.lower(), resumed.summary()
        for host in PROD:
            assert (history(deployment.root(host))[-1]["tag"], history(deployment.root(host))[-1]["result"]) == (
                tag2, "success"), host
        assert_consistent(deployment, tag2)

    # 5. During the log archive: post-sync hooks flood the active log (8 MB a host); the
    #    controller dies once every host has appended the rollout to its history, which the
    #    same run follows with the archive of the active log and the unlock. A host's finish
    #    is one run on the host: it completes without the controller (record, archive,
    #    unlock), and nothing of the log is lost.
    app.change("app.txt", "version 3\n", "version 3")
    for host in PROD:
        ctl.flood("post-sync", host, 8 * 1024 * 1024)
    records = {h: len(history(deployment.root(h))) for h in PROD}
    run = rollouts.start("deploy", env="prod", name="killed-in-archive")
    wait_for(lambda: all(len(history(deployment.root(h))) > records[h] for h in PROD),
             "every host to record the rollout", [run], interval=0.002)
    archiving = [h for h in PROD if (deployment.root(h) / "logs" / "git-deploy-active.log").exists()]
    run.kill()
    rollouts.observe(f"archive kill: hosts still archiving at the kill: {archiving}")
    wait_for(lambda: not any(lock_path(deployment.root(h)).exists() for h in PROD),
             "every host to finish its finish run and unlock")
    [tag3] = [t for t in rollout_tags(app) if t not in (tag1, tag2)]
    dead = history(deployment.root("prod1"))[-1]["id"]
    for host in PROD:
        assert complete_release(deployment.root(host)) == tag3, host
        record = history(deployment.root(host))[-1]
        assert (record["id"], record["tag"], record["result"]) == (dead, tag3, "success"), record
        logs = deployment.root(host) / "logs"
        assert not (logs / "git-deploy-active.log").exists(), host
        # Nothing of the rollout's log is lost: it is all in the archive.
        assert f"switched current to {tag3}" in (logs / "git-deploy.log").read_text(errors="replace"), host
    ctl.reset()
    rollouts.run("unlock", env="prod", force=True)
    rollouts.run("deploy", env="prod")
    assert_consistent(deployment, tag3)
    rollouts.run("revert", env="prod")
    [reverted_to] = {live(deployment.root(h)) for h in PROD}
    assert reverted_to in (tag1, tag2)
    assert_consistent(deployment, reverted_to)
    assert not problems, "\n".join(problems)


# -- host failures ------------------------------------------------------------------------

def test_unreachable_host_mid_rollout(tmp_path):
    """prod3's sshd dies while prod1 is still in pre-sync: the switch cannot reach prod3,
    prod1 and prod2 switch and are rolled back, the summary names prod3 and the phase.
    prod3 keeps its lock until it returns; then unlock -e force=true and a deploy."""
    fleet = Fleet(base=tmp_path / "fleet", groups={"prod": 3}).up()
    try:
        base = tmp_path / "roots"
        # No ssh connection sharing: a dead sshd means an unreachable host at the next task.
        inventory = write_inventory(fleet, base, {"prod": {h: h for h in PROD}},
                                    host_vars={h: {"ansible_ssh_args": "-o ControlMaster=no"} for h in PROD})
        app = make_app(tmp_path / "src")
        rollouts = Rollouts(inventory, app, tmp_path / "runs")
        ctl = Control(base)
        root = {h: base / h / "root" for h in PROD}
        try:
            rollouts.run("deploy", env="prod")
            [tag1] = rollout_tags(app)
            app.change("app.txt", "version 2\n", "version 2")
            ctl.hold("pre-sync", "prod1")
            run = rollouts.start("deploy", env="prod")
            ctl.wait_reached("pre-sync", ["prod1"], [run])
            victim = fleet.host("prod3")
            os.killpg(victim.pid, 9)
            os.waitpid(victim.pid, 0)
            ctl.go()
            assert run.wait() != 0, str(run)
            [tag2] = [t for t in rollout_tags(app) if t != tag1]
            assert "UNREACHABLE" in run.output
            summary = run.summary()
            assert "failed on prod3" in summary and "first failure on prod3 in phase switch" in summary, summary
            for host in PROD:
                assert complete_release(root[host]) == tag1, host
            for host in ("prod1", "prod2"):
                record = history(root[host])[-1]
                assert (record["tag"], record["result"], record["failed_host"], record["failed_phase"]) == (
                    tag2, "rolled_back", "prod3", "switch"), record
                assert not lock_path(root[host]).exists()
            # The unreachable host could not be unlocked: its lock names the failed rollout.
            assert lock_record(root["prod3"])["deploy_id"] == history(root["prod1"])[-1]["id"]
            ctl.reset()

            # prod3 comes back (on a new port): unlock -e force=true, deploy again.
            fleet._start(ensure_sshd(), victim, fleet.base / "authorized_keys")
            write_inventory(fleet, base, {"prod": {h: h for h in PROD}}, path=inventory,
                            host_vars={h: {"ansible_ssh_args": "-o ControlMaster=no"} for h in PROD})
            rollouts.run("unlock", env="prod", force=True)
            rollouts.run("deploy", env="prod")
            for host in PROD:
                assert complete_release(root[host]) == tag2
                assert not lock_path(root[host]).exists()
        finally:
            ctl.go()
            rollouts.cleanup()
    finally:
        fleet.down()


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def test_read_only_root_full_disk_and_bad_hooks_roll_back_cleanly(deployment, app, rollouts, ctl):
    """One host with a read-only root (a read-only bind mount: root ignores modes), one
    with a full disk (a small tmpfs, filled), then a hook that hangs (timeout) while
    another floods its output: each rollout fails naming host and phase, the fleet stays
    on the release it had, no lock is left; then the rollout succeeds."""
    ro_root, full_root = deployment.root("prod1"), deployment.root("prod2")
    full_root.mkdir(parents=True)
    _mount("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(full_root))
    try:
        rollouts.run("deploy", env="prod")
        [tag1] = rollout_tags(app)
        (app.path / "data.bin").write_bytes(os.urandom(2 * 1024 * 1024))
        app.change("app.txt", "version 2\n", "version 2")
        watched = roots(deployment)

        # Read-only root on prod1: refused at the lock, nothing changed anywhere.
        _mount("--bind", str(ro_root), str(ro_root))
        try:
            _mount("-o", "remount,bind,ro", str(ro_root))
            before, tags = snapshot(watched), app.upstream_tags()
            run = rollouts.run("deploy", check=False, env="prod")
            assert run.rc != 0 and "Traceback" not in run.output
            assert "first failure on prod1 in phase lock" in run.summary(), run.summary()
            assert "Read-only file system" in run.output
            assert diff_snapshots(before, snapshot(watched)) == []
            assert app.upstream_tags() == tags
        finally:
            _umount(ro_root)

        # Full disk on prod2: the objects do not fit; no host switches, every lock is released.
        stat = os.statvfs(full_root)
        filler = full_root / "filler"
        filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 384 * 1024))
        run = rollouts.run("deploy", check=False, env="prod")
        assert run.rc != 0 and "Traceback" not in run.output
        assert "first failure on prod2 in phase prepare" in run.summary(), run.summary()
        assert "No space left on device" in run.output
        assert_consistent(deployment, tag1)
        filler.unlink()

        # A hook that hangs on prod3 (killed after the timeout, with its process group) while
        # prod1's floods 20 MB of output: post-sync fails, every host is rolled back.
        ctl.hang("post-sync", "prod3")
        ctl.flood("post-sync", "prod1", 20 * 1024 * 1024)
        run = rollouts.run("deploy", check=False, env="prod", git_deploy_hook_timeout=10)
        assert run.rc != 0 and "Traceback" not in run.output
        summary = run.summary()
        assert "first failure on prod3 in phase post-sync" in summary and "post-sync.005_control" in summary, summary
        assert "timed out" in summary
        assert len(run.output) < 2 * 1024 * 1024, f"{len(run.output)} bytes of playbook output"
        hung = ctl.hung_pid("post-sync", "prod3")
        assert hung and not alive(hung), "the hung hook is still running"
        assert_consistent(deployment, tag1)
        for host in PROD:
            record = history(deployment.root(host))[-1]
            assert (record["result"], record["failed_host"], record["failed_phase"]) == (
                "rolled_back", "prod3", "post-sync")
        ctl.reset()

        rollouts.run("deploy", env="prod")
        [tag2] = [t for t in rollout_tags(app) if t != tag1]
        assert_consistent(deployment, tag2)
    finally:
        ctl.go()
        rollouts.cleanup()
        _umount(full_root)


# -- bad input -------------------------------------------------------------------------------

def run_all(rollouts, cases, parallel: int = 3) -> list:
    """Run ``(playbook, extra_vars)`` cases, ``parallel`` at a time; return the finished runs."""
    done, pending = [], list(cases)
    while pending:
        batch, pending = pending[:parallel], pending[parallel:]
        runs = [rollouts.start(playbook, name=f"case-{len(done) + i:02d}-{playbook}", **extra)
                for i, (playbook, extra) in enumerate(batch)]
        for run in runs:
            run.wait()
        done += runs
    return done


def assert_refused_cleanly(run, *expected: str) -> None:
    out = run.output
    assert run.rc != 0, str(run)
    assert "Traceback" not in out, str(run)
    for text in expected:
        assert text in out, f"{text!r} not in the output of {run.name}:\n{run.summary()}"


def test_bad_environments_are_refused_before_anything_changes(deployment, app, tmp_path):
    """env with '..', '/', spaces, shell metacharacters, an unknown group, an empty group:
    a clear error, no Python traceback, no tag, nothing on any host; no command ran."""
    inventory = json.loads(deployment.inventory.read_text())
    inventory["all"]["children"]["empty"] = {"hosts": {}}
    path = tmp_path / "inventory-with-empty-group.json"
    path.write_text(json.dumps(inventory))
    rollouts = Rollouts(path, app, tmp_path / "runs")
    pwned = tmp_path / "pwned"
    watched = [deployment.workdir / "roots", app.upstream, app.path / ".git"]
    before = snapshot(watched)
    envs = ["../prod", "/", "prod/../prod", "prod/x", "", "prod x", "prod;id", f"$(touch {pwned})", f"`touch {pwned}`",
            "prod\ntouch", "-prod", "nope", "empty", "all"]
    cases = [("deploy", {"env": env}) for env in envs]
    cases += [("revert", {"env": "../prod"}), ("unlock", {"env": f"prod;touch {pwned}", "force": True}),
              ("status", {"env": "empty"})]
    try:
        runs = run_all(rollouts, cases)
    finally:
        rollouts.cleanup()
    for run in runs:
        assert_refused_cleanly(run, "is not a deployable environment")
    assert "Groups here: " in runs[envs.index("empty")].output
    assert not pwned.exists()
    assert diff_snapshots(before, snapshot(watched)) == []


def test_bad_settings_refs_tags_and_state_files(deployment, app, rollouts):
    """Bad settings, refs and tags are refused with a clear error and change nothing; a
    corrupt lock file stops a rollout (and status shows it) until unlock -e force=true; a
    corrupt history file (a garbage line, a record cut short by a crash) loses nothing."""
    rollouts.run("deploy", env="prod")
    [tag1] = rollout_tags(app)
    app.git("tag", "-a", "-m", "a staging rollout", "staging-20200101-000000")
    app.git("tag", "-a", "-m", "never deployed", "prod-20200101-000000")
    app.change("app.txt", "version 2\n", "version 2")
    pwned = deployment.workdir / "pwned"
    watched = roots(deployment) + [app.upstream, app.path / ".git"]
    before = snapshot(watched)
    secret = "s3cr3t-Tok3n"
    cases = [
        (("deploy", {"env": "prod", "git_deploy_root": "srv/app"}), ["git_deploy_root", "srv/app"]),
        (("deploy", {"env": "prod", "git_deploy_root": "/"}), ["git_deploy_root"]),
        (("deploy", {"env": "prod", "git_deploy_keep_releases": 0}), ["git_deploy_keep_releases"]),
        (("deploy", {"env": "prod", "git_deploy_keep_releases": -1}), ["git_deploy_keep_releases"]),
        (("deploy", {"env": "prod", "git_deploy_hook_dir": "../.."}), ["hook_dir"]),
        (("deploy", {"env": "prod", "ref": "no-such-branch"}), ["no-such-branch"]),
        (("deploy", {"env": "prod", "ref": f"main;touch {pwned}"}), ["main;touch"]),
        (("deploy", {"env": "prod", "git_deploy_hook_dir": "/etc"}), ["hook_dir"]),
        (("deploy", {"env": "prod", "git_deploy_repo_url": f"http://deployer:{secret}@127.0.0.1:9/app.git",
                     "git_deploy_cache_dir": str(deployment.workdir / "repo-cache")}), ["could not fetch"]),
        (("deploy", {"env": "prod", "git_deploy_repo_url": f"https://{secret}@127.0.0.1:9/app.git",
                     "git_deploy_cache_dir": str(deployment.workdir / "token-cache")}), ["could not fetch"]),
        (("revert", {"tag": "prod-20991231-235959"}), ["prod-20991231-235959"]),
        (("revert", {"env": "prod", "tag": "staging-20200101-000000"}), ["not of prod"]),
        (("revert", {"tag": f"prod-1;touch {pwned}"}), ["not a plain name"]),
        (("revert", {"tag": "prod-20200101-000000"}), ["never deployed"]),
        (("revert", {"env": "prod", "git_deploy_root": "/"}), ["git_deploy_root"]),
    ]
    # Three at a time: a case that is (wrongly) not refused early would take the locks, so
    # the two hook_dir cases are in different batches.
    runs = run_all(rollouts, [case for case, _expected in cases])
    problems = []
    for run, (case, expected) in zip(runs, cases):
        try:
            assert_refused_cleanly(run, *expected)
            assert "Traceback" not in run.output
        except AssertionError as exc:
            problems.append(f"{case}: {str(exc)[:1500]}")
        if secret in run.output:
            problems.append(f"{case}: the output shows the password of the repository URL")
        if "first failure on" in run.output:
            problems.append(f"{case}: refused only after the locks were taken: {run.summary()[:600]}")
    if pwned.exists():
        problems.append("a shell ran a command from a ref or tag")
    for cache in ("repo-cache", "token-cache"):
        if secret in (deployment.workdir / cache / "config").read_text():
            problems.append(f"the credentials of the repository URL are stored in {cache}/config")
    changed = diff_snapshots(before, snapshot(watched))
    if changed:
        problems.append(f"the refused requests changed {len(changed)} paths: {changed[:12]}")

    # A corrupt lock file on prod2 (a half-written record): refused, nothing changed, status says so.
    lock = lock_path(deployment.root("prod2"))
    lock.write_text('{"deploy_id": "20261122T000000Z-1", "own')
    before = snapshot(watched)
    run = rollouts.run("deploy", check=False, env="prod")
    assert_refused_cleanly(run, "corrupt", UNLOCK)
    assert "first failure on prod2 in phase lock" in run.summary(), run.summary()
    assert diff_snapshots(before, snapshot(watched)) == []
    status = rollouts.run("status", env="prod")
    assert "CORRUPT" in status_line(status.output, "prod2")
    rollouts.run("unlock", env="prod", force=True)
    assert not lock.exists()

    # A corrupt history on prod1: a garbage line, then a record cut short (no newline).
    journal = deployment.root("prod1") / ".git-deploy" / "history.jsonl"
    with open(journal, "a") as handle:
        handle.write('not json at all\n{"id": "20261122T000000Z-2", "action": "depl')
    rollouts.run("deploy", env="prod")
    tag2 = live(deployment.root("prod1"))
    assert tag2 != tag1
    assert_consistent(deployment, tag2)
    text = journal.read_text()
    assert 'not json at all\n{"id": "20261122T000000Z-2", "action": "depl' in text  # kept as it was
    readable = []
    for line in text.splitlines():
        try:
            readable.append(json.loads(line))
        except ValueError:
            pass
    if not readable or (readable[-1].get("tag"), readable[-1].get("result")) != (tag2, "success"):
        problems.append(f"prod1's history lost the record of {tag2}: it was appended to the line the crash cut "
                        f"short: {text[-700:]!r}")
    rollouts.run("revert", env="prod")
    assert_consistent(deployment, tag1)
    assert not problems, "\n".join(problems)


def test_a_damaged_cached_bundle_is_never_sent(ssh_fleet, tmp_path):
    """A bundle damaged in the controller's cache (same size, other bytes: what a broken
    copy looks like) is not sent: the cache checks its SHA-256 and builds it again, and the
    new host gets a good one. (Damage on the way - the target's own size and SHA-256 check -
    is fed to the module in tests/integration/test_push.py.)"""
    base = tmp_path / "roots"
    inventory = write_inventory(ssh_fleet, base, {"staging": {"s1": "staging1"}})
    app = make_app(tmp_path / "src")
    rollouts = Rollouts(inventory, app, tmp_path / "runs")
    root = {alias: base / alias / "root" for alias in ("s1", "s2")}
    try:
        rollouts.run("deploy", env="staging")
        [tag] = rollout_tags(app, "staging")
        [cached] = (tmp_path / "runs" / "cache" / "gitdeploy" / "bundles").glob("*.bundle")
        pristine = cached.read_bytes()
        data = bytearray(pristine)
        middle = len(data) // 2
        data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
        cached.write_bytes(bytes(data))
        # A second machine joins staging: it has nothing, so it needs that very bundle.
        write_inventory(ssh_fleet, base, {"staging": {"s1": "staging1", "s2": "prod1"}}, path=inventory)
        rollouts.run("deploy", env="staging")
        assert cached.read_bytes() == pristine
        for alias in root:
            assert complete_release(root[alias]) == tag
            assert not lock_path(root[alias]).exists()
    finally:
        rollouts.cleanup()


# -- a rollout that outlived its lock --------------------------------------------------------

def test_a_rollout_that_lost_its_lock_stops_and_changes_nothing_more(deployment, app, rollouts, ctl):
    """Rollout A outlives its lock (its TTL runs out while a pre-sync hook blocks); rollout B
    takes the expired locks over and switches. When A goes on, its next step finds B's lock:
    A stops on every host naming B, and changes nothing more - it switches nothing, records
    nothing, releases none of B's locks, rolls back none of B's hosts."""
    rollouts.run("deploy", env="prod")
    [tag1] = rollout_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    ctl.hold("pre-sync")
    outlived = rollouts.start("deploy", env="prod", name="outlived")
    ctl.wait_reached("pre-sync", PROD, [outlived])
    dead = lock_record(deployment.root("prod1"))
    for host in PROD:
        expire_lock(deployment.root(host))
    # B does not stop in pre-sync; it holds its locks once switched (post-tree-update).
    (ctl.dir / "hold-pre-sync").unlink()
    ctl.hold("post-tree-update")
    taker = rollouts.start("deploy", env="prod", name="taker")
    ctl.wait_reached("post-tree-update", PROD, [taker])
    holder = lock_record(deployment.root("prod1"))
    assert holder["deploy_id"] != dead["deploy_id"], holder
    (ctl.dir / "go-pre-sync").write_text("")  # A goes on
    assert outlived.wait() != 0, str(outlived)
    for host in PROD:
        root = deployment.root(host)
        assert lock_record(root)["deploy_id"] == holder["deploy_id"], host      # B's locks untouched
        assert [(r["tag"], r["result"]) for r in history(root)] == [(tag1, "success")], host  # A recorded nothing
    assert "no longer holds lock" in outlived.output and holder["deploy_id"] in outlived.output, outlived.summary()
    assert "Traceback" not in outlived.output
    ctl.reset()
    assert taker.wait() == 0, str(taker)
    [tag2] = [t for t in rollout_tags(app) if t != tag1]
    assert_consistent(deployment, tag2)
    for root in roots(deployment):
        assert [(r["tag"], r["result"]) for r in history(root)] == [(tag1, "success"), (tag2, "success")], root
        assert dead["deploy_id"] not in [r["id"] for r in history(root)]


def test_first_host_unreachable_takes_and_releases_no_other_lock(ssh_fleet, tmp_path):
    """The rollout's first host is unreachable and another host carries someone else's live
    lock: no host is locked, that lock is never released, nothing is recorded, no tag is cut,
    and the summary names the first host and the lock step. The host order is fixed once at
    the start: a host counts as locked only on its own lock result."""
    from sinks import closed_port  # noqa: E402

    base = tmp_path / "roots"
    inventory = write_inventory(ssh_fleet, base, {"prod": {h: h for h in PROD}})
    data = json.loads(inventory.read_text())
    data["all"]["children"]["prod"]["hosts"]["prod1"]["ansible_port"] = closed_port()
    inventory.write_text(json.dumps(data))
    app = make_app(tmp_path / "src")
    rollouts = Rollouts(inventory, app, tmp_path / "runs")
    root = {h: base / h / "root" for h in PROD}
    planted = lock_path(root["prod2"])
    planted.parent.mkdir(parents=True)
    planted.write_text(json.dumps({
        "deploy_id": "other-42", "owner": "mallory@elsewhere", "env": "prod", "action": "deploy", "tag": None,
        "reason": "planted by a test", "created": "2026-01-01T00:00:00Z", "expires": "2099-01-01T00:00:00Z",
        "host": "prod2", "root": str(root["prod2"])}))
    before = planted.read_text()
    try:
        run = rollouts.run("deploy", check=False, env="prod")
    finally:
        rollouts.cleanup()
    assert run.rc != 0 and "Traceback" not in run.output
    assert "first failure on prod1 in phase lock" in run.summary() and "unreachable" in run.summary(), run.summary()
    assert planted.read_text() == before                       # someone else's lock: untouched
    assert not lock_path(root["prod3"]).exists()
    for host in ("prod2", "prod3"):
        assert not (root[host] / ".git-deploy" / "history.jsonl").exists(), host
    assert rollout_tags(app) == []
