# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollout lock: one exclusive record per target (or per shared ``lock_dir``).

Layers, bottom up:

* the record: :func:`build_record`, :func:`parse_record`, :func:`validate_record`,
  :func:`is_stale`, and the messages a person reads (:func:`held_by_message`, ...);
* the decision: :func:`decide` maps (the lock file's content, a request, now) to
  one action (acquire, keep, take over, release, nothing, fail) with its message;
  it does no I/O;
* the file operations: the record is written completely to a temporary file in
  the lock's directory and then hard-linked to the lock path (create-exclusive:
  a lock file is never half-written and never overwritten by a plain acquire),
  renewed by ``rename``; a takeover or a release is a compare-and-swap (the
  record is renamed to a unique name - one renamer wins - and checked before
  the new one is linked); every read-decide-write runs under ``flock`` on the
  lock's directory, and a takeover is refused where ``flock`` does not work;
* :func:`apply` and :func:`info`: what the two modules call.

Lock record (JSON)::

    {"deploy_id": "3f2a", "owner": "alice@controller", "env": "prod", "action": "deploy",
     "tag": "prod-20261121-101500", "reason": "...", "created": "2026-11-21T10:15:00Z",
     "expires": "2026-11-21T11:15:00Z", "host": "web1", "root": "/srv/app"}
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import contextlib
import datetime
import errno
import json
import os
import re
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX target
    fcntl = None

from ansible_collections.gitdeploy.rollout.plugins.module_utils.journal import (
    fsync_dir,
    isoformat,
    pid_alive,
    log as journal_log,
    utcnow,
)
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import check_name

RECORD_FIELDS = ("deploy_id", "owner", "env", "action", "tag", "reason",
                 "created", "expires", "host", "root")
REQUIRED_FIELDS = ("deploy_id", "owner", "created", "expires")
DEFAULT_TTL = 3600
# Modes before the umask: a directory this module creates is 0750 with umask
# 0022 and 0770 with umask 0002; a lock file 0640 / 0660. Never world-writable.
DIR_MODE = 0o770
FILE_MODE = 0o660
MAX_READ = 64 * 1024
HEAD_CHARS = 120
MUTEX_TIMEOUT = 30.0
ATTEMPTS = 5
UNLOCK_COMMAND = "ansible-playbook gitdeploy.rollout.unlock -e env=%s -e force=true"

PRESENT = "present"
ABSENT = "absent"

# Decisions.
ACQUIRE = "acquire"    # no lock: write ours
RENEW = "renew"        # ours already: push its expiry forward (a rollout renews at every step)
TAKEOVER = "takeover"  # someone else's (stale, corrupt or forced): replace it with ours
RELEASE = "release"    # remove the lock (ours, or anyone's with force)
NOOP = "noop"          # nothing to release
FAIL = "fail"          # refuse, with a message that says why and what to do


class LockError(Exception):
    """The lock could not be read or changed (I/O, contention); the message says what to do."""


class CorruptLock:
    """A lock file that exists but is not a valid record."""

    def __init__(self, head, error):
        self.head = head
        self.error = error

    def as_dict(self):
        return {"corrupt": True, "content": self.head, "error": self.error}

    def __eq__(self, other):
        return isinstance(other, CorruptLock) and (self.head, self.error) == (other.head, other.error)

    def __repr__(self):
        return "CorruptLock(%r, %r)" % (self.head, self.error)


# -- time ----------------------------------------------------------------------
TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$", re.IGNORECASE)


def parse_time(value):
    """Parse an ISO 8601 time (``Z`` or an offset; naive means UTC) to an aware UTC datetime.

    Written out rather than ``datetime.fromisoformat``, which before Python 3.11
    accepts neither ``Z`` nor fractions other than 3 or 6 digits.
    """
    match = TIME_RE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError("not an ISO 8601 time: %r" % (value,))
    day, clock, fraction, zone = match.groups()
    moment = datetime.datetime.strptime("%sT%s" % (day, clock), "%Y-%m-%dT%H:%M:%S")
    moment = moment.replace(microsecond=int((fraction or "0")[:6].ljust(6, "0")))
    offset = datetime.timedelta(0)
    if zone and zone.upper() != "Z":
        digits = zone[1:].replace(":", "")
        offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if zone[0] == "-":
            offset = -offset
    return (moment - offset).replace(tzinfo=datetime.timezone.utc)


