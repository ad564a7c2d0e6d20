"""Announcements end to end: deploy.yml / revert.yml run by the real ansible-playbook
against the sshd test hosts post one message per rollout to a local HTTP sink, mail
it through a local SMTP sink (community.general.mail), pass it to the log hooks, and
never fail a rollout or show a secret when a channel is down."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apprepo import AppRepo  # noqa: E402
from hosts import collections_path  # noqa: E402
from sinks import HttpSink, SmtpSink, closed_port, community_general  # noqa: E402

PROD = ["prod1", "prod2", "prod3"]
TOKEN = "T0KEN-4f9c2e1b7a"  # the secret part of the webhook URL
PASSWORD = "s3cret-smtp-pw-81d2"
# A log hook: appends "<announce>|<level>|<message>" to <root>/announce.log.
LOG_HOOK = """#!/bin/sh
echo "$GIT_DEPLOY_LOG_ANNOUNCE|$GIT_DEPLOY_LOG_LEVEL|$GIT_DEPLOY_LOG_MESSAGE" >> "$GIT_DEPLOY_ROOT/announce.log"
"""


@pytest.fixture
def app(tmp_path) -> AppRepo:
    repo = AppRepo.create(tmp_path / "src")
    repo.write("deploy/apps/common/log.010_announce", LOG_HOOK, mode=0o755)
    repo.commit("log hook", push=True)
    return repo


def run(deployment, app, playbook, *args, check=True, environ=None, **extra_vars):
    return deployment.playbook(f"gitdeploy.rollout.{playbook}", *args, extra_vars=extra_vars or None,
                               check=check, cwd=app.path, SYNC_LOG=str(app.path.parent / "sync.log"),
                               **(environ or {}))


def prod_tags(app) -> list:
    return sorted(t for t in app.upstream_tags() if t.startswith("prod-") and not t.endswith("_reverted"))


def assert_no_secret(proc, *secrets):
    out = proc.stdout + proc.stderr
    for secret in secrets:
        assert secret not in out, f"secret {secret!r} shown in the output"


def announced(deployment, host) -> list:
    path = deployment.root(host) / "announce.log"
    return path.read_text().splitlines() if path.exists() else []


def test_deploys_and_a_revert_are_announced_once_each(deployment, app):
    with HttpSink() as sink:
        url = sink.url(f"/hooks/{TOKEN}")
        hook = {"git_deploy_announce_webhook_url": url, "git_deploy_support_email": "ops@example.com",
                "git_deploy_announce_webhook_fields": {"channel": "#deploys"}}

        # 1. The first rollout; mail is configured but community.general is not installed here.
        first = run(deployment, app, "deploy", env="prod", git_deploy_announce_mail="team@example.com", **hook)
        [tag1] = prod_tags(app)
        [post] = sink.drain()
        assert post.path == f"/hooks/{TOKEN}"
        assert post.headers["Content-Type"].startswith("application/json")
        body = post.json
        fields = body["gitdeploy"]
        assert body["channel"] == "#deploys"
        assert (fields["event"], fields["env"], fields["result"], fields["tag"], fields["previous_tag"]) == (
            "deploy", "prod", "success", tag1, None)
        assert fields["hosts"] == PROD and fields["failed_hosts"] == [] and fields["failure"] is None
        assert fields["commit"] == app.head() and fields["project"] == "app"
        assert "support:" not in body["text"]  # the support contact is shown for failures only
        assert [c["subject"] for c in fields["changes"]["commits"]] == ["log hook", "version 1"]
        assert body["text"].startswith(f"[app] prod: {fields['user']} deployed {tag1}\n")
        assert "(none: first rollout)" in body["text"]
        assert "community.general.mail is not installed" in first.stdout + first.stderr
        assert "announcement by mail to team@example.com not sent" in first.stdout + first.stderr

        # 2. A change: two commits, one file changed, one added.
        app.change("app.txt", "version 2\n", "version 2")
        app.change("notes.txt", "one\ntwo\nthree\n", "add notes")
        second = run(deployment, app, "deploy", env="prod", **hook)
        [tag2] = [t for t in prod_tags(app) if t != tag1]
        [post] = sink.drain()
        fields = post.json["gitdeploy"]
        assert (fields["event"], fields["tag"], fields["previous_tag"], fields["result"]) == (
            "deploy", tag2, tag1, "success")
        changes = fields["changes"]
        assert [c["subject"] for c in changes["commits"]] == ["add notes", "version 2"]
        assert changes["commits"][0]["author"] == "Test Developer"
        assert [(f["path"], f["status"], f["insertions"], f["deletions"]) for f in changes["files"]] == [
            ("app.txt", "modified", 1, 1), ("notes.txt", "added", 3, 0)]
        assert (changes["files_total"], changes["insertions"], changes["deletions"]) == (2, 4, 1)
        text = post.json["text"]
        assert f"changes {tag1}..{tag2}: 2 commits, 2 files changed, 4 insertions(+), 1 deletion(-)" in text
        assert f"{app.head()[:12]} add notes (Test Developer)" in text
        assert "app.txt   | 2 +-" in text and "notes.txt | 3 +++" in text
        assert "hosts (3):    prod1, prod2, prod3" in text

        # 3. Revert to the first rollout: the commits taken back out.
        third = run(deployment, app, "revert", env="prod", **hook)
        [post] = sink.drain()
        fields = post.json["gitdeploy"]
        assert (fields["event"], fields["action"], fields["tag"], fields["previous_tag"], fields["result"]) == (
            "revert", "revert", tag1, tag2, "success")
        assert [c["subject"] for c in fields["changes"]["removed"]] == ["add notes", "version 2"]
        assert fields["changes"]["commits"] == []
        assert f"reverted to {tag1} (from {tag2})" in post.json["text"]

    for proc in (first, second, third):
        assert_no_secret(proc, TOKEN)
    # The log hooks of every host got each announcement, flagged for announcing.
    for host in PROD:
        lines = announced(deployment, host)
        assert [line.split("|")[:2] for line in lines] == [["1", "notice"]] * 3
        assert lines[1].endswith(f"deployed {tag2}") and f"reverted to {tag1}" in lines[2]


def test_failures_are_announced_with_where_and_whom_to_contact(deployment, app):
    with HttpSink() as sink:
        hook = {"git_deploy_announce_webhook_url": sink.url(f"/hooks/{TOKEN}"),
                "git_deploy_support_email": "ops@example.com",
                "git_deploy_announce_on": ["rollback", "failure"]}
        run(deployment, app, "deploy", env="prod", **hook)
        assert sink.drain() == []  # a deploy that worked is not announced with this setting
        [tag1] = prod_tags(app)

        app.change("app.txt", "version 2\n", "version 2")
        (deployment.root("prod3") / "fail-post-sync").touch()
        proc = run(deployment, app, "deploy", env="prod", check=False, **hook)
        assert proc.returncode != 0
        [tag2] = [t for t in prod_tags(app) if t != tag1]
        [post] = sink.drain()
    fields = post.json["gitdeploy"]
    assert (fields["event"], fields["result"], fields["tag"], fields["previous_tag"]) == (
        "rollback", "rolled_back", tag2, tag1)
    assert fields["failed_hosts"] == ["prod3"]
    assert fields["failure"]["host"] == "prod3" and fields["failure"]["phase"] == "post-sync"
    assert fields["failure"]["hook"].endswith("post-sync.010_record")
    assert "planted failure of post-sync" in fields["failure"]["msg"]
    assert fields["support_email"] == "ops@example.com"
    text = post.json["text"]
    assert text.startswith(f"[app] prod: deploy of {tag2} by ")
    assert f"FAILED, rolled back to {tag1}" in text.splitlines()[0]
    assert "support:      ops@example.com" in text and "failed hosts: prod3" in text
    assert_no_secret(proc, TOKEN)
    for host in PROD:
        assert [line.split("|")[:2] for line in announced(deployment, host)] == [["1", "warning"]]


def test_mail_goes_out_and_a_dead_webhook_is_only_a_warning(deployment, app):
    collections = f"{collections_path()}:{community_general()}"
    with SmtpSink() as smtp:
        proc = run(
            deployment, app, "deploy", env="prod",
            environ={"ANSIBLE_COLLECTIONS_PATH": collections},
            git_deploy_announce_webhook_url=f"http://127.0.0.1:{closed_port()}/hooks/{TOKEN}",
            git_deploy_announce_mail=["team@example.com", "ops@example.com"],
            git_deploy_announce_mail_from="deploy@example.com",
            git_deploy_smtp_host="127.0.0.1", git_deploy_smtp_port=smtp.port, git_deploy_smtp_tls="none",
            git_deploy_smtp_user="deployer", git_deploy_smtp_password=PASSWORD)
        [mail] = smtp.drain()
    [tag1] = prod_tags(app)
    assert proc.returncode == 0
    out = proc.stdout + proc.stderr
    assert "announcement by webhook not sent" in out and "Connection refused" in out
    assert "failed=0" in out and "unreachable=0" in out
    assert_no_secret(proc, TOKEN, PASSWORD)
    assert mail.sender == "deploy@example.com"
    assert sorted(mail.recipients) == ["ops@example.com", "team@example.com"]
    assert mail.logins and mail.logins[-1][1:] == ("deployer", PASSWORD)  # the password did reach the server
    assert mail.subject.startswith("[app] prod: ") and mail.subject.endswith(f"deployed {tag1}")
    assert mail.message["X-Git-Deploy-Event"] == "deploy" and mail.message["X-Git-Deploy-Tag"] == tag1
    body = mail.body
    assert "result:       success" in body and "previous tag: (none: first rollout)" in body
    assert "```" not in body  # plain text for mail; code blocks are for chat
    for host in PROD:
        assert len(announced(deployment, host)) == 1


def changes_module(deployment, **args) -> dict:
    proc = deployment.ansible("localhost", "-m", "gitdeploy.rollout.git_deploy_announce", "-a", json.dumps(args))
    return json.loads(proc.stdout.split(" => ", 1)[1])


def test_what_changed_between_two_refs_capped(deployment, tmp_path):
    """The module on its own (ansible ad-hoc on the controller): caps, totals, renames, binaries."""
    repo = AppRepo.create(tmp_path / "src", hooks=False)
    base = repo.head()
    for i in range(5):
        repo.write(f"file{i}.txt", "".join(f"line {n}\n" for n in range(i + 1)))
        repo.commit(f"change {i}")
    repo.git("mv", "app.txt", "renamed.txt")
    repo.write("logo.bin", "PNG\0\1\2")
    repo.commit("rename and binary")
    args = {"repo": str(repo.path), "from_ref": base, "to_ref": "HEAD", "max_commits": 2}
    result = changes_module(deployment, max_files=3, **args)
    changes = result["changes"]
    assert [c["subject"] for c in changes["commits"]] == ["rename and binary", "change 4"]
    assert changes["commits_total"] == 6 and changes["removed_total"] == 0
    assert changes["files_total"] == 7 and len(changes["files"]) == 3 and changes["truncated"]
    assert changes["insertions"] == 1 + 2 + 3 + 4 + 5 and changes["deletions"] == 0
    assert changes["shortlog"][-1] == "... and 4 more commits"
    assert changes["diffstat"][-1] == "... and 4 more files"
    assert result["msg"].endswith("6 commits, 7 files changed, 15 insertions(+), 0 deletions(-)")

    files = {f["path"]: f for f in changes_module(deployment, max_files=10, **args)["changes"]["files"]}
    assert files["renamed.txt"]["status"] == "renamed" and files["renamed.txt"]["old_path"] == "app.txt"
    assert files["logo.bin"]["binary"] and files["logo.bin"]["insertions"] is None


def test_report_warns_without_showing_secrets(deployment):
    url = f"https://chat.example.com/hooks/{TOKEN}?key=K3y-{TOKEN}"
    args = {"report": [{"channel": "webhook", "sent": False, "msg": f"HTTP Error 404 for {url} (path /hooks/{TOKEN})"},
                       {"channel": "mail to ops@example.com", "sent": True},
                       {"channel": "log hooks on web1", "sent": False, "msg": f"login with {PASSWORD} refused"}],
            "secrets": [url, PASSWORD, ""]}
    proc = deployment.ansible("localhost", "-m", "gitdeploy.rollout.git_deploy_announce", "-a", json.dumps(args))
    out = proc.stdout + proc.stderr
    assert_no_secret(proc, TOKEN, PASSWORD)
    assert "announcement by webhook not sent: HTTP Error 404 for ********" in out
    assert "announcement by log hooks on web1 not sent: login with ******** refused" in out
    result = json.loads(proc.stdout.split(" => ", 1)[1])
    assert result["undelivered"] == ["webhook", "log hooks on web1"] and result["changed"] is False


def test_line_counts():
    from ansible_collections.gitdeploy.rollout.plugins.module_utils import changes as module

    assert module.count_lines(b"a\nb\n", b"a\nb\n") == (0, 0)
    assert module.count_lines(b"", b"1\n2\n3\n") == (3, 0)
    assert module.count_lines(b"1\n2\n3\n", b"") == (0, 3)
    assert module.count_lines(b"a\nb\nc\n", b"a\nB\nc\nd\n") == (2, 1)
    assert module.count_lines(b"no newline", b"no newline\n") == (0, 0)


def test_check_mode_takes_no_lock_cuts_no_tag_and_announces_nothing(deployment, app):
    for version in (2, 3):   # two rollouts, so that there is one to revert to
        run(deployment, app, "deploy", env="prod")
        app.change("app.txt", f"version {version}\n", f"version {version}")
    tags = app.upstream_tags()
    with HttpSink() as sink:
        hook = {"git_deploy_announce_webhook_url": sink.url(f"/hooks/{TOKEN}"),
                "git_deploy_announce_on": ["deploy", "revert", "rollback", "failure"]}
        for playbook, extra in (("deploy", {"env": "prod"}), ("revert", {"env": "prod"})):
            proc = run(deployment, app, playbook, "--check", **extra, **hook)
            assert proc.returncode == 0, proc.stdout[-2000:]
        assert sink.drain() == []
    assert app.upstream_tags() == tags
    for host in PROD:
        assert len(announced(deployment, host)) == 2   # the real deploys', before
        assert not (deployment.root(host) / ".git-deploy" / "lock").exists()
