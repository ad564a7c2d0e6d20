"""The product end to end: deploy.yml / revert.yml / status.yml / unlock.yml run by
the real ansible-playbook against real sshd hosts, from a real application checkout."""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import threading
import time

import pytest

from apprepo import HOOK, AppRepo
from conftest import BIN, ansible_env, snapshot

PROD = ["prod1", "prod2", "prod3"]


@pytest.fixture
def app(tmp_path) -> AppRepo:
    return AppRepo.create(tmp_path / "src")


def run(deployment, app, playbook, *args, check=True, **extra_vars):
    return deployment.playbook(f"gitdeploy.rollout.{playbook}", *args, extra_vars=extra_vars or None,
                               check=check, cwd=app.path, SYNC_LOG=str(app.path.parent / "sync.log"),
                               ANSIBLE_SHOW_CUSTOM_STATS="true")


def live(deployment, host) -> str | None:
    current = deployment.root(host) / "current"
    return os.path.basename(os.readlink(current)) if current.is_symlink() else None


def history(deployment, host) -> list:
    path = deployment.root(host) / ".git-deploy" / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def hook_lines(deployment, host) -> list:
    path = deployment.root(host) / "hooks.log"
    return path.read_text().splitlines() if path.exists() else []


def locked(deployment, host) -> bool:
    return (deployment.root(host) / ".git-deploy" / "lock").exists()


def prod_tags(app) -> list:
    return sorted(t for t in app.upstream_tags() if t.startswith("prod-") and not t.endswith("_reverted"))


