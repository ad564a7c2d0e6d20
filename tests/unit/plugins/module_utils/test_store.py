"""The target's object store (module_utils/store.py): the pure parts, and taking a bundle in
with real git."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from ansible_collections.gitdeploy.rollout.plugins.module_utils import store

A, B, C = "a" * 40, "b" * 40, "c" * 40


def test_haves_are_the_commits_refs_point_at_peeled():
    output = "\n".join([
        "commit %s  " % A,                 # a branch or lightweight tag
        "tag %s commit %s" % ("9" * 40, B),  # an annotated tag: its commit
        "tag %s tree %s" % ("8" * 40, C),    # a tag of a tree: not a commit
        "blob %s" % C,
        "",
    ])
    assert store.parse_refs(output) == [A, B]
    assert store.parse_refs("") == []


def test_commit_ids_are_full_lower_case_hex():
    assert store.check_commit(A) == A
    for bad in ("A" * 40, "a" * 39, "a" * 64, "HEAD", None, "a" * 39 + "g"):
        with pytest.raises(ValueError, match="not a full 40-character"):
            store.check_commit(bad)


def test_bundle_check_refuses_a_truncated_or_damaged_file(tmp_path):
    path = tmp_path / "x.bundle"
    path.write_bytes(b"bundle bytes")
    digest = hashlib.sha256(b"bundle bytes").hexdigest()
    repo = store.Store(str(tmp_path / "repo.git"), run_command=None)
    repo.check_bundle(str(path), 12, digest)
    with pytest.raises(store.StoreError) as short:
        repo.check_bundle(str(path), 13, digest)
    assert short.value.fields == {"damaged": True, "received_bytes": 12, "expected_bytes": 13}
    with pytest.raises(store.StoreError, match="sha256") as damaged:
        repo.check_bundle(str(path), 12, "0" * 64)
    assert damaged.value.fields["damaged"]
    with pytest.raises(store.StoreError, match="missing on the target"):
        repo.check_bundle(str(tmp_path / "none.bundle"), 12, digest)
    assert repo.haves() == {"haves": [], "commit_present": False, "tag_commit": None}  # no store yet


def test_a_bundle_header_gives_its_refs_and_stops_at_the_pack(tmp_path):
    path = tmp_path / "b.bundle"
    path.write_bytes(b"# v2 git bundle\n-" + A.encode() + b" base\n" + B.encode() + b" refs/tags/prod-1\n\nPACK...")
    with open(path, "rb") as handle:
        assert store.read_bundle_header(handle) == {"refs/tags/prod-1": B}
        assert handle.read() == b"PACK..."
    for bad in (b"not a bundle\n", b"# v2 git bundle\n" + B.encode() + b" refs/tags/x"):
        path.write_bytes(bad)
        with open(path, "rb") as handle, pytest.raises(store.StoreError):
            store.read_bundle_header(handle)


# -- taking a bundle in, with real git ---------------------------------------------------

def _git(*args, cwd, data=None):
    env = dict(os.environ, GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="d@example.com", GIT_COMMITTER_NAME="Dev",
               GIT_COMMITTER_EMAIL="d@example.com", GIT_CONFIG_NOSYSTEM="1")
    proc = subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True, env=env, check=True)
    return proc.stdout.decode().strip()


def _run_command(args, environ_update=None, data=None, binary_data=False, expand_user_and_vars=True, **_kw):
    proc = subprocess.run(args, input=data.encode() if isinstance(data, str) else data, capture_output=True,
                          env=dict(os.environ, **(environ_update or {})), check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def _tag_of_tree(repo, entries, name):
    """Tag ``name`` of a commit of a tree written byte for byte from ``entries`` (mode, name, sha)."""
    raw = b"".join(b"%s %s\0%s" % (mode, entry, bytes.fromhex(sha)) for mode, entry, sha in entries)
    tree = _git("hash-object", "-t", "tree", "-w", "--literally", "--stdin", cwd=repo, data=raw)
    commit = _git("commit-tree", tree, "-m", name, cwd=repo)
    _git("tag", "-a", name, "-m", name, commit, cwd=repo)
    out = repo.parent / (name + ".bundle")
    _git("bundle", "create", "-q", str(out), name, cwd=repo)
    return commit, out


@pytest.mark.parametrize("flaw, accepted", [
    # git's early years wrote tree modes with a leading zero: harmless, and in pallets/flask's history.
    (b"040000", True),
    # A tree entry named .git would write into the release's own .git on checkout.
    (b".git", False),
])
def test_git_checks_refuse_dangerous_trees_and_accept_zero_padded_modes(tmp_path, flaw, accepted):
    repo = tmp_path / "src"
    _git("init", "-q", str(repo), cwd=tmp_path)
    blob = _git("hash-object", "-w", "--stdin", cwd=repo, data=b"content\n")
    sub = _git("hash-object", "-t", "tree", "-w", "--stdin", cwd=repo,
               data=b"100644 file\0" + bytes.fromhex(blob))
    if flaw == b".git":
        entries = [(b"40000", b".git", sub), (b"100644", b"app.txt", blob)]
    else:
        entries = [(b"100644", b"app.txt", blob), (flaw, b"dir", sub)]
    commit, bundle_path = _tag_of_tree(repo, entries, "v1")
    target = store.Store(str(tmp_path / "root" / "repo.git"), _run_command)
    size, digest = bundle_path.stat().st_size, store.file_sha256(str(bundle_path))
    if accepted:
        assert target.ingest("v1", commit, str(bundle_path), size, digest)
        assert target.peeled_commit("refs/tags/v1") == commit
    else:
        with pytest.raises(store.StoreError, match="refused by git's checks.*hasDotgit"):
            target.ingest("v1", commit, str(bundle_path), size, digest)
        assert target.peeled_commit("refs/tags/v1") is None
