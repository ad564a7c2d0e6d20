"""Unit tests of plugins/module_utils/bundle.py: the cache key, the build-once cache,
sizes and checksums, and the bundles themselves (checked with the git CLI)."""

import hashlib
import multiprocessing
import os
import subprocess
import sys
import time

import pytest

from hosts import collections_path

sys.path.insert(0, str(collections_path()))

from ansible_collections.gitdeploy.rollout.plugins.module_utils import bundle  # noqa: E402

A, B, C = "a" * 40, "b" * 40, "c" * 40


# -- cache key ------------------------------------------------------------------

def test_cache_key_ignores_order_and_repeats_of_haves():
    key = bundle.cache_key("prod-1", B, A, [A, C])
    assert key == bundle.cache_key("prod-1", B, A, [C, A, C])
    assert len(key) == 64 and int(key, 16) >= 0


def test_cache_key_is_stable_across_processes():
    # No dependence on hash seeds or dict order: a fixed value.
    code = ("import sys; sys.path.insert(0, %r); "
            "from ansible_collections.gitdeploy.rollout.plugins.module_utils import bundle; "
            "print(bundle.cache_key('prod-1', %r, %r, [%r, %r]))"
            % (str(collections_path()), B, A, C, A))
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONHASHSEED=seed), check=False).stdout.strip()
            for seed in ("1", "2")}
    assert runs == {bundle.cache_key("prod-1", B, A, [A, C])}


@pytest.mark.parametrize("changed", [
    ("prod-2", B, A, [A]),   # another tag
    ("prod-1", C, A, [A]),   # the tag re-created: another tag object
    ("prod-1", B, C, [A]),   # another commit
    ("prod-1", B, A, []),    # a target with less
    ("prod-1", B, A, [A, C]),  # a target with more
])
def test_cache_key_changes_with_every_input(changed):
    assert bundle.cache_key(*changed) != bundle.cache_key("prod-1", B, A, [A])


# -- the cache ------------------------------------------------------------------

def _slow_build(log):
    def build(path):
        with open(log, "a") as handle:
            handle.write("%d\n" % os.getpid())
        time.sleep(0.5)
        with open(path, "wb") as handle:
            handle.write(b"bundle bytes " * 1000)
        return {"objects": 3, "prerequisites": [A]}
    return build


def _ask(cache_dir, log, barrier, queue):
    barrier.wait()
    built = bundle.cached(cache_dir, "k" * 64, _slow_build(log))
    queue.put((built.sha256, built.size, built.cached))


def test_two_processes_asking_at_once_build_once(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(2), context.Queue()
    log = tmp_path / "builds.log"
    workers = [context.Process(target=_ask, args=(str(tmp_path / "cache"), str(log), barrier, queue))
               for dummy in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    answers = sorted(queue.get(timeout=5) for dummy in workers)
    assert len(log.read_text().splitlines()) == 1
    assert answers[0][:2] == answers[1][:2]
    assert sorted(a[2] for a in answers) == [False, True]  # one built, one waited and reused
    assert sorted(os.listdir(tmp_path / "cache")) == ["k" * 64 + s for s in (".bundle", ".json", ".lock")]


def test_cached_reports_size_and_sha256_of_the_file(tmp_path):
    built = bundle.cached(str(tmp_path), "k" * 64, _slow_build(tmp_path / "log"))
    data = open(built.path, "rb").read()
    assert built.size == len(data) == os.path.getsize(built.path)
    assert built.sha256 == hashlib.sha256(data).hexdigest()
    assert (built.objects, built.prerequisites, built.cached) == (3, [A], False)
    assert bundle.file_digest(built.path) == (built.size, built.sha256)
    again = bundle.cached(str(tmp_path), "k" * 64, pytest.fail)
    assert again._replace(cached=False) == built


def test_failed_build_leaves_nothing_and_forget_forces_a_rebuild(tmp_path):
    def broken(path):
        open(path, "wb").write(b"half")
        raise bundle.BundleError("boom")

    with pytest.raises(bundle.BundleError):
        bundle.cached(str(tmp_path), "k" * 64, broken)
    assert sorted(os.listdir(tmp_path)) == ["k" * 64 + ".lock"]
    log = tmp_path / "log"
    bundle.cached(str(tmp_path), "k" * 64, _slow_build(log))
    bundle.forget(str(tmp_path), "k" * 64)
    bundle.cached(str(tmp_path), "k" * 64, _slow_build(log))
    assert len(log.read_text().splitlines()) == 2


def test_a_cache_entry_whose_size_changed_is_rebuilt(tmp_path):
    log = tmp_path / "log"
    built = bundle.cached(str(tmp_path / "c"), "k" * 64, _slow_build(log))
    with open(built.path, "ab") as handle:
        handle.write(b"x")
    bundle.cached(str(tmp_path / "c"), "k" * 64, _slow_build(log))
    assert len(log.read_text().splitlines()) == 2


def test_a_planted_cache_entry_of_the_right_size_is_not_sent(tmp_path):
    """A cached bundle is used only when its SHA-256 is still the recorded one."""
    log = tmp_path / "log"
    built = bundle.cached(str(tmp_path / "c"), "k" * 64, _slow_build(log))
    original = open(built.path, "rb").read()
    with open(built.path, "r+b") as handle:
        handle.write(b"X" * 13)   # same size, other bytes
    again = bundle.cached(str(tmp_path / "c"), "k" * 64, _slow_build(log))
    assert not again.cached and len(log.read_text().splitlines()) == 2
    assert open(again.path, "rb").read() == original and again.sha256 == built.sha256


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777])
def test_a_cache_others_can_write_to_is_refused(tmp_path, mode):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(mode)
    with pytest.raises(bundle.BundleError, match="writable by its group or by anyone.*chmod go-w"):
        bundle.cached(str(cache), "k" * 64, pytest.fail)
    assert os.listdir(cache) == []