# -- the record ------------------------------------------------------------------
class Request:
    """What a task asks for: the module's options, checked."""

    def __init__(self, state=PRESENT, deploy_id=None, owner=None, env=None, action=None,
                 tag=None, reason=None, ttl=DEFAULT_TTL, force=False, root=None, block_file=None,
                 force_lock=False, hold=False, freeze_file=None):
        self.state = state
        # force_lock: take over another rollout's lock that is still valid (force alone takes
        # over expired and corrupt locks only). hold: this rollout's lock must still be there
        # (renewed); never take a free or someone else's lock.
        self.force_lock = bool(force_lock)
        self.hold = bool(hold)
        self.deploy_id = deploy_id
        self.owner = owner
        self.env = env
        self.action = action
        self.tag = tag
        self.reason = reason
        self.ttl = ttl
        self.force = bool(force)
        self.root = root
        self.block_file = block_file
        self.freeze_file = freeze_file

    def check(self):
        """Raise ValueError with a readable message if the request cannot be served."""
        if self.state not in (PRESENT, ABSENT):
            raise ValueError("state must be 'present' or 'absent', not %r" % (self.state,))
        if self.state == PRESENT and not self.deploy_id:
            raise ValueError("deploy_id is required to take the lock (state=present)")
        if self.state == ABSENT and not self.deploy_id and not self.force:
            raise ValueError("deploy_id is required to release the lock: only its holder releases it "
                             "(or use force=true to release whatever lock is there)")
        for field in ("deploy_id", "env", "action", "tag"):
            value = getattr(self, field)
            if value is not None:
                check_name(value, field)
        if self.owner is not None and (not self.owner or not _printable(self.owner) or len(self.owner) > 256):
            raise ValueError("owner %r must be a non-empty single line of at most 256 characters" % (self.owner,))
        if self.reason is not None and len(self.reason) > 4096:
            raise ValueError("reason must be at most 4096 characters")
        if not isinstance(self.ttl, int) or isinstance(self.ttl, bool) or self.ttl <= 0:
            raise ValueError("ttl must be a positive number of seconds, not %r" % (self.ttl,))
        return self


def _printable(text):
    return all(ch.isprintable() for ch in text)


def build_record(request, now, host=None):
    """The record ``request`` writes when it takes the lock at ``now``."""
    return {
        "deploy_id": request.deploy_id,
        "owner": request.owner,
        "env": request.env,
        "action": request.action,
        "tag": request.tag,
        "reason": request.reason,
        "created": isoformat(now),
        "expires": isoformat(now + datetime.timedelta(seconds=request.ttl)),
        "host": host,
        "root": request.root,
    }


def validate_record(record):
    """Return a list of problems with ``record`` (empty when it is a valid lock record)."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    problems = []
    for field in REQUIRED_FIELDS:
        value = record.get(field)
        if not isinstance(value, str) or not value:
            problems.append("missing field %r" % field)
    for field in ("created", "expires"):
        value = record.get(field)
        if isinstance(value, str) and value:
            try:
                parse_time(value)
            except ValueError:
                problems.append("field %r is not an ISO 8601 time: %r" % (field, value))
    for field in RECORD_FIELDS:
        if field not in REQUIRED_FIELDS and record.get(field) is not None and not isinstance(record[field], str):
            problems.append("field %r is not a string" % field)
    return problems


def parse_record(text):
    """Return the record in ``text``; raise ValueError saying what is wrong with it."""
    if not text.strip():
        raise ValueError("the file is empty")
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise ValueError("not JSON (%s)" % exc)
    problems = validate_record(record)
    if problems:
        raise ValueError("not a lock record: %s" % "; ".join(problems))
    return record


def content_head(text):
    """The start of a file's content, on one line, for a message."""
    head = " ".join(text[:HEAD_CHARS].split())
    return head + ("..." if len(text) > HEAD_CHARS else "")


# How long past its expiry a lock is still respected: hosts sharing a lock_dir, and a
# controller judging another host's lock, may have clocks that disagree by that much.
CLOCK_MARGIN = datetime.timedelta(seconds=60)


