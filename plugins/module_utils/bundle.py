# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of object delivery: git bundles of one rollout tag, built with dulwich.

Layers, bottom up (each usable alone):

* ``cache_key``: the identity of a bundle: (tag, tag object, commit, sorted haves).
* ``write_tag_bundle``: the bundle file of ``refs/tags/<tag>`` with the target's
  boundary commits as prerequisites; which objects travel and how is ``packing``'s
  (a thin pack, as ``git bundle create`` makes, streamed to the file).
* ``cached``: a cache directory in which each key is built once, even when several
  Ansible forks ask for it at the same moment (``fcntl.flock`` around the build, write
  to a temporary name, ``os.rename`` into place).

Controller only: imports dulwich. Target-side code never imports this file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import hashlib
import json
import os
import stat
import tempfile
import time
from collections import namedtuple

from ansible_collections.gitdeploy.rollout.plugins.module_utils import packing

try:
    from dulwich.errors import NotGitRepository
    from dulwich.object_store import peel_sha
    from dulwich.objects import Commit
    from dulwich.repo import Repo
except ImportError:  # reported by the action plugin, with the fix
    HAS_DULWICH = False
else:
    HAS_DULWICH = True

# Bump when the bundle layout changes: old cache entries are then never reused.
FORMAT = 2
# Cache entries not used for this long are removed when a new one is built.
CACHE_MAX_AGE = 7 * 24 * 3600
CHUNK = 1024 * 1024
SHA_LEN = 40
# The refs a bundle advertises for the submodule commits it brings (one per commit).
MODULES = "refs/git-deploy/modules/"

Built = namedtuple("Built", "path size sha256 objects prerequisites key cached")


class BundleError(Exception):
    """Something the person running the rollout has to fix; the message says what."""


# -- pure -------------------------------------------------------------------

class TagMissing(BundleError):
    """The rollout tag is not in the controller's repository (yet)."""


def is_sha(value):
    """True for a full lower-case hex object name."""
    return (isinstance(value, str) and len(value) == SHA_LEN
            and all(c in "0123456789abcdef" for c in value))


def cache_key(tag, tag_object, commit, haves, submodules=True):
    """The bundle's identity: same inputs in any order of ``haves`` give the same key.

    ``tag_object`` is the object ``refs/tags/<tag>`` points at on the controller, so a
    tag re-created under the same name never reuses an old bundle.
    """
    record = [FORMAT, tag, tag_object, commit, sorted(set(haves)), bool(submodules)]
    return hashlib.sha256(json.dumps(record, separators=(",", ":")).encode("ascii")).hexdigest()


def file_digest(path):
    """(size, sha256 hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def default_cache_dir():
    """``$XDG_CACHE_HOME/gitdeploy/bundles``, else ``~/.cache/gitdeploy/bundles``,
    else (no usable home) a directory under the controller's temp dir."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        base = os.path.join(tempfile.gettempdir(), "gitdeploy-%d" % os.getuid())
    return os.path.join(base, "gitdeploy", "bundles")


# -- reading the controller repository --------------------------------------

def open_repo(path):
    """The dulwich Repo at ``path`` (a checkout or a bare repository)."""
    if not HAS_DULWICH:
        raise BundleError("dulwich is not installed on the controller: pip install dulwich")
    try:
        return Repo(path)
    except (NotGitRepository, OSError) as exc:
        raise BundleError("%s is not a git repository on the controller (%s): pass the checkout "
                          "or bare cache git_deploy_tag returned as 'repo'" % (path, exc))


def resolve_tag(repo, tag):
    """(tag object, commit) hex strings for ``refs/tags/<tag>`` in ``repo``."""
    ref = ("refs/tags/%s" % tag).encode("utf-8")
    try:
        target = repo.refs[ref]
    except KeyError:
        raise TagMissing("tag %s is not in the controller repository %s: create it with "
                         "gitdeploy.rollout.git_deploy_tag, or run: git -C %s fetch --tags"
                         % (tag, repo.path, repo.path))
    peeled = peel_sha(repo.object_store, target)[1]
    if not isinstance(peeled, Commit):
        raise BundleError("tag %s in %s points to a %s, not a commit"
                          % (tag, repo.path, peeled.type_name.decode("ascii")))
    return target.decode("ascii"), peeled.id.decode("ascii")