def test_deploy_then_deploy_a_change(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    commit1 = app.head()
    for host in PROD:
        assert live(deployment, host) == tag1
        deploy_file = (deployment.root(host) / "current" / ".deploy").read_text()
        assert f"commit: {commit1}" in deploy_file and f"tag: {tag1}" in deploy_file
        assert (deployment.root(host) / "current" / "app.txt").read_text() == "version 1\n"
        assert not locked(deployment, host)
        assert history(deployment, host)[-1]["result"] == "success"
        assert not (deployment.root(host) / "logs" / "git-deploy-active.log").exists()
        assert tag1 in (deployment.root(host) / "logs" / "git-deploy.log").read_text()
        phases = [line.split()[1:3] for line in hook_lines(deployment, host)]
        assert phases == [["pre-sync", "common"], ["pre-sync", "prod"], ["post-tree-update", "common"],
                          ["post-tree-update", "prod"], ["post-sync", "common"], ["post-sync", "prod"]]
    sync = (app.path.parent / "sync.log").read_text().splitlines()
    assert sync == [f"prod {tag1} prod1 prod2 prod3"]
    # The staging host was not touched.
    assert not deployment.root("staging1").exists()

    app.change("app.txt", "version 2\n", "version 2")
    run(deployment, app, "deploy", env="prod")
    tags = prod_tags(app)
    assert len(tags) == 2
    tag2 = max(tags, key=lambda t: t != tag1)
    for host in PROD:
        assert live(deployment, host) == tag2
        assert (deployment.root(host) / "current" / "app.txt").read_text() == "version 2\n"
        assert (deployment.root(host) / "releases" / tag1).is_dir()
        assert history(deployment, host)[-1]["previous_tag"] == tag1


def test_redeploy_of_the_live_commit_is_a_noop(deployment, app):
    run(deployment, app, "deploy", env="prod")
    before_tags = app.upstream_tags()
    before = snapshot([deployment.workdir / "roots"])
    proc = run(deployment, app, "deploy", env="prod")
    assert "already live on every host of prod: nothing to do" in proc.stdout
    for host in PROD:
        assert f"{host} " in proc.stdout and "changed=0" in proc.stdout.split(f"\n{host} ")[-1].splitlines()[0]
    assert snapshot([deployment.workdir / "roots"]) == before
    assert app.upstream_tags() == before_tags


def test_revert_by_env_then_by_tag(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    run(deployment, app, "deploy", env="prod")
    [tag2] = [t for t in prod_tags(app) if t != tag1]

    run(deployment, app, "revert", env="prod")
    for host in PROD:
        assert live(deployment, host) == tag1
        assert (deployment.root(host) / "current" / "app.txt").read_text() == "version 1\n"
        record = history(deployment, host)[-1]
        assert (record["action"], record["tag"], record["previous_tag"], record["result"]) == (
            "revert", tag1, tag2, "success")
        # git-deploy: "if sync hooks and deploy hooks are provided then they will be automatically
        # run as normal": the reverted-to release's pre-sync, its switch hooks, then post-sync.
        reverted = [line.split() for line in hook_lines(deployment, host)][-8:]
        assert [(r[1], r[2], r[3], r[4]) for r in reverted] == [
            (phase, prefix, "revert", tag1) for phase in ("pre-sync", "post-tree-update", "post-reset", "post-sync")
            for prefix in ("common", "prod")]
        assert not locked(deployment, host)
    assert f"{tag2}_reverted" in app.upstream_tags()
    # The sync hook ran once, on the controller, for the revert too.
    assert (app.path.parent / "sync.log").read_text().splitlines()[-1] == f"prod {tag1} prod1 prod2 prod3"

    run(deployment, app, "revert", tag=tag2)
    for host in PROD:
        assert live(deployment, host) == tag2


def test_a_revert_whose_sync_hook_and_post_sync_fail_stands_and_says_so(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    run(deployment, app, "deploy", env="prod")
    (deployment.root("prod2") / "fail-post-sync").touch()
    proc = deployment.playbook("gitdeploy.rollout.revert", extra_vars={"env": "prod"}, cwd=app.path,
                               SYNC_LOG=str(app.path.parent / "sync.log"), SYNC_FAIL="1")
    warned = " ".join(proc.stderr.split())
    assert "sync planted failure" in warned and "the revert stands: it is not undone by its sync hook" in warned
    assert "post-sync failed on prod2" in warned and "planted failure of post-sync" in warned
    for host in PROD:
        # Going back from a revert would put back the release it took away: it stands.
        assert live(deployment, host) == tag1
        assert (history(deployment, host)[-1]["action"], history(deployment, host)[-1]["result"]) == ("revert", "success")
        assert not locked(deployment, host)
        assert hook_lines(deployment, host)[-1].split()[1:4] == ["post-sync", "prod" if host != "prod2" else "common",
                                                                 "revert"]


def test_pre_sync_failure_on_one_host_switches_no_host(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    (deployment.root("prod2") / "fail-pre-sync").touch()
    proc = run(deployment, app, "deploy", env="prod", check=False)
    assert proc.returncode != 0
    assert "prod2" in proc.stdout and "pre-sync" in proc.stdout
    for host in PROD:
        assert live(deployment, host) == tag1
        assert (deployment.root(host) / "current" / "app.txt").read_text() == "version 1\n"
        assert not locked(deployment, host)
        record = history(deployment, host)[-1]
        assert (record["result"], record["failed_host"], record["failed_phase"]) == ("failed", "prod2", "pre-sync")
        assert "post-tree-update" not in " ".join(hook_lines(deployment, host)[6:])
    # git-deploy runs pre-sync before it cuts the tag: the failed rollout's tag was dropped,
    # never pushed, so the next deploy's "previous" is still tag1.
    assert prod_tags(app) == [tag1]
    assert app.git("tag", "-l", "prod-*").split() == [tag1]
    assert "was deleted from the controller's repository, never pushed" in proc.stdout


def test_a_bundle_above_max_bundle_bytes_is_refused_before_any_host_changes(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("big.bin", os.urandom(64 * 1024).hex() + "\n", "a big file")
    before = snapshot([deployment.workdir / "roots"])
    proc = run(deployment, app, "deploy", env="prod", check=False, git_deploy_max_bundle_bytes=20000)
    assert proc.returncode != 0
    assert "above git_deploy_max_bundle_bytes=20000" in proc.stdout and "the bundle for prod1 is" in proc.stdout
    assert "refused" in proc.stdout and "Nothing was changed" in proc.stdout
    # Nothing changed on any host (no lock left, no history line, no objects), nor upstream, nor locally.
    assert snapshot([deployment.workdir / "roots"]) == before
    assert prod_tags(app) == [tag1] and app.git("tag", "-l", "prod-*").split() == [tag1]
    # Within the limit, the same deploy goes through.
    run(deployment, app, "deploy", env="prod", git_deploy_max_bundle_bytes=10 * 1024 * 1024)
    assert all(live(deployment, host) != tag1 for host in PROD)


def test_a_bundle_cache_others_can_write_to_is_refused_before_any_host_changes(deployment, app, tmp_path):
    """What is in the bundle cache goes to every target: a cache directory another user could
    write to refuses the rollout (the same check a planted entry meets: test_push.py)."""
    cache = tmp_path / "xdg"
    bundles = cache / "gitdeploy" / "bundles"
    env = {"XDG_CACHE_HOME": str(cache), "SYNC_LOG": str(app.path.parent / "sync.log")}
    deployment.playbook("gitdeploy.rollout.deploy", extra_vars={"env": "prod"}, cwd=app.path, **env)
    [tag1] = prod_tags(app)
    assert list(bundles.glob("*.bundle"))
    app.change("app.txt", "version 2\n", "version 2")
    os.chmod(bundles, 0o775)
    before = snapshot([deployment.workdir / "roots"])
    proc = deployment.playbook("gitdeploy.rollout.deploy", extra_vars={"env": "prod"}, check=False, cwd=app.path,
                               **env)
    assert proc.returncode != 0
    assert "writable by its group or by anyone" in proc.stdout and str(bundles) in proc.stdout, proc.stdout[-3000:]
    assert snapshot([deployment.workdir / "roots"]) == before
    assert prod_tags(app) == [tag1] and app.git("tag", "-l", "prod-*").split() == [tag1]


def test_post_sync_failure_rolls_every_host_back(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    (deployment.root("prod3") / "fail-post-sync").touch()
    proc = run(deployment, app, "deploy", env="prod", check=False)
    assert proc.returncode != 0
    assert "prod3" in proc.stdout and "post-sync" in proc.stdout
    [tag2] = [t for t in prod_tags(app) if t != tag1]
    for host in PROD:
        assert live(deployment, host) == tag1
        assert not locked(deployment, host)
        record = history(deployment, host)[-1]
        assert (record["tag"], record["result"], record["failed_host"], record["failed_phase"]) == (
            tag2, "rolled_back", "prod3", "post-sync")
        resets = [line.split() for line in hook_lines(deployment, host) if " post-reset " in line]
        assert [(r[3], r[4]) for r in resets] == [("abort", tag1)] * 2


def test_serial_batches_share_one_tag_and_switch_in_order(deployment, app):
    run(deployment, app, "deploy", env="prod", git_deploy_serial=[1, "100%"])
    tags = prod_tags(app)
    assert len(tags) == 1
    for host in PROD:
        assert live(deployment, host) == tags[0]
    # The archive logs carry the switch; prod1 (the canary batch) switched before
    # prod2 and prod3 started theirs. Hooks record a global order in roots/order.log.
    order = [line.split()[:2] for line in (deployment.workdir / "roots" / "order.log").read_text().splitlines()]
    switches = [host for host, phase in order if phase == "post-tree-update"]
    assert switches[:2] == ["prod1", "prod1"] and set(switches[2:]) == {"prod2", "prod3"}

    # A failing canary stops the rollout before the next batch: prod2 and prod3 never
    # switch to the new tag, prod1 goes back to the old one.
    app.change("app.txt", "version 2\n", "version 2")
    (deployment.root("prod1") / "fail-post-tree-update").touch()
    proc = run(deployment, app, "deploy", env="prod", git_deploy_serial=[1, "100%"], check=False)
    assert proc.returncode != 0
    [tag2] = [t for t in prod_tags(app) if t != tags[0]]
    summary = " ".join(proc.stdout.split())
    assert "failed on prod1: first failure on prod1 in phase switch" in summary, summary[-1500:]
    for host in PROD:
        assert live(deployment, host) == tags[0], host
    for host in ("prod2", "prod3"):
        assert [line for line in hook_lines(deployment, host) if f" post-tree-update prod start {tag2} " in line] == []


def test_pre_pull_and_post_pull_run_around_each_hosts_switch(deployment, app):
    """git-deploy's pre-pull (take the host out of the load balancer) and post-pull, on each
    host just before and after its live tree changes, batch by batch."""
    for phase in ("pre-pull", "post-pull"):
        app.write(f"deploy/apps/prod/{phase}.010_record", HOOK, mode=0o755)
    app.commit("pull hooks", push=True)
    run(deployment, app, "deploy", env="prod", git_deploy_serial=[1, "100%"])
    [tag1] = prod_tags(app)
    for host in PROD:
        assert [line.split()[1] for line in hook_lines(deployment, host)] == [
            "pre-sync", "pre-sync", "pre-pull", "post-pull", "post-tree-update", "post-tree-update",
            "post-sync", "post-sync"]
    order = [line.split()[:2] for line in (deployment.workdir / "roots" / "order.log").read_text().splitlines()]
    pulls = [(host, phase) for host, phase in order if phase in ("pre-pull", "post-pull")]
    assert pulls[:2] == [("prod1", "pre-pull"), ("prod1", "post-pull")]  # the canary batch first
    assert sorted(pulls[2:]) == [("prod2", "post-pull"), ("prod2", "pre-pull"), ("prod3", "post-pull"),
                                 ("prod3", "pre-pull")]

    # A failing pre-pull fails its host before its tree changes; the others go back.
    app.change("app.txt", "version 2\n", "version 2")
    (deployment.root("prod2") / "fail-pre-pull").touch()
    before = {host: len(hook_lines(deployment, host)) for host in PROD}
    proc = run(deployment, app, "deploy", env="prod", git_deploy_serial=[1, "100%"], check=False)
    assert proc.returncode != 0
    assert "first failure on prod2 in phase switch" in " ".join(proc.stdout.split())
    for host in PROD:
        assert live(deployment, host) == tag1
        record = history(deployment, host)[-1]
        assert (record["result"], record["failed_host"], record["failed_phase"]) == ("rolled_back", "prod2", "switch")
    new = [line.split()[1] for line in hook_lines(deployment, "prod2")[before["prod2"]:]]
    assert "pre-pull" in new and "post-pull" not in new and "post-tree-update" not in new
    rolled = [line.split()[1:4] for line in hook_lines(deployment, "prod1")[before["prod1"]:]]
    assert ["pre-pull", "prod", "abort"] in rolled and ["post-pull", "prod", "abort"] in rolled


def test_a_hook_with_an_unknown_phase_fails_the_rollout_before_anything_changes(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.write("deploy/apps/prod/pre-pul.010_out_of_the_load_balancer", HOOK, mode=0o755)
    app.write("deploy/apps/prod/README.md", "not a hook: not executable\n")
    app.commit("a typo", push=True)
    proc = run(deployment, app, "deploy", env="prod", check=False)
    assert proc.returncode != 0
    assert "deploy/apps/prod/pre-pul.010_out_of_the_load_balancer" in proc.stdout
    assert "no hook phase is named so" in proc.stdout and "README" not in proc.stdout.split("no hook phase")[0][-300:]
    for host in PROD:
        assert live(deployment, host) == tag1
    assert prod_tags(app) == [tag1]


def test_check_mode_changes_nothing_anywhere(deployment, app):
    run(deployment, app, "deploy", env="prod")
    app.change("app.txt", "version 2\n", "version 2")
    watched = [deployment.workdir / "roots", app.upstream, app.path / ".git" / "refs"]
    before = snapshot(watched)
    proc = run(deployment, app, "deploy", "--check", "--diff", env="prod")
    assert "prod-" in proc.stdout
    assert snapshot(watched) == before


def plant_lock(deployment, host, owner="mallory@elsewhere", expires="2099-01-01T00:00:00Z", deploy_id="other-42"):
    path = deployment.root(host) / ".git-deploy" / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "deploy_id": deploy_id, "owner": owner, "env": "prod", "action": "deploy", "tag": None,
        "reason": "planted by a test", "created": "2026-01-01T00:00:00Z", "expires": expires,
        "host": host, "root": str(deployment.root(host))}))
    return path


def test_lock_held_on_one_host_stops_the_rollout_everywhere(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    lock = plant_lock(deployment, "prod2")
    planted = lock.read_text()
    proc = run(deployment, app, "deploy", env="prod", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "mallory@elsewhere" in out and "gitdeploy.rollout.unlock" in out
    assert lock.read_text() == planted                      # someone else's lock is untouched
    # prod1 (locked first, in name order) was locked, then released again: all or nothing.
    assert not locked(deployment, "prod1") and not locked(deployment, "prod3")
    assert prod_tags(app) == [tag1]                         # no tag for a rollout that never ran
    for host in PROD:
        assert live(deployment, host) == tag1

    # force=true overrides the checks that have an override, not a lock its holder keeps
    # renewing: that needs force_lock=true.
    forced = run(deployment, app, "deploy", env="prod", force=True, check=False)
    assert forced.returncode != 0 and "force_lock=true" in forced.stdout
    assert lock.read_text() == planted and prod_tags(app) == [tag1]
    run(deployment, app, "deploy", env="prod", force_lock=True)
    [tag2] = [t for t in prod_tags(app) if t != tag1]
    for host in PROD:
        assert live(deployment, host) == tag2 and not locked(deployment, host)


def test_lock_wait_times_out_naming_the_holder_and_changes_nothing(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    lock = plant_lock(deployment, "prod2")
    planted = lock.read_text()
    started = time.monotonic()
    proc = run(deployment, app, "deploy", env="prod", check=False, git_deploy_lock_wait=4)
    assert proc.returncode != 0
    assert time.monotonic() - started >= 4  # it did wait
    assert "prod2: the lock is held by mallory@elsewhere" in proc.stdout and "waiting for it" in proc.stdout
    assert "gitdeploy.rollout.unlock" in proc.stdout
    assert lock.read_text() == planted
    assert not locked(deployment, "prod1") and not locked(deployment, "prod3")  # all or nothing
    assert prod_tags(app) == [tag1] and all(live(deployment, h) == tag1 for h in PROD)


HOLD = """#!/bin/sh
# Test observation: the first pre-sync that claims <root>/hold says so through the FIFO
# hold/holding, then holds its rollout (and its locks) until the test writes to hold/release.
hold="$GIT_DEPLOY_ROOT/hold"
if [ -d "$hold" ] && mkdir "$hold/claimed" 2>/dev/null; then
  echo holding > "$hold/holding"
  read -r _ < "$hold/release"
fi
"""


def read_fifo(path, timeout=120):
    """What a writer sends through the FIFO ``path`` (waits for it, at most ``timeout`` s)."""
    got = []
    reader = threading.Thread(target=lambda: got.append(path.read_text()), daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0] if got else None


def test_lock_wait_lets_a_second_deploy_through_once_the_first_finishes(deployment, app):
    app.write("deploy/apps/staging/pre-sync.030_hold", HOLD, mode=0o755)
    app.commit("a hook that can hold a rollout", push=True)
    hold = deployment.root("staging1") / "hold"
    hold.mkdir(parents=True)
    os.mkfifo(hold / "holding")
    os.mkfifo(hold / "release")
    env = ansible_env(SYNC_LOG=str(app.path.parent / "sync.log"))
    playbook = [str(BIN / "ansible-playbook"), "-i", str(deployment.inventory), "gitdeploy.rollout.deploy",
                "-e", "env=staging"]
    first = subprocess.Popen(playbook, cwd=app.path, env=env, stdout=subprocess.PIPE, text=True)
    second = None
    try:
        assert read_fifo(hold / "holding") == "holding\n"  # the first rollout is in pre-sync, locked
        app.change("app.txt", "version 2\n", "version 2")
        second = subprocess.Popen(playbook + ["-e", "git_deploy_lock_wait=120"], cwd=app.path, env=env,
                                  stdout=subprocess.PIPE, text=True)
        seen = []
        for line in second.stdout:  # until it says that it waits: then the first one may finish
            seen.append(line)
            if "the lock is held by" in line:
                break
        assert "staging1: the lock is held by" in "".join(seen) and "waiting for it" in "".join(seen), "".join(seen)
        (hold / "release").write_text("go\n")
        assert first.wait(timeout=120) == 0
        rest = second.stdout.read()
        assert second.wait(timeout=120) == 0, "".join(seen) + rest
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    tags = sorted(t for t in app.upstream_tags() if t.startswith("staging-") and not t.endswith("_reverted"))
    assert len(tags) == 2
    assert live(deployment, "staging1") == tags[-1]
    assert (deployment.root("staging1") / "current" / "app.txt").read_text() == "version 2\n"
    assert [r["result"] for r in history(deployment, "staging1")] == ["success", "success"]


def test_freeze_stops_every_rollout_of_its_env_until_unfreeze(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    proc = run(deployment, app, "freeze", env="prod", reason="release freeze until Monday")
    assert "frozen: release freeze until Monday" in proc.stdout
    before = snapshot([deployment.workdir / "roots"])
    for force in (False, True):  # not even force
        refused = run(deployment, app, "deploy", env="prod", force=force, check=False)
        assert refused.returncode != 0
        assert "Rollouts are frozen on " in refused.stdout and "release freeze until Monday" in refused.stdout, (
            refused.stdout[-3000:])
        assert "first failure on prod1 in phase lock" in refused.stdout
        assert "gitdeploy.rollout.unfreeze -e env=prod" in refused.stdout
        assert snapshot([deployment.workdir / "roots"]) == before and prod_tags(app) == [tag1]
    status = run(deployment, app, "status", env="prod")
    assert status.stdout.count("FROZEN by ") == 3 and "release freeze until Monday" in status.stdout
    # Another environment is not frozen; every host (env=all) is.
    run(deployment, app, "deploy", env="staging")
    run(deployment, app, "freeze", env="all", reason="datacenter move")
    app.change("app.txt", "version 3\n", "version 3")
    refused = run(deployment, app, "deploy", env="staging", check=False)
    assert refused.returncode != 0 and "datacenter move" in refused.stdout
    # prod keeps its own freeze (the first one stands); unfreeze lifts it for the env named.
    run(deployment, app, "unfreeze", env="prod")
    run(deployment, app, "deploy", env="prod")
    assert all(live(deployment, h) != tag1 for h in PROD)
    assert run(deployment, app, "deploy", env="staging", check=False).returncode != 0
    run(deployment, app, "unfreeze", env="all")
    run(deployment, app, "deploy", env="staging")
    # A freeze needs a reason.
    bare = run(deployment, app, "freeze", env="prod", check=False)
    assert bare.returncode != 0 and "say why rollouts stop" in bare.stdout


def test_status_shows_drift_and_a_stale_lock(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    run(deployment, app, "deploy", env="prod")
    # Drift: prod2 is put back on the first release by hand; prod3 has a dead rollout's lock.
    current = deployment.root("prod2") / "current"
    os.symlink(f"releases/{tag1}", str(current) + ".tmp")
    os.replace(str(current) + ".tmp", current)
    plant_lock(deployment, "prod3", owner="ghost@gone", expires="2020-01-01T00:00:00Z", deploy_id="dead-7")
    proc = run(deployment, app, "status", env="prod")
    assert "DRIFT" in proc.stdout
    prod3 = next(line for line in proc.stdout.splitlines() if line.strip(' "').startswith("prod3"))
    assert "locked by ghost@gone" in prod3 and "STALE" in prod3
    prod2 = next(line for line in proc.stdout.splitlines() if line.strip(' "').startswith("prod2"))
    assert f"live {tag1}" in prod2
    assert '"drift": true' in proc.stdout                   # set_stats, machine-readable


def test_unlock_releases_your_own_lock_and_needs_force_for_someone_elses(deployment, app):
    run(deployment, app, "deploy", env="prod")
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or pwd.getpwuid(os.getuid()).pw_name
    own = plant_lock(deployment, "prod3", owner=f"{user}@{socket.gethostname()}", deploy_id="mine-1")
    foreign = plant_lock(deployment, "prod1")
    proc = run(deployment, app, "unlock", env="prod", check=False)
    assert proc.returncode != 0
    assert "held by mallory@elsewhere" in proc.stdout and "force=true" in proc.stdout
    assert foreign.exists()
    assert not own.exists()                                 # your own lock needs no force

    run(deployment, app, "unlock", env="prod", force=True)
    assert not foreign.exists()
    record = history(deployment, "prod1")[-1]
    assert (record["action"], record["id"], record["result"]) == ("abort", "other-42", "aborted")
    assert [line.split()[1] for line in hook_lines(deployment, "prod1")][-2:] == ["post-abort", "post-abort"]
    # Hosts without a lock are left alone.
    assert history(deployment, "prod2")[-1]["action"] == "deploy"


def test_six_failed_deploys_keep_the_live_and_the_previous_good_release(deployment, app):
    """Peers' bugs (Deployer #579/#814, Capistrano #1885): failed rollouts fill keep_releases
    and the pruning removes the good releases; a failure before any switch "rolls back" the
    live release to the one before it. Here: two good deploys, then six failures (pre-sync:
    nothing switched; post-sync: switched then rolled back) with keep_releases 5."""
    keep = {"git_deploy_keep_releases": 5}
    run(deployment, app, "deploy", env="staging", **keep)
    app.change("app.txt", "version 2\n", "version 2")
    run(deployment, app, "deploy", env="staging", **keep)
    root = deployment.root("staging1")
    good = sorted(t for t in app.upstream_tags() if t.startswith("staging-"))
    assert len(good) == 2 and live(deployment, "staging1") == good[1]
    hooks_before = len(hook_lines(deployment, "staging1"))

    for attempt in range(6):
        phase = "pre-sync" if attempt % 2 == 0 else "post-sync"
        (root / f"fail-{phase}").touch()
        app.change("app.txt", f"broken {attempt}\n", f"broken {attempt}")
        proc = run(deployment, app, "deploy", env="staging", check=False, **keep)
        (root / f"fail-{phase}").unlink()
        assert proc.returncode != 0
        assert live(deployment, "staging1") == good[1], (attempt, phase)
        assert (root / "current" / "app.txt").read_text() == "version 2\n"
        record = history(deployment, "staging1")[-1]
        assert record["result"] == ("failed" if phase == "pre-sync" else "rolled_back"), record
        if attempt == 0:
            # A failure before any switch rolls nobody back: no post-reset hook ran, nothing moved.
            assert not [line for line in hook_lines(deployment, "staging1")[hooks_before:] if " post-reset " in line]

    releases = sorted(p.name for p in (root / "releases").iterdir())
    assert len(releases) <= 5 and set(good) <= set(releases), releases
    assert not locked(deployment, "staging1")
    run(deployment, app, "revert", env="staging")
    assert live(deployment, "staging1") == good[0]
    assert (root / "current" / "app.txt").read_text() == "version 1\n"


def test_objects_that_fail_gits_checks_are_never_delivered(deployment, app):
    """A commit whose tree has an entry named ``.git`` (git fsck: hasDotgit; a checkout would
    write into the release's own .git) reaches no target: each one indexes what it receives
    with git's object checks (transfer.fsckObjects), and git before 2.46 does not check the
    bundles it fetches."""
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=app.path, input="evil\n",
                          capture_output=True, text=True, check=True).stdout.strip()
    listing = app.git("ls-tree", "HEAD") + f"\n100644 blob {blob}\t.git\n"
    tree = subprocess.run(["git", "mktree"], cwd=app.path, input=listing, capture_output=True, text=True,
                          check=True).stdout.strip()
    evil = app.git("commit-tree", tree, "-p", "HEAD", "-m", "a tree with a .git entry")
    app.git("update-ref", "HEAD", evil)
    app.git("push", "-q", "origin", "HEAD")
    # The checkout's own .git "differs" from that entry: the dirty check would stop it first.
    proc = run(deployment, app, "deploy", env="prod", check=False, git_deploy_allow_dirty=True)
    assert proc.returncode != 0
    assert "refused by git's checks" in proc.stdout and "index-pack --strict" in proc.stdout, proc.stdout[-3000:]
    for host in PROD:
        assert live(deployment, host) == tag1
        assert not locked(deployment, host)
        store = deployment.root(host) / "repo.git"
        tags = subprocess.run(["git", "--git-dir", str(store), "tag", "-l"], capture_output=True, text=True,
                              check=True).stdout.split()
        assert tags == [tag1]
        missing = subprocess.run(["git", "--git-dir", str(store), "cat-file", "-e", evil], capture_output=True,
                                 check=False)
        assert missing.returncode != 0