def is_expired(record, now):
    """True once ``now`` is at or past the record's ``expires``."""
    return parse_time(record["expires"]) <= now


def is_stale(record, now):
    """True once the lock expired more than :data:`CLOCK_MARGIN` ago: another rollout may take it over."""
    return parse_time(record["expires"]) + CLOCK_MARGIN <= now


def is_mine(record, deploy_id):
    return isinstance(record, dict) and bool(deploy_id) and record.get("deploy_id") == deploy_id


# -- messages ------------------------------------------------------------------------
def unlock_command(env):
    return UNLOCK_COMMAND % (env or "<env>")


def describe(record):
    """``alice@ctl (deploy 3f2a: deploy of tag prod-… to env prod, root /srv/app)``."""
    what = []
    if record.get("action"):
        what.append(record["action"])
    if record.get("tag"):
        what.append("of tag %s" % record["tag"])
    if record.get("env"):
        what.append("to env %s" % record["env"])
    detail = "deploy %s" % record.get("deploy_id")
    if what:
        detail += ": " + " ".join(what)
    if record.get("root"):
        detail += ", root %s" % record["root"]
    return "%s (%s)" % (record.get("owner"), detail)


def _where(path, host):
    return "%s on %s" % (path, host) if host else path


def held_by_message(record, path, host=None, env=None, now=None):
    """Why a lock cannot be taken, who has it, and the one command that clears it."""
    host = record.get("host") or host
    expires = record.get("expires")
    text = "Lock %s is held by %s since %s" % (_where(path, host), describe(record), record.get("created"))
    if record.get("reason"):
        text += ", reason: %s" % _one_line(record["reason"])
    command = unlock_command(record.get("env") or env)
    if now is not None and is_stale(record, now):
        return text + ("; it expired at %s, so the next rollout takes it over. To clear it now: %s"
                       % (expires, command))
    if now is not None and is_expired(record, now):
        return text + ("; it expired at %s, and is taken over %d s later (a margin for clocks that disagree). "
                       "To clear it now: %s" % (expires, CLOCK_MARGIN.total_seconds(), command))
    return text + ("; it expires at %s. Wait until then (an expired lock is taken over), or, if that "
                   "rollout is dead, clear it with: %s" % (expires, command))


def corrupt_message(corrupt, path, host=None, env=None, releasing=False):
    what = "Cannot release lock" if releasing else "Cannot take lock"
    return ("%s %s: the lock file is corrupt (%s); it starts with: %r. Nobody can tell whose rollout "
            "it belongs to. Look at it (cat %s); if no rollout is running, clear it with: %s"
            % (what, _where(path, host), corrupt.error, corrupt.head, path, unlock_command(env)))


def blocked_message(block_file, reason, host=None):
    return ("Rollouts are blocked on %s: %s exists. Reason: %s. Remove %s when rollouts may resume, "
            "or override the block with force=true."
            % (host or "this host", block_file, _one_line(reason), block_file))


def mismatch_message(record, path, deploy_id, host=None, env=None):
    host = record.get("host") or host
    return ("Not releasing lock %s: it belongs to %s since %s, not to deploy %s. A rollout only "
            "releases its own lock; if that rollout is dead, clear it with: %s"
            % (_where(path, host), describe(record), record.get("created"), deploy_id,
               unlock_command(record.get("env") or env)))


def no_mutex_message(decision, path, host=None):
    return ("Not taking over lock %s: %s The lock directory cannot be locked with flock here (a lock_dir on a network "
            "file system?), so two rollouts could both take it over. Clear it by hand (rm %s) once its rollout is "
            "known to be dead, or use a lock_dir on a local file system."
            % (_where(path, host), decision.msg, path))


def _one_line(text):
    return " ".join(str(text).split())


