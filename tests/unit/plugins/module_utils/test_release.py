"""Unit tests for plugins/module_utils/release.py: prune selection, tag ordering, parsing,
the atomic symlink swap, and the release tree engine against a local git repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hosts import collections_path

sys.path.insert(0, str(collections_path()))

from ansible_collections.gitdeploy.rollout.plugins.module_utils import release as rel  # noqa: E402
from ansible_collections.gitdeploy.rollout.plugins.module_utils.release import (  # noqa: E402
    ReleaseError,
    ReleaseTree,
    check_commit,
    check_keep,
    check_shared_paths,
    newest_other,
    parse_deploy_file,
    parse_name_status,
    select_prune,
    sort_tags,
    swap_symlink,
    tag_of_link,
)

T1, T2, T3, T4, T5 = ("prod-20260101-000000", "prod-20260102-000000", "prod-20260103-000000",
                      "prod-20260104-000000", "prod-20260105-000000")


# -- pure logic ------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, -1, "x", None, True])
def test_keep_must_be_positive(bad):
    with pytest.raises(ValueError, match="keep_releases=.* must be 1 or more"):
        check_keep(bad)


def test_keep_accepts_positive_ints():
    assert check_keep(1) == 1
    assert check_keep("3") == 3


def test_commit_must_be_full_sha():
    assert check_commit("A" * 40) == "a" * 40
    assert check_commit("b" * 64) == "b" * 64
    for bad in ("abc123", "g" * 40, "", None):
        with pytest.raises(ValueError, match="not a full commit id"):
            check_commit(bad)


def test_shared_paths_are_normalised_and_checked():
    assert check_shared_paths(["var/uploads/", "./config/local.yml"]) == ["var/uploads", "config/local.yml"]
    assert check_shared_paths(None) == []
    for bad in (["/etc"], ["../x"], ["a/../../x"], ["."], [".git/config"]):
        with pytest.raises(ValueError):
            check_shared_paths(bad)
    with pytest.raises(ValueError, match="nested"):
        check_shared_paths(["var", "var/uploads"])
    with pytest.raises(ValueError, match="twice"):
        check_shared_paths(["var", "var/"])


def test_tags_sort_by_date_then_collision_suffix():
    tags = ["prod-20260102-000000_B", "prod-20260102-000000", "prod-20260101-235959",
            "prod-20260102-000000_AA", "prod-20260102-000000_A", "prod-20260102-000000_Z"]
    assert sort_tags(tags) == ["prod-20260101-235959", "prod-20260102-000000", "prod-20260102-000000_A",
                               "prod-20260102-000000_B", "prod-20260102-000000_Z", "prod-20260102-000000_AA"]


def test_tags_sort_across_prefixes_by_date():
    assert sort_tags(["zeta-20260102-000000", "alpha-20260103-000000", "beta-20260101-000000"]) == [
        "beta-20260101-000000", "zeta-20260102-000000", "alpha-20260103-000000"]


def test_tags_without_a_date_sort_by_given_times():
    times = {"custom-b": 1767225600 + 3600 * 36, "custom-a": 5}  # 2026-01-02 12:00 UTC, 1970
    assert sort_tags(["custom-b", T2, T3, "custom-a"], times) == ["custom-a", T2, "custom-b", T3]


def test_prune_keeps_the_newest():
    assert select_prune([T5, T1, T3, T2, T4], 3, live=T5, previous=T4) == [T1, T2]


def test_prune_never_removes_live_or_previous_even_when_oldest():
    assert select_prune([T1, T2, T3, T4, T5], 2, live=T1, previous=T2) == [T3, T4, T5]
    assert select_prune([T1, T2, T3], 1, live=T3, previous=T1) == [T2]


def test_prune_removes_failed_first_and_whatever_keep_says():
    assert select_prune([T1, T2, T3], 5, live=T3, failed=[T2]) == [T2]
    # the failed one goes first, then the oldest until only keep are left
    assert select_prune([T1, T2, T3, T4, T5], 2, live=T5, previous=T4, failed=[T3]) == [T3, T1, T2]


def test_prune_keeps_a_failed_release_that_is_live_or_previous():
    assert select_prune([T1, T2, T3], 5, live=T3, previous=T2, failed=[T2, T3]) == []


def test_prune_takes_unfinished_before_complete():
    assert select_prune([T1, T2, T3, T4], 3, live=T4, unfinished=[T3]) == [T3]


def test_prune_with_nothing_to_do():
    assert select_prune([], 5) == []
    assert select_prune([T1, T2], 5, live=T2) == []
    assert select_prune([T1, T2], 1, live=T2, previous=T1) == []
    with pytest.raises(ValueError):
        select_prune([T1], 0)


def test_prune_honours_extra_protection():
    assert select_prune([T1, T2, T3, T4], 1, live=T4, previous=T3, protect=[T1]) == [T2]


def test_newest_other_skips_live_and_failed():
    assert newest_other([T1, T2, T3], T3) == T2
    assert newest_other([T1, T2, T3], T3, failed=[T2]) == T1
    assert newest_other([T3], T3) is None


def test_parse_deploy_file_reads_the_header_only():
    text = "commit: abc\ntag: prod-20260101-000000\ndeployed-by: alice\n\nrollout of prod\nnote: not a field\n"
    assert parse_deploy_file(text) == {"commit": "abc", "tag": "prod-20260101-000000", "deployed-by": "alice"}
    assert parse_deploy_file(None) == {}


def test_parse_name_status_excludes_the_deploy_file():
    out = "M\0app.txt\0D\0gone.txt\0M\0.deploy\0T\0sp ace/x\0"
    assert parse_name_status(out, exclude=(".deploy",)) == [
        {"status": "M", "path": "app.txt"}, {"status": "D", "path": "gone.txt"},
        {"status": "T", "path": "sp ace/x"}]
    assert parse_name_status("") == []


def test_tag_of_link():
    assert tag_of_link("releases/" + T1, "/srv/app/releases") == T1
    assert tag_of_link("/srv/app/releases/" + T1, "/srv/app/releases") == T1
    assert tag_of_link("/elsewhere/" + T1, "/srv/app/releases") is None
    assert tag_of_link("releases/" + T1 + "/sub", "/srv/app/releases") is None
    assert tag_of_link(None, "/srv/app/releases") is None


def test_swap_symlink_replaces_atomically(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "marker").write_text(name)
    link = str(tmp_path / "current")
    swap_symlink("a", link)
    assert os.readlink(link) == "a"
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.append(open(os.path.join(link, "marker")).read())
            except OSError as exc:  # pragma: no cover - the failure being tested for
                seen.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(300):
        swap_symlink("ab"[i % 2], link)
    stop.set()
    thread.join()
    assert seen and all(s in ("a", "b") for s in seen)
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "current"]


def test_remove_path_handles_read_only_directories(tmp_path):
    tree = tmp_path / "tree"
    (tree / "ro" / "deep").mkdir(parents=True)
    (tree / "ro" / "deep" / "f").write_text("x")
    (tree / "link").symlink_to(tmp_path)
    os.chmod(tree / "ro" / "deep", 0o500)
    os.chmod(tree / "ro", 0o500)
    rel.remove_path(str(tree))
    assert not tree.exists() and tmp_path.exists()


# -- the engine against a local repository -----------------------------------

def run_command(args, environ_update=None, data=None, binary_data=False, expand_user_and_vars=True, **_kw):
    env = dict(os.environ)
    env.update(environ_update or {})
    proc = subprocess.run(args, input=data.encode() if isinstance(data, str) else data,
                          capture_output=True, env=env, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A repository with three annotated rollout tags; returns (path, {tag: commit})."""
    src = tmp_path_factory.mktemp("src") / "app"
    src.mkdir()
    git("init", "-q", "-b", "main", str(src))
    git("config", "user.email", "t@example.com", cwd=src)
    git("config", "user.name", "Test", cwd=src)
    commits = {}
    trees = {
        T1: {"app.txt": "one\n", "old.txt": "old\n", "var/uploads/seed.txt": "seed\n",
             "deploy/apps/common/pre-sync.010_x.sh": "#!/bin/sh\n"},
        T2: {"app.txt": "two\n", "var/uploads/seed.txt": "seed\n", "deploy/apps/common/pre-sync.010_x.sh": "#!/bin/sh\n"},
        T3: {"app.txt": "three\n", "deploy/apps/common/pre-sync.020_y.sh": "#!/bin/sh\n"},
    }
    for tag, files in trees.items():
        subprocess.run(["git", "rm", "-rq", "--ignore-unmatch", "."], cwd=src, check=True)
        for name, text in files.items():
            path = src / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git("add", "-A", cwd=src)
        git("commit", "-qm", tag, cwd=src)
        git("tag", "-a", tag, "-m", "rollout " + tag, cwd=src)
        commits[tag] = git("rev-parse", "HEAD", cwd=src)
    return src, commits


