import http.server
import socket
import sys
import threading

import pytest

from ansible_collections.gitdeploy.rollout.plugins.module_utils import checks


@pytest.fixture
def server():
    """A real HTTP server on loopback: /ok says "healthy", /down answers 503, /late starts
    answering 200 on the third request."""
    hits = {"late": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/late":
                hits["late"] += 1
            code = {"/ok": 200, "/down": 503}.get(self.path, 200 if hits["late"] >= 3 else 503)
            body = b"healthy" if code == 200 else b"sick"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1], hits
    httpd.shutdown()
    httpd.server_close()


def no_sleep(_seconds):
    pass


def one(**check):
    return checks.normalize([dict({"name": "c"}, **check)])[0]


def test_normalize_fills_the_defaults():
    found = checks.normalize([{"name": "web", "url": "http://127.0.0.1:8080/health"},
                              {"name": "db", "port": 5432},
                              {"name": "smoke", "command": ["bin/smoke", 1], "retries": 3, "delay": 0.5}])
    assert found[0] == {"name": "web", "kind": "url", "url": "http://127.0.0.1:8080/health", "status": [200],
                        "contains": None, "retries": 0, "delay": 1.0, "timeout": 10.0}
    assert (found[1]["host"], found[1]["port"], found[1]["timeout"]) == ("127.0.0.1", 5432, 5.0)
    assert (found[2]["command"], found[2]["retries"], found[2]["delay"], found[2]["timeout"]) == (
        ["bin/smoke", "1"], 3, 0.5, 30.0)
    assert checks.normalize(None) == [] and checks.normalize([]) == []


@pytest.mark.parametrize("bad, message", [
    ("curl x", "must be a list"),
    ([["x"]], "must be a dict"),
    ([{"url": "http://x"}], "needs a name"),
    ([{"name": "a", "port": 1}, {"name": "a", "port": 2}], "named twice"),
    ([{"name": "a"}], "exactly one of command, url, port .got none"),
    ([{"name": "a", "port": 1, "url": "http://x"}], "exactly one"),
    ([{"name": "a", "command": "curl -f http://x"}], "without a shell"),
    ([{"name": "a", "command": []}], "non-empty list"),
    ([{"name": "a", "url": "ftp://x"}], "http:// or https://"),
    ([{"name": "a", "url": "http://x", "status": "ok"}], "status must be"),
    ([{"name": "a", "url": "http://x", "host": "y"}], "unknown field.* host"),
    ([{"name": "a", "port": 70000}], "1 to 65535"),
    ([{"name": "a", "port": True}], "1 to 65535"),
    ([{"name": "a", "port": 1, "retries": -1}], "retries must be 0 or more"),
    ([{"name": "a", "port": 1, "delay": "soon"}], "delay must be a number"),
    ([{"name": "a", "port": 1, "timeout": 0}], "timeout must be"),
])
def test_normalize_refuses_what_cannot_run(bad, message):
    with pytest.raises(ValueError, match=message):
        checks.normalize(bad)


def test_url_status_and_contains(server):
    base, _hits = server
    ok = checks.run_one(one(url=base + "/ok", contains="healthy"), sleep=no_sleep)
    assert (ok["ok"], ok["tries"], ok["kind"]) == (True, 1, "url")
    down = checks.run_one(one(url=base + "/down"), sleep=no_sleep)
    assert not down["ok"] and "HTTP 503" in down["msg"] and "expected 200" in down["msg"]
    assert checks.run_one(one(url=base + "/down", status=[200, 503]), sleep=no_sleep)["ok"]
    body = checks.run_one(one(url=base + "/ok", contains="ready"), sleep=no_sleep)
    assert not body["ok"] and "does not contain 'ready'" in body["msg"]


def test_retries_until_the_check_passes(server):
    base, hits = server
    slept = []
    found = checks.run_one(one(url=base + "/late", retries=4, delay=0.25), sleep=slept.append)
    assert (found["ok"], found["tries"], hits["late"]) == (True, 3, 3)
    assert slept == [0.25, 0.25]


def test_retries_run_out():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    slept = []
    found = checks.run_one(one(port=port, retries=2), sleep=slept.append)
    assert (found["ok"], found["tries"], len(slept)) == (False, 3, 2)
    assert "cannot connect to 127.0.0.1:%d" % port in found["msg"]


def test_port_that_listens():
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(1)
    try:
        found = checks.run_one(one(port=listening.getsockname()[1]), sleep=no_sleep)
    finally:
        listening.close()
    assert found["ok"] and "accepts connections" in found["msg"]


def test_command_runs_without_a_shell_in_the_release(tmp_path):
    (tmp_path / "ready").write_text("yes\n")
    ok = checks.run_one(one(command=[sys.executable, "-c", "import os; assert os.path.exists('ready')"]),
                        cwd=str(tmp_path), sleep=no_sleep)
    assert ok["ok"]
    # A shell would expand $HOME and run the second command; argv passes both as they are.
    echo = checks.run_one(one(command=[sys.executable, "-c", "import sys; print(sys.argv[1:]); sys.exit(2)",
                                       "$HOME; false"]), sleep=no_sleep)
    assert not echo["ok"] and "exited 2" in echo["msg"] and "['$HOME; false']" in echo["msg"]
    missing = checks.run_one(one(command=["/nonexistent/check"]), sleep=no_sleep)
    assert not missing["ok"] and "cannot run /nonexistent/check" in missing["msg"]


def test_command_timeout():
    found = checks.run_one(one(command=[sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.3),
                           sleep=no_sleep)
    assert not found["ok"] and "did not finish within 0.3 s" in found["msg"]


def test_run_stops_at_the_first_failure_and_summarises():
    calls = []

    def fake(check, cwd):
        calls.append(check["name"])
        return check["name"] != "b", "said " + check["name"]

    listed = checks.normalize([{"name": n, "port": 1} for n in ("a", "b", "c")])
    results = checks.run(listed, tries={"port": fake})
    assert calls == ["a", "b"] and [r["ok"] for r in results] == [True, False]
    assert checks.first_failed(results)["name"] == "b"
    assert checks.describe(results[1]).startswith("check b FAILED (1 try, ")
