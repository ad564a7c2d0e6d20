# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What changed between two rollouts, read with dulwich on the controller: the commits
brought (and taken back out), the files changed with their line counts, capped.

Controller only (dulwich). What the announcement makes of it: module_utils/announce.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import stat

from ansible_collections.gitdeploy.rollout.plugins.module_utils import announce
from ansible_collections.gitdeploy.rollout.plugins.module_utils.gitrepo import HAS_DULWICH, open_checkout, resolve

if HAS_DULWICH:
    from dulwich.diff_tree import RenameDetector, tree_changes

COUNT_LIMIT = 10000  # commits counted at most
RENAME_LIMIT = 200  # adds + deletes above which renames are not looked for
BLOB_LIMIT = 1024 * 1024  # larger files are listed without line counts
STAT_BUDGET = 32 * 1024 * 1024  # bytes of blobs compared in all
BINARY_PROBE = 8000
STATUS = {"add": "added", "modify": "modified", "delete": "deleted", "rename": "renamed", "copy": "copied"}


def _s(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _first_line(message):
    for line in _s(message or b"").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _author(identity):
    name = _s(identity or b"")
    return name.split(" <", 1)[0].strip() if " <" in name else name.strip()


def walk(repo, include, exclude, limit):
    """``(commits, total)``: reachable from ``include`` and not from ``exclude``, newest first."""
    if include is None:
        return [], 0
    walker = repo.get_walker(include=[include], exclude=[exclude] if exclude else [], max_entries=COUNT_LIMIT)
    shown, total = [], 0
    for entry in walker:
        total += 1
        if len(shown) < limit:
            commit = entry.commit
            shown.append({"id": _s(commit.id), "subject": _first_line(commit.message),
                          "author": _author(commit.author)})
    return shown, total


def _blob(repo, entry):
    """The bytes of a tree entry, None for a submodule, KeyError when missing."""
    if entry is None or entry.sha is None:
        return b""
    if entry.mode is not None and stat.S_IFMT(entry.mode) == 0o160000:  # submodule (gitlink)
        return None
    return repo.object_store[entry.sha].as_raw_string()


def count_lines(old, new):
    """``(insertions, deletions)`` of a line diff of two byte strings."""
    if old == new:
        return 0, 0
    before, after = old.splitlines(), new.splitlines()
    if not before or not after:
        return len(after), len(before)
    added = deleted = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after).get_opcodes():
        if tag in ("replace", "delete"):
            deleted += i2 - i1
        if tag in ("replace", "insert"):
            added += j2 - j1
    return added, deleted


def diffstat(repo, old_commit, new_commit, limit):
    """The changed files from ``old_commit`` (None: the empty tree) to ``new_commit``, and totals."""
    store = repo.object_store
    old_tree = repo[old_commit].tree if old_commit else None
    new_tree = repo[new_commit].tree
    detector = RenameDetector(store, max_files=RENAME_LIMIT, rewrite_threshold=None) if old_tree else None
    entries = []
    for change in tree_changes(store, old_tree, new_tree, rename_detector=detector):
        if change.type not in STATUS:
            continue
        old, new = change.old, change.new
        path = _s(new.path if new is not None and new.path else old.path)
        old_path = _s(old.path) if change.type in ("rename", "copy") and old is not None else None
        entries.append((path, old_path, change))
    entries.sort(key=lambda item: item[0])
    files, insertions, deletions, complete, budget = [], 0, 0, True, STAT_BUDGET
    for path, old_path, change in entries:
        item = {"path": path, "old_path": old_path, "status": STATUS[change.type],
                "insertions": None, "deletions": None, "binary": False}
        try:
            before, after = _blob(repo, change.old), _blob(repo, change.new)
        except KeyError:  # shallow or partial repository
            before = after = None
            complete = False
        else:
            if before is None or after is None:  # submodule: one line per side, as git counts it
                item["insertions"], item["deletions"] = int(change.new is not None), int(change.old is not None)
            elif b"\0" in before[:BINARY_PROBE] or b"\0" in after[:BINARY_PROBE]:
                item["binary"] = True
            elif len(before) > BLOB_LIMIT or len(after) > BLOB_LIMIT or len(before) + len(after) > budget:
                complete = False
            else:
                budget -= len(before) + len(after)
                item["insertions"], item["deletions"] = count_lines(before, after)
        insertions += item["insertions"] or 0
        deletions += item["deletions"] or 0
        if len(files) < limit:
            files.append(item)
    return {"files": files, "files_total": len(entries), "insertions": insertions,
            "deletions": deletions, "stat_complete": complete}


def has_log_hooks(repo, commit, hook_dir, env):
    """Whether ``commit`` has ``<hook_dir>/apps/{common,<env>}/log.*`` (True when a symlink hides it)."""
    for prefix in ("common", env):
        tree = repo[repo[commit].tree]
        parts = [p for p in hook_dir.strip("/").split("/") if p] + ["apps", prefix]
        for part in parts:
            try:
                mode, sha = tree[part.encode("utf-8")]
            except KeyError:
                tree = None
                break
            if stat.S_ISLNK(mode):
                return True
            if not stat.S_ISDIR(mode):
                tree = None
                break
            tree = repo[sha]
        if tree is not None and any(name.startswith(b"log.") for name in tree):
            return True
    return False


def changes_between(path, from_ref, to_ref, max_commits, max_files, hook_dir=None, env=None):
    """What changed from ``from_ref`` (empty: nothing) to ``to_ref`` in the repository at ``path``.

    With ``hook_dir`` and ``env``, ``log_hooks`` says whether either side has log hooks.
    """
    source = open_checkout(path)
    try:
        repo = source.repo
        to_commit, _name = resolve(source, to_ref, prefer_tags=True)
        from_commit = resolve(source, from_ref, prefer_tags=True)[0] if from_ref else None
        commits, commits_total = walk(repo, to_commit, from_commit, max_commits)
        removed, removed_total = walk(repo, from_commit, to_commit, max_commits) if from_commit else ([], 0)
        result = {"from_ref": from_ref or None, "to_ref": to_ref, "from_commit": _s(from_commit),
                  "to_commit": _s(to_commit), "commits": commits, "commits_total": commits_total,
                  "removed": removed, "removed_total": removed_total}
        result.update(diffstat(repo, from_commit, to_commit, max_files))
        log_hooks = None
        if hook_dir is not None and env:
            log_hooks = any(has_log_hooks(repo, c, hook_dir, env) for c in (from_commit, to_commit) if c)
    finally:
        source.close()
    result["truncated"] = (commits_total > len(commits) or removed_total > len(removed)
                           or result["files_total"] > len(result["files"]))
    result["shortlog"] = announce.commit_lines(commits, commits_total, max_commits)
    result["diffstat"] = announce.diffstat_lines(result["files"], result["files_total"], max_files)
    result["summary"] = announce.summary_line(result)
    return result, log_hooks
