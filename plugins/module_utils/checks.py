# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Health checks (git_deploy_checks): what a host must pass once it switched, before the
next batch may switch and before the rollout counts as done.

A check is a dict with a ``name`` and one of:

* ``command``: a list of arguments, run without a shell in the live release; passes when
  it exits 0 within ``timeout`` (30 s);
* ``url``: an http(s) URL, fetched directly (no proxy); passes when the status is
  ``status`` (200, or a list) and the body holds ``contains`` (if given), within
  ``timeout`` (10 s);
* ``port``: a TCP port on ``host`` (127.0.0.1); passes when a connection opens within
  ``timeout`` (5 s).

Each is tried ``retries`` more times (0), ``delay`` seconds (1) apart, until it passes.
``normalize`` checks the list and fills the defaults (ValueError says what is wrong, so
a bad list is refused before anything changes); ``run`` runs them in order and stops at
the first that fails. Target side: the standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
import time

from urllib.error import HTTPError, URLError
from urllib.request import ProxyHandler, Request, build_opener

KINDS = ("command", "url", "port")
COMMON = ("name", "retries", "delay", "timeout")
FIELDS = {"command": COMMON, "url": COMMON + ("status", "contains"), "port": COMMON + ("host",)}
TIMEOUTS = {"command": 30, "url": 10, "port": 5}
# What a failing check keeps of a command's output or a response's body.
TAIL = 400
BODY_LIMIT = 1024 * 1024


def _number(check, key, default, minimum=0):
    value = check.get(key, default)
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("check %s: %s must be a number (got %r)" % (check.get("name"), key, value))
    if number < minimum:
        raise ValueError("check %s: %s must be %s or more (got %r)" % (check.get("name"), key, minimum, value))
    return number


def normalize(checks):
    """The checks with their defaults filled in; ValueError names the first one that is wrong."""
    if checks in (None, ""):
        return []
    if not isinstance(checks, list):
        raise ValueError("git_deploy_checks must be a list of checks (got %s)" % type(checks).__name__)
    found, names = [], set()
    for index, check in enumerate(checks):
        if not isinstance(check, dict):
            raise ValueError("check %d must be a dict with a name and one of %s (got %r)"
                             % (index + 1, ", ".join(KINDS), check))
        name = check.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("check %d needs a name" % (index + 1))
        if name in names:
            raise ValueError("check %s is named twice: names must be unique" % name)
        names.add(name)
        kinds = [k for k in KINDS if k in check]
        if len(kinds) != 1:
            raise ValueError("check %s must have exactly one of %s (got %s)"
                             % (name, ", ".join(KINDS), ", ".join(kinds) or "none"))
        kind = kinds[0]
        unknown = sorted(set(check) - set(FIELDS[kind]) - {kind})
        if unknown:
            raise ValueError("check %s: unknown field(s) %s for a %s check (fields: %s)"
                             % (name, ", ".join(unknown), kind, ", ".join(FIELDS[kind] + (kind,))))
        out = {"name": name, "kind": kind,
               "retries": int(_number(check, "retries", 0)), "delay": _number(check, "delay", 1),
               "timeout": _number(check, "timeout", TIMEOUTS[kind], minimum=0.001)}
        if kind == "command":
            argv = check["command"]
            if not isinstance(argv, list) or not argv or not all(isinstance(a, (str, int, float)) for a in argv):
                raise ValueError("check %s: command must be a non-empty list of arguments (it runs without a shell), "
                                 "got %r" % (name, argv))
            out["command"] = [str(a) for a in argv]
        elif kind == "url":
            url = check["url"]
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError("check %s: url must start with http:// or https:// (got %r)" % (name, url))
            status = check.get("status", 200)
            statuses = status if isinstance(status, list) else [status]
            try:
                out["status"] = [int(s) for s in statuses if not isinstance(s, bool)]
            except (TypeError, ValueError):
                out["status"] = []
            if not out["status"] or len(out["status"]) != len(statuses):
                raise ValueError("check %s: status must be an HTTP status or a list of them (got %r)" % (name, status))
            out.update(url=url, contains=check.get("contains"))
            if out["contains"] is not None and not isinstance(out["contains"], str):
                raise ValueError("check %s: contains must be a string" % name)
        else:
            try:
                port = int(check["port"])
            except (TypeError, ValueError):
                port = 0
            if isinstance(check["port"], bool) or not 0 < port < 65536:
                raise ValueError("check %s: port must be a TCP port, 1 to 65535 (got %r)" % (name, check["port"]))
            host = check.get("host", "127.0.0.1")
            if not isinstance(host, str) or not host:
                raise ValueError("check %s: host must be a host name or address" % name)
            out.update(port=port, host=host)
        found.append(out)
    return found


