# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Packs as small as git's, written as they are made: which objects a target lacks, and
the pack that brings them.

Three layers, each usable alone:

* :class:`Reader`: objects of the controller's repository straight from its pack files
  (dulwich's pack index finds them; headers, inflating and delta chains are resolved
  here, with a bounded cache of resolved objects), loose objects through dulwich.
* :func:`plan`: the walk. The commits the target lacks (ancestors of the wanted tag not
  reachable from the target's commits), the boundary commits (the bundle's
  prerequisites), the trees and blobs those commits bring that neither an earlier
  commit of the walk nor a boundary commit's tree has. Raw trees parsed by dulwich's
  ``parse_tree``; gitlinks (submodule commits) are not objects of this repository.
* :func:`write_pack`: the pack, object by object to a file. Every object is copied
  as it is stored, compressed: whole, or as the delta git stored (an offset delta
  rewritten to its new distance; a delta against an object the target has stays a
  reference: a thin pack, completed by ``index-pack --fix-thin`` on the target).
  Objects git stored whole or loose, and deltas whose base does not travel, go as a
  delta against the previous version of their path when the target has it or it
  travels too (what ``git push`` does with its "preferred bases"), else whole.

Memory: the walk keeps the set of object ids that travel (about 100 bytes each) and
the resolved-object cache (``CACHE_BYTES``); pack data is read through ``mmap``.

Why not dulwich's ``MissingObjectFinder`` and ``write_pack_data``: on a repository
with 527k objects they took 4.4x and 8x longer than this walk, and the writer
inflates and recompresses every object (numbers in docs/design.md).

Controller only: imports dulwich.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import hashlib
import heapq
import mmap
import struct
import sys
import zlib
from array import array
from bisect import bisect_left
from collections import OrderedDict

try:
    from dulwich.objects import parse_tree
    from dulwich.pack import apply_delta, create_delta
except ImportError:  # bundle.open_repo reports it, with the fix
    pass

COMMIT, TREE, BLOB, TAG, OFS_DELTA, REF_DELTA = 1, 2, 3, 4, 6, 7
# Resolved objects kept for the delta chains and trees read next (bytes). 32 MiB builds the
# first bundle of ansible/ansible (526k objects) in the same time as 64 MiB did.
CACHE_BYTES = 32 * 1024 * 1024
# ... and while the pack is written: it copies what is stored, resolving few objects.
WRITE_CACHE_BYTES = 8 * 1024 * 1024
# Longest chain of deltas this module creates (git's pack.depth default).
MAX_DEPTH = 50
# A delta is used when it is smaller than this share of the whole object.
DELTA_GAIN = 0.5
_S_IFMT, _S_IFDIR, _S_IFGITLINK = 0o170000, 0o040000, 0o160000
_NAMES_AT_ONCE = 65536
# How far (seconds) the walk of the target's side goes on past the oldest missing commit.
CLOCK_SLOP = 24 * 3600
# Deliveries of more commits than this copy what git stored, without new deltas.
PATH_DELTA_COMMITS = 5000
# Pages of a mapped pack (and of its index) are handed back to the page cache (madvise)
# once this many bytes of pages were read: they would count in the builder's RSS, up to
# the size of the pack. A read costs at least a page.
RELEASE_EVERY = 8 * 1024 * 1024
PAGE = mmap.PAGESIZE


class PackError(Exception):
    """The controller's repository cannot give an object the target needs."""


# -- pack entries ----------------------------------------------------------------

def parse_header(data, offset):
    """``(kind, size, size_end, base, data_start)`` of the pack entry at ``offset``.

    ``size_end`` is where the type-and-size varint ends, ``base`` the absolute offset of
    an offset delta's base or the 20-byte id of a reference delta's base (else None).
    """
    byte = data[offset]
    kind, size, shift, pos = (byte >> 4) & 7, byte & 15, 4, offset + 1
    while byte & 0x80:
        byte = data[pos]
        pos += 1
        size |= (byte & 0x7F) << shift
        shift += 7
    size_end, base = pos, None
    if kind == OFS_DELTA:
        byte = data[pos]
        pos += 1
        distance = byte & 0x7F
        while byte & 0x80:
            byte = data[pos]
            pos += 1
            distance = ((distance + 1) << 7) | (byte & 0x7F)
        base = offset - distance
    elif kind == REF_DELTA:
        base = bytes(data[pos:pos + 20])
        pos += 20
    return kind, size, size_end, base, pos


