# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The target's journal: human log lines and structured history records.

Log line (one per event, in ``logs/git-deploy-active.log`` during a rollout)::

    2026-11-21T10:15:00Z id=3f2a user=alice env=prod tag=prod-20261121-101500 phase=lock message...

History record (one JSON object per line in ``.git-deploy/history.jsonl``)::

    {"id": ..., "action": "deploy|revert|abort", "env": ..., "tag": ..., "commit": ...,
     "previous_tag": ..., "user": ..., "controller": ..., "start": ISO, "end": ISO,
     "result": "success|failed|rolled_back|aborted", "failed_host": ..., "failed_phase": ...,
     "failed_hook": ...}
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import json
import os

LOG_FIELDS = ("id", "user", "env", "tag", "phase")
RESULTS = ("success", "failed", "rolled_back", "aborted")
FILE_MODE = 0o640
DIR_MODE = 0o750
CHUNK = 1024 * 1024


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def isoformat(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_line(message, when=None, **fields):
    """One log line: timestamp, the known fields in a fixed order, then the message."""
    parts = [isoformat(when or utcnow())]
    for key in LOG_FIELDS:
        value = fields.get(key)
        if value not in (None, ""):
            # A field is one word: a newline or a space in it could forge a log line or a field.
            parts.append("%s=%s" % (key, "_".join(str(value).split())))
    parts.append(" ".join(str(message).splitlines()))
    return " ".join(parts) + "\n"


def ensure_dir(path):
    """Create ``path`` (and parents) not world-writable; return it."""
    if not os.path.isdir(path):
        os.makedirs(path, DIR_MODE)
    return path


def write_all(fd, data):
    """Write every byte of ``data`` to ``fd``: a short write (a full disk) is retried, then raises."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - os.write raises ENOSPC rather than return 0
            raise OSError(errno.ENOSPC, "short write")
        view = view[written:]


def pid_alive(pid):
    """True when process ``pid`` exists on this host (and is not this process)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def fsync_dir(path):
    """Flush a directory's entries to disk (a file created or renamed in it); best effort."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def append(path, text, durable=False):
    """Append ``text`` to ``path`` (O_APPEND), creating it not world-writable; ``durable``:
    on disk before returning (the file, and its directory entry when it is new)."""
    ensure_dir(os.path.dirname(path))
    new = not os.path.exists(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        write_all(fd, text.encode("utf-8", "replace"))
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if durable and new:
        fsync_dir(os.path.dirname(path))


def log(path, message, **fields):
    append(path, format_line(message, **fields))


def archive(active, archive_path, chunk=CHUNK):
    """Move the content of the ``active`` log to the end of ``archive_path``; True if there was any.

    Copied in chunks, every byte written (short writes retried), fsynced; the active log is
    removed only after that. On any failure the active log stays as it was and the error
    propagates (a partial copy may remain at the end of the archive: lines are duplicated,
    never lost).
    """
    try:
        source = open(active, "rb")
    except FileNotFoundError:
        return False
    with source:
        ensure_dir(os.path.dirname(archive_path))
        fd = os.open(archive_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        try:
            for data in iter(lambda: source.read(chunk), b""):
                write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    os.unlink(active)
    fsync_dir(os.path.dirname(active))
    return True


def _ends_mid_line(path):
    """Whether ``path`` ends without a newline (a record cut short by a crash or a full disk)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except (OSError, IOError):  # missing or empty
        return False


def append_history(path, record):
    """Append ``record`` on a line of its own, even after a line cut short."""
    text = json.dumps(record, sort_keys=True) + "\n"
    append(path, "\n" + text if _ends_mid_line(path) else text, durable=True)


def read_history(path):
    """Return ``(records, corrupt_lines)``: records oldest first; unreadable lines are counted, not fatal."""
    records, corrupt = [], 0
    if not os.path.exists(path):
        return records, corrupt
    with open(path, "rb") as handle:
        for raw in handle:
            line = raw.strip()
            if not line:
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except ValueError:
                corrupt += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                corrupt += 1
    return records, corrupt


def settled_tag(records):
    """The tag the newest *finished* rollout left live, or None.

    A success leaves its tag; a rollout rolled back leaves the tag it started
    from. Failed and aborted rollouts (a crash, ``unlock force``) settle
    nothing: the answer is the one before them. A host whose live tag is not its
    settled tag was switched by a rollout that never finished: the next rollout
    of that tag runs its hooks there again instead of calling it done.
    """
    for record in reversed(records):
        result = record.get("result")
        if result == "success" and record.get("tag"):
            return record["tag"]
        if result == "rolled_back" and record.get("previous_tag"):
            return record["previous_tag"]
    return None


BAD_RESULTS = ("failed", "rolled_back")


def bad_tags(records):
    """The bad releases: tag -> the record of the rollout that failed or was rolled back
    (Deployer's BAD_RELEASE), for every tag whose newest deploy or revert did not succeed.
    A later successful rollout of the tag makes it good again."""
    found = {}
    for record in records:
        tag = record.get("tag")
        if not isinstance(tag, str) or not tag or record.get("action") not in ("deploy", "revert"):
            continue
        if record.get("result") in BAD_RESULTS:
            keys = ("id", "action", "result", "end", "failed_host", "failed_phase")
            found[tag] = dict((k, record.get(k)) for k in keys)
        elif record.get("result") == "success":
            found.pop(tag, None)
    return found


def previous_live_tag(records, live_tag):
    """The tag a revert without an explicit tag goes back to.

    The newest successful rollout of a tag other than ``live_tag`` that was not
    itself reverted away from and is not a bad release (its newest rollout failed or
    was rolled back): reverting twice goes further back, never back to the release a
    revert just left, nor to one that failed.
    """
    reverted = set(r.get("previous_tag") for r in records
                   if r.get("action") == "revert" and r.get("result") == "success")
    bad = bad_tags(records)
    for record in reversed(records):
        tag = record.get("tag")
        if (record.get("result") == "success" and tag and tag != live_tag and tag not in reverted
                and tag not in bad):
            return tag
    return None


def bad_since(records, tag):
    """The bad releases recorded after the newest successful rollout of ``tag``, newest first:
    what a revert to ``tag`` as "the previous rollout" skipped."""
    bad = bad_tags(records)
    skipped = []
    for record in reversed(records):
        if record.get("tag") == tag and record.get("result") == "success":
            break
        name = record.get("tag")
        if name in bad and name not in skipped and name != tag:
            skipped.append(name)
    return skipped
