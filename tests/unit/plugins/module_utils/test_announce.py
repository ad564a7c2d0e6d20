"""Announcements (pure logic): events, the subject, the text, the payload, and every cap."""

from __future__ import annotations

import datetime
import json
import sys

import pytest

try:
    from ansible_collections.gitdeploy.rollout.plugins.module_utils import announce
except ImportError:  # plain pytest: put this checkout on the collections path
    from hosts import collections_path

    sys.path.insert(0, str(collections_path()))
    from ansible_collections.gitdeploy.rollout.plugins.module_utils import announce

TAG1, TAG2 = "prod-20261120-170000", "prod-20261121-101500"
COMMIT = "7e25a770901c9b1eb75ad1511580a98acff4ad60"


def facts(**changes):
    base = dict(env="prod", action="deploy", result="success", tag=TAG2, previous_tag=TAG1, commit=COMMIT,
                user="alice", controller="ctl.example.com", start="2026-11-21T10:15:00Z",
                end="2026-11-21T10:16:05Z", hosts=["web1", "web2"], failed_hosts=[], failure={},
                support_email="ops@example.com", deploy_id="42", project="shop")
    base.update(changes)
    return base


def commits(count, prefix="change"):
    return [{"id": "%040x" % (i + 1), "subject": "%s %d" % (prefix, i), "author": "Dev %d" % i}
            for i in range(count)]


def changes(n_commits=2, n_files=2, **extra):
    files = [{"path": "src/file%03d.py" % i, "status": "modified", "insertions": i + 1, "deletions": 1,
              "binary": False} for i in range(n_files)]
    result = {"from_ref": TAG1, "to_ref": COMMIT, "commits": commits(n_commits), "commits_total": n_commits,
              "removed": [], "removed_total": 0, "files": files, "files_total": n_files,
              "insertions": sum(f["insertions"] for f in files), "deletions": n_files}
    result.update(extra)
    return result


# -- events and the subject ---------------------------------------------------------

@pytest.mark.parametrize("action, result, event", [
    ("deploy", "success", "deploy"),
    ("revert", "success", "revert"),
    ("deploy", "rolled_back", "rollback"),
    ("revert", "rolled_back", "rollback"),
    ("deploy", "failed", "failure"),
    ("revert", "failed", "failure"),
])
def test_event_of_each_outcome(action, result, event):
    assert announce.event_of(action, result) == event
    assert event in announce.EVENTS


def test_subjects_say_who_did_what_where():
    assert announce.subject(facts()) == "[shop] prod: alice deployed %s" % TAG2
    assert announce.subject(facts(action="revert", tag=TAG1, previous_tag=TAG2)) == (
        "[shop] prod: alice reverted to %s (from %s)" % (TAG1, TAG2))
    assert announce.subject(facts(result="rolled_back")) == (
        "[shop] prod: deploy of %s by alice FAILED, rolled back to %s" % (TAG2, TAG1))
    assert announce.subject(facts(result="failed", project="")) == "prod: deploy of %s by alice FAILED" % TAG2
    assert announce.subject(facts(result="rolled_back", previous_tag=None)).endswith(
        "FAILED, switched hosts rolled back")


def test_subject_is_one_clipped_line_whatever_the_input():
    line = announce.subject(facts(user="eve\nX-Injected: 1", project="p" * 500))
    assert "\n" not in line and "eve X-Injected: 1" in line
    assert len(line) < 400


# -- the text ---------------------------------------------------------------------

def test_success_text_has_every_field_and_the_changes():
    result = announce.compose(facts(), changes())
    text = result["text"]
    assert result["event"] == "deploy" and result["subject"] == text.splitlines()[0]
    for line in ("env:          prod", "result:       success",
                 "tag:          %s (commit %s)" % (TAG2, COMMIT[:12]), "previous tag: %s" % TAG1,
                 "by:           alice from ctl.example.com", "started:      2026-11-21T10:15:00Z",
                 "duration:     1m 05s", "hosts (2):    web1, web2", "rollout id:   42"):
        assert line in text.splitlines(), line
    assert "changes %s..%s: 2 commits, 2 files changed, 3 insertions(+), 2 deletions(-)" % (TAG1, TAG2) in text
    assert "  %s change 0 (Dev 0)" % ("%040x" % 1)[:12] in text
    assert "  src/file000.py | 2 +-" in text and "  src/file001.py | 3 ++-" in text
    # Failure details and the support contact are for failures only.
    assert "support:" not in text and "failure:" not in text and "failed hosts:" not in text
    assert "```" not in text