# -- the decision ------------------------------------------------------------------------
class Decision:
    """What to do, and what to tell.

    ``record``: the record in the lock file after the action (the holder's on a failure);
    ``previous``: the record (or CorruptLock) replaced or removed on someone else's behalf;
    ``log``: a line for the target's active log (takeovers and forced releases).
    """

    def __init__(self, action, msg, record=None, previous=None, warnings=None, log=None, existing=None, held=False):
        self.held = held  # refused only because another rollout holds a live lock: worth waiting for
        self.action = action
        self.msg = msg
        self.record = record
        self.previous = previous
        self.warnings = list(warnings or [])
        self.log = log
        self.existing = existing

    @property
    def changed(self):
        return self.action in (ACQUIRE, TAKEOVER, RELEASE)

    @property
    def failed(self):
        return self.action == FAIL

    @property
    def taken_over(self):
        if isinstance(self.previous, CorruptLock):
            return self.previous.as_dict()
        return self.previous

    def __repr__(self):
        return "Decision(%s, %r)" % (self.action, self.msg)


def decide(existing, request, now, path, host=None, block_reason=None, frozen=None):
    """Map (lock file content, request, now) to a :class:`Decision`; no I/O.

    ``existing``: None (no lock file), a record dict, or a :class:`CorruptLock`.
    ``block_reason``: None, or the content of the block file when it exists.
    ``frozen``: None, or the freeze record (freeze.yml) when there is one.
    """
    if request.state == ABSENT:
        return _decide_release(existing, request, path, host)
    if frozen is not None and not request.hold and not is_mine(existing, request.deploy_id):
        # Not even force: a freeze ends with unfreeze.yml. A rollout under way finishes.
        return Decision(FAIL, frozen_message(frozen, host), record=existing if isinstance(existing, dict) else None,
                        existing=existing)
    return _decide_acquire(existing, request, now, path, host, block_reason)


def frozen_message(record, host=None):
    """Who froze this host, when and why, and how rollouts resume."""
    env = record.get("env") or "<env>"
    return ("Rollouts are frozen on %s since %s by %s: %s. Nothing was changed. They resume after: "
            "ansible-playbook gitdeploy.rollout.unfreeze -e env=%s"
            % (host or "this host", record.get("since") or "?", record.get("by") or "?",
               _one_line(record.get("reason") or "no reason given"), env))


def read_freeze(path):
    """The freeze record at ``path`` (a dict), or None when the host is not frozen. A record
    that cannot be read still freezes (its content says what is wrong)."""
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            raw = handle.read(65536)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return {"reason": "(the freeze record %s cannot be read: %s)" % (path, exc.strerror)}
    try:
        record = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return {"reason": "(the freeze record %s is not JSON: %s)" % (path, _one_line(raw.decode("utf-8", "replace")))}
    return record


def renewed(record, request, now):
    """``record`` (this rollout's) with its expiry ``request.ttl`` from ``now``."""
    return dict(record, expires=isoformat(now + datetime.timedelta(seconds=request.ttl)))


def lost_message(existing, request, path, host, now):
    """A rollout that no longer holds its lock: who has it now, and that nothing more is changed."""
    where = _where(path, host)
    if existing is None:
        what = "there is no lock any more (someone released it)"
    elif isinstance(existing, CorruptLock):
        what = "the lock file is corrupt (%s)" % existing.error
    else:
        what = "it was taken over by %s, holding it since %s" % (describe(existing), existing.get("created"))
    return ("This rollout (deploy %s) no longer holds lock %s: %s. It stops here and changes nothing more on this "
            "host." % (request.deploy_id, where, what))


