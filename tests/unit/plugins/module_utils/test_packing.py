"""Unit tests of plugins/module_utils/packing.py: pack entry encoding, the reader, the
walk (against ``git rev-list --objects``) and the packs (taken in by ``git index-pack``)."""

import mmap
import os
import random
import subprocess
import sys
import zlib
from array import array

import pytest

from hosts import collections_path

sys.path.insert(0, str(collections_path()))

from ansible_collections.gitdeploy.rollout.plugins.module_utils import packing  # noqa: E402
from dulwich.repo import Repo  # noqa: E402


def git(*args, cwd=None, data=None):
    env = dict(os.environ, GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="d@example.com",
               GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="d@example.com", GIT_CONFIG_NOSYSTEM="1")
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, input=data, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().strip()


# -- pure encoding ----------------------------------------------------------------

@pytest.mark.parametrize("kind", [packing.COMMIT, packing.BLOB, packing.REF_DELTA])
@pytest.mark.parametrize("size", [0, 15, 16, 127, 128, 2 ** 20 + 3, 2 ** 35])
def test_entry_headers_read_back(kind, size):
    header = packing.entry_header(kind, size)
    entry = header + (b"\x00" * 20 if kind == packing.REF_DELTA else b"") + b"z"
    got_kind, got_size, size_end, base, start = packing.parse_header(entry, 0)
    assert (got_kind, got_size, size_end) == (kind, size, len(header))
    assert start == len(entry) - 1 and (base is None) == (kind != packing.REF_DELTA)


@pytest.mark.parametrize("distance", [1, 127, 128, 129, 16511, 16512, 2 ** 31 + 5])
def test_offset_deltas_point_back_the_distance_written(distance):
    entry = packing.entry_header(packing.OFS_DELTA, 10) + packing.offset_distance(distance) + b"z"
    at = distance + 7  # the entry sits at this offset of a pack
    kind, size, _end, base, start = packing.parse_header(b"\x00" * at + entry, at)
    assert (kind, size, base, start) == (packing.OFS_DELTA, 10, at - distance, at + len(entry) - 1)


def test_limit_chains_cuts_cycles_and_deep_chains():
    base_of = {"x": "y", "y": "x", "z": "remote"}
    packing.limit_chains(base_of)
    assert len([k for k in ("x", "y") if k in base_of]) == 1 and base_of["z"] == "remote"
    chain = {str(i): str(i - 1) for i in range(1, 120)}
    packing.limit_chains(chain)
    depth = {"0": 0}
    for i in range(1, 120):
        depth[str(i)] = depth[chain[str(i)]] + 1 if str(i) in chain else 0
    assert max(depth.values()) <= packing.MAX_DEPTH


# -- against git -------------------------------------------------------------------------

@pytest.fixture
def repo(tmp_path):
    """A history in two packs and loose objects: v1, then 20 versions of one growing file
    and a directory move (v2), a symlink and a submodule gitlink (v3)."""
    path = tmp_path / "src"
    git("init", "-q", str(path))
    for i in range(30):
        (path / "lib").mkdir(exist_ok=True)
        (path / "lib" / ("f%02d.py" % i)).write_text("".join("file %d line %d\n" % (i, n) for n in range(150)))
    git("add", "-A", cwd=path)
    git("commit", "-qm", "import", cwd=path)
    git("tag", "-a", "v1", "-m", "v1", cwd=path)
    git("repack", "-q", "-a", "-d", cwd=path)
    for n in range(20):
        with open(path / "lib" / "f03.py", "a") as handle:
            handle.write("grown %d\n" % n)
        git("commit", "-qam", "grow %d" % n, cwd=path)
    git("mv", "lib", "src", cwd=path)
    git("commit", "-qm", "move", cwd=path)
    git("tag", "-a", "v2", "-m", "v2", cwd=path)
    git("repack", "-q", "-d", cwd=path)  # a second pack; v1's pack stays
    os.symlink("src/f00.py", path / "link")
    gitlink = "1" * 40
    git("update-index", "--add", "--cacheinfo", "160000,%s,vendor/lib" % gitlink, cwd=path)
    git("add", "link", cwd=path)
    git("commit", "-qm", "link and submodule", cwd=path)  # loose objects
    git("tag", "-a", "v3", "-m", "v3", cwd=path)
    return path


def rev(repo, name):
    return git("rev-parse", name, cwd=repo).encode()


