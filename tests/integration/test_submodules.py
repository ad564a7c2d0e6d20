"""Applications with submodules, through deploy.yml and revert.yml on real sshd hosts: the
submodules (nested too) are checked out in every release at their pinned commits, their
objects travel in the rollout's bundle from the controller, and a submodule URL nobody can
reach does not matter."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from apprepo import IDENTITY, AppRepo
from conftest import snapshot

PROD = ["prod1", "prod2", "prod3"]


def git(*args, cwd):
    env = dict(os.environ, **IDENTITY)
    return subprocess.run(["git", "-c", "protocol.file.allow=always", *args], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def bare_with_commit(path, name, text, message):
    """A bare repository at ``path`` whose main branch has ``name`` = ``text``."""
    work = path.with_suffix(".work")
    git("init", "-q", "-b", "main", str(work), cwd=path.parent)
    (work / name).write_text(text)
    git("add", name, cwd=work)
    git("commit", "-qm", message, cwd=work)
    return work


@pytest.fixture
def app(tmp_path) -> AppRepo:
    """The app pins lib at vendor/lib; lib pins deep at ext/deep. lib and deep live in
    bare repositories next to the app's upstream, with relative URLs (../lib.git)."""
    repo = AppRepo.create(tmp_path / "src")
    base = repo.upstream.parent
    deep_work = bare_with_commit(base / "deep.git", "deep.txt", "deep 1\n", "deep 1")
    git("clone", "-q", "--bare", str(deep_work), str(base / "deep.git"), cwd=base)
    lib_work = bare_with_commit(base / "lib.git", "lib.txt", "lib 1\n", "lib 1")
    git("submodule", "add", "-q", "../deep.git", "ext/deep", cwd=lib_work)
    git("commit", "-qm", "pin deep", cwd=lib_work)
    git("clone", "-q", "--bare", str(lib_work), str(base / "lib.git"), cwd=base)
    # The app's remote is upstream.git: ../lib.git is next to it.
    git("submodule", "add", "-q", "../lib.git", "vendor/lib", cwd=repo.path)
    git("submodule", "update", "-q", "--init", "--recursive", cwd=repo.path)
    repo.commit("pin lib", push=True)
    return repo


def run(deployment, app, playbook, *args, check=True, **extra_vars):
    return deployment.playbook(f"gitdeploy.rollout.{playbook}", *args, extra_vars=extra_vars or None,
                               check=check, cwd=app.path, SYNC_LOG=str(app.path.parent / "sync.log"))


def live(deployment, host):
    current = deployment.root(host) / "current"
    return os.path.basename(os.readlink(current)) if current.is_symlink() else None


def prod_tags(repo_dir):
    out = subprocess.run(["git", "tag", "-l", "prod-*"], cwd=repo_dir, check=True, capture_output=True, text=True)
    return sorted(t for t in out.stdout.split() if not t.endswith("_reverted"))


def test_submodules_deploy_and_revert_with_their_urls_unreachable(deployment, app):
    base = app.upstream.parent
    for name in ("lib.git", "deep.git", "lib.work", "deep.work"):
        shutil.move(str(base / name), str(base / (name + ".gone")))  # nobody can fetch them now
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app.upstream)
    for host in PROD:
        current = deployment.root(host) / "current"
        assert (current / "vendor/lib/lib.txt").read_text() == "lib 1\n"
        assert (current / "vendor/lib/ext/deep/deep.txt").read_text() == "deep 1\n"
        assert not (current / "vendor/lib/.git").exists()
        refs = git("for-each-ref", "--format=%(refname)", "refs/git-deploy/modules/",
                   cwd=deployment.root(host) / "repo.git").split()
        assert len(refs) == 2, refs

    lib = app.path / "vendor/lib"
    (lib / "lib.txt").write_text("lib 2\n")
    git("commit", "-qam", "lib 2", cwd=lib)
    app.commit("lib 2", push=True)
    run(deployment, app, "deploy", env="prod")
    [tag2] = [t for t in prod_tags(app.upstream) if t != tag1]
    for host in PROD:
        assert live(deployment, host) == tag2
        assert (deployment.root(host) / "current/vendor/lib/lib.txt").read_text() == "lib 2\n"
        assert (deployment.root(host) / "current/vendor/lib/ext/deep/deep.txt").read_text() == "deep 1\n"

    run(deployment, app, "revert", env="prod")
    for host in PROD:
        assert live(deployment, host) == tag1
        assert (deployment.root(host) / "current/vendor/lib/lib.txt").read_text() == "lib 1\n"


def test_submodules_off_leaves_their_directories_empty(deployment, app):
    run(deployment, app, "deploy", env="staging", git_deploy_submodules=False)
    current = deployment.root("staging1") / "current"
    assert (current / "app.txt").read_text() == "version 1\n"
    assert (current / "vendor/lib").is_dir() and not list((current / "vendor/lib").iterdir())
    assert git("for-each-ref", "refs/git-deploy/modules/", cwd=deployment.root("staging1") / "repo.git") == ""


def test_a_pinned_commit_missing_on_the_controller_is_refused_and_nothing_changes(deployment, app):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app.upstream)
    missing = "1234567890" * 4
    git("update-index", "--cacheinfo", "160000,%s,vendor/lib" % missing, cwd=app.path)
    git("commit", "-qm", "pin a commit nobody has", cwd=app.path)
    git("push", "-q", "origin", "HEAD", cwd=app.path)
    before = snapshot([deployment.workdir / "roots"])
    # The checkout's submodule is at another commit than the one pinned: the tree is not clean.
    proc = run(deployment, app, "deploy", check=False, env="prod", git_deploy_allow_dirty=True)
    assert proc.returncode != 0
    assert "submodule vendor/lib is pinned by prod-" in proc.stdout and f"at commit {missing}" in proc.stdout
    assert "submodule update --init --recursive" in proc.stdout
    assert snapshot([deployment.workdir / "roots"]) == before
    assert prod_tags(app.upstream) == [tag1] and prod_tags(app.path) == [tag1]


def test_a_rollout_from_repo_url_fetches_the_submodules_on_the_controller(deployment, app, tmp_path):
    run(deployment, app, "deploy", env="staging", git_deploy_repo_url=str(app.upstream), git_deploy_version="main",
        git_deploy_cache_dir=str(tmp_path / "cache.git"))
    current = deployment.root("staging1") / "current"
    assert (current / "vendor/lib/lib.txt").read_text() == "lib 1\n"
    assert (current / "vendor/lib/ext/deep/deep.txt").read_text() == "deep 1\n"
    # The controller keeps a cache of each submodule next to the application's.
    assert (tmp_path / "cache.git/modules/vendor/lib/modules/ext/deep/HEAD").is_file()
