# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deploy hooks: which hooks a phase runs, in which order, with which
environment, which failures are ignored, and the runner that executes them.

Hook tree (inside a release, ``hook_dir`` defaults to ``deploy``)::

    <release>/<hook_dir>/apps/common/<phase>.*   run first, in sort order
    <release>/<hook_dir>/apps/<env>/<phase>.*    then these, in sort order
    <release>/<hook_dir>/sync/<env>.sync         the sync hook (phase "sync")

Only executable files run; names ending in ``.bak`` or ``~`` are skipped; a
hook whose real path is outside the release is refused before anything runs.

Runs on the target: Python 3.8+, standard library only (dulwich is imported
only by :func:`export_hook_dir`, on the controller).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import selectors
import signal
import stat
import subprocess
import time

from ansible_collections.gitdeploy.rollout.plugins.module_utils import journal
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import check_relative

PHASES = (
    "pre-start",
    "post-start",
    "pre-pull",
    "post-pull",
    "pre-sync",
    "post-tree-update",
    "post-sync",
    "post-reset",
    "post-abort",
    "log",
    "sync",
)
# git-deploy's action names, as hooks see them in GIT_DEPLOY_ACTION (see hook_action).
ACTIONS = ("start", "sync", "finish", "revert", "abort", "hotfix", "manual-sync", "release", "tag")
# The phases of git-deploy's start action; pre-sync, the sync hook and post-sync are its sync.
START_PHASES = ("pre-start", "pre-pull", "post-pull", "post-tree-update", "post-start")
# syslog(3) levels, lowercase, without LOG_ (what git-deploy passes to log hooks).
LOG_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
COMMON = "common"
SKIP_SUFFIXES = (".bak", "~")

DEFAULT_TIMEOUT = 600
DEFAULT_OUTPUT_LIMIT = 65536
KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL of a timed-out hook's group
DRAIN_SECONDS = 2.0  # how long to keep reading pipes a finished hook's children hold open
READ_SIZE = 65536
MAX_LOG_LINE = 8192  # a longer output line is split over several log lines
TAIL_LINES = 10
TAIL_CHARS = 2000

# Every variable this module sets; inherited values of these never leak into a hook.
HOOK_VARS = (
    "GIT_DEPLOY_ACTION",
    "GIT_DEPLOY_PHASE",
    "GIT_DEPLOY_PREFIX",
    "GIT_DEPLOY_HOOK_PREFIX",
    "GIT_DEPLOY_ROLLOUT_TAG",
    "GIT_DEPLOY_START_TAG",
    "GIT_DEPLOY_RELEASE",
    "GIT_DEPLOY_ROOT",
    "GIT_DEPLOY_LOG_LEVEL",
    "GIT_DEPLOY_LOG_MESSAGE",
    "GIT_DEPLOY_LOG_ANNOUNCE",
)
SYNC_VARS = (
    "DEPLOY_ROLLOUT_TAG",
    "DEPLOY_ROLLBACK_TAG",
    "DEPLOY_DEPLOY_FILE",
    "DEPLOY_DEPLOY_TEXT",
    "DEPLOY_ROLLOUT_PREFIX",
    "DEPLOY_HOSTS",
)

DEFAULT_SUPPORT = "the people who run your deployments"
DEFAULT_FAIL_MESSAGE = (
    "DON'T PANIC. The sync hook {SYNC_HOOK} failed. The new release is in place "
    "on the targets, but the sync did not complete, so the rollout is not finished. "
    "Run the sync hook by hand to see what it reports, fix the cause, then re-run "
    "the rollout (or revert it). If in doubt, ask {SUPPORT_EMAIL}."
)


class HookError(Exception):
    """A hook setup problem that stops a phase before any hook runs."""