def _decide_acquire(existing, request, now, path, host, block_reason):
    where = _where(path, host)
    if is_mine(existing, request.deploy_id):
        warnings = []
        if is_expired(existing, now):
            warnings.append("Lock %s of deploy %s had expired at %s (another rollout could have taken it over); "
                            "renewed." % (where, request.deploy_id, existing["expires"]))
        record = renewed(existing, request, now)
        return Decision(RENEW, "Lock %s is held by this rollout, %s, since %s; renewed until %s."
                        % (where, describe(existing), existing["created"], record["expires"]),
                        record=record, warnings=warnings, existing=existing)
    if request.hold:
        return Decision(FAIL, lost_message(existing, request, path, host, now),
                        record=existing if isinstance(existing, dict) else None, existing=existing)

    record = build_record(request, now, host)
    warnings = []
    blocked = block_reason is not None
    if blocked and request.force:
        warnings.append("Overriding the block with force: " + blocked_message(request.block_file, block_reason, host))
    elif blocked:
        msg = blocked_message(request.block_file, block_reason, host)
        holder = existing if isinstance(existing, dict) and not is_stale(existing, now) else None
        if holder:
            msg += " Also: " + held_by_message(holder, path, host, request.env, now)
        return Decision(FAIL, msg, record=existing if isinstance(existing, dict) else None, existing=existing)

    if existing is None:
        return Decision(ACQUIRE, "Lock %s taken by %s; it expires at %s." % (where, describe(record), record["expires"]),
                        record=record, warnings=warnings, existing=existing)

    if isinstance(existing, CorruptLock):
        if not (request.force or request.force_lock):
            return Decision(FAIL, corrupt_message(existing, path, host, request.env), existing=existing)
        note = ("Replaced corrupt lock %s (%s; it started with %r) with force for %s."
                % (where, existing.error, existing.head, describe(record)))
        return Decision(TAKEOVER, note, record=record, previous=existing, warnings=warnings + [note],
                        log="forced takeover of corrupt lock %s (%s; it started with %r)"
                            % (path, existing.error, existing.head),
                        existing=existing)

    if request.force_lock:
        note = ("Forced takeover of lock %s from %s, held since %s; it now belongs to %s."
                % (where, describe(existing), existing["created"], describe(record)))
        return Decision(TAKEOVER, note, record=record, previous=existing, warnings=warnings + [note],
                        log="forced takeover of lock %s from %s, held since %s, expiring %s"
                            % (path, describe(existing), existing["created"], existing["expires"]),
                        existing=existing)

    if is_stale(existing, now):
        note = ("Took over stale lock %s from %s: it expired at %s; it now belongs to %s."
                % (where, describe(existing), existing["expires"], describe(record)))
        return Decision(TAKEOVER, note, record=record, previous=existing, warnings=[note],
                        log="took over stale lock %s from %s, held since %s, expired %s"
                            % (path, describe(existing), existing["created"], existing["expires"]),
                        existing=existing)

    msg = held_by_message(existing, path, host, request.env, now)
    if request.force:
        msg += (" force=true takes over expired and corrupt locks only; to take over a lock its holder renewed within "
                "its TTL, use force_lock=true (-e force_lock=true).")
    return Decision(FAIL, msg, record=existing, existing=existing, held=True)


def _decide_release(existing, request, path, host):
    where = _where(path, host)
    if existing is None:
        return Decision(NOOP, "No lock at %s: nothing to release." % where)
    if is_mine(existing, request.deploy_id):
        return Decision(RELEASE, "Lock %s released by %s." % (where, describe(existing)), existing=existing)
    if request.force:
        if isinstance(existing, CorruptLock):
            gone = "corrupt lock %s (%s; it started with %r)" % (path, existing.error, existing.head)
        else:
            gone = "lock %s of %s, held since %s" % (path, describe(existing), existing["created"])
        note = "Forced release of %s%s." % (gone, " on %s" % host if host else "")
        by = request.owner or "unknown"
        return Decision(RELEASE, note, previous=existing, warnings=[note], existing=existing,
                        log="forced release by %s of %s" % (by, gone))
    if isinstance(existing, CorruptLock):
        return Decision(FAIL, corrupt_message(existing, path, host, request.env, releasing=True), existing=existing)
    return Decision(FAIL, mismatch_message(existing, path, request.deploy_id, host, request.env),
                    record=existing, existing=existing)


# -- file operations -----------------------------------------------------------------------------
def hostname():
    return os.uname()[1]


def read_lock(path):
    """None when there is no lock file, the record, or a CorruptLock."""
    if os.path.islink(path):
        # Never made by a rollout (a lock file is created by link, replaced by rename).
        return CorruptLock("", "%s is a symlink (to %s), not a lock file: remove it (rm %s)"
                           % (path, os.readlink(path), path))
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_READ + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return CorruptLock("", "%s is a directory, not a lock file" % path)
    text = raw.decode("utf-8", "replace")
    if len(raw) > MAX_READ:
        return CorruptLock(content_head(text), "larger than %d bytes" % MAX_READ)
    try:
        return parse_record(text)
    except ValueError as exc:
        return CorruptLock(content_head(text), str(exc))