def test_a_cache_of_another_user_or_a_symlink_is_refused(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    link = tmp_path / "link"
    link.symlink_to(mine)
    with pytest.raises(bundle.BundleError, match="not a directory"):
        bundle.cached(str(link), "k" * 64, pytest.fail)
    st = os.lstat(mine)
    other = os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid + 1) + tuple(st)[5:])
    with pytest.raises(bundle.BundleError, match="belongs to uid %d, not to you" % (st.st_uid + 1)):
        bundle.check_cache_dir(str(mine), other)
    assert os.listdir(mine) == []


def test_a_symlink_planted_as_the_lock_file_is_not_followed(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (cache / ("k" * 64 + ".lock")).symlink_to(victim)
    with pytest.raises(bundle.BundleError, match="never followed"):
        bundle.cached(str(cache), "k" * 64, pytest.fail)
    assert victim.read_text() == "keep me"


def test_old_entries_are_pruned_when_a_new_one_is_built(tmp_path):
    old = tmp_path / ("o" * 64 + ".bundle")
    old.write_bytes(b"old")
    os.utime(old, (1, 1))
    bundle.cached(str(tmp_path), "k" * 64, _slow_build(tmp_path / "log"))
    assert not old.exists()


def test_default_cache_dir_is_under_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert bundle.default_cache_dir() == str(tmp_path / "gitdeploy" / "bundles")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/deploy")
    assert bundle.default_cache_dir() == "/home/deploy/.cache/gitdeploy/bundles"


# -- delta chains -----------------------------------------------------------------

# -- bundles, checked with the git CLI -----------------------------------------------

def git(*args, cwd=None):
    env = dict(os.environ, GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="d@example.com",
               GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="d@example.com", GIT_CONFIG_NOSYSTEM="1")
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """History with a root tree of 40 files, tags v1 and v2 (v2 = one-file change)."""
    path = tmp_path / "src"
    git("init", "-q", str(path))
    for i in range(40):
        (path / ("f%02d.txt" % i)).write_text("".join("file %d line %d\n" % (i, n) for n in range(200)))
    os.symlink("f00.txt", path / "link")
    git("add", "-A", cwd=path)
    git("commit", "-qm", "import", cwd=path)
    for n in range(5):
        with open(path / ("f%02d.txt" % n), "a") as handle:
            handle.write("change %d\n" % n)
        git("commit", "-qam", "change %d" % n, cwd=path)
    git("tag", "-a", "v1", "-m", "v1", cwd=path)
    with open(path / "f07.txt", "a") as handle:
        handle.write("one more line\n")
    git("commit", "-qam", "one-file change", cwd=path)
    git("tag", "-a", "v2", "-m", "v2", cwd=path)
    git("pack-refs", "--all", cwd=path)  # peeled packed refs: the tag object must still travel
    return path


def deliver(repo, tmp_path, name, haves, target):
    r = bundle.open_repo(str(repo))
    try:
        tag_object, commit = bundle.resolve_tag(r, name)
        out = tmp_path / ("%s-%d.bundle" % (name, len(haves)))
        meta = bundle.write_tag_bundle(r, name, tag_object, bundle.known_commits(r, haves), str(out))
    finally:
        r.close()
    git("bundle", "verify", "-q", str(out), cwd=target)
    git("fetch", "-q", str(out), "refs/tags/%s:refs/tags/%s" % (name, name), cwd=target)
    assert git("rev-parse", name, cwd=target) == tag_object
    assert git("cat-file", "-t", name, cwd=target) == "tag"
    assert git("rev-parse", name + "^{commit}", cwd=target) == commit
    return out.stat().st_size, meta


def test_bundles_fetch_into_git_and_increments_stay_near_gits_own(repo, tmp_path):
    target = tmp_path / "target.git"
    git("init", "-q", "--bare", str(target))
    c1 = git("rev-parse", "v1^{commit}", cwd=repo)
    c2 = git("rev-parse", "v2^{commit}", cwd=repo)

    full, meta = deliver(repo, tmp_path, "v1", [], target)
    assert meta["prerequisites"] == [] and meta["objects"] > 40
    inc, meta = deliver(repo, tmp_path, "v2", [c1, "f" * 40], target)  # unknown haves are ignored
    assert meta == {"objects": 4, "prerequisites": [c1], "modules": []}  # tag, commit, root tree, blob
    git("bundle", "create", "-q", str(tmp_path / "floor.bundle"), "v2", "^" + c1, cwd=repo)
    assert inc <= 1.1 * (tmp_path / "floor.bundle").stat().st_size
    assert inc * 10 < full
    git("fsck", "--strict", "--no-dangling", cwd=target)

    # A new tag of a commit the target has: the tag object alone.
    git("tag", "-a", "v2-again", "-m", "again", c2, cwd=repo)
    size, meta = deliver(repo, tmp_path, "v2-again", [c1, c2], target)
    assert meta == {"objects": 1, "prerequisites": [c2], "modules": []} and size < 1024


def test_a_packed_repository_sends_gits_own_deltas(repo, tmp_path):
    for n in range(30):  # versions of one file: git stores them as deltas
        with open(repo / "f10.txt", "a") as handle:
            handle.write("growing %d\n" % n)
        git("commit", "-qam", "grow %d" % n, cwd=repo)
    git("tag", "-a", "v3", "-m", "v3", cwd=repo)
    git("repack", "-q", "-a", "-d", "-f", cwd=repo)
    git("prune-packed", cwd=repo)
    target = tmp_path / "target.git"
    git("init", "-q", "--bare", str(target))
    size, meta = deliver(repo, tmp_path, "v3", [], target)
    git("bundle", "create", "-q", str(tmp_path / "floor.bundle"), "v3", cwd=repo)
    assert size <= 1.1 * (tmp_path / "floor.bundle").stat().st_size
    git("fsck", "--strict", "--no-dangling", cwd=target)


def test_the_same_inputs_give_the_same_bytes(repo, tmp_path):
    r = bundle.open_repo(str(repo))
    try:
        tag_object, _commit = bundle.resolve_tag(r, "v2")
        for name in ("one", "two"):
            bundle.write_tag_bundle(r, "v2", tag_object, [], str(tmp_path / name))
    finally:
        r.close()
    assert bundle.file_digest(str(tmp_path / "one")) == bundle.file_digest(str(tmp_path / "two"))


def test_tag_bundle_caches_per_key_and_checks_the_commit(repo, tmp_path):
    c1 = git("rev-parse", "v1^{commit}", cwd=repo)
    c2 = git("rev-parse", "v2^{commit}", cwd=repo)
    cache = str(tmp_path / "cache")
    first = bundle.tag_bundle(cache, str(repo), "v2", c2, [c1])
    again = bundle.tag_bundle(cache, str(repo), "v2", c2, [c1])
    assert (first.cached, again.cached) == (False, True) and first.path == again.path
    assert first.prerequisites == [c1]
    with pytest.raises(bundle.BundleError, match="points to commit %s, not %s" % (c2, c1)):
        bundle.tag_bundle(cache, str(repo), "v2", c1, [])
    with pytest.raises(bundle.BundleError, match="git_deploy_tag"):
        bundle.tag_bundle(cache, str(repo), "nope", c1, [])
    with pytest.raises(bundle.BundleError, match="not a git repository"):
        bundle.tag_bundle(cache, str(tmp_path / "missing"), "v2", c2, [])


def test_a_shallow_controller_checkout_is_a_clear_error(repo, tmp_path):
    shallow = tmp_path / "shallow"
    git("clone", "-q", "--depth", "1", "file://%s" % repo, str(shallow))
    git("tag", "-a", "v9", "-m", "v9", cwd=shallow)
    commit = git("rev-parse", "HEAD", cwd=shallow)
    with pytest.raises(bundle.BundleError, match=r"is not in the controller's repository; it is a shallow clone: "
                                                 r"run git -C .* fetch --unshallow"):
        bundle.tag_bundle(str(tmp_path / "cache"), str(shallow), "v9", commit, [])