def test_failure_text_says_where_it_failed_and_whom_to_contact():
    failure = {"host": "web2", "phase": "post-sync", "hook": "/srv/app/deploy/apps/prod/post-sync.020_check",
               "msg": "hook exited 3\nstderr: boom"}
    text = announce.compose(facts(result="rolled_back", failed_hosts=["web2"], failure=failure), changes())["text"]
    lines = text.splitlines()
    assert "result:       FAILED, rolled back" in lines
    assert "failure:      web2, phase post-sync, hook /srv/app/deploy/apps/prod/post-sync.020_check" in lines
    assert "failed hosts: web2" in lines and "support:      ops@example.com" in lines
    assert "error: hook exited 3\n  stderr: boom" in text


def test_first_rollout_and_unknown_changes():
    text = announce.compose(facts(previous_tag=None), None)["text"]
    assert "previous tag: (none: first rollout)" in text
    assert "changes: unknown" in text


def test_revert_lists_the_commits_taken_out():
    taken_out = changes(n_commits=0, removed=commits(3, "bad"), removed_total=3)
    text = announce.compose(facts(action="revert", tag=TAG1, previous_tag=TAG2), taken_out)["text"]
    assert "0 commits" not in text and "3 commits taken out" in text
    assert "commits taken back out:" in text and "bad 2 (Dev 2)" in text
    assert "commits (newest first):" not in text


def test_free_message_is_shown_unless_it_is_the_default():
    deploy_file = "commit: %s\ntag: %s\n\n%s\n"
    custom = announce.compose(facts(deploy_file=deploy_file % (COMMIT, TAG2, "fix login (JIRA-1)")))["text"]
    assert "message:      fix login (JIRA-1)" in custom
    default = "rollout of %s to prod by alice" % TAG2
    assert "message:" not in announce.compose(facts(deploy_file=deploy_file % (COMMIT, TAG2, default)))["text"]


def test_chat_text_puts_lists_in_code_blocks():
    result = announce.compose(facts(), changes())
    chat = result["chat_text"]
    assert chat.count("```") == 4
    assert result["payload"]["text"] == chat


# -- caps -------------------------------------------------------------------------

def test_commits_and_files_are_capped_and_the_totals_kept():
    many = changes(n_commits=120, n_files=300)
    result = announce.compose(facts(), many, max_commits=50, max_files=100, max_chars=10 ** 6)
    text = result["text"]
    assert "... and 70 more commits" in text and "... and 200 more files" in text
    assert "120 commits, 300 files changed" in text
    structured = result["payload"]["gitdeploy"]["changes"]
    assert len(structured["commits"]) == 50 and structured["commits_total"] == 120
    assert len(structured["files"]) == 100 and structured["files_total"] == 300
    assert structured["truncated"] is True


def test_text_is_cut_at_a_line_and_open_code_blocks_closed():
    result = announce.compose(facts(), changes(n_commits=50, n_files=100), max_chars=1500)
    for key in ("text", "chat_text"):
        text = result[key]
        assert len(text) <= 1500
        assert text.endswith("[... announcement cut at 1500 characters]")
        assert text.count("```") % 2 == 0
    assert result["text"].startswith(result["subject"] + "\n")


