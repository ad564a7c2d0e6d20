"""Submodules, end to end below Ansible: the controller's bundle (bundle.py, packing.py)
brings the commits a tag pins as submodules, nested too, from the submodules'
repositories under .git/modules; the target's store (store.py) keeps them under
refs/git-deploy/modules/ and the release (release.py) checks them out. Real git, real
dulwich; the submodules' URLs are gone before anything is built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from hosts import collections_path

sys.path.insert(0, str(collections_path()))

from ansible_collections.gitdeploy.rollout.plugins.module_utils import bundle, gitrepo, packing  # noqa: E402
from ansible_collections.gitdeploy.rollout.plugins.module_utils import release as rel  # noqa: E402
from ansible_collections.gitdeploy.rollout.plugins.module_utils import store as st  # noqa: E402

ENV = dict(GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="d@example.com", GIT_COMMITTER_NAME="Dev",
           GIT_COMMITTER_EMAIL="d@example.com", GIT_CONFIG_NOSYSTEM="1")


def git(*args, cwd=None):
    proc = subprocess.run(["git", "-c", "protocol.file.allow=always", *args], cwd=cwd, env=dict(os.environ, **ENV),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def run_command(args, environ_update=None, data=None, binary_data=False, expand_user_and_vars=True, **_kw):
    proc = subprocess.run(args, input=data.encode() if isinstance(data, str) else data, capture_output=True,
                          env=dict(os.environ, **(environ_update or {})), check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def commit_file(repo, name, text, message):
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)
    git("add", name, cwd=repo)
    git("commit", "-qm", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


@pytest.fixture
def app(tmp_path):
    """app pins lib at vendor/lib, and lib pins deep at ext/deep (a nested submodule); their
    upstreams are deleted once the checkout has them: only .git/modules holds them."""
    upstream = tmp_path / "upstream"
    for name in ("deep", "lib", "app"):
        git("init", "-q", "-b", "main", str(upstream / name))
    deep, lib, app = (upstream / n for n in ("deep", "lib", "app"))
    for n in range(3):
        commit_file(deep, "deep.txt", "".join("deep %d line %d\n" % (n, i) for i in range(100)), "deep %d" % n)
    commit_file(lib, "lib.txt", "lib 1\n", "lib 1")
    git("submodule", "add", "-q", str(deep), "ext/deep", cwd=lib)
    git("commit", "-qm", "pin deep", cwd=lib)
    commit_file(app, "app.txt", "app 1\n", "app 1")
    checkout = tmp_path / "checkout"
    git("clone", "-q", str(app), str(checkout))
    git("submodule", "add", "-q", str(lib), "vendor/lib", cwd=checkout)
    git("submodule", "update", "-q", "--init", "--recursive", cwd=checkout)
    git("commit", "-qm", "pin lib", cwd=checkout)
    git("tag", "-a", "v1", "-m", "v1", cwd=checkout)
    shutil.rmtree(upstream)
    return checkout


def build(checkout, tmp_path, tag, haves=(), submodules=True):
    repo = bundle.open_repo(str(checkout))
    try:
        tag_object, _commit = bundle.resolve_tag(repo, tag)
        out = tmp_path / ("%s-%d-%s.bundle" % (tag, len(haves), submodules))
        meta = bundle.write_tag_bundle(repo, tag, tag_object, list(haves), str(out), submodules)
    finally:
        repo.close()
    return out, meta


def ingest(target, checkout, tag, path):
    commit = git("rev-parse", tag + "^{commit}", cwd=checkout)
    store = st.Store(str(target), run_command)
    assert store.ingest(tag, commit, str(path), path.stat().st_size, st.file_sha256(str(path)))
    return store, commit


def test_a_tag_brings_its_nested_submodules_and_the_release_checks_them_out(app, tmp_path):
    lib_commit = git("rev-parse", "HEAD", cwd=app / "vendor/lib")
    deep_commit = git("rev-parse", "HEAD", cwd=app / "vendor/lib/ext/deep")
    path, meta = build(app, tmp_path, "v1")
    assert sorted(meta["modules"]) == sorted([lib_commit, deep_commit])
    # The submodules' whole history travels (what `git clone` of each would bring): 3 commits of deep.
    target = tmp_path / "root" / "repo.git"
    store, commit = ingest(target, app, "v1", path)
    refs = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/git-deploy/modules/", cwd=target)
    assert sorted(refs.splitlines()) == sorted("refs/git-deploy/modules/%s %s" % (c, c)
                                               for c in (lib_commit, deep_commit))
    assert git("rev-list", "--count", deep_commit, cwd=target) == "3"
    git("fsck", "--strict", "--no-dangling", cwd=target)
    # The store reports the submodule commits among its haves: the next bundle leaves them out.
    assert {lib_commit, deep_commit} <= set(store.haves()["haves"])

    tree = rel.ReleaseTree(str(tmp_path / "root"), run_command)
    out = tmp_path / "release"
    out.mkdir()
    tree.checkout(commit, str(out), str(tmp_path / "index"))
    assert (out / "app.txt").read_text() == "app 1\n"
    assert (out / "vendor/lib/lib.txt").read_text() == "lib 1\n"
    assert (out / "vendor/lib/ext/deep/deep.txt").read_text().startswith("deep 2 line 0\n")
    assert not (out / "vendor/lib/.git").exists() and not list(tmp_path.glob("index*"))


def test_an_incremental_bundle_brings_only_what_changed_in_a_submodule(app, tmp_path):
    first, _meta = build(app, tmp_path, "v1")
    target = tmp_path / "root" / "repo.git"
    store, _commit = ingest(target, app, "v1", first)
    lib = app / "vendor/lib"
    commit_file(lib, "lib.txt", "lib 2\n", "lib 2")
    git("add", "vendor/lib", cwd=app)
    git("commit", "-qm", "lib 2", cwd=app)
    git("tag", "-a", "v2", "-m", "v2", cwd=app)
    path, meta = build(app, tmp_path, "v2", store.haves()["haves"])
    # app: tag, commit, root tree, vendor tree; lib: commit, its root tree, one blob.
    assert meta["objects"] == 7, meta
    _store, commit = ingest(target, app, "v2", path)
    tree = rel.ReleaseTree(str(tmp_path / "root"), run_command)
    out = tmp_path / "release2"
    out.mkdir()
    tree.checkout(commit, str(out), str(tmp_path / "index"))
    assert (out / "vendor/lib/lib.txt").read_text() == "lib 2\n"
    assert (out / "vendor/lib/ext/deep/deep.txt").exists()


def test_without_submodules_nothing_of_them_travels_and_their_directories_stay_empty(app, tmp_path):
    path, meta = build(app, tmp_path, "v1", submodules=False)
    assert meta["modules"] == []
    target = tmp_path / "root" / "repo.git"
    _store, commit = ingest(target, app, "v1", path)
    tree = rel.ReleaseTree(str(tmp_path / "root"), run_command, submodules=False)
    out = tmp_path / "release"
    out.mkdir()
    tree.checkout(commit, str(out), str(tmp_path / "index"))
    assert (out / "app.txt").exists() and not (out / "vendor/lib/lib.txt").exists()
    # A release that wants them from a store that lacks them says which and how to fix it.
    (tmp_path / "other").mkdir()
    with pytest.raises(rel.ReleaseError, match="submodule vendor/lib is pinned at commit [0-9a-f]{40}, which is "
                                               "not in .*git_deploy_submodules: true"):
        rel.ReleaseTree(str(tmp_path / "root"), run_command).checkout(commit, str(tmp_path / "other"),
                                                                      str(tmp_path / "index2"))


def test_a_pinned_commit_the_controller_lacks_is_named_with_its_path(app, tmp_path):
    shutil.rmtree(app / ".git" / "modules" / "vendor" / "lib" / "modules")
    with pytest.raises(bundle.BundleError) as raised:
        build(app, tmp_path, "v1")
    deep_commit = git("ls-tree", "HEAD", "ext/deep", cwd=app / "vendor/lib").split()[2]
    msg = str(raised.value)
    assert "submodule vendor/lib/ext/deep is pinned by v1 at commit %s" % deep_commit in msg
    assert "submodule update --init --recursive" in msg and "git_deploy_submodules: false" in msg
    assert not list(tmp_path.glob("*.bundle"))


def test_a_gitlink_without_gitmodules_is_no_submodule(tmp_path):
    repo = tmp_path / "r"
    git("init", "-q", str(repo))
    commit_file(repo, "a.txt", "a\n", "a")
    git("update-index", "--add", "--cacheinfo", "160000,%s,vendored" % ("1" * 40), cwd=repo)
    git("commit", "-qm", "a bare gitlink", cwd=repo)
    git("tag", "-a", "v1", "-m", "v1", cwd=repo)
    _path, meta = build(repo, tmp_path, "v1")
    assert meta["modules"] == []


def test_plans_of_unrelated_histories_merge_into_one():
    one = packing.Plan({b"a", b"b", b"x"}, [b"a"], [b"p"], {b"t"})
    two = packing.Plan({b"c", b"x"}, [b"c", b"a"], [b"q"], {b"x"})
    merged = packing.merge([one, two])
    assert merged.send == {b"a", b"b", b"c"}  # x: the target has it (a boundary tree of the second)
    assert merged.commits == [b"a", b"c"] and merged.prerequisites == [b"p", b"q"]
    assert merged.remote == {b"t", b"x"}


@pytest.mark.parametrize("base, url, resolved", [
    ("https://git.example.com/shop/app.git", "../lib.git", "https://git.example.com/shop/lib.git"),
    ("https://git.example.com/shop/app.git", "./lib.git", "https://git.example.com/shop/app.git/lib.git"),
    ("git@git.example.com:shop/app.git", "../lib.git", "git@git.example.com:shop/lib.git"),
    ("/srv/git/app.git", "../lib.git", "/srv/git/lib.git"),
    ("/srv/git/app.git", "https://other.example.com/lib.git", "https://other.example.com/lib.git"),
])
def test_relative_submodule_urls_resolve_against_the_repository_url(base, url, resolved):
    assert gitrepo.module_url(base, url) == resolved


@pytest.mark.parametrize("name", ["../evil", "a/../../b", "/abs", "", "a//b"])
def test_unsafe_submodule_names_are_refused(name):
    with pytest.raises(gitrepo.GitError):
        gitrepo.check_relative_name(name)


def test_parse_gitlinks():
    out = "100644 blob %s\ta.txt\x00160000 commit %s\tvendor/lib\x00160000 commit %s\tsp ace/x\x00" % (
        "a" * 40, "b" * 40, "c" * 40)
    assert rel.parse_gitlinks(out) == [("vendor/lib", "b" * 40), ("sp ace/x", "c" * 40)]
    assert rel.parse_gitlinks("") == []