def entry_header(kind, size):
    """The type-and-size varint of a pack entry."""
    out = bytearray()
    byte = (kind << 4) | (size & 15)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def offset_distance(distance):
    """The base-distance encoding of an offset delta (git's "offset encoding")."""
    out = bytearray([distance & 0x7F])
    distance >>= 7
    while distance:
        distance -= 1
        out.append(0x80 | (distance & 0x7F))
        distance >>= 7
    return bytes(reversed(out))


def read_index(path):
    """``(names, offsets)`` of a version-2 pack index: its sorted 20-byte ids, one after
    the other (a read-only map of the file), and their pack offsets as an array."""
    with open(path, "rb") as handle:
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if data[:8] != b"\xfftOc\x00\x00\x00\x02":
        raise PackError("%s is not a version 2 pack index: run git gc in the controller's repository" % path)
    count = struct.unpack(">I", data[8 + 255 * 4:8 + 256 * 4])[0]
    names_at = 8 + 256 * 4
    offsets_at = names_at + count * 24
    offsets = array("I")
    offsets.frombytes(data[offsets_at:offsets_at + count * 4])
    if sys.byteorder == "little":
        offsets.byteswap()
    if offsets and max(offsets) & 0x80000000:  # packs over 2 GiB: a table of 8-byte offsets
        large_at, wide = offsets_at + count * 4, array("Q", offsets)
        for i, value in enumerate(offsets):
            if value & 0x80000000:
                at = large_at + 8 * (value & 0x7FFFFFFF)
                wide[i] = struct.unpack(">Q", data[at:at + 8])[0]
        offsets = wide
    _release(data)  # the offsets are copied; the names are read in blocks later
    return _Names(data, names_at, count), offsets


def sorted_offsets(offsets, size):
    """``offsets`` (values below ``size``) sorted, as an array: bucket by bucket, so that no
    list of every offset is ever made (1.7M of them would take 60 MB as Python ints)."""
    kind = "I" if size < 1 << 32 and array("I").itemsize >= 4 else "Q"
    shift = max(0, size.bit_length() - 12)
    buckets = [array(kind) for _bucket in range((size >> shift) + 1)]
    for value in offsets:
        buckets[value >> shift].append(value)
    out = array(kind)
    for bucket in buckets:
        out.extend(sorted(bucket))
    return out


class _Names:
    """The id table of a mapped pack index: ``names[a:b]`` slices bytes of it."""

    def __init__(self, data, start, count):
        self.data, self.start, self.count = data, start, count

    def __getitem__(self, part):
        return self.data[self.start + part.start:self.start + min(part.stop, self.count * 20)]

    def __len__(self):
        return self.count * 20


class _PackFile:
    """One pack of the controller's repository: its dulwich index and its data, mapped."""

    def __init__(self, pack):
        self.index = pack.index
        self.index_path = pack._idx_path  # pylint: disable=protected-access
        with open(pack._data_path, "rb") as handle:  # pylint: disable=protected-access
            self.data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self.view = memoryview(self.data)
        self._table = None
        self._ends = None
        self._read = 0

    def read(self, size):
        """Count ``size`` bytes read from the map; past RELEASE_EVERY, drop the process's pages
        of it and of dulwich's map of its index (the kernel's page cache keeps them: reading
        again costs no disk)."""
        self._read += size + PAGE
        if self._read >= RELEASE_EVERY:
            self._read = 0
            _release(self.data)
            _release(getattr(self.index, "_contents", None))

    def table(self):
        """``(names, offsets)`` of this pack's index (read_index), read once."""
        if self._table is None:
            self._table = read_index(self.index_path)
        return self._table

    def ends(self):
        """Sorted start offsets of every entry, then the trailer's: where each entry ends."""
        if self._ends is None:
            self._ends = sorted_offsets(self.table()[1], len(self.data))
            self._ends.append(len(self.data) - 20)
        return self._ends

    def inflate(self, offset):
        """``(header, data, end)`` of the entry at ``offset``: its parsed header, its data
        inflated, and where it ends (zlib says; no table of all offsets needed)."""
        header = parse_header(self.data, offset)
        start, size = header[4], header[1]
        stream = zlib.decompressobj()
        # Deflate never grows data by more than 5 bytes per 16 KiB block plus 6.
        window = start + size + size // 1000 + 64
        self.read(window - offset)
        data = stream.decompress(self.view[start:window])
        if not stream.eof or len(data) != size:
            raise PackError("the pack entry at offset %d of %s is damaged: run git fsck in the "
                            "controller's repository" % (offset, self.index_path[:-4] + ".pack"))
        return header, data, min(window, len(self.data)) - len(stream.unused_data)

    def close(self):
        self.view.release()
        self.data.close()
        if self._table is not None:
            self._table[0].data.close()
            self._table = None


