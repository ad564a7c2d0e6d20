# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rollout announcements: the subject, the text and the structured payload of
the message that tells people what was deployed, by whom, and what changed.

Pure logic, no I/O. :func:`compose` takes two dicts:

* ``facts``: the rollout (``env``, ``action``, ``result``, ``tag``,
  ``previous_tag``, ``commit``, ``user``, ``controller``, ``start``, ``end``,
  ``hosts``, ``failed_hosts``, ``failure``, ``support_email``, ``deploy_id``,
  ``project``, ``deploy_file``); missing keys are simply not shown;
* ``changes``: what changed between the previous and the new rollout, as
  ``git_deploy_announce`` computes it (``commits``, ``removed``, ``files``,
  their totals, ``insertions``, ``deletions``), or None when unknown.

Every list is capped (commits, files, hosts) and every free text is clipped,
so an announcement stays readable and within what chat servers accept
(Mattermost refuses posts over 16383 characters).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
from urllib.parse import urlsplit

from ansible_collections.gitdeploy.rollout.plugins.module_utils import tagging

# What happened, as git-deploy's send-mail-on-ACTION names it: the values of
# git_deploy_announce_on.
EVENTS = ("deploy", "revert", "rollback", "failure")
RESULTS = ("success", "rolled_back", "failed")

MAX_COMMITS = 50
MAX_FILES = 100
MAX_HOSTS = 50
MAX_CHARS = 12000
MAX_LINE = 200  # a commit subject, a path, a host name
MAX_MESSAGE = 1000  # the failure message
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
ELLIPSIS = "..."
CUT_MARK = "\n[... announcement cut at %d characters]"
FENCE = "```"
MASK = "********"


def event_of(action, result):
    """The announce event of a finished rollout: deploy, revert, rollback or failure."""
    if result == "failed":
        return "failure"
    if result == "rolled_back":
        return "rollback"
    return "revert" if action == "revert" else "deploy"


def clip(value, limit=MAX_LINE):
    """``value`` as one line of at most ``limit`` characters (control characters become spaces)."""
    text = "" if value is None else str(value)
    text = "".join(c if c >= " " or c == "\t" else " " for c in text).replace("\t", " ").strip()
    if len(text) <= limit:
        return text
    return text[:max(limit - len(ELLIPSIS), 0)].rstrip() + ELLIPSIS


def clip_block(value, limit=MAX_MESSAGE):
    """``value`` as at most ``limit`` characters, keeping line breaks."""
    text = ("" if value is None else str(value)).strip()
    if len(text) <= limit:
        return text
    return text[:max(limit - len(ELLIPSIS), 0)].rstrip() + ELLIPSIS


def parse_time(value):
    """A UTC datetime for ``YYYY-mm-ddTHH:MM:SSZ`` (or a datetime), None for anything else."""
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    try:
        moment = datetime.datetime.strptime(str(value), TIME_FORMAT)
    except (TypeError, ValueError):
        return None
    return moment.replace(tzinfo=datetime.timezone.utc)


def format_time(moment):
    return moment.astimezone(datetime.timezone.utc).strftime(TIME_FORMAT)


def duration_seconds(start, end):
    """Whole seconds from ``start`` to ``end`` (ISO strings or datetimes), None if either is unknown."""
    first, last = parse_time(start), parse_time(end)
    if first is None or last is None:
        return None
    return max(int((last - first).total_seconds()), 0)