def tail(text, limit=TAIL):
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else "..." + text[-limit:]


def judge_response(check, status, body):
    """``(ok, msg)`` for a response of ``check``'s URL."""
    if status not in check["status"]:
        return False, "HTTP %s from %s (expected %s)" % (status, check["url"], " or ".join(str(s) for s in check["status"]))
    if check.get("contains") and check["contains"] not in body:
        return False, "the response of %s (HTTP %s) does not contain %r" % (check["url"], status, check["contains"])
    return True, "HTTP %s from %s" % (status, check["url"])


def judge_exit(check, rc, output):
    if rc == 0:
        return True, "%s exited 0" % check["command"][0]
    return False, "%s exited %s%s" % (" ".join(check["command"]), rc, (": " + tail(output)) if tail(output) else "")


def try_command(check, cwd):
    # The hooks' runner: its own session, so that a timeout kills the whole process group.
    from ansible_collections.gitdeploy.rollout.plugins.module_utils import hooks
    try:
        done = hooks.run_command(list(check["command"]), cwd if cwd and os.path.isdir(cwd) else None,
                                 dict(os.environ), check["timeout"], TAIL * 4, drain=0.5)
    except OSError as exc:
        return False, "cannot run %s: %s" % (check["command"][0], exc)
    if done.timed_out:
        return False, "%s did not finish within %g s" % (" ".join(check["command"]), check["timeout"])
    return judge_exit(check, done.rc, (done.stdout or "") + " " + (done.stderr or ""))


def try_url(check, cwd=None):
    del cwd
    opener = build_opener(ProxyHandler({}))
    request = Request(check["url"], headers={"User-Agent": "gitdeploy.rollout health check"})
    try:
        response = opener.open(request, timeout=check["timeout"])
    except HTTPError as exc:
        response = exc
    except (URLError, socket.timeout, OSError) as exc:
        return False, "cannot fetch %s: %s" % (check["url"], getattr(exc, "reason", None) or exc)
    try:
        body = response.read(BODY_LIMIT).decode("utf-8", "replace")
    except (socket.timeout, OSError) as exc:
        return False, "cannot read the response of %s: %s" % (check["url"], exc)
    finally:
        response.close()
    return judge_response(check, response.getcode(), body)


def try_port(check, cwd=None):
    del cwd
    try:
        conn = socket.create_connection((check["host"], check["port"]), timeout=check["timeout"])
    except (socket.timeout, OSError) as exc:
        return False, "cannot connect to %s:%s: %s" % (check["host"], check["port"], exc)
    conn.close()
    return True, "%s:%s accepts connections" % (check["host"], check["port"])


TRIES = {"command": try_command, "url": try_url, "port": try_port}


def run_one(check, cwd=None, sleep=time.sleep, clock=time.monotonic, tries=None):
    """Try ``check`` until it passes or its retries are spent: its result (name, kind, ok,
    tries, seconds, msg)."""
    attempt = (tries or TRIES)[check["kind"]]
    started = clock()
    count = 0
    while True:
        count += 1
        ok, msg = attempt(check, cwd)
        if ok or count > check["retries"]:
            break
        sleep(check["delay"])
    return {"name": check["name"], "kind": check["kind"], "ok": ok, "tries": count,
            "seconds": round(clock() - started, 3), "msg": msg}


def run(checks, cwd=None, sleep=time.sleep, clock=time.monotonic, tries=None):
    """Run ``checks`` (normalized) in order; stop at the first that fails."""
    results = []
    for check in checks:
        results.append(run_one(check, cwd, sleep, clock, tries))
        if not results[-1]["ok"]:
            break
    return results


def first_failed(results):
    for item in results or []:
        if not item.get("ok"):
            return item
    return None


def describe(item):
    """One check's result, as the log and the step line say it."""
    tries = "%d tries" % item["tries"] if item["tries"] != 1 else "1 try"
    return "check %s %s (%s, %.2fs): %s" % (item["name"], "passed" if item["ok"] else "FAILED", tries,
                                            item["seconds"], item["msg"])
