"""Bad releases and git_deploy_keep_tags through deploy.yml / revert.yml on real sshd
hosts: a revert passes over a rolled-back release (and says so), needs force to go to
one, and tag pruning deletes old tags upstream but never one a host needs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apprepo import AppRepo  # noqa: E402
from test_rollout import PROD, history, live, prod_tags, run  # noqa: E402


@pytest.fixture
def app(tmp_path) -> AppRepo:
    return AppRepo.create(tmp_path / "src")


def deploy_version(deployment, app, number, **extra):
    app.change("app.txt", f"version {number}\n", f"version {number}")
    before = set(prod_tags(app))
    proc = run(deployment, app, "deploy", env="prod", **extra)
    [tag] = set(prod_tags(app)) - before
    return tag, proc


def test_a_revert_passes_over_a_rolled_back_release_and_needs_force_to_go_to_one(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    tag2 = deploy_version(deployment, app, 2)[0]
    (deployment.root("prod2") / "fail-post-tree-update").touch()
    tag3, proc = deploy_version(deployment, app, 3, check=False)
    assert proc.returncode != 0 and {live(deployment, h) for h in PROD} == {tag2}

    proc = run(deployment, app, "revert", env="prod")
    assert f"reverting prod to {tag1}, the newest good rollout before {tag2}: skipped the bad release(s) {tag3}" \
        in " ".join(proc.stdout.split())
    assert {live(deployment, h) for h in PROD} == {tag1}

    records = {h: len(history(deployment, h)) for h in PROD}
    proc = run(deployment, app, "revert", check=False, tag=tag3)
    assert proc.returncode != 0
    text = " ".join(proc.stdout.split())
    assert f"{tag3} is a bad release: its deploy " in text and \
        "was rolled back (first failure: prod2 in phase switch, " in text and "-e force=true" in text
    assert {live(deployment, h) for h in PROD} == {tag1}
    assert {h: len(history(deployment, h)) for h in PROD} == records  # refused: nothing recorded

    (deployment.root("prod2") / "fail-post-tree-update").unlink()
    run(deployment, app, "revert", tag=tag3, force="true")
    assert {live(deployment, h) for h in PROD} == {tag3}
    assert history(deployment, "prod1")[-1]["result"] == "success"


def test_keep_tags_prunes_upstream_but_never_the_live_or_previous_tag(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag_a] = prod_tags(app)
    tag_b = deploy_version(deployment, app, 2)[0]
    tag_c = deploy_version(deployment, app, 3)[0]
    run(deployment, app, "revert", env="prod")  # back to B; C gets its _reverted marker
    assert f"{tag_c}_reverted" in app.upstream_tags()

    # Check mode lists what would go and deletes nothing.
    app.change("app.txt", "version 4\n", "version 4")
    before = sorted(app.upstream_tags())
    proc = run(deployment, app, "deploy", "--check", env="prod", git_deploy_keep_tags=1)
    assert f"would delete 2 old rollout tag(s) of prod (keep_tags 1, upstream and here): {tag_c}, {tag_c}_reverted" \
        in proc.stdout
    assert sorted(app.upstream_tags()) == before

    # Keep 1: D is the newest. C and its marker go; B (live before D) and A (the hosts'
    # previous rollout, C being reverted) stay, upstream and in the checkout.
    proc = run(deployment, app, "deploy", env="prod", git_deploy_keep_tags=1)
    [tag_d] = [t for t in prod_tags(app) if t not in (tag_a, tag_b, tag_c)]
    assert f"deleted 2 old rollout tag(s) of prod (keep_tags 1, upstream and here): {tag_c}, {tag_c}_reverted" \
        in proc.stdout
    assert sorted(t for t in app.upstream_tags() if t.startswith("prod-")) == sorted([tag_a, tag_b, tag_d])
    assert sorted(t for t in app.tags() if t.startswith("prod-")) == sorted([tag_a, tag_b, tag_d])
    assert {live(deployment, h) for h in PROD} == {tag_d}
    # The revert to the previous rollout still works: B, which was kept.
    run(deployment, app, "revert", env="prod")
    assert {live(deployment, h) for h in PROD} == {tag_b}