# -- rules -----------------------------------------------------------------
def failure_ignored(phase, action):
    """True if a failing hook of ``phase`` during ``action`` is reported but not fatal.

    ``log`` hooks never stop a rollout; ``post-tree-update`` and ``post-reset``
    hooks never stop a revert or an abort (a web server that does not restart must
    not stop the way back), nor ``post-pull``, which git-deploy runs only in start.
    """
    if phase == "log":
        return True
    return phase in ("post-pull", "post-tree-update", "post-reset") and action in ("revert", "abort")


def hook_action(rollout, phase):
    """GIT_DEPLOY_ACTION for a ``phase`` of a rollout whose playbook is ``rollout`` (deploy,
    revert, abort, hotfix): the git-deploy action that runs that phase. A one-step deploy is
    git-deploy's start (pre-start ... post-start), sync (pre-sync, the sync hook, post-sync)
    and finish (log); a hotfix starts as ``hotfix``; a rollback is an ``abort``; a revert is
    ``revert`` throughout."""
    if rollout in ("revert", "abort"):
        return rollout
    if phase in ("post-reset", "post-abort"):
        return "abort"
    if phase == "log":
        return "finish"
    if phase in START_PHASES:
        return "hotfix" if rollout == "hotfix" else "start"
    return "sync"


def skip_reason(name):
    """Why a file named ``name`` is never a hook, or None."""
    if name.endswith(SKIP_SUFFIXES):
        return "backup file (names ending in .bak or ~ are skipped)"
    return None


def _inside(path, boundary):
    return path == boundary or path.startswith(boundary.rstrip(os.sep) + os.sep)


def _entry(path, name, prefix, phase):
    return {
        "path": path,
        "name": name,
        "prefix": prefix,
        "phase": phase,
        "rc": None,
        "stdout": "",
        "stderr": "",
        "duration": 0.0,
        "truncated": False,
        "timed_out": False,
        "skipped": False,
        "reason": "",
        "real": None,
    }


def classify(path, name, prefix, phase, boundary):
    """One hook entry for ``path``: runnable, or skipped with a reason.

    Raises :class:`HookError` if the hook's real path is outside ``boundary``
    (the real path of the release).
    """
    entry = _entry(path, name, prefix, phase)
    reason = skip_reason(name)
    if reason:
        entry.update(skipped=True, reason=reason)
        return entry
    real = os.path.realpath(path)
    entry["real"] = real
    if not _inside(real, boundary):
        raise HookError(
            "hook %s resolves to %s, outside the release %s: refusing to run any %s hook. "
            "Make the link point inside the release (or copy the script into the hook "
            "directory)." % (path, real, boundary, phase)
        )
    try:
        info = os.stat(real)
    except OSError:
        entry.update(skipped=True, reason="broken symlink (%s does not exist)" % real)
        return entry
    if not stat.S_ISREG(info.st_mode):
        entry.update(skipped=True, reason="not a regular file")
    elif not os.access(real, os.X_OK):
        entry.update(skipped=True, reason="not executable (chmod +x %s to run it)" % path)
    return entry


def discover(hooks_root, boundary, phase, env):
    """The hooks of ``phase`` for environment ``env`` under ``hooks_root``, in run order.

    ``apps/common/<phase>.*`` first, then ``apps/<env>/<phase>.*``, each in sort
    order.  ``boundary`` is the real path every hook must resolve inside.  A
    missing directory contributes no hooks.  Returns a list of entries (dicts);
    skipped ones say why.
    """
    if phase == "sync":
        return discover_sync(hooks_root, boundary, env)
    boundary = os.path.realpath(boundary)
    prefixes = [COMMON] if env == COMMON else [COMMON, env]
    wanted = phase + "."
    found = []
    for prefix in prefixes:
        directory = os.path.join(hooks_root, "apps", prefix)
        try:
            names = os.listdir(directory)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            raise HookError("cannot read hook directory %s: %s" % (directory, exc.strerror))
        for name in sorted(n for n in names if n.startswith(wanted)):
            found.append(classify(os.path.join(directory, name), name, prefix, phase, boundary))
    return found