def _release(data):
    """Hand the pages of the map ``data`` back (Linux, Python 3.8+; elsewhere nothing)."""
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is not None and isinstance(data, mmap.mmap) and not data.closed:
        data.madvise(advice)


class Stores:
    """Several dulwich object stores read as one - a repository and its submodules'
    repositories: an object id names the same object in each of them."""

    def __init__(self, stores):
        self.stores = list(stores)
        self.packs = [pack for store in self.stores for pack in store.packs]

    def get_raw(self, sha):
        for store in self.stores:
            try:
                return store.get_raw(sha)
            except KeyError:
                continue
        raise KeyError(sha)

    def _iter_loose_objects(self):
        for store in self.stores:
            yield from getattr(store, "_iter_loose_objects", lambda: ())()

    def holder(self, sha):
        """The first store that has hex ``sha``, or None."""
        for store in self.stores:
            if sha in store:
                return store
        return None


class Reader:
    """Objects of a dulwich object store, resolved from its packs with a bounded cache."""

    def __init__(self, store, cache_bytes=CACHE_BYTES):
        self.store = store
        self.packs = [_PackFile(pack) for pack in store.packs]
        self._cache = OrderedDict()
        self._cached = 0
        self._limit = cache_bytes

    def add_store(self, store):
        """Read the dulwich object store ``store`` too (``self.store`` is a :class:`Stores`)."""
        self.store.stores.append(store)
        self.packs.extend(_PackFile(pack) for pack in store.packs)

    def close(self):
        for pack in self.packs:
            pack.close()
        self.packs = []
        self._cache.clear()

    def forget(self, cache_bytes=None):
        """Empty the cache of resolved objects (and keep at most ``cache_bytes`` from now on)."""
        self._cache.clear()
        self._cached = 0
        if cache_bytes is not None:
            self._limit = cache_bytes

    def locate(self, sha):
        """``(pack number, offset)`` of hex ``sha``, or None if no pack has it."""
        for number, pack in enumerate(self.packs):
            try:
                return number, pack.index.object_offset(sha)
            except KeyError:
                continue
        return None

    def raw(self, sha):
        """``(type number, bytes)`` of hex ``sha``; PackError if the repository lacks it."""
        where = self.locate(sha)
        if where is not None:
            return self.at(*where)
        try:
            return self.store.get_raw(sha)
        except KeyError:
            raise PackError("object %s is not in the controller's repository" % sha.decode("ascii"))

    def at(self, number, offset):
        """``(type number, bytes)`` of the entry at ``offset`` of pack ``number``."""
        hit = self._cache.get((number, offset))
        if hit is not None:
            self._cache.move_to_end((number, offset))
            return hit
        pack = self.packs[number]
        chain, cur = [], offset
        while True:  # down the chain to a whole or cached object
            hit = self._cache.get((number, cur))
            if hit is not None:
                kind, data = hit
                break
            (kind, _size, _end, base, _start), payload, _stop = pack.inflate(cur)
            if kind == OFS_DELTA:
                chain.append((cur, payload))
                cur = base
            elif kind == REF_DELTA:
                chain.append((cur, payload))
                kind, data = self.raw(binascii.hexlify(base))
                break
            else:
                data = payload
                self._remember((number, cur), kind, data)
                break
        for cur, delta in reversed(chain):
            data = apply_delta(data, delta)
            data = b"".join(data) if isinstance(data, list) else data
            self._remember((number, cur), kind, data)
        return kind, data

    def _remember(self, key, kind, data):
        if len(data) > self._limit // 8:
            return
        self._cache[key] = (kind, data)
        self._cached += len(data)
        while self._cached > self._limit:
            _key, (_kind, old) = self._cache.popitem(last=False)
            self._cached -= len(old)


