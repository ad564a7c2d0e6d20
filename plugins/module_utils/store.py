# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The target's object store ``<root>/repo.git``: what it has, and taking in a bundle.

Target side: Python and the ``git`` binary, nothing else. Commands run through the
``run_command`` callable handed in (``AnsibleModule.run_command``), always with list
arguments. Every failure is a :class:`StoreError` whose message says what, where and
the fix; nothing is half-done: a tag ref appears only once the bundle it came in was
checked (size, SHA-256, ``git bundle verify``) and the tag peels to the expected commit.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import subprocess

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "LANG": "C"}
INCOMING = "refs/git-deploy/incoming/"
# git's object checks, as transfer.fsckObjects runs them (index-pack --strict), except a
# cosmetic flaw of trees written by git's early years: tree modes with a leading zero
# (040000). pallets/flask's history has them; git reads them fine. What people set for it:
# fetch.fsck.zeroPaddedFilemode=ignore, which git fetch hands to index-pack the same way.
STRICT = "--strict=zeroPaddedFilemode=ignore"
# The submodule commits a bundle brings, one ref each (they keep them from gc, and the
# next rollout's bundle leaves out what they reach).
MODULES = "refs/git-deploy/modules/"
ZERO = "0" * 40
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
CHUNK = 1024 * 1024
BUNDLE_SIGNATURES = (b"# v2 git bundle\n", b"# v3 git bundle\n")
MAX_HEADER = 1024 * 1024


class StoreError(Exception):
    """The object store could not be read or changed; ``fields`` go into the task result."""

    def __init__(self, msg, **fields):
        super(StoreError, self).__init__(msg)
        self.msg = msg
        self.fields = fields


def check_commit(commit):
    """Return ``commit`` if it is a full 40-character lower-case commit id, else raise ValueError."""
    if not isinstance(commit, str) or not SHA_RE.match(commit):
        raise ValueError("commit %r is not a full 40-character lower-case commit id" % (commit,))
    return commit


def parse_refs(output):
    """The commits that ``git for-each-ref`` lines (type, object, peeled type, peeled object) point at."""
    found = set()
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] == "commit":
            found.add(fields[3])
        elif len(fields) >= 2 and fields[0] == "commit":
            found.add(fields[1])
    return sorted(found)


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_bundle_header(handle):
    """The refs a bundle file opened in binary mode carries ({name: object id}), reading up
    to where its pack starts. Raises StoreError if it is no bundle."""
    if handle.readline() not in BUNDLE_SIGNATURES:
        raise StoreError("%s is not a git bundle (v2 or v3)" % handle.name, damaged=True)
    refs = {}
    while True:
        line = handle.readline(MAX_HEADER)
        if not line.endswith(b"\n"):
            raise StoreError("%s has no pack after its header" % handle.name, damaged=True)
        if line == b"\n":
            return refs
        if line[:1] in (b"-", b"@"):  # a prerequisite, a v3 capability
            continue
        sha, _sep, name = line.rstrip(b"\n").partition(b" ")
        refs[name.decode("utf-8", "replace")] = sha.decode("ascii", "replace")