def discover_sync(hooks_root, boundary, env):
    """The sync hook ``sync/<env>.sync`` as a one-entry list, or [] if there is none."""
    boundary = os.path.realpath(boundary)
    name = env + ".sync"
    path = os.path.join(hooks_root, "sync", name)
    if not os.path.lexists(path):
        return []
    return [classify(path, name, env, "sync", boundary)]


# -- environment -----------------------------------------------------------
def base_environment(environ=None):
    """The caller's environment without any inherited hook variables."""
    environ = dict(os.environ if environ is None else environ)
    for key in HOOK_VARS + SYNC_VARS:
        environ.pop(key, None)
    return environ


def hook_environment(base, action, phase, env, hook_prefix, release, rollout_tag=None,
                     start_tag=None, root=None, log_level=None, log_message=None,
                     log_announce=False):
    """The environment of one phase hook (a new dict; ``base`` is not changed)."""
    result = base_environment(base)
    result.update({
        "GIT_DEPLOY_ACTION": action,
        "GIT_DEPLOY_PHASE": phase,
        "GIT_DEPLOY_PREFIX": env,
        "GIT_DEPLOY_HOOK_PREFIX": hook_prefix,
        "GIT_DEPLOY_ROLLOUT_TAG": rollout_tag or "",
        "GIT_DEPLOY_START_TAG": start_tag or "",
        "GIT_DEPLOY_RELEASE": release,
        "GIT_DEPLOY_ROOT": root or "",
    })
    if phase == "log":
        result.update({
            "GIT_DEPLOY_LOG_LEVEL": log_level or "info",
            "GIT_DEPLOY_LOG_MESSAGE": log_message or "",
            "GIT_DEPLOY_LOG_ANNOUNCE": "1" if log_announce else "0",
        })
    return result


def sync_environment(base, action, env, release, deploy_file_path, rollout_tag=None,
                     start_tag=None, root=None, hosts=None, deploy_text=""):
    """The environment of the sync hook: the phase variables plus git-deploy's DEPLOY_*."""
    result = hook_environment(base, action, "sync", env, env, release, rollout_tag=rollout_tag,
                              start_tag=start_tag, root=root)
    result.update({
        "DEPLOY_ROLLOUT_TAG": rollout_tag or "",
        "DEPLOY_ROLLBACK_TAG": start_tag or "",
        "DEPLOY_DEPLOY_FILE": deploy_file_path,
        "DEPLOY_DEPLOY_TEXT": deploy_text or "",
        "DEPLOY_ROLLOUT_PREFIX": env,
        "DEPLOY_HOSTS": " ".join(hosts or []),
    })
    return result


def fail_whale(template, sync_hook, support_email=None):
    """git-deploy's "DON'T PANIC" message with {SYNC_HOOK} and {SUPPORT_EMAIL} filled in."""
    text = template or DEFAULT_FAIL_MESSAGE
    return text.replace("{SYNC_HOOK}", sync_hook).replace("{SUPPORT_EMAIL}", support_email or DEFAULT_SUPPORT)


# -- output ----------------------------------------------------------------
class OutputCap:
    """Keeps the last ``limit`` bytes of a stream and counts the rest."""

    def __init__(self, limit):
        self.limit = max(0, int(limit))
        self.total = 0
        self._buf = bytearray()

    def feed(self, data):
        self.total += len(data)
        if not self.limit:
            return
        self._buf += data
        excess = len(self._buf) - self.limit
        if excess > 0:
            del self._buf[:excess]

    @property
    def truncated(self):
        return self.total > self.limit

    def text(self):
        return bytes(self._buf).decode("utf-8", "replace")


def cap_output(data, limit):
    """``(text, truncated)``: the last ``limit`` bytes of ``data`` as text."""
    cap = OutputCap(limit)
    cap.feed(data)
    return cap.text(), cap.truncated