def known_commits(repo, shas):
    """The subset of ``shas`` that are commits in ``repo`` (bytes, sorted)."""
    return _known(repo.object_store, shas)


def _known(store, shas):
    known = []
    for sha in sorted(set(shas)):
        raw = sha.encode("ascii") if isinstance(sha, str) else sha
        if raw in store and store[raw].type_num == Commit.type_num:
            known.append(raw)
    return known


def module_repos(repo):
    """The repositories of ``repo``'s submodules on the controller: every git directory
    under ``<git dir>/modules`` (nested submodules' are below their parent's), as
    ``git submodule update --init --recursive`` leaves them, and for a bare cache of
    git_deploy_repo_url the submodule caches gitrepo.fetch_modules keeps there."""
    found = []
    base = os.path.join(repo.controldir(), "modules")
    for dirpath, dirnames, _files in os.walk(base):
        dirnames.sort()
        if os.path.isdir(os.path.join(dirpath, "objects")) and os.path.isfile(os.path.join(dirpath, "HEAD")):
            dirnames[:] = [name for name in dirnames if name == "modules"]  # its nested submodules, nothing else
            try:
                found.append(Repo(dirpath))
            except (NotGitRepository, OSError):
                continue
    return found


def _worktree_repo(repo, path):
    """The repository of a submodule checked out the old way, with its own ``<path>/.git``
    directory in the controller's working tree (None if there is none)."""
    if repo.bare:
        return None
    gitdir = os.path.join(repo.path, path.decode("utf-8", "replace"), ".git")
    if not os.path.isdir(gitdir):
        return None
    try:
        return Repo(gitdir)
    except (NotGitRepository, OSError):
        return None


def _with_modules(repo, reader, commit, haves, tag):
    """The plans of the submodules ``commit`` pins (nested too), each a walk of its own
    repository against what the target has of it; and the pinned commits (hex)."""
    plans, pins, opened = [], [], []
    pending = [(b"", path, sha) for path, sha in packing.gitlinks(reader, commit)]
    while pending:
        parent, path, sha = pending.pop(0)
        path = parent + path
        store = reader.store.holder(sha)
        if store is None:
            extra = _worktree_repo(repo, path)
            if extra is not None and sha in extra.object_store:
                opened.append(extra)
                reader.add_store(extra.object_store)
                store = extra.object_store
        if store is None:
            raise BundleError(
                "submodule %s is pinned by %s at commit %s, which is not in the controller's repository %s nor in "
                "its submodules' (%s): run git -C %s submodule update --init --recursive (or fetch that commit into "
                "the submodule), or set git_deploy_submodules: false to deploy without submodules"
                % (path.decode("utf-8", "replace"), tag, sha.decode("ascii"), repo.path,
                   os.path.join(repo.controldir(), "modules"), repo.path))
        kind = reader.raw(sha)[0]
        if kind != packing.COMMIT:
            raise BundleError("submodule %s is pinned by %s at %s, which is not a commit in %s: run git -C %s fsck"
                              % (path.decode("utf-8", "replace"), tag, sha.decode("ascii"), repo.path, repo.path))
        if sha not in pins:
            pins.append(sha)
            plans.append(packing.plan(reader, sha, _known(store, haves)))
        pending.extend((path + b"/", sub, pinned) for sub, pinned in packing.gitlinks(reader, sha))
    return plans, pins, opened


# -- the bundle -------------------------------------------------------------------

