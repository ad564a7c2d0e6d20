# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Names and paths: the one place that says what a valid name is and where
everything lives under a target's ``git_deploy_root``.

Target layout::

    <root>/repo.git/                  bare object store; refs/tags/<tag> per delivered rollout
    <root>/releases/<tag>/            one tree per rollout (strategy "releases")
    <root>/current                    symlink to releases/<tag> ("releases") or a working tree ("in_place")
    <root>/shared/                    paths shared by every release (git_deploy_shared_paths)
    <root>/.git-deploy/lock           the lock record (JSON), unless lock_dir is set
    <root>/.git-deploy/history.jsonl  one JSON record per finished rollout/revert/abort
    <root>/logs/git-deploy-active.log the log of the rollout in progress
    <root>/logs/git-deploy.log        every finished rollout's log, appended at the end
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

# A plain name: environment, tag prefix, tag, hook prefix. No path separators,
# no "..", no shell metacharacters, no leading dash (never read as an option).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")

REPO = "repo.git"
RELEASES = "releases"
CURRENT = "current"
SHARED = "shared"
STATE = ".git-deploy"
LOCK = "lock"
HISTORY = "history.jsonl"
FREEZE = "freeze"
LOGS = "logs"
ACTIVE_LOG = "git-deploy-active.log"
ARCHIVE_LOG = "git-deploy.log"


class InvalidName(ValueError):
    """A name that is not a plain name."""


def check_name(value, what):
    """Return ``value`` if it is a plain name, else raise ValueError naming ``what``."""
    if not isinstance(value, str) or not NAME_RE.match(value) or ".." in value:
        raise InvalidName(
            "%s %r is not a plain name: use letters, digits, '.', '_' and '-' "
            "(no '/', '..', spaces or shell characters, at most 128 characters)" % (what, value)
        )
    return value


def check_root(root):
    """Return the normalised ``root`` if it is absolute and not ``/``, else raise ValueError."""
    if not isinstance(root, str) or not os.path.isabs(root):
        raise ValueError("git_deploy_root %r must be an absolute path" % (root,))
    norm = os.path.normpath(root)
    if norm == "/" or norm.startswith("//"):
        raise ValueError("git_deploy_root %r must not be the file system root" % (root,))
    return norm


def check_relative(path, what):
    """Return ``path`` if it is relative and stays inside its base, else raise ValueError."""
    norm = os.path.normpath(path) if isinstance(path, str) and path else ""
    if not norm or os.path.isabs(path) or norm == ".." or norm.startswith("../"):
        raise ValueError("%s %r must be a relative path inside the release" % (what, path))
    return norm


class Layout:
    """Where things live under one ``git_deploy_root``."""

    def __init__(self, root, lock_dir=None):
        self.root = check_root(root)
        self.lock_dir = check_root(lock_dir) if lock_dir else None

    def _join(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def repo(self):
        return self._join(REPO)

    @property
    def releases(self):
        return self._join(RELEASES)

    def release(self, tag):
        return self._join(RELEASES, check_name(tag, "tag"))

    @property
    def current(self):
        return self._join(CURRENT)

    @property
    def shared(self):
        return self._join(SHARED)

    @property
    def state(self):
        return self._join(STATE)

    @property
    def lock(self):
        """The lock file: one per root, or one shared by every root using ``lock_dir``."""
        if self.lock_dir:
            return os.path.join(self.lock_dir, LOCK)
        return self._join(STATE, LOCK)

    @property
    def history(self):
        return self._join(STATE, HISTORY)

    @property
    def freeze(self):
        """The freeze record: while it exists, no rollout takes this root's lock (freeze.yml)."""
        return self._join(STATE, FREEZE)

    @property
    def logs(self):
        return self._join(LOGS)

    @property
    def active_log(self):
        return self._join(LOGS, ACTIVE_LOG)

    @property
    def archive_log(self):
        return self._join(LOGS, ARCHIVE_LOG)