def read_block(block_file):
    """None when rollouts are not blocked, else the reason (the block file's content)."""
    if not block_file:
        return None
    try:
        with open(block_file, "rb") as handle:
            raw = handle.read(4096)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return "(%s is a directory)" % block_file
    except OSError as exc:
        return "(the block file exists but cannot be read: %s)" % exc.strerror
    return " ".join(raw.decode("utf-8", "replace").split()) or "(the block file is empty)"


def ensure_dir(path):
    """Create the lock directory (0770 minus the umask; parents at the default mode)."""
    if not os.path.isdir(path):
        os.makedirs(path, DIR_MODE, exist_ok=True)
    return path


TEMP_RE = re.compile(r"^\.lock\.(?:(\d+)\.)?[0-9a-f]+\.(?:tmp|stale)$")


def clean_leftovers(directory):
    """Remove the temporary and set-aside lock files of processes that died (a kill -9
    between writing and linking one); returns their names."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = TEMP_RE.match(name)
        if match and match.group(1) and int(match.group(1)) != os.getpid() and not pid_alive(int(match.group(1))):
            _remove(os.path.join(directory, name))
            removed.append(name)
    return removed


def _unique(directory, kind):
    return os.path.join(directory, ".lock.%d.%s.%s" % (os.getpid(), binascii.hexlify(os.urandom(6)).decode("ascii"),
                                                       kind))


def write_temp(directory, record):
    """Write ``record`` completely (and fsync it) to a new temporary file in ``directory``."""
    data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")
    while True:
        tmp = _unique(directory, "tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
        break
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _remove(tmp)
        raise
    os.close(fd)
    return tmp


def create_lock(path, record, fallback=False):
    """Create the lock file exclusively: True when it is ours, False when one exists already.

    The record is complete on disk before it appears at ``path`` (``link`` of a full
    temporary file). On a file system without hard links, and only while the directory
    mutex is held (``fallback``), a ``rename`` after an existence check is used instead.
    """
    tmp = write_temp(os.path.dirname(path), record)
    try:
        try:
            os.link(tmp, path)
            fsync_dir(os.path.dirname(path))
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if not fallback or exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK):
                raise
            if os.path.lexists(path):
                return False
            os.rename(tmp, path)
            return True
    finally:
        _remove(tmp)


def replace_lock(path, record):
    """Atomically replace this rollout's own lock file with ``record`` (a renewal)."""
    tmp = write_temp(os.path.dirname(path), record)
    try:
        os.rename(tmp, path)
        fsync_dir(os.path.dirname(path))
    finally:
        _remove(tmp)


