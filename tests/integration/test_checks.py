"""git_deploy_checks and git_deploy_canary_wait through deploy.yml / revert.yml: real
checks (url, port, command) on real sshd hosts against a real HTTP server on loopback."""

from __future__ import annotations

import http.server
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apprepo import AppRepo  # noqa: E402
from test_rollout import PROD, history, live, prod_tags, run  # noqa: E402


class Health:
    """An HTTP server on 127.0.0.1: GET /<host> answers 200 "healthy", or 503 while the host
    is in ``sick``; ``sick_after[host] = n`` makes it sick from its (n+1)-th request on;
    ``well_after[host] = n`` makes it answer 503 to its first n requests."""

    def __init__(self):
        self.hits: dict[str, int] = {}
        self.sick: set[str] = set()
        self.sick_after: dict[str, int] = {}
        self.well_after: dict[str, int] = {}
        health = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = self.path.strip("/")
                count = health.hits[host] = health.hits.get(host, 0) + 1
                sick = (host in health.sick or count > health.sick_after.get(host, count)
                        or count <= health.well_after.get(host, 0))
                body = b"sick" if sick else b"healthy"
                self.send_response(503 if sick else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def checks(self, **url_extra) -> list:
        return [
            dict({"name": "web", "url": f"http://127.0.0.1:{self.port}/{{{{ inventory_hostname }}}}",
                  "contains": "healthy", "timeout": 5}, **url_extra),
            {"name": "listening", "port": self.port, "retries": 1, "delay": 0.1},
            {"name": "files", "command": ["test", "-f", "app.txt"]},
        ]


@pytest.fixture
def health():
    server = Health()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def app(tmp_path) -> AppRepo:
    return AppRepo.create(tmp_path / "src")


def test_checks_pass_then_one_failing_host_rolls_every_host_back(deployment, app, health):
    proc = run(deployment, app, "deploy", env="prod", git_deploy_checks=health.checks())
    [tag1] = prod_tags(app)
    assert "checks 3/3 ok" in proc.stdout
    for host in PROD:
        record = history(deployment, host)[-1]
        assert record["result"] == "success"
        assert [(c["name"], c["ok"], c["tries"]) for c in record["checks"]] == [
            ("web", True, 1), ("listening", True, 1), ("files", True, 1)]
        log = (deployment.root(host) / "logs" / "git-deploy.log").read_text()
        assert "check web passed (1 try" in log and f"HTTP 200 from http://127.0.0.1:{health.port}/{host}" in log
    assert health.hits == {h: 1 for h in PROD}  # {{ inventory_hostname }} templated per host

    # prod2 answers 503 to every try: the check fails there, every host goes back to tag1.
    app.change("app.txt", "version 2\n", "version 2")
    health.sick.add("prod2")
    proc = run(deployment, app, "deploy", env="prod", check=False, git_deploy_checks=health.checks(retries=2, delay=0.1))
    assert proc.returncode != 0
    summary = " ".join(proc.stdout.split())
    assert "first failure on prod2 in phase check (check web): check web failed on prod2: HTTP 503" in summary
    assert health.hits["prod2"] == 1 + 3  # one try, then two retries
    for host in PROD:
        assert live(deployment, host) == tag1, host
        assert (deployment.root(host) / "current" / "app.txt").read_text() == "version 1\n"
        record = history(deployment, host)[-1]
        assert (record["result"], record["failed_host"], record["failed_phase"], record["failed_hook"]) == (
            "rolled_back", "prod2", "check", "web")
    assert [c["ok"] for c in history(deployment, "prod2")[-1]["checks"]] == [False]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("prod2 ") and " failed " in line]
    assert rows and rows[-1].rstrip().endswith("FAILED web"), rows


def test_a_check_passes_after_retries(deployment, app, health):
    for host in PROD:
        health.well_after[host] = 2
    run(deployment, app, "deploy", env="prod", git_deploy_checks=health.checks(retries=3, delay=0.1)[:1])
    for host in PROD:
        [check] = history(deployment, host)[-1]["checks"]
        assert (check["name"], check["ok"], check["tries"]) == ("web", True, 3)


def test_checks_that_cannot_run_are_refused_before_anything_changes(deployment, app):
    proc = run(deployment, app, "deploy", env="prod", check=False,
               git_deploy_checks=[{"name": "web", "command": "curl -f http://127.0.0.1/"}])
    assert proc.returncode != 0
    assert "check web: command must be a non-empty list of arguments (it runs without a shell)" in proc.stdout
    assert prod_tags(app) == []
    for host in PROD:
        assert not deployment.root(host).exists() or not (deployment.root(host) / "current").exists()


def test_the_canary_waits_and_is_checked_again_before_the_next_batch(deployment, app, health):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    # prod1, the canary, passes its check after the switch and fails it after the wait.
    health.sick_after["prod1"] = 1
    proc = run(deployment, app, "deploy", env="prod", check=False, git_deploy_serial=[1, "100%"],
               git_deploy_canary_wait=1, git_deploy_checks=health.checks()[:1])
    assert proc.returncode != 0
    assert "holding the canary (prod1) 1 s before batch 2 switches" in proc.stdout
    summary = " ".join(proc.stdout.split())
    assert "first failure on prod1 in phase check (check web)" in summary
    assert health.hits == {"prod1": 2}  # checked after its switch and after the wait; the others never switched
    for host in PROD:
        assert live(deployment, host) == tag1, host

    # A healthy canary: the next batch switches after the wait.
    health.sick_after.clear()
    health.hits.clear()
    run(deployment, app, "deploy", env="prod", git_deploy_serial=[1, "100%"], git_deploy_canary_wait=1,
        git_deploy_checks=health.checks()[:1])
    assert health.hits == {"prod1": 2, "prod2": 1, "prod3": 1}
    [tag3] = [t for t in prod_tags(app) if t not in (tag1,) and live(deployment, "prod1") == t]
    assert {live(deployment, h) for h in PROD} == {tag3}


def test_a_revert_reports_a_failing_check_and_stands(deployment, app, health):
    run(deployment, app, "deploy", env="prod")
    [tag1] = prod_tags(app)
    app.change("app.txt", "version 2\n", "version 2")
    run(deployment, app, "deploy", env="prod")
    health.sick.add("prod3")
    proc = run(deployment, app, "revert", env="prod", git_deploy_checks=health.checks()[:1])
    warned = " ".join(proc.stderr.split())
    assert "check web failed on prod3: HTTP 503" in warned and "the revert stands" in warned
    rows = [line for line in proc.stdout.splitlines() if line.startswith("prod3 ") and f" {tag1} " in line]
    assert rows and rows[-1].rstrip().endswith("FAILED web"), rows
    for host in PROD:
        assert live(deployment, host) == tag1, host
        record = history(deployment, host)[-1]
        assert (record["action"], record["result"]) == ("revert", "success")
        assert [c["ok"] for c in record["checks"]] == [host != "prod3"]