@pytest.fixture
def tree(source, tmp_path):
    src, _commits = source
    root = tmp_path / "root"
    root.mkdir()
    git("clone", "-q", "--bare", str(src), str(root / "repo.git"))
    return ReleaseTree(str(root), run_command)


def fresh(tree, check_mode=False):
    return ReleaseTree(tree.root, run_command, check_mode=check_mode,
                       deploy_file_name=tree.deploy_file_name, hook_dir=tree.hook_dir)


def test_prepare_writes_a_complete_tree_without_git(tree, source):
    commits = source[1]
    result = tree.prepare_release(T1, commits[T1], deploy_file="tag: %s\n" % T1, shared_paths=["var/uploads"])
    path = Path(result["release"])
    assert path == Path(tree.root, "releases", T1)
    assert (path / "app.txt").read_text() == "one\n"
    assert not (path / ".git").exists()
    assert (path / ".deploy").read_text() == "tag: %s\n" % T1
    assert os.readlink(path / "var" / "uploads") == "../../../shared/var/uploads"
    assert (Path(tree.root) / "shared/var/uploads/seed.txt").read_text() == "seed\n"
    assert sorted(os.listdir(Path(tree.root) / "releases")) == [T1]
    again = fresh(tree)
    same = again.prepare_release(T1, commits[T1], deploy_file="tag: %s\n" % T1, shared_paths=["var/uploads"])
    assert again.actions == [] and same["diff"]["before"] == same["diff"]["after"]
    changed = fresh(tree)
    changed.prepare_release(T1, commits[T1], deploy_file="tag: %s (fixed)\n" % T1,
                            shared_paths=["var/uploads", "tmp/cache"])
    assert changed.actions == ["link %s/tmp/cache to %s/shared/tmp/cache" % (path, tree.root),
                               "write %s/.deploy" % path]
    assert (path / ".deploy").read_text() == "tag: %s (fixed)\n" % T1
    assert os.readlink(path / "tmp" / "cache") == "../../../shared/tmp/cache"