def write_tag_bundle(repo, tag, tag_object, haves, path, submodules=True):
    """Write the bundle of ``refs/tags/<tag>`` for a target having ``haves`` (the commits
    its refs point at) to ``path``.

    The bundle advertises the tag object itself (never the peeled commit), so the
    annotated tag arrives whole; its pack is streamed to the file (packing.write_pack).
    With ``submodules``, the commits the tag's tree pins as submodules (nested too) travel
    in the same pack, with what the target lacks of their history, each advertised as
    ``refs/git-deploy/modules/<commit>``. Returns {"objects": n, "prerequisites": [hex, ...],
    "modules": [hex, ...]}.
    """
    modules = module_repos(repo) if submodules else []
    reader = packing.Reader(packing.Stores([repo.object_store] + [m.object_store for m in modules]))
    opened = []
    try:
        plan = packing.plan(reader, tag_object.encode("ascii"), _known(repo.object_store, haves))
        pins = []
        if submodules:
            plans, pins, opened = _with_modules(repo, reader, packing.peel(reader, tag_object.encode("ascii")), haves,
                                                tag)
            plan = packing.merge([plan] + plans)
        with open(path, "wb") as handle:
            handle.write(b"# v2 git bundle\n")
            for sha in plan.prerequisites:
                handle.write(b"-%s %s\n" % (sha, _subject(reader, sha)))
            handle.write(b"%s refs/tags/%s\n" % (tag_object.encode("ascii"), tag.encode("utf-8")))
            for sha in pins:
                handle.write(b"%s %s%s\n" % (sha, MODULES.encode("ascii"), sha))
            handle.write(b"\n")
            objects = packing.write_pack(handle, reader, plan)
            handle.flush()
            os.fsync(handle.fileno())
    except packing.PackError as exc:
        fix = ("it is a shallow clone: run git -C %s fetch --unshallow" % repo.path if repo.get_shallow()
               else "run git -C %s fsck" % repo.path)
        raise BundleError("cannot build the bundle of %s from %s: %s; %s" % (tag, repo.path, exc, fix))
    finally:
        reader.close()
        for other in modules + opened:
            other.close()
    return {"objects": objects, "prerequisites": [p.decode("ascii") for p in plan.prerequisites],
            "modules": [p.decode("ascii") for p in pins]}


def _subject(reader, sha):
    """The first line of a commit message, as ``git bundle create`` writes it."""
    message = reader.raw(sha)[1].split(b"\n\n", 1)[-1].split(b"\n", 1)[0]
    return message.replace(b"\r", b"")[:200]


# -- the cache ----------------------------------------------------------------

def cached(cache_dir, key, build):
    """Return a Built for ``key``, calling ``build(tmp_path) -> meta`` at most once.

    ``meta`` is {"objects": n, "prerequisites": [...]}. Several processes asking for
    the same key wait on one lock; the first builds into a temporary file and renames
    it into place, the others find it done.
    """
    _makedirs(cache_dir)
    final = os.path.join(cache_dir, key + ".bundle")
    meta_path = os.path.join(cache_dir, key + ".json")
    lock_path = os.path.join(cache_dir, key + ".lock")
    with _open_lock(lock_path) as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        os.utime(lock_path, None)  # in use: never pruned
        try:
            meta = _read_meta(meta_path, final)
            if meta is not None:
                for path in (final, meta_path):
                    os.utime(path, None)
                return Built(final, meta["size"], meta["sha256"], meta["objects"],
                             meta["prerequisites"], key, True)
            handle, tmp = tempfile.mkstemp(prefix=key + ".", suffix=".tmp", dir=cache_dir)
            os.close(handle)
            try:
                meta = dict(build(tmp))
                meta["size"], meta["sha256"] = file_digest(tmp)
                os.rename(tmp, final)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            _write_json(meta_path, meta)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    _prune(cache_dir, keep=key)
    return Built(final, meta["size"], meta["sha256"], meta["objects"],
                 meta["prerequisites"], key, False)