@pytest.fixture
def store(repo):
    opened = Repo(str(repo))
    yield opened.object_store
    opened.close()


def test_the_reader_gives_every_object_as_git_does(repo, store):
    reader = packing.Reader(store, cache_bytes=4096)  # a tiny cache: chains resolved again and again
    try:
        assert len(reader.packs) == 2
        names = git("rev-list", "--objects", "--all", cwd=repo).split("\n")
        for name in (line.split(" ")[0] for line in names):
            kind, data = reader.raw(name.encode())
            assert data == store[name.encode()].as_raw_string()
            assert kind == store[name.encode()].type_num
        with pytest.raises(packing.PackError, match="not in the controller"):
            reader.raw(b"2" * 40)
    finally:
        reader.close()


@pytest.mark.parametrize("want,haves", [("v3", []), ("v3", ["v1"]), ("v2", ["v1"]), ("v3", ["v2", "v1"]),
                                        ("v1", ["v3"])])
def test_the_walk_finds_what_git_would_send(repo, store, want, haves):
    reader = packing.Reader(store)
    try:
        got = packing.plan(reader, rev(repo, want), [rev(repo, h + "^{commit}") for h in haves])
        listed = git("rev-list", "--objects", want, *["^" + h for h in haves], cwd=repo)
        expected = {line.split(" ")[0].encode() for line in listed.split("\n") if line}
        expected.add(rev(repo, want))  # rev-list names the tag, the pack must carry it
        assert got.send == expected
        boundary = git("rev-list", "--boundary", want, *["^" + h for h in haves], cwd=repo)
        boundary = sorted(line[1:].encode() for line in boundary.split("\n") if line.startswith("-"))
        # A commit the target has already: the tag object alone, needing that commit.
        assert got.prerequisites == (boundary if boundary or not haves else [rev(repo, want + "^{commit}")])
        assert ("1" * 40).encode() not in got.send  # a gitlink is not an object of this repository
    finally:
        reader.close()


def index(tmp_path, pack_bytes, thin_base=None):
    """Take a pack in with git index-pack (completing a thin one against ``thin_base``);
    return ``git verify-pack -v`` lines of the result."""
    store = tmp_path / "target.git"
    if not store.exists():
        git("init", "-q", "--bare", str(store))
        if thin_base is not None:
            git("fetch", "-q", str(thin_base), "v1", cwd=store)
    out = git("index-pack", "--stdin", "--fix-thin", "--strict", cwd=store, data=pack_bytes)
    pack = store / "objects" / "pack" / ("pack-%s.idx" % out.split()[-1])
    return git("verify-pack", "-v", str(pack), cwd=store).split("\n")


def build(repo, want, haves):
    opened = Repo(str(repo))
    reader = packing.Reader(opened.object_store)
    try:
        got = packing.plan(reader, rev(repo, want), [rev(repo, h + "^{commit}") for h in haves])
        path = repo.parent / ("%s-%d.pack" % (want, len(haves)))
        with open(path, "wb") as handle:
            count = packing.write_pack(handle, reader, got)
        assert count == len(got.send)
        return path.read_bytes(), got
    finally:
        reader.close()
        opened.close()


def floor(repo, *revs):
    """The size of git's own pack (thin when given ^haves) of the same range."""
    proc = subprocess.run(["git", "pack-objects", "--stdout", "--thin", "--delta-base-offset", "--revs", "-q"],
                          cwd=repo, input=("\n".join(revs) + "\n").encode(), capture_output=True, check=True)
    return len(proc.stdout)


def test_a_first_delivery_copies_gits_deltas_and_stays_at_gits_size(repo, tmp_path):
    git("repack", "-q", "-a", "-d", "-f", cwd=repo)  # everything in one pack, fresh deltas
    data, got = build(repo, "v3", [])
    index(tmp_path, data)
    assert kinds(data).count(packing.OFS_DELTA) >= 15  # the versions of f03.py travel as git's deltas
    assert len(data) <= 1.05 * floor(repo, "v3")
    assert len(kinds(data)) == len(got.send)


def test_an_incremental_delivery_is_thin_and_near_gits_size(repo, tmp_path):
    data, got = build(repo, "v3", ["v1"])
    index(tmp_path, data, thin_base=repo)  # completes against the target's v1: no unresolved delta
    assert got.remote and got.prerequisites == [rev(repo, "v1^{commit}")]
    assert len(data) <= 1.1 * floor(repo, "v3", "^v1")
    # Objects stored whole or loose went as deltas against a version the target has.
    assert kinds(data).count(packing.REF_DELTA) >= 1


