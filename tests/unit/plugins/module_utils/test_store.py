"""The target's object store (module_utils/store.py): the pure parts."""

from __future__ import annotations

import hashlib

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