class Store:
    """``git --git-dir=<root>/repo.git`` with list arguments."""

    def __init__(self, path, run_command, git="git"):
        self.path = path
        self._run = run_command
        self.git_bin = git

    @property
    def exists(self):
        return os.path.isdir(self.path)

    def git(self, *args, **kwargs):
        check = kwargs.pop("check", True)
        cmd = [self.git_bin, "--git-dir=%s" % self.path] + list(args)
        rc, out, err = self._run(cmd, environ_update=GIT_ENV, expand_user_and_vars=False)
        if check and rc != 0:
            raise StoreError("%s failed on %s (rc=%d): %s" % (" ".join(cmd), self.path, rc, (err or out).strip()),
                             rc=rc, stdout=out, stderr=err, cmd=cmd)
        return rc, out.strip()

    def _from_file(self, cmd, path, offset):
        """Run ``cmd`` (a list, no shell) with ``path`` from ``offset`` on its standard input:
        ``(rc, stderr)``."""
        env = dict(os.environ, **GIT_ENV)
        with open(path, "rb", buffering=0) as stdin:
            stdin.seek(offset)
            try:
                # run_command takes its input as bytes only: a first delivery's pack would be read into memory.
                proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
                    cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            except OSError as exc:
                return 127, str(exc)
            _out, err = proc.communicate()
        return proc.returncode, err.decode("utf-8", "replace")

    def init(self):
        """Create the bare repository if it is missing; True when it was created."""
        if self.exists:
            return False
        rc, _out, err = self._run([self.git_bin, "init", "--bare", "-q", self.path], environ_update=GIT_ENV,
                                  expand_user_and_vars=False)
        if rc != 0:
            raise StoreError("cannot create the object store %s (rc=%d): %s; check that git_deploy_root is "
                             "writable by the deploy user" % (self.path, rc, err.strip()))
        return True

    def peeled_commit(self, ref):
        """The commit ``ref`` peels to, or None if it does not exist."""
        if not self.exists:
            return None
        rc, out = self.git("rev-parse", "--verify", "--quiet", "%s^{commit}" % ref, check=False)
        return out if rc == 0 and out else None

    def haves(self, tag=None, commit=None):
        """What the store has: the commits its refs point at, and whether ``commit`` and ``tag`` are there."""
        if not self.exists:
            return dict(haves=[], commit_present=False, tag_commit=None)
        _rc, out = self.git("for-each-ref", "--format=%(objecttype) %(objectname) %(*objecttype) %(*objectname)")
        present = False
        if commit:
            rc, _out = self.git("cat-file", "-e", "%s^{commit}" % commit, check=False)
            present = rc == 0
        return dict(haves=parse_refs(out), commit_present=present,
                    tag_commit=self.peeled_commit("refs/tags/%s" % tag) if tag else None)

    def moved(self, tag, current, commit):
        return StoreError("refs/tags/%s in %s points to commit %s, not %s: a rollout tag is never moved. "
                          "Inspect it with: git --git-dir=%s show --no-patch %s"
                          % (tag, self.path, current, commit, self.path, tag))

    def check_bundle(self, path, size, sha256):
        """Raise, changing nothing, unless the transferred file has the size and SHA-256 announced."""
        try:
            actual = os.path.getsize(path)
        except OSError as exc:
            raise StoreError("bundle %s is missing on the target (%s): the transfer failed; re-run the rollout"
                             % (path, exc))
        if actual != size:
            raise StoreError("bundle %s is truncated or damaged: %d bytes on the target, %d expected; nothing "
                             "was changed, re-run the rollout" % (path, actual, size),
                             damaged=True, received_bytes=actual, expected_bytes=size)
        digest = file_sha256(path)
        if digest != sha256:
            raise StoreError("bundle %s is damaged: sha256 %s on the target, %s expected; nothing was changed, "
                             "re-run the rollout (the controller drops its cached copy and builds it again)"
                             % (path, digest, sha256), damaged=True)

    def ingest(self, tag, commit, bundle, size, sha256):
        """Fetch ``refs/tags/<tag>`` from a checked bundle; True when the tag was added.

        The tag ref appears only once it is known to peel to ``commit``.
        """
        current = self.peeled_commit("refs/tags/%s" % tag)
        if current == commit:
            return False
        if current is not None:
            raise self.moved(tag, current, commit)
        self.check_bundle(bundle, size, sha256)
        self.init()
        self.git("bundle", "verify", "-q", bundle)
        obj, modules = self.index_bundle(bundle, tag)
        incoming = INCOMING + tag
        self.git("update-ref", "-m", "git_deploy_push", incoming, obj, ZERO)
        try:
            # What git fetch checks after the pack: every object the tag (and each submodule
            # commit) reaches is here.
            self.git(*(["rev-list", "--objects", "--quiet", incoming] + modules
                       + ["--not", "--exclude=%s*" % INCOMING, "--all"]))
            peeled = self.peeled_commit(incoming)
            if peeled != commit:
                raise StoreError("bundle tag %s on %s peels to %s, not %s; the tag was not created: rebuild "
                                 "the bundle by re-running the rollout" % (tag, self.path, peeled, commit))
            for module in modules:
                if self.peeled_commit(MODULES + module) != module:
                    self.git("update-ref", "-m", "git_deploy_push", MODULES + module, module)
            self.git("update-ref", "-m", "git_deploy_push", "refs/tags/%s" % tag, obj, ZERO)
        finally:
            self.git("update-ref", "-d", incoming, check=False)
        return True

    def index_bundle(self, bundle, tag):
        """Put the bundle's pack in the store with git's object checks (``index-pack --strict``:
        what ``transfer.fsckObjects`` does for a fetch; git before 2.46 does not check the
        bundles it fetches); returns the object ``refs/tags/<tag>`` names in it and the submodule
        commits it advertises (``refs/git-deploy/modules/<commit>``). git reads the pack from
        the bundle file itself, on its standard input: it is never held in this process's memory."""
        with open(bundle, "rb") as handle:
            refs = read_bundle_header(handle)
            start = handle.tell()
        obj = refs.get("refs/tags/%s" % tag)
        if obj is None or not SHA_RE.match(obj):
            raise StoreError("bundle %s carries no refs/tags/%s: rebuild it by re-running the rollout" % (bundle, tag),
                             damaged=True)
        modules = sorted(sha for name, sha in refs.items() if name == MODULES + sha and SHA_RE.match(sha))
        cmd = [self.git_bin, "--git-dir=%s" % self.path, "index-pack", "--stdin", "--fix-thin", STRICT]
        rc, err = self._from_file(cmd, bundle, start)
        if rc != 0:
            raise StoreError("the objects of %s were refused by git's checks on %s (git index-pack --strict, "
                             "rc=%d): %s. Nothing was changed: inspect the commit on the controller with git fsck"
                             % (tag, self.path, rc, err.strip()[-2000:]), rc=rc, stderr=err)
        return obj, modules
