# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The release tree on a target: prepare, switch, mark failed, prune, describe.

Strategy ``releases``::

    <root>/releases/<tag>/                 the tree of one tag (no .git), complete once it has this name
    <root>/releases/.<tag>.tmp-<pid>/      a release being prepared (never the final name)
    <root>/releases/.<tag>.del-<pid>/      a release being deleted
    <root>/current -> releases/<tag>       relative symlink, replaced atomically (rename)
    <root>/.git-deploy/prepared/<tag>.json the commit a release was prepared from (written before the rename)
    <root>/.git-deploy/failed/<tag>        marker: the rollout of <tag> failed (pruned first)

Strategy ``in_place`` (git-deploy's own model)::

    <root>/current/                        a working tree of repo.git
    <root>/.git-deploy/in_place.index      its index
    <root>/.git-deploy/in_place.json       {tag, commit, previous_tag, previous_commit, switched,
                                            deploy_file, previous_deploy_file}
    <root>/.git-deploy/hooks/<tag>/<hook_dir>/  the hook directory of a prepared tag

Everything here runs on the target: Python 3.8+, the ``git`` binary, nothing else.
Commands run through the ``run_command`` callable handed in (``AnsibleModule.run_command``),
always with list arguments.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import time

from ansible_collections.gitdeploy.rollout.plugins.module_utils import journal
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import (
    Layout,
    check_name,
    check_relative,
)

STRATEGIES = ("releases", "in_place")
STATES = ("prepared", "live", "failed")
DEFAULT_DEPLOY_FILE = ".deploy"
DEFAULT_HOOK_DIR = "deploy"
DEFAULT_KEEP = 5

PREPARED_DIR = "prepared"
FAILED_DIR = "failed"
HOOKS_DIR = "hooks"
IN_PLACE_INDEX = "in_place.index"
IN_PLACE_STATE = "in_place.json"

# <prefix>-YYYYMMDD-HHMMSS[_A..] (git_deploy_tag's default date format).
TAG_RE = re.compile(r"^(?P<prefix>.+)-(?P<date>\d{8})-(?P<time>\d{6})(?:_(?P<suffix>[A-Z]+))?$")
SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# Work directories (and the private index of one) next to the final names.
WORK_RE = re.compile(r"^\.(?P<tag>.+)\.(?P<kind>tmp|del)-(?P<pid>\d+)(?P<index>\.index)?$")


class ReleaseError(Exception):
    """An operation that cannot go on: the message says what, where and the fix."""


# ---------------------------------------------------------------------------
# Pure logic
# ---------------------------------------------------------------------------

def check_keep(keep):
    """Return ``keep`` as an int >= 1, else raise ValueError with the fix."""
    try:
        value = int(keep)
    except (TypeError, ValueError):
        value = None
    if value is None or isinstance(keep, bool) or value < 1:
        raise ValueError(
            "keep_releases=%r is invalid: it must be 1 or more (the live release and the "
            "previous one are never deleted); set keep_releases: 1 to keep as few as possible" % (keep,)
        )
    return value


def check_commit(commit):
    """Return ``commit`` lower-cased if it is a full object name, else raise ValueError."""
    value = commit.strip().lower() if isinstance(commit, str) else ""
    if not SHA_RE.match(value):
        raise ValueError(
            "commit %r is not a full commit id: pass the 40 (or 64) hex digit id, "
            "e.g. the 'commit' returned by gitdeploy.rollout.git_deploy_tag" % (commit,)
        )
    return value


def check_shared_paths(paths):
    """Normalise ``paths``; reject absolute, escaping, duplicate and nested paths."""
    result = []
    for path in paths or []:
        norm = check_relative(path, "shared path")
        if norm == "." or norm.split("/")[0] == ".git":
            raise ValueError("shared path %r must name a path inside the release, not the release itself "
                             "or .git" % (path,))
        for other in result:
            if norm == other:
                raise ValueError("shared path %r is listed twice in shared_paths" % (path,))
            if norm.startswith(other + "/") or other.startswith(norm + "/"):
                raise ValueError("shared paths %r and %r are nested: list only the outer one" % (other, norm))
        result.append(norm)
    return result


def tag_time(tag):
    """Seconds since the epoch of the date in ``tag`` (read as UTC), or None."""
    match = TAG_RE.match(tag)
    if not match:
        return None
    try:
        moment = time.strptime(match.group("date") + match.group("time"), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return calendar.timegm(moment)


def tag_sort_key(tag, times=None):
    """Ordering key, oldest first: the date in the tag name, else ``times[tag]``, then the
    collision suffix (none < _A < _B < ... < _Z < _AA), then the name."""
    match = TAG_RE.match(tag)
    stamp = tag_time(tag)
    if stamp is None:
        stamp = (times or {}).get(tag) or 0
    suffix = (match.group("suffix") or "") if match else ""
    return (stamp, len(suffix), suffix, tag)


def sort_tags(tags, times=None):
    """``tags`` oldest first (see ``tag_sort_key``)."""
    return sorted(tags, key=lambda tag: tag_sort_key(tag, times))


def select_prune(releases, keep, live=None, previous=None, failed=(), unfinished=(), protect=(), times=None):
    """The releases to delete, in deletion order.

    * never ``live``, ``previous`` or anything in ``protect``;
    * every release in ``failed`` goes, whatever ``keep`` says;
    * then, while more than ``keep`` releases are left, the ``unfinished`` ones
      (oldest first), then the oldest complete ones.

    The live and previous releases count towards ``keep``; when they are all
    that is left, fewer than ``keep`` may be deleted.
    """
    keep = check_keep(keep)
    protected = set(p for p in (live, previous) if p) | set(protect or ())
    ordered = sort_tags(set(releases), times)
    failed, unfinished = set(failed or ()), set(unfinished or ())
    doomed = [r for r in ordered if r in failed and r not in protected]
    left = [r for r in ordered if r not in doomed]
    excess = len(left) - keep
    if excess > 0:
        candidates = [r for r in left if r in unfinished and r not in protected]
        candidates += [r for r in left if r not in unfinished and r not in protected]
        doomed += candidates[:excess]
    return doomed


def newest_other(releases, live, failed=(), times=None):
    """The newest of ``releases`` that is not ``live`` nor in ``failed``, or None."""
    others = [r for r in sort_tags(releases, times) if r != live and r not in set(failed or ())]
    return others[-1] if others else None


def parse_deploy_file(text):
    """The ``key: value`` header of a deploy file (up to the first blank line) as a dict."""
    fields = {}
    for line in (text or "").splitlines():
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields[key.strip().lower()] = value.strip()
    return fields


def parse_name_status(output, exclude=()):
    """Parse ``git diff --name-status -z --no-renames`` output: ``[{status, path}]``."""
    parts = (output or "").split("\0")
    result = []
    index = 0
    while index + 1 < len(parts):
        status, path = parts[index], parts[index + 1]
        index += 2
        if not status:
            break
        if path in exclude:
            continue
        result.append({"status": status[0], "path": path})
    return result


def parse_gitlinks(output):
    """``[(path, commit)]`` of the gitlinks (mode 160000) in ``git ls-tree -r -z`` output."""
    found = []
    for record in output.split("\0"):
        meta, _tab, path = record.partition("\t")
        fields = meta.split()
        if len(fields) == 3 and fields[0] == "160000" and fields[1] == "commit" and path:
            found.append((path, fields[2]))
    return found


def link_target(tag):
    """What ``current`` points at for ``tag`` (relative to the root)."""
    return os.path.join("releases", check_name(tag, "tag"))


def tag_of_link(target, releases_dir):
    """The tag a ``current`` symlink value names, or None for anything else."""
    if not target:
        return None
    root = os.path.dirname(releases_dir)
    path = os.path.normpath(target if os.path.isabs(target) else os.path.join(root, target))
    if os.path.dirname(path) != os.path.normpath(releases_dir):
        return None
    name = os.path.basename(path)
    try:
        return check_name(name, "tag")
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# Small I/O helpers
# ---------------------------------------------------------------------------

def swap_symlink(target, link):
    """Point ``link`` at ``target`` atomically: a temporary symlink renamed over it.

    At every moment ``link`` either names the old target or the new one.
    """
    tmp = os.path.join(os.path.dirname(link), ".%s.tmp-%d" % (os.path.basename(link), os.getpid()))
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    try:
        os.rename(tmp, link)
    except OSError:
        os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(link))


fsync_dir = journal.fsync_dir


def read_text(path):
    """The text of ``path``, or None if it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except (IOError, OSError) as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def read_json(path):
    """The JSON object in ``path``, or None if it is missing or unreadable."""
    text = read_text(path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def write_file_atomic(path, text, mode=None):
    """Write ``text`` to ``path`` through a temporary file renamed over it."""
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, ".%s.tmp-%d" % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode if mode is not None else 0o666)
    try:
        journal.write_all(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    fsync_dir(directory)


def write_json(path, value):
    journal.ensure_dir(os.path.dirname(path))
    write_file_atomic(path, json.dumps(value, sort_keys=True) + "\n", journal.FILE_MODE)


pid_alive = journal.pid_alive


def remove_path(path):
    """Delete a file, symlink or directory tree (making read-only directories writable)."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return

    def retry(func, failed, _info):
        # Read-only or unreadable directories (an app may make them): open them up and retry.
        for target in (os.path.dirname(failed), failed):
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, os.stat(target).st_mode | stat.S_IRWXU)
        if func in (os.rmdir, os.unlink, os.remove):
            func(failed)
        else:
            remove_path(failed)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)  # pylint: disable=unexpected-keyword-arg
    else:
        shutil.rmtree(path, onerror=retry)  # pylint: disable=deprecated-argument


