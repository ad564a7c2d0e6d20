"""git-deploy's hook phases through the role, in the order its users know: pre-start and
post-start on the controller around the tag, then each host's pre-sync, its switch hooks,
the sync hook, post-sync. Real ansible-playbook, real sshd hosts, real git."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from apprepo import AppRepo

PROD = ["prod1", "prod2", "prod3"]

# A controller hook: appends "controller <phase> <prefix> <action> <tag> <name>" to the
# fleet's shared order log (the hosts' hooks append there too), and fails when asked.
CONTROLLER_HOOK = """#!/bin/sh
echo "controller $GIT_DEPLOY_PHASE $GIT_DEPLOY_HOOK_PREFIX $GIT_DEPLOY_ACTION $GIT_DEPLOY_ROLLOUT_TAG $(basename "$0")" \
    >> "$ORDER_LOG"
if [ "$FAIL_PHASE" = "$GIT_DEPLOY_PHASE" ]; then echo "planted failure of $GIT_DEPLOY_PHASE" >&2; exit 5; fi
"""


@pytest.fixture
def app(tmp_path) -> AppRepo:
    repo = AppRepo.create(tmp_path / "src")
    for phase in ("pre-start", "post-start"):
        repo.write(f"deploy/apps/common/{phase}.010_record", CONTROLLER_HOOK, mode=0o755)
    repo.commit("start hooks", push=True)
    return repo


def run(deployment, app, playbook, *args, check=True, environ=None, **extra_vars):
    env = dict(environ or {}, SYNC_LOG=str(app.path.parent / "sync.log"), ORDER_LOG=str(order_log(deployment)))
    return deployment.playbook(f"gitdeploy.rollout.{playbook}", *args, extra_vars=extra_vars or None, check=check,
                               cwd=app.path, **env)


def order_log(deployment):
    return deployment.workdir / "roots" / "order.log"


def order(deployment) -> list:
    """(who, phase, prefix, action, tag) of every hook run, in the order they ran."""
    path = order_log(deployment)
    return [tuple(line.split()[:5]) for line in path.read_text().splitlines()] if path.exists() else []


def live(deployment, host) -> str | None:
    current = deployment.root(host) / "current"
    return os.path.basename(os.readlink(current)) if current.is_symlink() else None


def history(deployment, host) -> list:
    path = deployment.root(host) / ".git-deploy" / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prod_tags(app) -> list:
    return sorted(t for t in app.upstream_tags() if t.startswith("prod-") and not t.endswith("_reverted"))


def test_every_phase_runs_in_git_deploys_order_with_its_action(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag] = prod_tags(app)
    ran = order(deployment)
    phases = [(who, phase, action) for who, phase, prefix, action, _tag in ran if prefix == "common"]
    # One line per host and phase (common hooks), the controller's own once.
    expected = ([("controller", "pre-start", "start"), ("controller", "post-start", "start")]
                + [(h, "pre-sync", "sync") for h in PROD] + [(h, "post-tree-update", "start") for h in PROD]
                + [(h, "post-sync", "sync") for h in PROD])
    assert sorted(phases) == sorted(expected)
    # In order: the controller's start, then each barrier's phase on every host.
    rank = {"pre-start": 0, "post-start": 1, "pre-sync": 2, "post-tree-update": 3, "post-sync": 4}
    assert [rank[p] for _w, p, _a in phases] == sorted(rank[p] for _w, p, _a in phases)
    # Every hook saw the tag that went out (pre-start: the tag about to be cut).
    assert {t for *_rest, t in ran} == {tag}
    assert all(live(deployment, h) == tag for h in PROD)


@pytest.mark.parametrize("phase", ["pre-start", "post-start"])
def test_a_failing_start_hook_stops_the_deploy_before_any_host_changes(deployment, app, phase):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    before = app.git("tag", "-l", "prod-*").split()
    proc = run(deployment, app, "deploy", check=False, environ={"FAIL_PHASE": phase}, env="prod")
    assert proc.returncode != 0
    text = " ".join(proc.stdout.split())
    assert f"{phase} hook failed" in text and f"planted failure of {phase}" in text
    # No tag went upstream, none is left here; every host is as it was, unlocked, its history says why.
    assert prod_tags(app) == [tag1]
    assert app.git("tag", "-l", "prod-*").split() == before
    for host in PROD:
        assert live(deployment, host) == tag1
        assert not (deployment.root(host) / ".git-deploy" / "lock").exists()
        record = history(deployment, host)[-1]
        assert (record["result"], record["failed_host"], record["failed_phase"]) == ("failed", "controller", "start")
        assert (deployment.root(host) / "current" / "app.txt").read_text() == "version 1\n"
    # No host hook ran for the stopped rollout.
    assert [r for r in order(deployment) if r[0] != "controller" and r[4] not in (tag1,)] == []


def test_a_revert_runs_the_start_hooks_with_its_action(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    run(deployment, app, "deploy", env="prod")
    seen = len(order(deployment))
    run(deployment, app, "revert", env="prod")
    ran = [(w, p, a, t) for w, p, prefix, a, t in order(deployment)[seen:] if prefix == "common"]
    assert ran[:2] == [("controller", "pre-start", "revert", tag1), ("controller", "post-start", "revert", tag1)]
    assert {(p, a, t) for w, p, a, t in ran[2:]} == {(p, "revert", tag1) for p in
                                                     ("pre-sync", "post-tree-update", "post-reset", "post-sync")}
    assert all(live(deployment, h) == tag1 for h in PROD)


def test_another_operators_rollout_is_fetched_before_anything_is_decided(deployment, app, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", "-b", "main", str(app.upstream), str(other)], check=True)
    theirs = "prod-20261201-100000"
    subprocess.run(["git", "-C", str(other), "-c", "user.name=Bob", "-c", "user.email=bob@test.invalid",
                    "tag", "-a", "-m", "bob's rollout", theirs], check=True)
    subprocess.run(["git", "-C", str(other), "push", "-q", "origin", theirs], check=True)
    # No remote actions: nothing is fetched (the preview would cut a tag of its own).
    run(deployment, app, "deploy", "--check", env="prod", git_deploy_remote="")
    assert theirs not in app.git("tag", "-l")
    proc = run(deployment, app, "deploy", env="prod")
    assert f"fetched 1 tag(s) from {app.upstream}" in proc.stdout
    # Bob's rollout of this very commit is the environment's last: it is reused, no tag is cut.
    assert prod_tags(app) == [theirs] and app.git("tag", "-l", "prod-*").split() == [theirs]
    assert all(live(deployment, h) == theirs for h in PROD)