def forget(cache_dir, key):
    """Remove the cache entry of ``key`` (a target found it damaged): the next run rebuilds."""
    _makedirs(cache_dir)
    lock_path = os.path.join(cache_dir, key + ".lock")
    with _open_lock(lock_path) as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            for suffix in (".json", ".bundle"):
                try:
                    os.unlink(os.path.join(cache_dir, key + suffix))
                except OSError:
                    pass
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _open_lock(path):
    """The lock file of a cache entry, never through a symlink."""
    try:
        return os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600), "r+b")
    except OSError as exc:
        raise BundleError("cannot open %s in the bundle cache (%s): a symlink there is never followed; remove it"
                          % (path, exc))


def _read_meta(meta_path, bundle_path):
    """The stored metadata if the entry is complete and the bundle's size and SHA-256 are
    still the recorded ones (a damaged or planted bundle is built again)."""
    try:
        with open(meta_path) as handle:
            meta = json.load(handle)
        if (not os.path.islink(bundle_path) and os.path.getsize(bundle_path) == meta["size"]
                and file_digest(bundle_path) == (meta["size"], meta["sha256"])):
            return meta
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_json(path, data):
    handle, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(data, out, sort_keys=True)
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_cache_dir(path, st=None):
    """Refuse a cache another user could write to: what is in it goes to every target."""
    st = st or os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise BundleError("the bundle cache %s is not a directory (a symlink or a file): remove it, or set "
                          "cache_dir to a directory of your own" % path)
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise BundleError("the bundle cache %s belongs to uid %d, not to you (uid %d): what is in it goes to every "
                          "target. Use a cache of your own (cache_dir), or chown it" % (path, st.st_uid, os.geteuid()))
    if st.st_mode & 0o022:
        raise BundleError("the bundle cache %s is writable by its group or by anyone (mode %04o): what is in it goes "
                          "to every target. Fix it with: chmod go-w %s" % (path, stat.S_IMODE(st.st_mode), path))


def _makedirs(path):
    try:
        os.makedirs(path, 0o700, exist_ok=True)
        check_cache_dir(path)
    except OSError as exc:
        raise BundleError("cannot create the bundle cache %s (%s): set cache_dir to a "
                          "writable directory on the controller" % (path, exc))


def _prune(cache_dir, keep, max_age=CACHE_MAX_AGE):
    """Remove cache entries nobody used for ``max_age`` seconds."""
    limit = time.time() - max_age
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return
    for name in names:
        if name.startswith(keep):
            continue
        path = os.path.join(cache_dir, name)
        try:
            if os.stat(path).st_mtime < limit:
                os.unlink(path)
        except OSError:
            pass


def tag_bundle(cache_dir, repo_path, tag, commit, haves, submodules=True):
    """The cached bundle that brings ``tag`` (which must peel to ``commit``) to a target
    whose refs point at ``haves`` (commit ids; include ``commit`` if the target has it),
    with the submodules the tag pins unless ``submodules`` is false.
    """
    repo = open_repo(repo_path)
    try:
        tag_object, tag_commit = resolve_tag(repo, tag)
        if tag_commit != commit:
            raise BundleError("tag %s in %s points to commit %s, not %s: pass the commit "
                              "git_deploy_tag returned for this tag"
                              % (tag, repo_path, tag_commit, commit))
        key = cache_key(tag, tag_object, commit, haves, submodules)
        return cached(cache_dir, key,
                      lambda path: write_tag_bundle(repo, tag, tag_object, haves, path, submodules))
    finally:
        repo.close()


def preview(repo_path, commit, haves, submodules=True):
    """What a bundle of ``commit`` for a target with ``haves`` would weigh, for check
    mode when the rollout tag is not cut yet: the real bundle adds the tag object
    (a few hundred bytes). Writes only a temporary file. Returns (bytes, objects,
    prerequisites)."""
    repo = open_repo(repo_path)
    handle, path = tempfile.mkstemp(suffix=".bundle")
    os.close(handle)
    try:
        info = write_tag_bundle(repo, "preview", commit, haves, path, submodules)
        return os.path.getsize(path), info["objects"], info["prerequisites"]
    finally:
        os.unlink(path)
        repo.close()