def set_aside(path, expected):
    """Compare-and-swap, first half: move the lock file at ``path`` to a unique name, if it
    is still ``expected`` (a record or a CorruptLock). Of several processes doing so at once,
    one renamer wins. Returns the set-aside path, or None when the lock changed meanwhile
    (it is put back when it is someone else's new record)."""
    aside = _unique(os.path.dirname(path), "stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return None
    found = read_lock(aside)
    same = found == expected if isinstance(expected, dict) else (
        isinstance(found, CorruptLock) and isinstance(expected, CorruptLock) and found.head == expected.head)
    if same:
        return aside
    # Another process replaced the lock between our read and our rename: give it back.
    try:
        os.link(aside, path)
    except FileExistsError:
        pass
    _remove(aside)
    return None


def take_over(path, record, expected):
    """Replace ``expected`` (another rollout's stale, corrupt or forced lock) with ``record``:
    set it aside (compare-and-swap), then create ours exclusively. False when the lock
    changed meanwhile (the caller decides again)."""
    aside = set_aside(path, expected)
    if aside is None:
        return False
    try:
        return create_lock(path, record)
    finally:
        _remove(aside)
        fsync_dir(os.path.dirname(path))


def release(path, expected):
    """Remove the lock file if it is still ``expected``; False when it changed meanwhile."""
    aside = set_aside(path, expected)
    if aside is None:
        return False
    _remove(aside)
    fsync_dir(os.path.dirname(path))
    return True


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@contextlib.contextmanager
def dir_mutex(directory, timeout=MUTEX_TIMEOUT):
    """Serialise read-decide-write on ``directory`` with ``flock``; yields whether it is held.

    Yields False (and the link-based create still keeps acquiring exclusive) where
    the directory cannot be locked, e.g. on a file system without ``flock``.
    """
    if fcntl is None:  # pragma: no cover
        yield False
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        held = False
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    break  # flock not supported here
                if time.monotonic() > deadline:
                    raise LockError(
                        "Another lock operation on %s did not finish within %d seconds (flock). "
                        "Look for a hung process holding it: fuser -v %s" % (directory, timeout, directory))
                time.sleep(0.02)
        yield held
    finally:
        os.close(fd)  # releases the flock


# -- what the modules call ---------------------------------------------------------------------------
def apply(request, path, log_path=None, check_mode=False, clock=utcnow, host=None):
    """Read the lock at ``path``, decide, and (unless ``check_mode``) act; return the Decision.

    Takeovers and forced releases are written to ``log_path`` (the root's active log);
    a failure to write that line becomes a warning, the lock change stands.
    """
    host = host or hostname()
    directory = os.path.dirname(path)
    block_reason = read_block(request.block_file) if request.state == PRESENT else None
    frozen = read_freeze(request.freeze_file) if request.state == PRESENT else None
    if check_mode:
        return decide(read_lock(path), request, clock(), path, host, block_reason, frozen)
    if not os.path.isdir(directory):  # no lock; create the directory only to take one
        decision = decide(None, request, clock(), path, host, block_reason, frozen)
        if decision.action != ACQUIRE:
            return decision
        ensure_dir(directory)
    with dir_mutex(directory) as held:
        clean_leftovers(directory)
        for _attempt in range(ATTEMPTS):
            decision = decide(read_lock(path), request, clock(), path, host, block_reason, frozen)
            if decision.action == TAKEOVER and not held:
                decision = Decision(FAIL, no_mutex_message(decision, path, host), existing=decision.existing,
                                    record=decision.existing if isinstance(decision.existing, dict) else None)
            if decision.action == ACQUIRE:
                if not create_lock(path, decision.record, fallback=held):
                    continue  # another rollout got there first: decide again on its record
            elif decision.action == TAKEOVER:
                if not take_over(path, decision.record, decision.existing):
                    continue
            elif decision.action == RENEW:
                replace_lock(path, decision.record)
            elif decision.action == RELEASE:
                if not release(path, decision.existing):
                    continue
            break
        else:
            raise LockError("Lock %s on %s kept changing while taking it (%d attempts): another process is "
                            "creating and removing it. Find it (fuser -v %s) and try again."
                            % (path, host, ATTEMPTS, directory))
    if decision.log and log_path:
        try:
            journal_log(log_path, decision.log, id=request.deploy_id, user=request.owner,
                        env=request.env, tag=request.tag, phase="lock")
        except OSError as exc:
            decision.warnings.append("Could not record this in %s: %s" % (log_path, exc))
    return decision


def info(path, block_file=None, deploy_id=None, clock=utcnow, host=None):
    """The lock's state at ``path`` as the info module returns it."""
    host = host or hostname()
    now = clock()
    existing = read_lock(path)
    block_reason = read_block(block_file)
    corrupt = isinstance(existing, CorruptLock)
    record = existing if isinstance(existing, dict) else None
    stale = bool(record) and is_stale(record, now)
    mine = is_mine(record, deploy_id)
    if corrupt:
        msg = corrupt_message(existing, path, host)
    elif record is None:
        msg = "No lock at %s." % _where(path, host)
    elif mine:
        msg = "Lock %s is held by this rollout, %s, since %s; it %s at %s." % (
            _where(path, host), describe(record), record["created"], "expired" if stale else "expires",
            record["expires"])
    else:
        msg = held_by_message(record, path, host, now=now)
    if block_reason is not None:
        msg += " " + blocked_message(block_file, block_reason, host)
    return {
        "locked": existing is not None,
        "lock": record,
        "stale": stale,
        "corrupt": corrupt,
        "content": existing.head if corrupt else None,
        "blocked": block_reason is not None,
        "block_reason": block_reason,
        "path": path,
        "mine": mine,
        "msg": msg,
    }