def test_prepare_refuses_a_moved_tag(tree, source):
    commits = source[1]
    with pytest.raises(ReleaseError, match="points to commit .* not to the commit"):
        tree.prepare_release(T1, commits[T2])


def test_prepare_without_the_tag_says_to_deliver_it(tree):
    with pytest.raises(ReleaseError, match="git_deploy_push"):
        tree.prepare_release("prod-20990101-000000", None)


def test_prepare_cleans_dead_leftovers_and_keeps_live_ones(tree, source):
    commits = source[1]
    releases = Path(tree.root, "releases")
    releases.mkdir()
    dead = releases / (".%s.tmp-999999999" % T2)
    (dead / "half").mkdir(parents=True)
    alive = releases / (".%s.tmp-%d" % (T2, os.getppid()))
    alive.mkdir()
    tree.prepare_release(T1, commits[T1])
    assert not dead.exists() and alive.exists()
    assert tree.cleaned == [str(dead)]


def test_prepare_replaces_an_unfinished_release(tree, source):
    commits = source[1]
    half = Path(tree.root, "releases", T1)
    half.mkdir(parents=True)
    (half / "junk").write_text("x")
    tree.prepare_release(T1, commits[T1])
    assert not (half / "junk").exists() and (half / "app.txt").exists()


def test_shared_path_through_a_symlink_in_the_tree_is_refused(tree, source, tmp_path):
    commits = source[1]
    outside = tmp_path / "outside"
    outside.mkdir()
    tree.prepare_release(T1, commits[T1])
    os.symlink(str(outside), os.path.join(tree.layout.release(T1), "data"))
    with pytest.raises(ReleaseError, match="symlink or a file"):
        fresh(tree).prepare_release(T1, commits[T1], shared_paths=["data/cache"])
    assert os.listdir(outside) == []


def test_live_prunes_and_protects(tree, source):
    commits = source[1]
    for tag in (T1, T2, T3):
        fresh(tree).prepare_release(tag, commits[tag])
    fresh(tree).switch_release(T1, keep=5)
    marked = fresh(tree).mark_failed(T2)
    assert marked["commit"] == commits[T2] and marked["marked"]
    assert json.loads(Path(tree.failed_marker(T2)).read_text())["commit"] == commits[T2]
    result = fresh(tree).switch_release(T3, keep=1)
    assert result["previous_tag"] == T1
    assert result["pruned"] == [T2]  # failed goes; T1 is the previous release
    assert sorted(os.listdir(Path(tree.root, "releases"))) == [T1, T3]
    assert not os.path.exists(tree.failed_marker(T2))
    assert not os.path.exists(tree.prepared_meta_path(T2))


def test_live_of_an_unprepared_release_fails_with_the_fix(tree):
    with pytest.raises(ReleaseError, match="prepare it first"):
        tree.switch_release(T1)


def test_live_refuses_an_in_place_tree(tree, source):
    fresh(tree).switch_in_place(T1, source[1][T1])
    with pytest.raises(ReleaseError, match="strategy=in_place"):
        fresh(tree).switch_release(T1)


