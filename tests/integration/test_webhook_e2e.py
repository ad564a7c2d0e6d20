"""Deploy on push, end to end: the real ansible-rulebook runs the collection's
``deploy_on_push`` rulebook with the ``git_webhook`` source on loopback; a signed
GitHub push for ``main`` makes it run ``gitdeploy.rollout.deploy`` with ``env=staging``
and the pushed commit, against the real sshd hosts of the ``deployment`` fixture."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from apprepo import IDENTITY, AppRepo
from conftest import BIN, ansible_env

RULEBOOK_BIN = BIN / "ansible-rulebook"
SECRET = "e2e-" + uuid.uuid4().hex
START_DEADLINE = 90.0     # JVM start-up, collection lookup, source start
DEPLOY_DEADLINE = 300.0   # one rollout to one host
FAILED_RECAP = re.compile(r"\b(failed|unreachable)=[1-9]")

pytestmark = pytest.mark.skipif(
    not RULEBOOK_BIN.exists() or not (shutil.which("java") or os.environ.get("JAVA_HOME")),
    reason="ansible-rulebook (and a Java runtime) are needed for the deploy-on-push test",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, size: int = 6000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-size:]


def wait_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ansible-rulebook exited with {proc.returncode} before listening\n{log_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"the webhook listener did not come up on port {port} in {START_DEADLINE}s\n{log_tail(log)}")


def post(port: int, payload: dict, event: str = "push", secret: str = SECRET) -> tuple:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }
    request = urllib.request.Request(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def push_payload(app: AppRepo, branch: str, before: str, after: str) -> dict:
    return {
        "ref": f"refs/heads/{branch}",
        "before": before,
        "after": after,
        "created": False,
        "deleted": False,
        "forced": False,
        "repository": {"full_name": "acme/app", "name": "app", "clone_url": str(app.upstream),
                       "ssh_url": str(app.upstream)},
        "pusher": {"name": "alice", "email": "alice@example.invalid"},
        "sender": {"login": "alice"},
        "commits": [{"id": after, "message": "version 2", "distinct": True}],
        "head_commit": {"id": after, "message": "version 2"},
    }


def deployed_commit(root: Path) -> str | None:
    deploy_file = root / "current" / ".deploy"
    if not deploy_file.is_file():
        return None
    match = re.search(r"^commit: ([0-9a-f]+)$", deploy_file.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def recorded_commit(root: Path) -> str | None:
    """The commit of the newest successful rollout in the host's history: the deploy finished."""
    history = root / ".git-deploy" / "history.jsonl"
    if not history.is_file():
        return None
    records = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    done = [r for r in records if r.get("result") == "success"]
    return done[-1].get("commit") if done else None


def stop(proc: subprocess.Popen) -> None:
    """Terminate ansible-rulebook and everything it started (its own process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def test_signed_push_to_main_deploys_to_staging(deployment, tmp_path):
    app = AppRepo.create(tmp_path / "src", hooks=False)
    # A hosted repository's HEAD names its default branch (`git init --bare` says master).
    subprocess.run(["git", "--git-dir", str(app.upstream), "symbolic-ref", "HEAD", "refs/heads/main"], check=True)
    first = app.head()
    pushed = app.change("app.txt", "version 2\n", "version 2")

    port = free_port()
    workdir = tmp_path / "eda"
    workdir.mkdir()
    variables = workdir / "webhook-vars.yml"
    variables.write_text(json.dumps({
        "webhook_port": port,
        "deploy_repo": "acme/app",
        "deploy_repo_url": str(app.upstream),
        "deploy_branches": {"main": "staging"},
        "deploy_cache_dir": str(workdir / "cache.git"),
        "webhook_replay_file": str(workdir / "seen"),
    }))
    log = workdir / "ansible-rulebook.log"
    env = ansible_env(GITDEPLOY_WEBHOOK_SECRET=SECRET, **IDENTITY)
    cmd = [str(RULEBOOK_BIN), "-r", "gitdeploy.rollout.deploy_on_push", "-i", str(deployment.inventory),
           "--vars", str(variables), "--env-vars", "GITDEPLOY_WEBHOOK_SECRET"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_listening(port, proc, log)

        # Refused and ignored deliveries start nothing.
        assert post(port, push_payload(app, "main", first, pushed), secret="wrong")[0] == 403
        status, answer = post(port, push_payload(app, "feature", first, pushed))
        assert (status, answer["status"]) == (200, "ignored"), answer
        # Names that Ansible would template on the controller are refused, not forwarded.
        forged = push_payload(app, "main", first, pushed)
        forged["ref"] = "refs/tags/v{{ lookup('pipe', 'touch %s') }}" % (workdir / "PWNED")
        status, answer = post(port, forged)
        assert (status, answer["status"]) == (200, "refused"), answer
        forged = push_payload(app, "main", first, pushed)
        forged["repository"]["full_name"] = "acme/app{{ lookup('pipe', 'touch %s') }}" % (workdir / "PWNED")
        status, answer = post(port, forged)
        assert (status, answer["status"]) == (200, "refused"), answer

        status, answer = post(port, push_payload(app, "main", first, pushed))
        assert (status, answer["status"]) == (202, "queued"), answer

        root = deployment.root("staging1")
        deadline = time.monotonic() + DEPLOY_DEADLINE
        # Until the rollout finished (recorded, then unlocked: the finish step records before
        # it releases the lock): stopping ansible-rulebook earlier would leave its
        # ansible-playbook waiting for workers that were killed with it.
        while recorded_commit(root) != pushed or (root / ".git-deploy" / "lock").exists():
            text = log_tail(log, 20000)
            if FAILED_RECAP.search(text) or proc.poll() is not None:
                pytest.fail(f"the deploy run by ansible-rulebook failed\n{log_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"{pushed} was not deployed to staging1 in {DEPLOY_DEADLINE}s\n{log_tail(log)}")
            time.sleep(0.5)

        assert deployed_commit(root) == pushed
        history = [json.loads(line) for line in (root / ".git-deploy" / "history.jsonl").read_text().splitlines()]
        assert history[-1]["user"] == "alice"   # the pusher, from the event
        assert not (root / ".git-deploy" / "lock").exists()
        release = os.readlink(root / "current")
        assert os.path.basename(release).startswith("staging-")
        assert os.path.basename(release) in app.upstream_tags()
        assert (root / "current" / "app.txt").read_text() == "version 2\n"
        for host in deployment.hosts("prod"):
            assert not (deployment.root(host) / "current").exists()
        assert not (workdir / "PWNED").exists()
        # The seen deliveries outlive the listener, readable by its owner only.
        seen = workdir / "seen"
        assert seen.stat().st_mode & 0o777 == 0o600
        assert len(seen.read_text().split()) == 2 * 4   # 4 deliveries signed right: id + body digest
    finally:
        stop(proc)
    assert SECRET not in log.read_text(errors="replace")