# -- the walk -------------------------------------------------------------------------

class Plan:
    """What travels: ``send`` (hex ids), ``commits`` (the missing ones, newest first),
    ``prerequisites`` (boundary commits, sorted), ``remote`` (trees and blobs of the
    boundary commits: on the target)."""

    def __init__(self, send, commits, prerequisites, remote):
        self.send = send
        self.commits = commits
        self.prerequisites = prerequisites
        self.remote = remote


def _commit_fields(data):
    """``(tree, parents, committer time)`` of a raw commit."""
    tree, parents, when = None, [], 0
    for line in data.split(b"\n\n", 1)[0].split(b"\n"):
        if line.startswith(b"tree "):
            tree = line[5:45]
        elif line.startswith(b"parent "):
            parents.append(line[7:47])
        elif line.startswith(b"committer "):
            try:
                when = int(line.rsplit(b" ", 2)[-2])
            except (IndexError, ValueError):
                when = 0
    return tree, parents, when


_WANT, _HAVE = 1, 2


def missing_commits(reader, commit, haves):
    """``(commits, boundary)``: the ancestors of ``commit`` that no commit of ``haves`` reaches
    (newest first) and the commits of ``haves``' side their parents are (sorted).

    Both sides are walked together, newest commit first, and the walk stops once every
    commit still queued is reachable from ``haves`` and a day (``CLOCK_SLOP``) older than
    the oldest commit found (git's rev-list does much the same): a target's long history
    is not read. Clocks skewed by more than that can only add commits, never lose one.
    """
    flags, dated, queue, order = {}, {}, [], []  # dated: commit -> (committer time, parents)

    def push(sha, flag):
        old = flags.get(sha, 0)
        if old | flag != old:
            flags[sha] = old | flag
            if sha not in dated:
                _tree, parents, when = _commit_fields(reader.raw(sha)[1])
                dated[sha] = (when, parents)
            heapq.heappush(queue, (-dated[sha][0], sha))

    for have in haves:
        push(have, _HAVE)
    push(commit, _WANT)
    listed = set()
    while queue and any(not flags[sha] & _HAVE for _when, sha in queue):
        _when, sha = heapq.heappop(queue)
        flag = flags[sha]
        if flag == _WANT and sha not in listed:
            listed.add(sha)
            order.append(sha)
        for parent in dated[sha][1]:
            push(parent, flag & _HAVE or flag)
    # Walk the target's side on down to a day before the oldest listed commit: a commit
    # stamped the same second as one of the target's (scripts, CI) is not sent again.
    # Nothing listed (the target has the commit): nothing to take back, no walk.
    horizon = min(dated[sha][0] for sha in order) - CLOCK_SLOP if order else None
    while horizon is not None and queue and -queue[0][0] >= horizon:
        _when, sha = heapq.heappop(queue)
        for parent in dated[sha][1]:
            push(parent, flags[sha] & _HAVE or flags[sha])
    commits = [sha for sha in order if flags[sha] == _WANT]
    boundary = set()
    for sha in commits:
        boundary.update(p for p in dated[sha][1] if flags.get(p, 0) & _HAVE)
    if flags[commit] & _HAVE:
        boundary.add(commit)
    return commits, sorted(boundary)


def _add_tree(reader, root, seen):
    """Add ``root`` and the trees and blobs below it to ``seen``, not descending into a
    tree already there. Gitlinks are skipped."""
    if root in seen:
        return
    seen.add(root)
    stack = [root]
    while stack:
        sha = stack.pop()
        kind, data = reader.raw(sha)
        if kind != TREE:
            raise PackError("object %s should be a tree" % sha.decode("ascii"))
        for _name, mode, sha in [entry for entry in parse_tree(data, 20) if entry[2] not in seen]:
            kind = mode & _S_IFMT
            if kind == _S_IFGITLINK or sha in seen:
                continue
            seen.add(sha)
            if kind == _S_IFDIR:
                stack.append(sha)