def now_iso():
    return journal.isoformat(journal.utcnow())


# ---------------------------------------------------------------------------
# The release tree of one root
# ---------------------------------------------------------------------------

class ReleaseTree:
    """Everything this collection does to ``<root>/releases``, ``current`` and their state.

    ``run_command`` has the signature of ``AnsibleModule.run_command``. In check mode
    nothing is written; ``actions`` says what would have been done.
    """

    def __init__(self, root, run_command, git="git", check_mode=False,
                 deploy_file_name=DEFAULT_DEPLOY_FILE, hook_dir=DEFAULT_HOOK_DIR, submodules=True):
        self.layout = Layout(root)
        self.submodules = submodules
        self._run = run_command
        self.git_bin = git
        self.check_mode = check_mode
        self.deploy_file_name = check_relative(deploy_file_name, "deploy_file_name")
        self.hook_dir = check_relative(hook_dir, "hook_dir")
        self.actions = []
        self.warnings = []
        self.cleaned = []

    # -- paths -------------------------------------------------------------
    @property
    def root(self):
        return self.layout.root

    def prepared_meta_path(self, tag):
        return os.path.join(self.layout.state, PREPARED_DIR, check_name(tag, "tag") + ".json")

    def failed_marker(self, tag):
        return os.path.join(self.layout.state, FAILED_DIR, check_name(tag, "tag"))

    def hooks_path(self, tag):
        return os.path.join(self.layout.state, HOOKS_DIR, check_name(tag, "tag"))

    @property
    def in_place_index(self):
        return os.path.join(self.layout.state, IN_PLACE_INDEX)

    @property
    def in_place_state(self):
        return os.path.join(self.layout.state, IN_PLACE_STATE)

    # -- git ----------------------------------------------------------------
    def git(self, args, work_tree=None, index=None, data=None, check=True, what=None):
        cmd = [self.git_bin, "--no-optional-locks", "--git-dir=" + self.layout.repo]
        if work_tree:
            cmd.append("--work-tree=" + work_tree)
        cmd += list(args)
        env = {"GIT_TERMINAL_PROMPT": "0"}
        if index:
            env["GIT_INDEX_FILE"] = index
        kwargs = dict(environ_update=env, expand_user_and_vars=False)
        if data is not None:
            kwargs.update(data=data, binary_data=True)
        rc, out, err = self._run(cmd, **kwargs)
        if rc != 0 and check:
            raise ReleaseError(
                "%s failed on %s (rc=%d): %s%s" % (
                    what or "git " + " ".join(args[:2]), self.root, rc, (err or out or "").strip(),
                    "\ncommand: %s" % " ".join(cmd)))
        return rc, out, err

    def resolve_tag(self, tag):
        """The commit ``refs/tags/<tag>`` peels to in repo.git, or None."""
        if not os.path.isdir(self.layout.repo):
            return None
        rc, out, _err = self.git(["rev-parse", "--verify", "--quiet", "refs/tags/%s^{commit}" % tag], check=False)
        return out.strip() if rc == 0 and out.strip() else None

    def resolve_commit(self, tag, commit):
        """Check that ``refs/tags/<tag>`` in repo.git peels to ``commit``; return the commit.

        Without ``commit`` the tag's commit is returned. In check mode a tag that is not
        delivered yet is a warning (delivery would bring it), not an error.
        """
        repo = self.layout.repo
        found = self.resolve_tag(tag)
        if found is None:
            problem = ("no object store at %s" % repo if not os.path.isdir(repo)
                       else "tag %s is not in %s (refs/tags/%s)" % (tag, repo, tag))
            if self.check_mode:
                self.warnings.append("%s; in a real run gitdeploy.rollout.git_deploy_push delivers it first" % problem)
                return commit
            raise ReleaseError("%s: deliver it first with gitdeploy.rollout.git_deploy_push "
                               "(root=%s tag=%s)" % (problem, self.root, tag))
        if commit and found != commit:
            raise ReleaseError(
                "tag %s in %s points to commit %s, not to the commit %s this rollout expects: "
                "the tag was moved; deliver the tag again with gitdeploy.rollout.git_deploy_push "
                "or pass the commit it points to" % (tag, repo, found, commit))
        return found

    # -- state of current -----------------------------------------------------
    def current_state(self):
        """``(kind, target, tag)``: kind is missing|symlink|directory|other."""
        current = self.layout.current
        if os.path.islink(current):
            target = os.readlink(current)
            return "symlink", target, tag_of_link(target, self.layout.releases)
        if os.path.isdir(current):
            state = read_json(self.in_place_state) or {}
            tag = state.get("tag")
            if not tag:
                tag = parse_deploy_file(read_text(os.path.join(current, self.deploy_file_name))).get("tag")
            return "directory", current, tag or None
        if os.path.lexists(current):
            return "other", current, None
        return "missing", None, None

    def describe_current(self):
        kind, target, _tag = self.current_state()
        if kind == "symlink":
            return "%s -> %s\n" % (self.layout.current, target)
        if kind == "missing":
            return "%s: absent\n" % self.layout.current
        return "%s: %s\n" % (self.layout.current, kind)

    # -- release bookkeeping -------------------------------------------------
    def releases(self):
        """Names of the release directories (plain names, not symlinks), unordered."""
        try:
            names = os.listdir(self.layout.releases)
        except OSError:
            return []
        result = []
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(self.layout.releases, name)
            if os.path.islink(path) or not os.path.isdir(path):
                continue
            try:
                result.append(check_name(name, "tag"))
            except ValueError:
                continue
        return result

    def meta(self, tag):
        return read_json(self.prepared_meta_path(tag))

    def is_failed(self, tag):
        return os.path.lexists(self.failed_marker(tag))

    def _state_names(self, directory, suffix=""):
        """Tags with an entry ``<root>/.git-deploy/<directory>/<tag><suffix>``."""
        try:
            names = os.listdir(os.path.join(self.layout.state, directory))
        except OSError:
            return []
        return sorted(n[:len(n) - len(suffix)] for n in names
                      if not n.startswith(".") and n.endswith(suffix) and len(n) > len(suffix))

    def failed_tags(self):
        return self._state_names(FAILED_DIR)

    def times(self, names):
        """Fallback ordering times: when the release was prepared, else its directory mtime."""
        result = {}
        for name in names:
            meta = self.meta(name) or {}
            stamp = meta.get("prepared_epoch")
            if not isinstance(stamp, (int, float)):
                try:
                    stamp = os.stat(os.path.join(self.layout.releases, name)).st_mtime
                except OSError:
                    stamp = 0
            result[name] = stamp
        return result

    def _write_meta(self, tag, commit, strategy):
        write_json(self.prepared_meta_path(tag), {
            "tag": tag, "commit": commit, "strategy": strategy,
            "prepared": now_iso(), "prepared_epoch": time.time()})

    def is_complete(self, tag, meta=None):
        meta = meta if meta is not None else self.meta(tag)
        return bool(meta and meta.get("commit") and meta.get("strategy", "releases") == "releases")

    def settled_tag(self):
        """What the newest finished rollout left live here (see journal.settled_tag)."""
        records, _corrupt = journal.read_history(self.layout.history)
        return journal.settled_tag(records)

    def previous_tag(self, live, records=None):
        """Where a revert goes: the history's answer, else the newest other complete release."""
        if records is None:
            records, _corrupt = journal.read_history(self.layout.history)
        found = journal.previous_live_tag(records, live)
        if found or records:
            # With a history, its answer stands, "none" included: after a revert the
            # release it left must not come back as the next revert's target.
            return found
        names = self.releases()
        complete = [n for n in names if self.is_complete(n)]
        return newest_other(complete, live, self.failed_tags(), self.times(complete))

    # -- removal -----------------------------------------------------------
    def _do(self, action, func=None, *args):
        self.actions.append(("would " if self.check_mode else "") + action)
        if not self.check_mode and func is not None:
            func(*args)

    def cleanup_work_dirs(self, directory, only=None):
        """Remove leftover ``.<tag>.tmp-<pid>`` / ``.del-<pid>`` entries of dead processes
        (only those of ``.<only>.tmp-<pid>`` when ``only`` is given)."""
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return
        for name in names:
            match = WORK_RE.match(name)
            if not match or pid_alive(int(match.group("pid"))):
                continue
            if only is not None and match.group("tag") != only:
                continue
            path = os.path.join(directory, name)
            self.cleaned.append(path)
            self._do("remove leftover %s" % path, remove_path, path)

    def delete_release(self, tag):
        path = self.layout.release(tag)
        self._do("delete release %s" % path, self._delete_release, tag)

    def _delete_release(self, tag):
        path = self.layout.release(tag)
        doomed = os.path.join(self.layout.releases, ".%s.del-%d" % (tag, os.getpid()))
        remove_path(doomed)
        os.rename(path, doomed)  # the final name disappears at once
        for extra in (self.prepared_meta_path(tag), self.failed_marker(tag)):
            if os.path.lexists(extra):
                os.unlink(extra)
        remove_path(doomed)

    # -- strategy releases: prepare -------------------------------------------
    def checkout(self, commit, work_tree, index, subtree=None):
        """Write the tree of ``commit`` (or its ``subtree``) into ``work_tree``, no .git; with
        ``submodules`` (and no ``subtree``), the submodules it pins too, at their commits."""
        if subtree:
            args = ["read-tree", "--prefix=%s/" % subtree, "%s:%s" % (commit, subtree)]
        else:
            args = ["read-tree", commit]
        try:
            self.git(args, work_tree=work_tree, index=index, what="reading the tree of %s" % commit)
            self.git(["checkout-index", "-a", "-f"], work_tree=work_tree, index=index,
                     what="writing the tree of %s into %s" % (commit, work_tree))
        finally:
            if os.path.lexists(index):
                os.unlink(index)
        if self.submodules and not subtree:
            self.checkout_modules(commit, work_tree, index)

    def gitlinks(self, commit):
        """The submodules ``commit`` pins, ``[(path, commit)]``: the gitlinks of its tree when
        it has a ``.gitmodules`` (as the controller's bundle builder reads them)."""
        rc, _out, _err = self.git(["cat-file", "-e", "%s:.gitmodules" % commit], check=False)
        if rc != 0:
            return []
        _rc, out, _err = self.git(["ls-tree", "-r", "-z", "--full-tree", commit],
                                  what="listing the submodules of %s" % commit)
        return parse_gitlinks(out)

    def checkout_modules(self, commit, work_tree, index, update=False):
        """Write each submodule ``commit`` pins (nested too) into its directory of ``work_tree``.
        With ``update`` (strategy in_place) each submodule keeps an index next to ``index`` and
        is updated the way its tree changed (files it no longer has go)."""
        pending = [(work_tree, path, sha) for path, sha in self.gitlinks(commit)]
        real_tree = os.path.realpath(work_tree)
        while pending:
            parent, path, sha = pending.pop(0)
            dest = os.path.join(parent, path)
            rc, _out, _err = self.git(["cat-file", "-e", "%s^{commit}" % sha], check=False)
            if rc != 0:
                raise ReleaseError(
                    "submodule %s is pinned at commit %s, which is not in %s: deliver the tag with its submodules "
                    "(git_deploy_submodules: true), or deploy without them (git_deploy_submodules: false)"
                    % (os.path.relpath(dest, work_tree), sha, self.layout.repo))
            if not (os.path.realpath(dest) + "/").startswith(real_tree + "/"):
                raise ReleaseError("submodule %s leaves the tree %s through a symlink: nothing was written there"
                                   % (os.path.relpath(dest, work_tree), work_tree))
            if not os.path.isdir(dest):
                os.makedirs(dest)
            sub_index = "%s.%s" % (index, hashlib.sha1(os.path.relpath(dest, work_tree).encode("utf-8")).hexdigest())
            try:
                if update:
                    self.git(["read-tree", "-u", "--reset", sha], work_tree=dest, index=sub_index,
                             what="checking out submodule %s at %s" % (path, sha))
                else:
                    self.git(["read-tree", sha], work_tree=dest, index=sub_index,
                             what="reading the tree of submodule %s at %s" % (path, sha))
                    self.git(["checkout-index", "-a", "-f"], work_tree=dest, index=sub_index,
                             what="writing submodule %s at %s into %s" % (path, sha, dest))
            finally:
                if not update and os.path.lexists(sub_index):
                    os.unlink(sub_index)
            pending.extend((dest, sub, pinned) for sub, pinned in self.gitlinks(sha))

    def shared_link_ok(self, release_dir, rel):
        path = os.path.join(release_dir, rel)
        expected = os.path.relpath(os.path.join(self.layout.shared, rel), os.path.dirname(path))
        return os.path.islink(path) and os.readlink(path) == expected

    def link_shared(self, release_dir, rel):
        """Replace ``<release>/<rel>`` with a relative symlink to ``shared/<rel>``.

        ``shared/<rel>`` is seeded from the release's own content the first time, or
        created as an empty directory when the release has none.
        """
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            component = os.path.join(release_dir, *parts[:depth])
            if os.path.islink(component) or (os.path.lexists(component) and not os.path.isdir(component)):
                raise ReleaseError(
                    "shared path %s cannot be linked in %s: %s is a symlink or a file in the "
                    "release tree; share the enclosing directory instead or remove it from git"
                    % (rel, release_dir, "/".join(parts[:depth])))
        path = os.path.join(release_dir, rel)
        shared = os.path.join(self.layout.shared, rel)
        if not os.path.lexists(shared):
            if not os.path.isdir(os.path.dirname(shared)):
                os.makedirs(os.path.dirname(shared))
            if os.path.lexists(path) and not os.path.islink(path):
                shutil.move(path, shared)
            else:
                os.makedirs(shared)
        if os.path.lexists(path):
            remove_path(path)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        os.symlink(os.path.relpath(shared, os.path.dirname(path)), path)

    def deploy_file_ok(self, tree, text):
        return text is None or read_text(os.path.join(tree, self.deploy_file_name)) == text

    def write_deploy_file(self, tree, text):
        path = os.path.join(tree, self.deploy_file_name)
        parent = os.path.dirname(path)
        real_tree = os.path.realpath(tree)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        if not (os.path.realpath(parent) + "/").startswith(real_tree + "/"):
            raise ReleaseError("deploy_file_name %s leaves the tree %s through a symlink: choose a path "
                               "inside the release" % (self.deploy_file_name, tree))
        write_file_atomic(path, text)

    def _build_release(self, tag, commit, deploy_file, shared_paths):
        final = self.layout.release(tag)
        releases = self.layout.releases
        if not os.path.isdir(releases):
            os.makedirs(releases)
        tmp = os.path.join(releases, ".%s.tmp-%d" % (tag, os.getpid()))
        index = tmp + ".index"
        remove_path(tmp)
        os.mkdir(tmp)
        try:
            self.checkout(commit, tmp, index)
            for rel in shared_paths:
                self.link_shared(tmp, rel)
            if deploy_file is not None:
                self.write_deploy_file(tmp, deploy_file)
            self._write_meta(tag, commit, "releases")
            if os.path.lexists(self.failed_marker(tag)):
                os.unlink(self.failed_marker(tag))
            os.rename(tmp, final)
            fsync_dir(releases)
        except BaseException:
            remove_path(tmp)
            raise

    def prepare_release(self, tag, commit, deploy_file=None, shared_paths=(), force=False):
        path = self.layout.release(tag)
        shared_paths = check_shared_paths(shared_paths)
        commit = self.resolve_commit(tag, commit)
        _kind, _target, live = self.current_state()
        exists = os.path.isdir(path) and not os.path.islink(path)
        meta = self.meta(tag) if exists else None
        build = True
        if exists:
            reason = None
            if not self.is_complete(tag, meta):
                reason = "is unfinished (no %s)" % self.prepared_meta_path(tag)
            elif commit and meta.get("commit") != commit:
                reason = "was prepared from commit %s, not %s" % (meta.get("commit"), commit)
            elif self.is_failed(tag) and tag != live:
                reason = "is marked failed (%s)" % self.failed_marker(tag)
            if reason is None:
                build = False
            elif tag != live:
                self._do("replace release %s: it %s" % (path, reason), self._delete_release, tag)
            elif force and commit and meta is None:
                # A live tree without bookkeeping (made by hand or an older tool): adopt it.
                self._do("record %s as prepared from %s" % (path, commit), self._write_meta,
                         tag, commit, "releases")
                build = False
            else:
                raise ReleaseError(
                    "release %s %s, but it is live (current -> %s) so it cannot be replaced: switch to another "
                    "release first (gitdeploy.rollout.git_deploy_release state=live tag=<other>) or deploy a new "
                    "tag%s" % (path, reason, link_target(tag),
                               "; force: true adopts an unfinished live release as it is" if meta is None else ""))
        previous = self.previous_tag(live)
        self.cleanup_work_dirs(self.layout.releases)
        pruned = []
        for name in sort_tags(set(self.failed_tags()) & set(self.releases())):
            if name not in (live, previous, tag):
                self.delete_release(name)
                pruned.append(name)
        if build:
            self._do("create release %s from commit %s" % (path, commit or "(tag not delivered yet)"),
                     self._build_release, tag, commit, deploy_file, shared_paths)
        else:
            for rel in shared_paths:
                if not self.shared_link_ok(path, rel):
                    self._do("link %s to %s" % (os.path.join(path, rel), os.path.join(self.layout.shared, rel)),
                             self.link_shared, path, rel)
            if not self.deploy_file_ok(path, deploy_file):
                self._do("write %s" % os.path.join(path, self.deploy_file_name),
                         self.write_deploy_file, path, deploy_file)
        return {
            "release": path,
            "commit": commit,
            "live_tag": live,
            "previous_tag": previous,
            "pruned": pruned,
            "diff": {
                "before": "%s: %s\n" % (path, "absent" if build else "prepared from %s" % (meta or {}).get("commit")),
                "after": "%s: prepared from %s\n" % (path, commit if build else (meta or {}).get("commit")),
            },
        }

    # -- strategy releases: switch --------------------------------------------
    def switch_release(self, tag, commit=None, keep=DEFAULT_KEEP, force=False, prune=True):
        """Make ``tag`` live; with ``prune``, delete the releases ``keep`` no longer needs
        (a rollout prunes once its outcome is known instead: see :meth:`prune`)."""
        keep = check_keep(keep)
        path = self.layout.release(tag)
        current = self.layout.current
        kind, target, old_live = self.current_state()
        if kind in ("directory", "other"):
            what = "directory" if kind == "directory" else "file"
            raise ReleaseError(
                "%s is a %s, not a symlink: this root looks like strategy=in_place; pass strategy: in_place, "
                "or move %s away to switch this root to releases" % (current, what, current))
        before = self.describe_current()
        present = os.path.isdir(path) and not os.path.islink(path)
        meta = self.meta(tag) if present else None
        if not present:
            if self.check_mode:
                self.warnings.append("release %s is not prepared yet; in a real run state=prepared creates it "
                                     "before the switch" % path)
            else:
                raise ReleaseError(
                    "release %s does not exist: prepare it first (gitdeploy.rollout.git_deploy_release "
                    "state=prepared tag=%s), then switch" % (path, tag))
        elif not self.is_complete(tag, meta) and not force:
            raise ReleaseError(
                "release %s is unfinished (no %s): prepare it again with state=prepared, or pass "
                "force: true to switch to it as it is" % (path, self.prepared_meta_path(tag)))
        elif commit and meta and meta.get("commit") != check_commit(commit):
            raise ReleaseError(
                "release %s was prepared from commit %s, not %s: prepare it again (state=prepared) "
                "before switching" % (path, meta.get("commit"), commit))
        already = kind == "symlink" and (
            target == link_target(tag)
            or (present and os.path.realpath(current) == os.path.realpath(path)))
        self.cleanup_work_dirs(self.root, only=os.path.basename(current))
        if not already:
            self._do("switch %s from %s to %s" % (current, target or "(absent)", link_target(tag)),
                     swap_symlink, link_target(tag), current)
        if self.is_failed(tag):
            self._do("clear the failed mark of %s" % tag, os.unlink, self.failed_marker(tag))
        doomed = self.prune(keep, live=tag, previous=old_live) if prune else []
        after = "%s -> %s\n" % (current, link_target(tag)) if not already else before
        return {
            "release": path,
            "live_tag": tag,
            "previous_tag": old_live,
            "pruned": doomed,
            "changed_current": not already,
            "diff": {"before": before, "after": after,
                     "before_header": current, "after_header": current},
        }

    def prune(self, keep, live=None, previous=None):
        """Delete the releases beyond ``keep`` (failed ones first, see :func:`select_prune`);
        never ``live`` (default: the live one), ``previous`` (default: what a revert goes back
        to, from the history) nor what a revert from ``live`` goes back to. Returns their names."""
        keep = check_keep(keep)
        if live is None:
            live = self.current_state()[2]
        records, _corrupt = journal.read_history(self.layout.history)
        protect = [t for t in (journal.previous_live_tag(records, live) if live else None,) if t]
        releases = set(self.releases()) | ({live} if self.check_mode and live else set())
        failed = (set(self.failed_tags()) - {live}) & releases
        unfinished = set(n for n in releases if n != live and not self.is_complete(n))
        self.cleanup_work_dirs(self.layout.releases)
        doomed = select_prune(releases, keep, live=live, previous=previous, failed=failed,
                              unfinished=unfinished, protect=protect, times=self.times(releases))
        for name in doomed:
            self.delete_release(name)
        return doomed

    # -- failed marker --------------------------------------------------------
    def mark_failed(self, tag, commit=None):
        marker = self.failed_marker(tag)
        commit = commit or (self.meta(tag) or {}).get("commit")
        if os.path.lexists(marker):
            return {"release": self._release_or_hooks(tag), "commit": commit, "marked": False,
                    "diff": {"before": "%s: failed\n" % tag, "after": "%s: failed\n" % tag}}
        record = {"tag": tag, "marked": now_iso()}
        if commit:
            record["commit"] = commit
        self._do("mark %s failed (%s)" % (tag, marker), write_json, marker, record)
        return {"release": self._release_or_hooks(tag), "commit": commit, "marked": True,
                "diff": {"before": "%s: not marked\n" % tag, "after": "%s: failed\n" % tag}}

    def _release_or_hooks(self, tag):
        for path in (self.layout.release(tag), self.hooks_path(tag)):
            if os.path.isdir(path):
                return path
        return None

    # -- strategy in_place ----------------------------------------------------
    def _in_place_kind(self):
        kind, _target, _tag = self.current_state()
        if kind in ("symlink", "other"):
            raise ReleaseError(
                "%s is a %s, not a working tree: this root uses strategy=releases; pass strategy: releases, "
                "or remove %s to switch this root to in_place" % (
                    self.layout.current, "symlink" if kind == "symlink" else "file", self.layout.current))
        return kind

    def local_modifications(self):
        """Tracked files of the in_place tree changed since the last checkout, or None when
        ``current`` is not a working tree this module manages (no index)."""
        current = self.layout.current
        if not os.path.isdir(current) or os.path.islink(current):
            return []
        if not os.path.exists(self.in_place_index):
            return None if os.listdir(current) else []
        if not os.path.isdir(self.layout.repo):
            raise ReleaseError("no object store at %s: the in_place tree %s cannot be checked without it; "
                               "deliver a tag with gitdeploy.rollout.git_deploy_push" % (self.layout.repo, current))
        _rc, out, _err = self.git(
            ["diff", "--name-status", "-z", "--no-renames", "--ignore-submodules", "--no-ext-diff"],
            work_tree=current, index=self.in_place_index,
            what="listing local modifications of %s" % current)
        return parse_name_status(out, exclude=(self.deploy_file_name,))

    def _refuse_modified(self, mods, force):
        if mods is None and not force:
            raise ReleaseError(
                "%s exists but is not a working tree managed by git_deploy_release (no %s): move it away "
                "or pass force: true to check the rollout out over it" % (self.layout.current, self.in_place_index))
        if mods and not force:
            listing = ", ".join("%s %s" % (m["status"], m["path"]) for m in mods[:20])
            raise ReleaseError(
                "%d tracked file(s) in %s were changed locally: %s%s. Commit the change to the repository and "
                "deploy it, restore the files (git --git-dir=%s --work-tree=%s checkout-index -f -a with "
                "GIT_INDEX_FILE=%s), or pass force: true to overwrite them"
                % (len(mods), self.layout.current, listing, " ..." if len(mods) > 20 else "",
                   self.layout.repo, self.layout.current, self.in_place_index))

    def _export_hooks(self, tag, commit):
        dest = self.hooks_path(tag)
        parent = os.path.dirname(dest)
        journal.ensure_dir(parent)
        tmp = os.path.join(parent, ".%s.tmp-%d" % (tag, os.getpid()))
        index = tmp + ".index"
        remove_path(tmp)
        os.mkdir(tmp)
        try:
            rc, _out, _err = self.git(["rev-parse", "--verify", "--quiet", "%s:%s" % (commit, self.hook_dir)],
                                      check=False)
            if rc == 0:
                self.checkout(commit, tmp, index, subtree=self.hook_dir)
            self._write_meta(tag, commit, "in_place")
            remove_path(dest)
            os.rename(tmp, dest)
        except BaseException:
            remove_path(tmp)
            raise

    def prepare_in_place(self, tag, commit, force=False):
        commit = self.resolve_commit(tag, commit)
        self._in_place_kind()
        mods = self.local_modifications()
        self._refuse_modified(mods, force)
        dest = self.hooks_path(tag)
        meta = self.meta(tag) or {}
        done = os.path.isdir(dest) and meta.get("strategy") == "in_place" and meta.get("commit") == commit
        self.cleanup_work_dirs(os.path.dirname(dest))
        if not done:
            self._do("export %s/ of %s into %s" % (self.hook_dir, commit or tag, dest),
                     self._export_hooks, tag, commit)
        _kind, _target, live = self.current_state()
        return {
            "release": dest,
            "commit": commit,
            "live_tag": live,
            "previous_tag": self.previous_tag(live),
            "pruned": [],
            "local_modifications": mods or [],
            "diff": {"before": "%s: %s\n" % (dest, "present" if done else "absent"),
                     "after": "%s: hooks of %s\n" % (dest, commit)},
        }

    def _checkout_in_place(self, commit):
        current = self.layout.current
        if not os.path.isdir(current):
            os.makedirs(current)
        journal.ensure_dir(self.layout.state)
        index = self.in_place_index
        self.git(["read-tree", "-u", "--reset", commit], work_tree=current, index=index,
                 what="checking out %s into %s" % (commit, current))
        if self.submodules:
            self.checkout_modules(commit, current, index, update=True)
        # read-tree leaves alone files whose blob did not change: restore local edits of those too.
        self.git(["update-index", "-q", "--refresh"], work_tree=current, index=index, check=False)
        _rc, out, _err = self.git(["diff-files", "--name-only", "-z", "--ignore-submodules"],
                                  work_tree=current, index=index, what="listing modified files in %s" % current)
        if out.strip("\0"):
            self.git(["checkout-index", "-f", "-u", "-z", "--stdin"], work_tree=current, index=index,
                     data=out, what="restoring modified files in %s" % current)

    def _write_in_place_state(self, record):
        write_json(self.in_place_state, record)

    def switch_in_place(self, tag, commit, deploy_file=None, force=False):
        commit = self.resolve_commit(tag, commit)
        kind = self._in_place_kind()
        current = self.layout.current
        state = read_json(self.in_place_state) or {}
        _kind, _target, old_tag = self.current_state()
        old_commit = state.get("commit")
        if kind == "directory" and not old_commit:
            old_commit = parse_deploy_file(read_text(os.path.join(current, self.deploy_file_name))).get("commit")
        mods = self.local_modifications()
        self._refuse_modified(mods, force)
        same = kind == "directory" and old_tag == tag and old_commit == commit and mods == []
        if not same:
            self._do("check out %s (%s) into %s" % (tag, commit or "tag not delivered yet", current),
                     self._checkout_in_place, commit)
        # The deploy file: the one given; going back to the previous tag without one, the previous
        # tag's own (kept in the state file); never a stale one naming another tag.
        text = deploy_file
        if text is None and not same and tag == state.get("previous_tag"):
            text = state.get("previous_deploy_file")
        deploy_path = os.path.join(current, self.deploy_file_name)
        if text is not None:
            if not (same and self.deploy_file_ok(current, text)):
                self._do("write %s" % deploy_path, self.write_deploy_file, current, text)
        elif not same and parse_deploy_file(read_text(deploy_path)).get("tag", tag) != tag:
            self._do("remove %s (it describes another tag)" % deploy_path, os.unlink, deploy_path)
        if same:
            record = dict(state, tag=tag, commit=commit)
            if text is not None:
                record["deploy_file"] = text
        else:
            record = {"tag": tag, "commit": commit, "previous_tag": old_tag, "previous_commit": old_commit,
                      "switched": now_iso(), "deploy_file": text,
                      "previous_deploy_file": state.get("deploy_file") if state.get("tag") == old_tag else None}
        if record != state:
            self._do("record %s as live in %s" % (tag, self.in_place_state), self._write_in_place_state, record)
        pruned = []
        hooks = os.path.join(self.layout.state, HOOKS_DIR)
        self.cleanup_work_dirs(hooks)
        try:
            exported = sorted(n for n in os.listdir(hooks) if not n.startswith("."))
        except OSError:
            exported = []
        for name in exported:
            if name != tag:
                path = os.path.join(hooks, name)
                self._do("remove hook export %s" % path, remove_path, path)
                pruned.append(name)
        # Bookkeeping of other tags: their prepared records, and failed marks older than the previous tag.
        for name in self._state_names(PREPARED_DIR, ".json"):
            meta = self.meta(name) or {}
            if name != tag and meta.get("strategy") == "in_place":
                self._do("forget the hook export of %s" % name, os.unlink, self.prepared_meta_path(name))
        for name in self.failed_tags():
            if name not in (tag, old_tag):
                self._do("forget the failed mark of %s" % name, os.unlink, self.failed_marker(name))
        return {
            "release": current,
            "commit": commit,
            "live_tag": tag,
            "previous_tag": old_tag,
            "pruned": pruned,
            "local_modifications": mods or [],
            "changed_current": not same,
            "diff": {"before": "tag: %s\ncommit: %s\n" % (old_tag, old_commit),
                     "after": "tag: %s\ncommit: %s\n" % (tag, commit),
                     "before_header": current, "after_header": current},
        }

    # -- info --------------------------------------------------------------
    def describe(self, strategy="releases", history_limit=20):
        layout = self.layout
        kind, target, live = self.current_state()
        exists = os.path.isdir(layout.repo) or os.path.lexists(layout.current)
        records, corrupt = journal.read_history(layout.history)
        failed = self.failed_tags()
        releases = []
        names = self.releases()
        times = self.times(names)
        for name in sort_tags(names, times):
            meta = self.meta(name) or {}
            complete = self.is_complete(name, meta)
            releases.append({
                "name": name,
                "path": layout.release(name),
                "commit": meta.get("commit"),
                "prepared": meta.get("prepared"),
                "complete": complete,
                "failed": name in failed,
                "live": name == live,
            })
        live_commit = None
        deploy_fields = {}
        if kind in ("symlink", "directory"):
            deploy_fields = parse_deploy_file(read_text(os.path.join(layout.current, self.deploy_file_name)))
        if live:
            live_commit = deploy_fields.get("commit") if deploy_fields.get("tag", live) == live else None
            if not live_commit and kind == "directory":
                live_commit = (read_json(self.in_place_state) or {}).get("commit")
            if not live_commit and kind == "symlink":
                live_commit = (self.meta(live) or {}).get("commit")
            if not live_commit:
                live_commit = self.resolve_tag(live)
        previous = journal.previous_live_tag(records, live)
        if not previous:
            if kind == "directory":
                previous = (read_json(self.in_place_state) or {}).get("previous_tag")
            else:
                complete = [r["name"] for r in releases if r["complete"]]
                previous = newest_other(complete, live, failed, times)
        mods = []
        if strategy == "in_place" and kind == "directory":
            mods = self.local_modifications()
        if kind == "directory" and strategy != "in_place":
            self.warnings.append("%s is a directory (an in_place working tree): pass strategy: in_place" % layout.current)
        if kind == "symlink" and strategy == "in_place":
            self.warnings.append("%s is a symlink (strategy releases): pass strategy: releases" % layout.current)
        history = records[-history_limit:] if history_limit > 0 else []
        return {
            "exists": exists,
            "current": {"kind": kind, "target": target},
            "live_tag": live,
            "live_commit": live_commit,
            "releases": releases,
            "failed_tags": failed,
            "previous_tag": previous,
            "settled_tag": journal.settled_tag(records),
            "dirty": bool(mods) or mods is None,
            "local_modifications": mods or [],
            "history": history,
            "history_corrupt_lines": corrupt,
        }