def test_check_mode_reports_and_writes_nothing(tree, source):
    commits = source[1]
    fresh(tree).prepare_release(T1, commits[T1])
    fresh(tree).switch_release(T1)
    before = snapshot(tree.root)
    dry = fresh(tree, check_mode=True)
    dry.prepare_release(T2, commits[T2], deploy_file="x")
    assert any(a.startswith("would create release") for a in dry.actions)
    dry = fresh(tree, check_mode=True)
    result = dry.switch_release(T2, keep=1)
    assert result["previous_tag"] == T1 and result["pruned"] == []
    assert dry.warnings  # the release is not there: a real run prepares it first
    assert snapshot(tree.root) == before


def test_in_place_flow(tree, source):
    commits = source[1]
    prepared = fresh(tree).prepare_in_place(T1, commits[T1])
    hooks = Path(prepared["release"])
    assert (hooks / "deploy/apps/common/pre-sync.010_x.sh").exists()
    assert not (hooks / "app.txt").exists()
    first = fresh(tree).switch_in_place(T1, commits[T1], deploy_file="tag: %s\ncommit: %s\n" % (T1, commits[T1]))
    current = Path(tree.root, "current")
    assert first["previous_tag"] is None and (current / "old.txt").exists()
    idem = fresh(tree)
    assert idem.switch_in_place(T1, commits[T1], deploy_file="tag: %s\ncommit: %s\n" % (T1, commits[T1]))
    assert idem.actions == []
    (current / "app.txt").write_text("hacked\n")
    (current / "untracked.txt").write_text("mine\n")
    with pytest.raises(ReleaseError, match="changed locally: M app.txt"):
        fresh(tree).prepare_in_place(T2, commits[T2])
    forced = fresh(tree).switch_in_place(T2, commits[T2], force=True)
    assert forced["local_modifications"] == [{"status": "M", "path": "app.txt"}]
    assert forced["previous_tag"] == T1
    assert (current / "app.txt").read_text() == "two\n"
    assert not (current / "old.txt").exists()
    assert (current / "untracked.txt").exists()
    assert not (current / ".deploy").exists()  # T1's deploy file would lie about T2
    info = fresh(tree).describe("in_place")
    assert info["live_tag"] == T2 and info["live_commit"] == commits[T2] and not info["dirty"]
    assert info["previous_tag"] == T1
    # going back to the previous tag without a deploy file restores that tag's own
    back = fresh(tree).switch_in_place(T1, None)
    assert back["previous_tag"] == T2 and back["commit"] == commits[T1]
    assert (current / ".deploy").read_text() == "tag: %s\ncommit: %s\n" % (T1, commits[T1])
    assert (current / "old.txt").exists()
    idem = fresh(tree)
    idem.switch_in_place(T1, None)
    assert idem.actions == []


def test_in_place_restores_an_edited_file_unchanged_between_tags(tree, source):
    commits = source[1]
    fresh(tree).switch_in_place(T1, commits[T1])
    seed = Path(tree.root, "current", "var/uploads/seed.txt")
    seed.write_text("edited\n")  # the same blob in T1 and T2: read-tree alone would keep the edit
    fresh(tree).switch_in_place(T2, commits[T2], force=True)
    assert seed.read_text() == "seed\n"


def test_describe_an_empty_root(tmp_path):
    info = ReleaseTree(str(tmp_path / "nothing"), run_command).describe()
    assert info["exists"] is False and info["live_tag"] is None and info["releases"] == []
    assert info["history"] == [] and info["history_corrupt_lines"] == 0


def test_describe_previous_from_history(tree, source):
    commits = source[1]
    for tag in (T1, T2, T3):
        fresh(tree).prepare_release(tag, commits[tag])
    fresh(tree).switch_release(T3)
    history = Path(tree.root, ".git-deploy", "history.jsonl")
    history.parent.mkdir(exist_ok=True)
    history.write_text("\n".join([
        json.dumps({"action": "deploy", "tag": T1, "result": "success"}),
        "not json",
        json.dumps({"action": "deploy", "tag": T2, "result": "failed"}),
        json.dumps({"action": "deploy", "tag": T3, "result": "success"}),
    ]) + "\n")
    info = fresh(tree).describe(history_limit=2)
    assert info["previous_tag"] == T1  # T2's rollout failed
    assert info["history_corrupt_lines"] == 1 and len(info["history"]) == 2
    history.unlink()
    assert fresh(tree).describe()["previous_tag"] == T2  # no history: newest other release


def snapshot(root):
    """Every path under root with its type, link target or content."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if os.path.islink(path):
                result[path] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                result[path] = ("dir", st.st_mode)
            else:
                result[path] = ("file", st.st_mode, st.st_mtime_ns, Path(path).read_bytes())
    return result