def _peel(reader, want):
    """``(tag objects, commit)`` of hex ``want``, a commit or a chain of tags ending in one."""
    tags, sha = [], want
    while True:
        kind, data = reader.raw(sha)
        if kind != TAG:
            break
        tags.append(sha)
        sha = data[7:47]  # "object <id>"
    if kind != COMMIT:
        raise PackError("%s does not peel to a commit" % want.decode("ascii"))
    return tags, sha


def peel(reader, want):
    """The commit (hex) hex ``want`` peels to."""
    return _peel(reader, want)[1]


def plan(reader, want, haves):
    """The :class:`Plan` bringing hex ``want`` (a tag object or commit) to a target that has
    the commits ``haves`` (hex ids known to the repository) and everything below them."""
    tags, sha = _peel(reader, want)
    commits, prerequisites = missing_commits(reader, sha, haves)
    remote = set()
    for boundary in sorted(prerequisites):
        _add_tree(reader, _commit_fields(reader.raw(boundary)[1])[0], remote)
    send = set(remote)  # what the walk has seen; the target's part is taken out at the end
    send.update(tags)
    send.update(commits)
    for commit in commits:
        _add_tree(reader, _commit_fields(reader.raw(commit)[1])[0], send)
    send.difference_update(remote)
    return Plan(send, commits, prerequisites, remote)


def gitlinks(reader, commit):
    """The submodules hex ``commit`` pins, ``[(path, commit id)]`` in tree order: the gitlinks
    of its tree, when the tree has a ``.gitmodules`` (without one git checks out no submodule)."""
    root = _commit_fields(reader.raw(commit)[1])[0]
    top = parse_tree(reader.raw(root)[1], 20)
    if not any(name == b".gitmodules" for name, _mode, _sha in top):
        return []
    found, stack = [], [(b"", top)]
    while stack:
        prefix, entries = stack.pop()
        for name, mode, sha in entries:
            kind = mode & _S_IFMT
            if kind == _S_IFGITLINK:
                found.append((prefix + name, sha))
            elif kind == _S_IFDIR:
                stack.append((prefix + name + b"/", parse_tree(reader.raw(sha)[1], 20)))
    return sorted(found)


def merge(plans):
    """One :class:`Plan` bringing what each of ``plans`` brings (a repository's and its
    submodules': unrelated histories in one pack)."""
    send, commits, prerequisites, remote = set(), [], set(), set()
    for one in plans:
        send |= one.send
        commits.extend(one.commits)
        prerequisites.update(one.prerequisites)
        remote |= one.remote
    send -= remote
    seen, unique = set(), []
    for sha in commits:
        if sha not in seen:
            seen.add(sha)
            unique.append(sha)
    return Plan(send, unique, sorted(prerequisites), remote)


# -- deltas against the previous version of a path ------------------------------------

def previous_versions(reader, plan_, wanted, usable):
    """Map each id in ``wanted`` to an earlier version of its path that is in ``usable``:
    the version in its commit's first parent, or the one before that when that one is
    not usable, and so on (at most MAX_DEPTH back). Commits are visited parents first
    and each object is decided once, at the commit that brings it, so every base was
    decided before its object: the map has no cycles."""
    prev_of, decided = {}, set()
    for commit in reversed(plan_.commits):
        tree, parents, _when = _commit_fields(reader.raw(commit)[1])
        old_root = _commit_fields(reader.raw(parents[0])[1])[0] if parents else None
        stack = [(tree, old_root)]
        while stack:
            new, old = stack.pop()
            if new in decided or new not in plan_.send:
                continue
            decided.add(new)
            old_entries = {}
            if old is not None and old != new:
                prev_of[new] = old
                old_entries = {name: (mode, sha) for name, mode, sha in parse_tree(reader.raw(old)[1], 20)}
            for name, mode, sha in parse_tree(reader.raw(new)[1], 20):
                prev_mode, prev = old_entries.get(name, (0, None))
                kind = mode & _S_IFMT
                if kind == _S_IFDIR:
                    stack.append((sha, prev if prev_mode & _S_IFMT == _S_IFDIR else None))
                elif kind != _S_IFGITLINK and sha in plan_.send and sha not in decided:
                    decided.add(sha)
                    if prev is not None and prev != sha and prev_mode & _S_IFMT not in (_S_IFDIR, _S_IFGITLINK):
                        prev_of[sha] = prev
    bases = {}
    for sha in wanted:
        base, steps = prev_of.get(sha), 0
        while base is not None and base not in usable and steps < MAX_DEPTH:
            base, steps = prev_of.get(base), steps + 1
        if base is not None and base in usable:
            bases[sha] = base
    return bases