def kinds(data):
    """The entry types of a pack, in order."""
    found, at = [], 12
    while at < len(data) - 20:
        kind, _size, _end, _base, start = packing.parse_header(data, at)
        stream = zlib.decompressobj()
        stream.decompress(data[start:])
        at = len(data) - len(stream.unused_data)
        found.append(kind)
    return found


def test_objects_in_two_packs_and_loose_travel_once(repo, tmp_path):
    # v2's history once more in a third pack: those objects are in two packs now.
    listed = git("rev-list", "--objects", "v2", cwd=repo).encode() + b"\n"
    git("pack-objects", "-q", str(repo / ".git" / "objects" / "pack" / "pack"), cwd=repo, data=listed)
    data, got = build(repo, "v3", [])
    index(tmp_path, data)
    assert int.from_bytes(data[8:12], "big") == len(got.send)


def test_skewed_clocks_can_add_commits_never_lose_one(tmp_path):
    """H (day 10) -> Q (day 1, a skewed clock) -> P (day 5) <- W (day 6): the target has H."""
    path = tmp_path / "skew"
    git("init", "-q", str(path))

    def commit(name, day, parent=None):
        (path / "f").write_text(name)
        git("add", "f", cwd=path)
        env = dict(os.environ, GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="d@example.com", GIT_COMMITTER_NAME="Dev",
                   GIT_COMMITTER_EMAIL="d@example.com", GIT_COMMITTER_DATE="@%d +0000" % (1700000000 + day * 86400))
        tree = subprocess.run(["git", "write-tree"], cwd=path, capture_output=True, check=True).stdout.strip()
        args = ["git", "commit-tree", tree.decode(), "-m", name] + (["-p", parent] if parent else [])
        return subprocess.run(args, cwd=path, env=env, capture_output=True, check=True).stdout.strip().decode()

    p = commit("P", 5)
    w = commit("W", 6, p)
    h = commit("H", 10, commit("Q", 1, p))
    opened = Repo(str(path))
    reader = packing.Reader(opened.object_store)
    try:
        commits, boundary = packing.missing_commits(reader, w.encode(), [h.encode()])
        assert w.encode() in commits  # never lost
        assert set(commits) <= {w.encode(), p.encode()} and (boundary == [p.encode()]) == (p.encode() not in commits)
        # Honest clocks: exactly what git says.
        assert packing.missing_commits(reader, w.encode(), [p.encode()]) == ([w.encode()], [p.encode()])
    finally:
        reader.close()
        opened.close()


def test_a_commit_the_target_has_costs_no_walk_of_its_history(repo, store):
    """Re-tagging what a target already has: the answer comes without reading its history."""
    reads = []

    class Counting(packing.Reader):
        def raw(self, sha):
            reads.append(sha)
            return super().raw(sha)

    reader = Counting(store)
    try:
        head = rev(repo, "v3^{commit}")
        assert packing.missing_commits(reader, head, [head]) == ([], [head])
        assert len(reads) == 1  # the commit itself: none of the 22 below it
    finally:
        reader.close()


def test_offsets_are_sorted_bucket_by_bucket_into_a_compact_array():
    rng = random.Random(7)
    for size in (4096, 490 * 1024 * 1024, 5 * 1024 ** 3):
        values = [rng.randrange(size) for _value in range(5000)] + [0, size - 1]
        out = packing.sorted_offsets(array("Q", values), size)
        assert list(out) == sorted(values)
        assert out.typecode == ("I" if size < 1 << 32 else "Q")


def test_pages_of_a_pack_go_back_to_the_page_cache_while_it_is_read(tmp_path):
    data = tmp_path / "data"
    data.write_bytes(os.urandom(4 * 1024 * 1024))
    with open(data, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    assert sum(mapped[i] for i in range(0, len(mapped), mmap.PAGESIZE)) >= 0  # touch every page
    packing._release(mapped)  # pylint: disable=protected-access
    assert mapped[:16] == data.read_bytes()[:16]  # still readable: the map is intact
    mapped.close()
    packing._release(mapped)  # a closed map: nothing to do  # pylint: disable=protected-access
    packing._release(None)  # pylint: disable=protected-access