def test_long_values_are_clipped():
    huge = "x" * 5000
    failure = {"host": "web1", "phase": "sync", "hook": "", "msg": huge}
    many_hosts = ["web%03d" % i for i in range(80)]
    result = announce.compose(facts(result="failed", failure=failure, hosts=many_hosts,
                                    failed_hosts=many_hosts), changes(commits=[{"id": "1" * 40, "subject": huge}]))
    structured = result["payload"]["gitdeploy"]
    assert len(structured["failure"]["msg"]) == announce.MAX_MESSAGE
    assert structured["changes"]["commits"][0]["subject"].endswith(announce.ELLIPSIS)
    assert len(structured["changes"]["commits"][0]["subject"]) == announce.MAX_LINE
    assert "... and 30 more" in result["text"]
    assert structured["hosts"] == many_hosts  # the structured list is complete


def test_clip_and_cap_helpers():
    assert announce.clip("a\tb\x00c\n") == "a b c"
    assert announce.clip("abcdef", 5) == "ab..."
    assert announce.clip(None) == ""
    assert announce.cap_text("short", 100) == "short"
    assert announce.cap_text("line one\nline two\nline three\n" * 20, 0).startswith("line one")


# -- time ---------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, text", [(None, "?"), (0, "0s"), (42, "42s"), (185, "3m 05s"),
                                           (3723, "1h 02m 03s")])
def test_format_duration(seconds, text):
    assert announce.format_duration(seconds) == text


def test_duration_from_iso_times_and_now():
    assert announce.duration_seconds("2026-11-21T10:15:00Z", "2026-11-21T10:16:05Z") == 65
    assert announce.duration_seconds("garbage", "2026-11-21T10:16:05Z") is None
    assert announce.duration_seconds("2026-11-21T10:16:05Z", "2026-11-21T10:15:00Z") == 0
    now = datetime.datetime(2026, 11, 21, 10, 20, 0, tzinfo=datetime.timezone.utc)
    result = announce.compose(facts(end=None), now=now)
    assert result["payload"]["gitdeploy"]["duration"] == 300
    assert result["payload"]["gitdeploy"]["end"] == "2026-11-21T10:20:00Z"


# -- the payload ------------------------------------------------------------------

def test_payload_is_json_with_structured_fields():
    result = announce.compose(facts(result="failed", failed_hosts=["web1"],
                                    failure={"host": "web1", "phase": "pre-sync", "hook": None, "msg": "no"}),
                              changes())
    payload = json.loads(json.dumps(result["payload"]))
    fields = payload["gitdeploy"]
    assert set(payload) == {"text", "gitdeploy"}
    assert (fields["event"], fields["env"]) == ("failure", "prod")
    assert (fields["action"], fields["result"]) == ("deploy", "failed")
    assert (fields["tag"], fields["previous_tag"], fields["commit"]) == (TAG2, TAG1, COMMIT)
    assert (fields["user"], fields["controller"], fields["duration"]) == ("alice", "ctl.example.com", 65)
    assert fields["hosts"] == ["web1", "web2"] and fields["failed_hosts"] == ["web1"]
    assert fields["failure"] == {"host": "web1", "phase": "pre-sync", "hook": None, "msg": "no"}
    assert fields["support_email"] == "ops@example.com" and fields["project"] == "shop"
    assert fields["changes"]["commits_total"] == 2 and fields["changes"]["truncated"] is False


def test_success_has_no_failure_even_if_one_is_passed():
    result = announce.compose(facts(failure={"host": "web1", "phase": "x", "msg": "stale"}))
    assert result["payload"]["gitdeploy"]["failure"] is None


def test_summary_line_of_binary_and_partial_stats():
    stat = changes(files=[{"path": "logo.png", "binary": True, "insertions": None, "deletions": None}],
                   files_total=1, insertions=0, deletions=0, stat_complete=False)
    assert announce.summary_line(stat).endswith("(line counts partial)")
    assert announce.diffstat_lines(stat["files"], 1, 10) == ["logo.png | Bin"]
    renamed = [{"path": "new.txt", "old_path": "old.txt", "insertions": 0, "deletions": 0}]
    assert announce.diffstat_lines(renamed, 1, 10) == ["old.txt => new.txt | 0"]
    assert announce.summary_line(None) == "changes unknown"