def tail(text, lines=TAIL_LINES, chars=TAIL_CHARS):
    """The end of ``text``: at most ``lines`` lines and ``chars`` characters."""
    text = (text or "").rstrip()
    text = "\n".join(text.splitlines()[-lines:])
    return text[-chars:]


class HookLog:
    """Streams hook output to a log file, one journal line per output line.

    Lines carry the journal fields phase/env/tag and the hook's label; output
    arrives in chunks and is split into lines as it comes, so memory use does
    not depend on how much a hook prints.
    """

    def __init__(self, path, phase=None, env=None, tag=None):
        self.path = path
        self.fields = {"phase": phase, "env": env, "tag": tag}
        self._fd = None
        self._partial = {}

    def _write(self, text):
        if not text:
            return
        if self._fd is None:
            journal.ensure_dir(os.path.dirname(self.path))
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, journal.FILE_MODE)
        data = text.encode("utf-8", "replace")
        while data:
            written = os.write(self._fd, data)
            data = data[written:]

    def event(self, message):
        self._write(journal.format_line(message, **self.fields))

    def _lines(self, label, stream, lines):
        when = journal.utcnow()
        out = []
        for raw in lines:
            for start in range(0, max(len(raw), 1), MAX_LOG_LINE):
                piece = raw[start:start + MAX_LOG_LINE].decode("utf-8", "replace")
                out.append(journal.format_line("%s %s: %s" % (label, stream, piece), when=when,
                                               **self.fields))
        self._write("".join(out))

    def output(self, label, stream, data):
        key = (label, stream)
        buf = self._partial.pop(key, b"") + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        if len(rest) >= MAX_LOG_LINE:
            cut = len(rest) - len(rest) % MAX_LOG_LINE
            lines.append(rest[:cut])
            rest = rest[cut:]
        if rest:
            self._partial[key] = rest
        self._lines(label, stream, lines)

    def flush(self, label):
        for stream in ("out", "err"):
            rest = self._partial.pop((label, stream), b"")
            if rest:
                self._lines(label, stream, [rest])

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# -- runner ----------------------------------------------------------------
class RunResult:
    def __init__(self, rc, stdout, stderr, duration, truncated, timed_out):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration
        self.truncated = truncated
        self.timed_out = timed_out