def format_duration(seconds):
    """``42s``, ``3m 05s``, ``1h 02m 03s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%dh %02dm %02ds" % (hours, minutes, secs)
    if minutes:
        return "%dm %02ds" % (minutes, secs)
    return "%ds" % secs


def rollout_message(facts):
    """The free text of the rollout (``-e message=...``), unless it is the default one."""
    fields, message = tagging.parse_deploy_file(facts.get("deploy_file") or "")
    if not fields:
        return ""
    text = clip_block(message, MAX_MESSAGE)
    env, user, tag = facts.get("env") or "", facts.get("user") or "", facts.get("tag") or ""
    if text == tagging.expand_message(tagging.default_message(env, user), tag):
        return ""
    return text


def _plural(count, word, plural=None):
    return "%d %s" % (count, word if count == 1 else (plural or word + "s"))


def _short(sha):
    return (sha or "")[:12]


def subject(facts, event=None):
    """The one-line summary: chat notification, mail subject, log hook message."""
    env = clip(facts.get("env") or "?", 64)
    tag = clip(facts.get("tag") or "?", 128)
    user = clip(facts.get("user") or "someone", 64)
    previous = clip(facts.get("previous_tag") or "", 128)
    action = facts.get("action") or "deploy"
    event = event or event_of(action, facts.get("result"))
    project = clip(facts.get("project") or "", 64)
    head = ("[%s] " % project if project else "") + env + ": "
    if event == "deploy":
        return head + "%s deployed %s" % (user, tag)
    if event == "revert":
        return head + "%s reverted to %s" % (user, tag) + (" (from %s)" % previous if previous else "")
    if event == "rollback":
        back = ("rolled back to %s" % previous) if previous else "switched hosts rolled back"
        return head + "%s of %s by %s FAILED, %s" % (action, tag, user, back)
    return head + "%s of %s by %s FAILED" % (action, tag, user)


def _stat_cell(item):
    if item.get("binary"):
        return "Bin"
    if item.get("insertions") is None or item.get("deletions") is None:
        return "?"
    added, deleted = int(item["insertions"]), int(item["deletions"])
    graph = "+" * min(added, 40) + "-" * min(deleted, 40)
    return ("%d %s" % (added + deleted, graph)).rstrip()


def _file_label(item):
    path = item.get("path") or "?"
    old = item.get("old_path")
    if old and old != path:
        return clip("%s => %s" % (old, path))
    return clip(path)


def summary_line(changes):
    """``3 commits, 2 files changed, 10 insertions(+), 1 deletion(-)`` (git's shortstat)."""
    if not changes:
        return "changes unknown"
    parts = []
    commits = int(changes.get("commits_total") or 0)
    removed = int(changes.get("removed_total") or 0)
    if commits or not removed:
        parts.append(_plural(commits, "commit"))
    if removed:
        parts.append("%s taken out" % _plural(removed, "commit"))
    files = int(changes.get("files_total") or 0)
    parts.append(_plural(files, "file") + " changed")
    if changes.get("insertions") is not None:
        parts.append("%s(+)" % _plural(int(changes["insertions"]), "insertion"))
    if changes.get("deletions") is not None:
        parts.append("%s(-)" % _plural(int(changes["deletions"]), "deletion"))
    text = ", ".join(parts)
    if changes.get("stat_complete") is False:
        text += " (line counts partial)"
    return text


def commit_lines(commits, total, limit):
    """``<id> <subject> (<author>)`` lines, newest first, and ``... and N more``."""
    lines = []
    for commit in (commits or [])[:max(limit, 0)]:
        author = commit.get("author") or ""
        lines.append(clip("%s %s%s" % (_short(commit.get("id")), commit.get("subject") or "",
                                       " (%s)" % author if author else "")))
    more = max(int(total or 0) - len(lines), 0)
    if more:
        lines.append("... and %s" % _plural(more, "more commit"))
    return lines


def diffstat_lines(files, total, limit):
    """git's ``--stat`` lines (``path | 3 ++-``), and ``... and N more``."""
    shown = (files or [])[:max(limit, 0)]
    labels = [_file_label(item) for item in shown]
    width = max([len(label) for label in labels] + [0])
    lines = ["%s | %s" % (label.ljust(width), _stat_cell(item)) for label, item in zip(labels, shown)]
    more = max(int(total or 0) - len(lines), 0)
    if more:
        lines.append("... and %s" % _plural(more, "more file"))
    return lines


def _failure(facts):
    failure = facts.get("failure") or {}
    if not isinstance(failure, dict) or not any(failure.get(k) for k in ("host", "phase", "hook", "msg")):
        return None
    return {
        "host": clip(failure.get("host") or "", 128) or None,
        "phase": clip(failure.get("phase") or "", 64) or None,
        "hook": clip(failure.get("hook") or "", 256) or None,
        "msg": clip_block(failure.get("msg") or "", MAX_MESSAGE) or None,
    }


def _host_text(hosts, limit=MAX_HOSTS):
    hosts = [clip(h, 128) for h in hosts or []]
    text = ", ".join(hosts[:limit])
    if len(hosts) > limit:
        text += ", ... and %d more" % (len(hosts) - limit)
    return text


def _capped_changes(changes, max_commits, max_files):
    if not changes:
        return None
    capped = dict(changes)
    capped["commits"] = [dict(c, subject=clip(c.get("subject"))) for c in (changes.get("commits") or [])[:max_commits]]
    capped["removed"] = [dict(c, subject=clip(c.get("subject"))) for c in (changes.get("removed") or [])[:max_commits]]
    capped["files"] = list((changes.get("files") or [])[:max_files])
    capped["commits_total"] = int(changes.get("commits_total") or len(changes.get("commits") or []))
    capped["removed_total"] = int(changes.get("removed_total") or len(changes.get("removed") or []))
    capped["files_total"] = int(changes.get("files_total") or len(changes.get("files") or []))
    capped["truncated"] = (capped["commits_total"] > len(capped["commits"])
                           or capped["removed_total"] > len(capped["removed"])
                           or capped["files_total"] > len(capped["files"]))
    return capped


def cap_text(text, limit):
    """``text`` cut at a line break so that it fits ``limit`` characters, with a note saying so.

    A code block (```) left open by the cut is closed.
    """
    if limit <= 0 or len(text) <= limit:
        return text
    mark = CUT_MARK % limit
    room = max(limit - len(mark) - len(FENCE) - 1, 0)
    cut = text.rfind("\n", 0, room + 1)
    kept = text[:cut if cut > 0 else room].rstrip()
    if kept.split("\n").count(FENCE) % 2:
        kept += "\n" + FENCE
    return kept + mark


def compose(facts, changes=None, now=None, max_commits=MAX_COMMITS, max_files=MAX_FILES,
            max_chars=MAX_CHARS):
    """The announcement of a finished rollout.

    Returns ``{"event", "subject", "text", "chat_text", "payload"}``: ``text`` is the
    plain text (mail body), ``chat_text`` the same with the lists in code blocks
    (Slack/Mattermost ``text``), ``payload`` the webhook's JSON body:
    ``{"text": chat_text, "gitdeploy": {...structured fields...}}``.
    """
    facts = dict(facts or {})
    action = facts.get("action") or "deploy"
    result = facts.get("result") or "success"
    event = event_of(action, result)
    end = parse_time(facts.get("end")) or parse_time(now) or datetime.datetime.now(datetime.timezone.utc)
    seconds = duration_seconds(facts.get("start"), end)
    hosts = [str(h) for h in facts.get("hosts") or []]
    failed_hosts = [str(h) for h in facts.get("failed_hosts") or []]
    failure = _failure(facts) if result != "success" else None
    support = clip(facts.get("support_email") or "", 256)
    message = rollout_message(facts)
    changes = _capped_changes(changes, max_commits, max_files)
    head = subject(facts, event)

    fields = [
        ("env", facts.get("env")),
        ("result", {"success": "success", "rolled_back": "FAILED, rolled back",
                    "failed": "FAILED"}.get(result, result)),
        ("tag", "%s (commit %s)" % (facts.get("tag") or "?", _short(facts.get("commit")) or "?")),
        ("previous tag", facts.get("previous_tag") or "(none: first rollout)"),
        ("by", "%s from %s" % (facts.get("user") or "?", facts.get("controller") or "?")),
        ("started", facts.get("start")),
        ("duration", format_duration(seconds)),
        ("hosts (%d)" % len(hosts), _host_text(hosts)),
        ("rollout id", facts.get("deploy_id")),
        ("message", message),
    ]
    if result != "success":
        if failure:
            where = ", ".join(part for part in (
                failure["host"], failure["phase"] and "phase " + failure["phase"],
                failure["hook"] and "hook " + failure["hook"]) if part)
            fields.append(("failure", where or "?"))
        fields.append(("failed hosts", _host_text(failed_hosts) or "(none reported)"))
        if support:
            fields.append(("support", support))
    width = max(len(name) for name, value in fields if value) + 1
    lines = ["%s %s" % ((name + ":").ljust(width), clip(value, 1000)) for name, value in fields if value]
    if failure and failure["msg"]:
        lines.append("")
        lines.append("error: " + failure["msg"].replace("\n", "\n  "))

    sections = []  # (title, lines) rendered as blocks
    if changes is None:
        sections.append(("changes: unknown (see the controller's warnings)", []))
    else:
        span = "%s..%s" % (facts.get("previous_tag") or changes.get("from_ref") or "(start)",
                           facts.get("tag") or changes.get("to_ref") or "?")
        sections.append(("changes %s: %s" % (span, summary_line(changes)), []))
        if changes["commits"] or changes["commits_total"]:
            sections.append(("commits (newest first):",
                             commit_lines(changes["commits"], changes["commits_total"], max_commits)))
        if changes["removed"] or changes["removed_total"]:
            sections.append(("commits taken back out:",
                             commit_lines(changes["removed"], changes["removed_total"], max_commits)))
        if changes["files"] or changes["files_total"]:
            sections.append(("files:", diffstat_lines(changes["files"], changes["files_total"], max_files)))

    def render(fenced):
        out = [head, ""] + lines
        for title, body in sections:
            out += ["", title]
            if body:
                out += ([FENCE] + body + [FENCE]) if fenced else ["  " + line for line in body]
        return "\n".join(out).rstrip() + "\n"

    text = cap_text(render(False), max_chars)
    chat_text = cap_text(render(True), max_chars)
    structured = {
        "event": event,
        "env": facts.get("env"),
        "action": action,
        "result": result,
        "project": facts.get("project") or None,
        "tag": facts.get("tag"),
        "previous_tag": facts.get("previous_tag") or None,
        "commit": facts.get("commit"),
        "deploy_id": facts.get("deploy_id") or None,
        "user": facts.get("user"),
        "controller": facts.get("controller"),
        "start": facts.get("start"),
        "end": format_time(end),
        "duration": seconds,
        "hosts": hosts,
        "failed_hosts": failed_hosts,
        "failure": failure,
        "support_email": support or None,
        "message": message or None,
        "changes": changes,
    }
    return {
        "event": event,
        "subject": head,
        "text": text,
        "chat_text": chat_text,
        "payload": {"text": chat_text, "gitdeploy": structured},
    }


def secret_variants(secrets):
    """Every secret, plus the path and query of the ones that are URLs (longest first)."""
    found = set()
    for secret in secrets or []:
        secret = (secret or "").strip()
        if len(secret) < 4:
            continue
        found.add(secret)
        try:
            parts = urlsplit(secret)
        except ValueError:
            continue
        if parts.scheme and parts.netloc:
            for part in (parts.path, parts.query, parts.netloc.rpartition("@")[0]):
                if len(part) >= 4 and part != "/":
                    found.add(part)
    return sorted(found, key=len, reverse=True)


def mask(text, secrets):
    text = "" if text is None else str(text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def project_name(project=None, repo_url=None, repo_path=None):
    """The project an announcement names: ``project``, else the repository's name."""
    if project:
        return project
    name = (repo_url or "").rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1] if repo_url else \
        (repo_path or "").rstrip("/").rsplit("/", 1)[-1]
    return name[:-4] if name.endswith(".git") else name