def limit_chains(base_of):
    """Drop entries of ``base_of`` (object -> base) that would make a chain deeper than
    MAX_DEPTH or close a cycle; an object whose entry is dropped goes whole."""
    depth = {}
    for start in list(base_of):
        path, on_path, cur = [], set(), start
        while cur not in depth:
            base = base_of.get(cur)
            if base is None:
                depth[cur] = 0
                break
            if cur in on_path:
                del base_of[cur]
                depth[cur] = 0
                break
            path.append(cur)
            on_path.add(cur)
            cur = base
        for sha in reversed(path):
            if sha in depth:
                continue
            below = depth.get(base_of[sha], 0)
            if below >= MAX_DEPTH:
                del base_of[sha]
                depth[sha] = 0
            else:
                depth[sha] = below + 1
    return base_of


# -- the pack ----------------------------------------------------------------------------

class _Out:
    """The pack file being written: counts bytes and keeps the SHA-1 of the pack."""

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.sha1()
        self.written = 0

    def write(self, *chunks):
        for chunk in chunks:
            self.handle.write(chunk)
            self.digest.update(chunk)
            self.written += len(chunk)


def _members(reader, send):
    """Per pack, the sorted offsets of the ``send`` objects it holds (each object in the
    first pack that has it), and the ids no pack has (loose objects), sorted."""
    per_pack, taken, found = [], set() if len(reader.packs) > 1 else None, 0
    for pack in reader.packs:
        names, offsets = pack.table()
        mine = array("Q")
        for first in range(0, len(offsets), _NAMES_AT_ONCE):
            if first and first % (RELEASE_EVERY // 20) < _NAMES_AT_ONCE:
                _release(names.data)
            block = binascii.hexlify(names[first * 20:(first + _NAMES_AT_ONCE) * 20])
            for i in range(0, len(block), 40):
                sha = block[i:i + 40]
                if sha in send and (taken is None or sha not in taken):
                    mine.append(offsets[first + i // 40])
                    if taken is not None:
                        taken.add(sha)
        found += len(mine)
        per_pack.append(sorted_offsets(mine, len(pack.data)))
        _release(names.data)
    loose = []
    if found < len(send):
        listed = getattr(reader.store, "_iter_loose_objects", lambda: ())()
        loose = sorted(sha for sha in listed if sha in send and reader.locate(sha) is None)
        if found + len(loose) != len(send):  # alternates, or a store that lists nothing
            loose = sorted(sha for sha in send if reader.locate(sha) is None)
    return per_pack, loose


def _whole(out, kind, data):
    out.write(entry_header(kind, len(data)), zlib.compress(data))


def _path_delta(out, reader, data, base, placed):
    """Write ``data`` as a delta against ``base`` if that is worth it: an offset delta when
    the base is earlier in this pack, else a reference (the target has it, or it comes
    later). False when the object should go as it is."""
    delta = b"".join(create_delta(reader.raw(base)[1], data))
    if len(delta) >= len(data) * DELTA_GAIN - 20:
        return False
    if base in placed:
        out.write(entry_header(OFS_DELTA, len(delta)), offset_distance(out.written - placed[base]),
                  zlib.compress(delta))
    else:
        out.write(entry_header(REF_DELTA, len(delta)), binascii.unhexlify(base), zlib.compress(delta))
    return True


def _candidates(reader, plan_, per_pack, loose):
    """The objects that would go whole although a delta may serve: loose ones, deltas
    whose base does not travel and, in a thin pack, trees and blobs git stored whole
    (their previous version is often on the target). ``{(pack, offset) or id: id}``."""
    thin = bool(plan_.remote)
    wanted = dict((sha, sha) for sha in loose)
    for number, offsets in enumerate(per_pack):
        data = reader.packs[number].data
        picked = set()
        for offset in offsets:
            kind = data[offset] >> 4 & 7
            if kind == OFS_DELTA:
                if not _contains(offsets, parse_header(data, offset)[3]):
                    picked.add(offset)
            elif kind == REF_DELTA:
                if _unusable(plan_, binascii.hexlify(parse_header(data, offset)[3])):
                    picked.add(offset)
            elif thin and kind in (TREE, BLOB):
                picked.add(offset)
        if picked:
            names, all_offsets = reader.packs[number].table()
            for i, offset in enumerate(all_offsets):
                if offset in picked:
                    wanted[(number, offset)] = binascii.hexlify(names[20 * i:20 * i + 20])
    return wanted


def write_pack(handle, reader, plan_, path_delta_commits=PATH_DELTA_COMMITS):
    """Write the pack of ``plan_`` to the binary file ``handle``; return the object count.

    Objects that would go whole get a delta against the previous version of their path
    when ``plan_`` has at most ``path_delta_commits`` commits (the search walks the new
    trees again; a first delivery of a long history copies what git stored instead).
    """
    reader.forget(WRITE_CACHE_BYTES)  # the walk's trees: the pack is copied, not resolved
    per_pack, loose = _members(reader, plan_.send)
    bases, ids = {}, {}
    if len(plan_.commits) <= path_delta_commits:
        ids = _candidates(reader, plan_, per_pack, loose)
        if ids:
            # Bases: what the target has, or other candidates (never an object stored as a
            # delta: its base may be the candidate itself).
            wanted = set(ids.values())
            bases = limit_chains(previous_versions(reader, plan_, wanted, plan_.remote | wanted))
    out = _Out(handle)
    out.write(b"PACK", struct.pack(">II", 2, len(plan_.send)))
    count, placed = 0, {}  # candidate id -> where it starts in this pack
    for number, offsets in enumerate(per_pack):
        pack = reader.packs[number]
        # Where each entry ends: a table of all offsets when much of the pack travels,
        # else zlib tells, entry by entry.
        ends = pack.ends() if len(offsets) * 64 > len(pack.index) else None
        out_at = array("Q")
        for offset in offsets:
            here = out.written
            out_at.append(here)
            count += 1
            sha = ids.get((number, offset))
            if sha is not None:
                placed[sha] = here
                if sha in bases and _path_delta(out, reader, reader.at(number, offset)[1], bases[sha], placed):
                    continue
            if ends is not None:
                end = ends[bisect_left(ends, offset) + 1]
                kind, _size, size_end, base, start = parse_header(pack.data, offset)
            else:
                (kind, _size, size_end, base, start), _data, end = pack.inflate(offset)
            if kind == OFS_DELTA:
                at = bisect_left(offsets, base)
                if at < len(offsets) and offsets[at] == base:
                    out.write(pack.view[offset:size_end], offset_distance(here - out_at[at]),
                              pack.view[start:end])
                    pack.read(end - offset)
                else:
                    _whole(out, *reader.at(number, offset))
            elif kind == REF_DELTA and _unusable(plan_, binascii.hexlify(base)):
                _whole(out, *reader.at(number, offset))
            else:
                out.write(pack.view[offset:end])
                pack.read(end - offset)
    for sha in loose:
        kind, data = reader.raw(sha)
        count += 1
        placed[sha] = out.written
        if sha not in bases or not _path_delta(out, reader, data, bases[sha], placed):
            _whole(out, kind, data)
    if count != len(plan_.send):
        raise PackError("wrote %d objects, expected %d" % (count, len(plan_.send)))
    handle.write(out.digest.digest())
    return count


def _unusable(plan_, base):
    """Whether a reference delta's base neither travels nor is on the target."""
    return base not in plan_.send and base not in plan_.remote


def _contains(offsets, offset):
    at = bisect_left(offsets, offset)
    return at < len(offsets) and offsets[at] == offset