def _group_alive(pgid):
    """True while a process of group ``pgid`` is alive (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return True
    for pid in pids:
        try:
            with open("/proc/%s/stat" % pid, "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state ppid pgrp ...
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def kill_group(proc, grace=KILL_GRACE):
    """SIGTERM the process group of ``proc``, SIGKILL it if anything is left after ``grace``."""
    pgid = proc.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while True:
        proc.poll()
        if not _group_alive(pgid):
            break
        if time.monotonic() >= deadline:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        time.sleep(0.02)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


def run_command(argv, cwd, env, timeout, output_limit, on_output=None, kill_grace=KILL_GRACE,
                drain=DRAIN_SECONDS):
    """Run ``argv`` (never through a shell) in its own session.

    Output is read as it comes: the last ``output_limit`` bytes of each stream
    are kept, every chunk goes to ``on_output(stream, data)`` (stream is "out"
    or "err").  After ``timeout`` seconds the whole process group gets SIGTERM,
    then SIGKILL after ``kill_grace``.  Pipes that children of a finished hook
    keep open are read for at most ``drain`` seconds more.
    """
    started = time.monotonic()
    # Not AnsibleModule.run_command: a hook needs its own session (so a timeout can
    # kill its whole process group) and output streamed to the log, never held whole.
    proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
        list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, close_fds=True, start_new_session=True,
    )
    caps = {"out": OutputCap(output_limit), "err": OutputCap(output_limit)}
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ, "out")
    selector.register(proc.stderr, selectors.EVENT_READ, "err")
    deadline = started + timeout
    timed_out = False
    stop_at = None

    def read_ready(wait):
        for key, _mask in selector.select(wait):
            data = os.read(key.fd, READ_SIZE)
            if not data:
                selector.unregister(key.fileobj)
                continue
            caps[key.data].feed(data)
            if on_output is not None:
                on_output(key.data, data)

    try:
        while selector.get_map():
            now = time.monotonic()
            if stop_at is None and proc.poll() is not None:
                stop_at = now + drain
            if stop_at is None and now >= deadline:
                timed_out = True
                break
            if stop_at is not None and now >= stop_at:
                break
            read_ready(min((stop_at or deadline) - now, 1.0))
        if not timed_out:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out:
            kill_group(proc, kill_grace)
            stop_at = time.monotonic() + min(drain, 0.5)
            while selector.get_map() and time.monotonic() < stop_at:
                read_ready(max(0.0, stop_at - time.monotonic()))
    finally:
        selector.close()
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()
        if proc.poll() is None:
            kill_group(proc, kill_grace)
    duration = round(time.monotonic() - started, 3)
    return RunResult(
        rc=proc.returncode, stdout=caps["out"].text(), stderr=caps["err"].text(),
        duration=duration, truncated=caps["out"].truncated or caps["err"].truncated,
        timed_out=timed_out,
    )


# -- a whole phase ---------------------------------------------------------
def label(entry):
    return "%s/%s" % (entry["prefix"], entry["name"]) if entry["phase"] != "sync" else "sync/" + entry["name"]


def run_hooks(entries, cwd, environment, phase, action, timeout=DEFAULT_TIMEOUT,
              output_limit=DEFAULT_OUTPUT_LIMIT, log=None, check_mode=False):
    """Run the runnable ``entries`` in order; returns a summary dict.

    ``environment(entry)`` gives each hook's environment.  A failing hook stops
    the phase (later hooks are listed as not run) unless
    :func:`failure_ignored` says otherwise.  Summary keys: ``hooks``,
    ``ran`` (count), ``failed_hook`` (path or None), ``failure`` (message or
    None), ``ignored_failures``, ``warnings``.
    """
    summary = {"hooks": [], "ran": 0, "failed_hook": None, "failure": None,
               "ignored_failures": [], "warnings": []}
    ignore = failure_ignored(phase, action)
    stopped = False
    for entry in entries:
        entry = dict(entry)
        summary["hooks"].append(entry)
        if entry["skipped"]:
            if not entry["reason"].startswith("backup file"):
                summary["warnings"].append("hook %s skipped: %s" % (entry["path"], entry["reason"]))
            if log and not check_mode:
                log.event("%s skipped: %s" % (label(entry), entry["reason"]))
            continue
        if stopped:
            entry.update(skipped=True, reason="not run: an earlier %s hook failed" % phase)
            continue
        if check_mode:
            entry["reason"] = "check mode: would run"
            summary["ran"] += 1
            continue
        name = label(entry)
        if log:
            log.event("%s start (%s, action %s)" % (name, entry["path"], action))
        on_output = (lambda stream, data, _n=name: log.output(_n, stream, data)) if log else None
        moved = entry.get("real") and os.path.realpath(entry["path"]) != entry["real"]
        if moved:
            # An earlier hook re-pointed this one (a symlink) since the phase was checked.
            why = ("not run: %s resolved to %s when the %s hooks were checked and resolves to %s now"
                   % (entry["path"], entry["real"], phase, os.path.realpath(entry["path"])))
            result = RunResult(rc=126, stdout="", stderr=why, duration=0.0, truncated=False, timed_out=False)
        else:
            try:
                result = run_command([entry["path"]], cwd, environment(entry), timeout, output_limit,
                                     on_output=on_output)
            except OSError as exc:  # no interpreter, bad shebang, noexec mount...
                result = RunResult(rc=126, stdout="", stderr="cannot execute %s: %s" % (entry["path"], exc),
                                   duration=0.0, truncated=False, timed_out=False)
        summary["ran"] += 1
        entry.update(rc=result.rc, stdout=result.stdout, stderr=result.stderr,
                     duration=result.duration, truncated=result.truncated,
                     timed_out=result.timed_out)
        if log:
            log.flush(name)
            if result.timed_out:
                log.event("%s timed out after %ss: process group killed (rc %s)" % (name, timeout, result.rc))
            else:
                log.event("%s exited %s after %.3fs" % (name, result.rc, result.duration))
        if result.rc == 0 and not result.timed_out:
            continue
        message = failure_message(entry, cwd, timeout)
        if ignore:
            entry["reason"] = "failure ignored: %s hooks do not stop %s" % (
                phase, "a rollout" if phase == "log" else "a " + action)
            summary["ignored_failures"].append({"path": entry["path"], "rc": entry["rc"],
                                                "timed_out": entry["timed_out"],
                                                "reason": entry["reason"]})
            summary["warnings"].append("%s (ignored: %s)" % (message, entry["reason"]))
            continue
        summary["failed_hook"] = entry["path"]
        summary["failure"] = message
        stopped = True
    return summary


def failure_message(entry, cwd, timeout):
    """What went wrong with a hook, where, and how to reproduce it."""
    if entry["timed_out"]:
        what = "timed out after %s seconds (its process group was killed)" % timeout
    else:
        what = "exited %s" % entry["rc"]
    output = tail(entry["stderr"]) or tail(entry["stdout"])
    text = "%s hook %s %s" % (entry["phase"], entry["path"], what)
    text += ": %s" % output if output else " with no output"
    text += ". Run it by hand to see why: cd %s && GIT_DEPLOY_PHASE=%s %s" % (cwd, entry["phase"], entry["path"])
    return text


def describe(summary, phase, env, hooks_root, check_mode):
    """One line saying what a phase did (or would do in check mode)."""
    hooks = summary["hooks"]
    if not hooks:
        where = os.path.join(hooks_root, "sync", env + ".sync") if phase == "sync" else \
            "%s/apps/{common,%s}/%s.*" % (hooks_root, env, phase)
        return "no %s hooks for %s (looked for %s)" % (phase, env, where)
    runnable = [label(h) for h in hooks if not h["skipped"]]
    skipped = len(hooks) - len(runnable)
    if check_mode:
        text = "check mode: would run %d %s hook(s) for %s in this order: %s" % (
            len(runnable), phase, env, ", ".join(runnable) or "none")
    else:
        text = "ran %d %s hook(s) for %s" % (summary["ran"], phase, env)
    if skipped:
        text += "; %d skipped" % skipped
    if summary["ignored_failures"]:
        text += "; %d failed (ignored)" % len(summary["ignored_failures"])
    return text


def run_phase(source, hook_dir, phase, env, action, cwd=None, rollout_tag=None, start_tag=None, root=None,
              timeout=DEFAULT_TIMEOUT, output_limit=DEFAULT_OUTPUT_LIMIT, log_file=None, log_level=None,
              log_message=None, log_announce=False, hosts=None, deploy_file_path=None, deploy_text="",
              check_mode=False):
    """Discover and run the hooks of ``phase`` in the tree ``source`` (a release, or a commit's
    hook directory exported on the controller); return the summary of :func:`run_hooks` plus
    ``hook_dir`` (where the hooks were looked for), ``log_file`` and ``msg``.

    Raises :class:`HookError` for a hook tree that cannot be used (nothing ran) and OSError
    when the log cannot be written.
    """
    hooks_root = os.path.join(source, check_relative(hook_dir, "hook_dir"))
    cwd = cwd or source
    entries = discover(hooks_root, source, phase, env)
    common = dict(rollout_tag=rollout_tag, start_tag=start_tag, root=root)
    if phase == "sync":
        environ = sync_environment(os.environ, action, env, cwd, deploy_file_path, hosts=hosts,
                                   deploy_text=deploy_text, **common)

        def environment(entry):
            return environ
    else:
        def environment(entry):
            return hook_environment(os.environ, action, phase, env, entry["prefix"], cwd, log_level=log_level,
                                    log_message=log_message, log_announce=log_announce, **common)

    log = HookLog(log_file, phase=phase, env=env, tag=rollout_tag) if log_file else None
    try:
        summary = run_hooks(entries, cwd, environment, phase, action, timeout=timeout,
                            output_limit=output_limit, log=log, check_mode=check_mode)
    finally:
        if log:
            log.close()
    summary.update(hook_dir=hooks_root, log_file=log_file,
                   msg=summary["failure"] or describe(summary, phase, env, hooks_root, check_mode))
    return summary


def unknown_phases(release, hook_dir, env):
    """The executable files of ``deploy/apps/{common,<env>}`` in ``release`` whose name does not
    start with a phase git-deploy knows (``pre-pul.010_x``: a typo that would never run), as
    paths relative to ``release``. Editor leftovers and non-executable files are not hooks."""
    hook_dir = check_relative(hook_dir, "hook_dir")
    base = os.path.join(release, hook_dir, "apps")
    found = []
    for prefix in ([COMMON] if env == COMMON else [COMMON, env]):
        directory = os.path.join(base, prefix)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if skip_reason(name) or not os.path.isfile(path) or not os.access(path, os.X_OK):
                continue
            if not any(name.startswith(phase + ".") for phase in PHASES):
                found.append(os.path.join(hook_dir, "apps", prefix, name))
    return found


def phases_present(release, hook_dir, env, phases=PHASES):
    """The phases among ``phases`` that have at least one hook file in ``release`` for ``env``."""
    base = os.path.join(release, check_relative(hook_dir, "hook_dir"), "apps")
    names = []
    for prefix in ([COMMON] if env == COMMON else [COMMON, env]):
        try:
            names += os.listdir(os.path.join(base, prefix))
        except OSError:
            continue
    return [phase for phase in phases if any(n.startswith(phase + ".") and not skip_reason(n) for n in names)]


# -- hooks from a commit (controller) --------------------------------------
def export_hook_dir(repo_path, commit, hook_dir, dest):
    """Write ``<hook_dir>`` of ``commit`` in the git repository ``repo_path`` under ``dest``.

    Returns ``(commit_sha, exported)``: ``exported`` is False if the commit has
    no ``hook_dir``.  Modes and symlinks are kept; submodules are left out.
    Needs dulwich (imported here, only when hooks come from a commit).
    """
    from dulwich.objectspec import parse_commit
    from dulwich.repo import Repo

    hook_dir = check_relative(hook_dir, "hook_dir")
    repo = Repo(repo_path)
    try:
        try:
            found = parse_commit(repo, commit)
        except (KeyError, ValueError):
            raise HookError("commit %r is not a commit of repository %s (check with: git -C %s "
                            "rev-parse --verify %s^{commit})" % (commit, repo_path, repo_path, commit))
        tree = repo[found.tree]
        for part in hook_dir.split("/"):
            try:
                mode, sha = tree[part.encode("utf-8")]
            except KeyError:
                return found.id.decode("ascii"), False
            if not stat.S_ISDIR(mode):
                return found.id.decode("ascii"), False
            tree = repo[sha]
        _write_tree(repo, tree, os.path.join(dest, hook_dir))
        return found.id.decode("ascii"), True
    finally:
        repo.close()


def _write_tree(repo, tree, directory):
    os.makedirs(directory, 0o755)
    for item in tree.iteritems():
        name = item.path.decode("utf-8", "surrogateescape")
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            raise HookError("refusing tree entry %r in the hook directory" % name)
        path = os.path.join(directory, name)
        mode = item.mode
        if stat.S_ISDIR(mode):
            _write_tree(repo, repo[item.sha], path)
        elif stat.S_ISLNK(mode):
            os.symlink(repo[item.sha].data, path.encode("utf-8", "surrogateescape"))
        elif stat.S_ISREG(mode):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755 if mode & 0o111 else 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(repo[item.sha].data)
        # gitlinks (submodules) have no content here
