"""The ``gitdeploy.rollout.git_webhook`` event source and the ``deploy_on_push`` rulebook.

The plugin is loaded with ``runpy.run_path``, exactly as ansible-rulebook loads source
plugins. HTTP tests start ``main(queue, args)`` as an asyncio task on 127.0.0.1 (a free
port, polled until it accepts connections) and talk raw HTTP/1.1 to it over asyncio
streams; they await the queue with a timeout instead of sleeping. They need aiohttp
(a dependency of ansible-rulebook) and are skipped without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import json
import logging
import runpy
import socket
import stat
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml

from hosts import collections_path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "extensions" / "eda" / "plugins" / "event_source" / "git_webhook.py"
RULEBOOK = ROOT / "extensions" / "eda" / "rulebooks" / "deploy_on_push.yml"
SRC = runpy.run_path(str(PLUGIN))

SECRET = "unit-secret-" + uuid.uuid4().hex
WRONG = "wrong-secret-" + uuid.uuid4().hex
BEFORE = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
AFTER = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
ZERO = "0" * 40
PROVIDERS = ("github", "gitlab", "gitea", "gogs")
SIGNATURE_HEADER = {"github": "X-Hub-Signature-256", "gitlab": "X-Gitlab-Token",
                    "gitea": "X-Gitea-Signature", "gogs": "X-Gogs-Signature"}
DEADLINE = 10.0

needs_aiohttp = pytest.mark.skipif(SRC["web"] is None, reason="aiohttp (from ansible-rulebook) is not installed")


# -- realistic payloads and headers ---------------------------------------------
def _commits(count, after=AFTER):
    return [{"id": after if i == count - 1 else "%040x" % (i + 1), "message": "change %d" % i,
             "timestamp": "2026-11-21T10:00:00Z", "author": {"name": "Alice", "email": "alice@example.com"},
             "added": [], "removed": [], "modified": ["app.txt"]} for i in range(count)]


def payload(provider, ref="refs/heads/main", before=BEFORE, after=AFTER, commits=2):
    if provider == "gitlab":
        return {
            "object_kind": "tag_push" if ref.startswith("refs/tags/") else "push",
            "event_name": "tag_push" if ref.startswith("refs/tags/") else "push",
            "before": before, "after": after, "ref": ref, "ref_protected": True, "checkout_sha": after,
            "user_id": 4, "user_name": "Alice Example", "user_username": "alice", "user_email": "",
            "project_id": 15,
            "project": {"id": 15, "name": "shop", "namespace": "acme", "path_with_namespace": "acme/shop",
                        "default_branch": "main", "web_url": "https://gitlab.example.com/acme/shop",
                        "git_ssh_url": "git@gitlab.example.com:acme/shop.git",
                        "git_http_url": "https://gitlab.example.com/acme/shop.git"},
            "commits": _commits(commits, after), "total_commits_count": commits,
            "repository": {"name": "shop", "url": "git@gitlab.example.com:acme/shop.git",
                           "git_http_url": "https://gitlab.example.com/acme/shop.git",
                           "git_ssh_url": "git@gitlab.example.com:acme/shop.git"},
        }
    host = {"github": "github.com", "gitea": "gitea.example.com", "gogs": "gogs.example.com"}[provider]
    data = {
        "ref": ref, "before": before, "after": after,
        "compare_url": "https://%s/acme/shop/compare/%s...%s" % (host, before[:10], after[:10]),
        "commits": _commits(commits, after), "head_commit": _commits(commits, after)[-1] if commits else None,
        "repository": {"id": 7, "name": "shop", "full_name": "acme/shop", "private": True,
                       "owner": {"login": "acme", "username": "acme"}, "default_branch": "main",
                       "html_url": "https://%s/acme/shop" % host,
                       "clone_url": "https://%s/acme/shop.git" % host,
                       "ssh_url": "git@%s:acme/shop.git" % host},
        "sender": {"id": 1, "login": "alice", "username": "alice"},
    }
    if provider == "github":
        data.update(created=before == ZERO, deleted=after == ZERO, forced=False, base_ref=None,
                    pusher={"name": "alice", "email": "alice@example.com"})
    elif provider == "gitea":
        data.update(total_commits=commits,
                    pusher={"id": 1, "login": "alice", "full_name": "Alice", "email": "alice@example.com",
                            "username": "alice"})
    else:  # gogs
        data["pusher"] = {"id": 1, "username": "alice", "full_name": "Alice", "email": "alice@example.com"}
    return data


def _mac(secret, body):
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(provider, body, secret=SECRET, event=None, delivery=None):
    """The headers each provider sends with a delivery (Gitea also sends Gogs' and GitHub's)."""
    delivery = delivery or str(uuid.uuid4())
    common = {"Content-Type": "application/json"}
    if provider == "github":
        return dict(common, **{"User-Agent": "GitHub-Hookshot/5f2c1e0", "X-GitHub-Event": event or "push",
                               "X-GitHub-Delivery": delivery, "X-GitHub-Hook-ID": "42",
                               "X-Hub-Signature-256": "sha256=" + _mac(secret, body)})
    if provider == "gitlab":
        return dict(common, **{"User-Agent": "GitLab/17.5.0", "X-Gitlab-Event": event or "Push Hook",
                               "X-Gitlab-Event-UUID": delivery, "Idempotency-Key": "idem-" + delivery,
                               "X-Gitlab-Instance": "https://gitlab.example.com", "X-Gitlab-Token": secret})
    signature = _mac(secret, body)
    gogs = {"X-Gogs-Event": event or "push", "X-Gogs-Delivery": delivery, "X-Gogs-Signature": signature}
    if provider == "gogs":
        return dict(common, **gogs)
    return dict(common, **gogs, **{"X-Gitea-Event": event or "push", "X-Gitea-Event-Type": event or "push",
                                   "X-Gitea-Delivery": delivery, "X-Gitea-Signature": signature,
                                   "X-GitHub-Event": event or "push", "X-GitHub-Delivery": delivery,
                                   "X-Hub-Signature-256": "sha256=" + signature})


def expected(provider, branch="main", tag=None, commits=2, delivery=None):
    host = {"github": "github.com", "gitlab": "gitlab.example.com", "gitea": "gitea.example.com",
            "gogs": "gogs.example.com"}[provider]
    data = {"provider": provider, "repo": "acme/shop", "clone_url": "https://%s/acme/shop.git" % host,
            "ssh_url": "git@%s:acme/shop.git" % host,
            "ref": "refs/tags/%s" % tag if tag else "refs/heads/%s" % branch,
            "before": BEFORE, "after": AFTER, "pusher": "alice", "delivery": delivery, "commits": commits}
    data.update({"tag": tag} if tag else {"branch": branch})
    return {"git_webhook": data}


# -- a listener on a free port and a raw HTTP client -------------------------------
def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Listener:
    def __init__(self, port, queue):
        self.port = port
        self.queue = queue

    async def request(self, body=b"", head=None, path="/webhook", method="POST", chunked=False):
        """One HTTP/1.1 request; returns (status, JSON answer)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % self.port, "Connection: close"]
            lines += ["%s: %s" % item for item in (head or {}).items()]
            if chunked:
                lines.append("Transfer-Encoding: chunked")
                data = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096])
                                for i in range(0, len(body), 4096)) + b"0\r\n\r\n"
            else:
                lines.append("Content-Length: %d" % len(body))
                data = body
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), DEADLINE)
        finally:
            writer.close()
        status_line, _sep, rest = raw.partition(b"\r\n")
        answer = rest.partition(b"\r\n\r\n")[2]
        return int(status_line.split()[1]), json.loads(answer) if answer else None

    async def post(self, provider, data, **kwargs):
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        head = kwargs.pop("head", None) or headers(provider, body, **kwargs)
        return await self.request(body, head)

    async def event(self):
        event = await asyncio.wait_for(self.queue.get(), DEADLINE)
        assert self.queue.empty(), "more than one event for one delivery"
        return event


async def _listening(port, task):
    """Poll until the listener accepts connections; False if the port was taken meanwhile."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if task.done():
            exc = task.exception()
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
                return False
            raise exc or AssertionError("the source returned without listening")
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        return True
    raise AssertionError("the source did not listen on port %d in %ss" % (port, DEADLINE))


REPLAYS = Path(tempfile.mkdtemp(prefix="git-webhook-test-"))


@contextlib.asynccontextmanager
async def serving(**options):
    queue = asyncio.Queue()
    for _attempt in range(5):
        port = free_port()
        # Every provider (a listener accepts GitHub's alone unless told otherwise), and the seen
        # deliveries of this listener in a file of its own.
        args = dict({"port": port, "secret": SECRET, "providers": list(PROVIDERS),
                     "replay_file": str(REPLAYS / ("seen-%s" % uuid.uuid4().hex))}, **options)
        task = asyncio.create_task(SRC["main"](queue, args))
        if await _listening(port, task):
            break
    else:
        raise AssertionError("no free port")
    try:
        yield Listener(port, queue)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run(scenario, **options):
    async def main():
        async with serving(**options) as listener:
            return await scenario(listener)
    return asyncio.run(main())


# -- accepted pushes -------------------------------------------------------------
@needs_aiohttp
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_signed_push_gives_exactly_one_normalised_event(provider):
    async def scenario(listener):
        body = json.dumps(payload(provider, commits=3)).encode()
        status, answer = await listener.post(provider, body, delivery="d-%s-1" % provider)
        assert (status, answer) == (202, {"status": "queued", "delivery": "d-%s-1" % provider})
        assert await listener.event() == expected(provider, commits=3, delivery="d-%s-1" % provider)
    run(scenario)


@needs_aiohttp
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_tag_push_names_the_tag_instead_of_a_branch(provider):
    async def scenario(listener):
        data = payload(provider, ref="refs/tags/v1.2.0", commits=0)
        event = "Tag Push Hook" if provider == "gitlab" else None
        assert (await listener.post(provider, data, event=event, delivery="t-1"))[0] == 202
        assert await listener.event() == expected(provider, tag="v1.2.0", commits=0, delivery="t-1")
    run(scenario)


@needs_aiohttp
def test_gitlab_without_event_uuid_uses_the_idempotency_key():
    async def scenario(listener):
        body = json.dumps(payload("gitlab")).encode()
        head = headers("gitlab", body)
        del head["X-Gitlab-Event-UUID"]
        head["Idempotency-Key"] = "idem-42"
        assert (await listener.request(body, head))[0] == 202
        assert (await listener.event())["git_webhook"]["delivery"] == "idem-42"
    run(scenario)


@needs_aiohttp
def test_concurrent_deliveries_each_give_one_event():
    async def scenario(listener):
        afters = ["%040x" % (0xabc000 + i) for i in range(20)]
        results = await asyncio.gather(*(listener.post("github", payload("github", after=a)) for a in afters))
        assert [status for status, _answer in results] == [202] * 20
        events = [listener.queue.get_nowait()["git_webhook"]["after"] for _after in afters]
        assert sorted(events) == sorted(afters) and listener.queue.empty()
    run(scenario)


# -- refused requests: nothing reaches the queue ------------------------------------
@needs_aiohttp
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_wrong_signature_is_403_and_no_event(provider):
    async def scenario(listener):
        body = json.dumps(payload(provider)).encode()
        status, answer = await listener.post(provider, body, secret=WRONG)
        assert status == 403 and SIGNATURE_HEADER[provider] in answer["reason"]
        if provider != "gitlab":  # GitLab's token does not sign the body
            tampered = body.replace(b"acme/shop", b"evil/shop")
            assert (await listener.request(tampered, headers(provider, body)))[0] == 403
        assert listener.queue.empty()
    run(scenario)


@needs_aiohttp
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_missing_signature_is_401_and_no_event(provider):
    async def scenario(listener):
        body = json.dumps(payload(provider)).encode()
        head = headers(provider, body)
        del head[SIGNATURE_HEADER[provider]]
        status, answer = await listener.request(body, head)
        assert status == 401 and SIGNATURE_HEADER[provider] in answer["reason"]
        head[SIGNATURE_HEADER[provider]] = ""
        assert (await listener.request(body, head))[0] == 401
        assert listener.queue.empty()
    run(scenario)


@needs_aiohttp
def test_a_github_signature_without_the_sha256_prefix_is_refused():
    async def scenario(listener):
        body = json.dumps(payload("github")).encode()
        head = headers("github", body)
        head["X-Hub-Signature-256"] = _mac(SECRET, body)  # hex alone is the Gitea/Gogs form
        assert (await listener.request(body, head))[0] == 403
        assert listener.queue.empty()
    run(scenario)


@needs_aiohttp
def test_an_oversized_body_is_413_and_no_event():
    async def scenario(listener):
        data = payload("github", commits=40)
        body = json.dumps(data).encode()
        assert len(body) > 4096
        status, answer = await listener.post("github", body)
        assert status == 413 and "4096" in answer["reason"]
        status, _answer = await listener.request(body, headers("github", body), chunked=True)  # no Content-Length
        assert status == 413
        small = json.dumps(payload("github", commits=1)).encode()
        assert len(small) <= 4096
        assert (await listener.post("github", small))[0] == 202
        assert (await listener.event())["git_webhook"]["commits"] == 1
    run(scenario, max_body=4096)


@needs_aiohttp
@pytest.mark.parametrize("body, reason", [
    (b"{not json", "body is not JSON"),
    (b"\xff\xfe\x00", "body is not JSON"),
    (b"[1, 2]", "body is not a JSON object"),
    (json.dumps({"zen": "no ref"}).encode(), "malformed push payload: no ref"),
    (json.dumps(dict(payload("github"), after="HEAD")).encode(), "malformed push payload: after is not a commit id"),
    (json.dumps(dict(payload("github"), repository={})).encode(), "malformed push payload: no repository name"),
])
def test_a_malformed_body_is_400_and_no_event(body, reason):
    async def scenario(listener):
        status, answer = await listener.post("github", body)
        assert (status, answer["reason"]) == (400, reason)
        assert listener.queue.empty()
    run(scenario)


@needs_aiohttp
def test_requests_that_are_not_provider_webhooks_are_refused():
    async def scenario(listener):
        body = json.dumps(payload("github")).encode()
        status, answer = await listener.request(body, {"Content-Type": "application/json"})
        assert status == 400 and "X-GitHub-Event" in answer["reason"]
        assert (await listener.request(body, headers("github", body), path="/other"))[0] == 404
        assert (await listener.request(b"", {}, method="GET"))[0] == 405
        head = headers("github", body, delivery="bad delivery id with spaces")
        assert (await listener.request(body, head))[0] == 400
        assert listener.queue.empty()
    run(scenario)


@needs_aiohttp
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_replayed_delivery_is_409_and_no_second_event(provider):
    async def scenario(listener):
        body = json.dumps(payload(provider)).encode()
        head = headers(provider, body, delivery="replayed-1")
        assert (await listener.request(body, head))[0] == 202
        assert (await listener.event())["git_webhook"]["delivery"] == "replayed-1"
        status, answer = await listener.request(body, head)
        assert (status, answer["reason"]) == (409, "delivery already received")
        # The same signed body under a new delivery id is a replay too.
        assert (await listener.request(body, headers(provider, body, delivery="replayed-2")))[0] == 409
        # Another push with the first delivery id: the id was seen.
        other = json.dumps(payload(provider, after="%040x" % 7)).encode()
        assert (await listener.request(other, headers(provider, other, delivery="replayed-1")))[0] == 409
        assert listener.queue.empty()
    run(scenario)


@needs_aiohttp
def test_the_replay_cache_is_bounded_and_can_be_disabled():
    async def scenario(listener):
        bodies = [json.dumps(payload("github", after="%040x" % (i + 1))).encode() for i in range(3)]
        heads = [headers("github", body, delivery="b-%d" % i) for i, body in enumerate(bodies)]
        for body, head in zip(bodies, heads):
            assert (await listener.request(body, head))[0] == 202
        assert (await listener.request(bodies[2], heads[2]))[0] == 409  # remembered
        assert (await listener.request(bodies[0], heads[0]))[0] == 202  # forgotten (cache of 2 keys)
    run(scenario, replay_cache=2)

    async def no_cache(listener):
        body = json.dumps(payload("github")).encode()
        head = headers("github", body, delivery="same")
        assert [(await listener.request(body, head))[0] for _attempt in range(2)] == [202, 202]
    run(no_cache, replay_cache=0)


# -- answered, nothing forwarded -----------------------------------------------
@needs_aiohttp
def test_a_ping_is_200_and_forwards_nothing():
    async def scenario(listener):
        ping = {"zen": "Keep it logically awesome.", "hook_id": 42,
                "hook": {"type": "Repository", "events": ["push"], "config": {"content_type": "json"}},
                "repository": {"full_name": "acme/shop"}}
        status, answer = await listener.post("github", ping, event="ping", delivery="ping-1")
        assert (status, answer) == (200, {"status": "pong", "provider": "github", "delivery": "ping-1"})
        assert (await listener.post("gitea", dict(ping, hook_id=43), event="ping"))[0] == 200
        unsigned = json.dumps(ping).encode()
        head = headers("github", unsigned, event="ping")
        del head["X-Hub-Signature-256"]
        assert (await listener.request(unsigned, head))[0] == 401  # pings are verified too
        assert listener.queue.empty()
    run(scenario)


@needs_aiohttp
@pytest.mark.parametrize("provider, event", [
    ("github", "issues"), ("github", "pull_request"), ("gitea", "create"), ("gogs", "release"),
    ("gitlab", "Merge Request Hook"), ("gitlab", "Pipeline Hook"),
])
def test_an_unknown_event_is_200_ignored_and_forwards_nothing(provider, event):
    async def scenario(listener):
        status, answer = await listener.post(provider, {"action": "opened", "number": 1}, event=event)
        assert status == 200 and answer["status"] == "ignored" and "is not handled" in answer["reason"]
        assert listener.queue.empty()
    run(scenario)


@needs_aiohttp
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_deleted_branch_is_ignored(provider):
    async def scenario(listener):
        status, answer = await listener.post(provider, payload(provider, after=ZERO, commits=0))
        assert (status, answer["status"], answer["reason"]) == (200, "ignored", "refs/heads/main was deleted")
        assert listener.queue.empty()
    run(scenario)


@needs_aiohttp
def test_branch_and_tag_filters():
    async def scenario(listener):
        for ref, wanted in [("refs/heads/main", True), ("refs/heads/release/2.4", True),
                            ("refs/heads/feature/x", False), ("refs/heads/mainline", False),
                            ("refs/tags/v1.0", True), ("refs/tags/nightly", False)]:
            status, answer = await listener.post("github", payload("github", ref=ref, after="%040x" % len(ref)))
            if wanted:
                assert status == 202, ref
                assert (await listener.event())["git_webhook"]["ref"] == ref
            else:
                assert (status, answer["status"]) == (200, "ignored"), ref
                assert "not configured for deployment" in answer["reason"]
                assert listener.queue.empty()
    run(scenario, branches=["main", "release/*"], tags="v*")

    async def branches_only(listener):
        status, answer = await listener.post("github", payload("github", ref="refs/tags/v1.0"))
        assert (status, answer["reason"]) == (200, "tag v1.0 is not configured for deployment")
        assert (await listener.post("github", payload("github", after="%040x" % 9)))[0] == 202
    run(branches_only, branches=["main"])


# -- start-up, insecure mode, secrecy ----------------------------------------------
def test_no_secret_refuses_to_start_with_a_clear_error():
    for args in ({"port": free_port()}, {"port": free_port(), "secret": ""}, {"port": free_port(), "insecure": "false"}):
        with pytest.raises(ValueError, match="no secret configured.*insecure: true"):
            asyncio.run(SRC["main"](asyncio.Queue(), args))


@pytest.mark.parametrize("args, message", [
    ({"secret": SECRET}, "option port is required"),
    ({"port": "http", "secret": SECRET}, "option port must be an integer"),
    ({"port": 70000, "secret": SECRET}, "option port must be between 1 and 65535"),
    ({"port": 5000, "secret": SECRET, "max_body": 0}, "option max_body must be >= 1"),
    ({"port": 5000, "secret": SECRET, "replay_cache": -1}, "option replay_cache must be >= 0"),
    ({"port": 5000, "secret": SECRET, "timeout": 0}, "option timeout must be a number of seconds"),
    ({"port": 5000, "secret": SECRET, "timeout": "soon"}, "option timeout must be a number of seconds"),
    ({"port": 5000, "secret": SECRET, "max_connections": 0}, "option max_connections must be >= 1"),
    ({"port": 5000, "secret": SECRET, "insecure": "maybe"}, "option insecure must be a boolean"),
    ({"port": 5000, "secret": SECRET, "path": "webhook"}, "option path must start with '/'"),
    ({"port": 5000, "secret": SECRET, "branches": []}, "option branches must not be empty"),
    ({"port": 5000, "secret": SECRET, "branches": [1]}, "option branches must be a list of names"),
    ({"port": 5000, "secret": ["x"]}, "option secret must be a string"),
    ({"port": 5000, "secret": SECRET, "secrets": SECRET}, r"unknown option\(s\): secrets"),
])
def test_bad_options_are_refused_without_echoing_the_secret(args, message):
    with pytest.raises(ValueError, match=message) as raised:
        SRC["parse_options"](args)
    assert SECRET not in str(raised.value)


def test_options_defaults_and_conversions():
    options = SRC["parse_options"]({"port": "5000", "secret": 12345, "branches": "main, release/*",
                                    "eda_feedback_queue": object()})
    assert options == {"host": "127.0.0.1", "port": 5000, "path": "/webhook", "secret": "12345",
                       "insecure": False, "max_body": 1048576, "replay_cache": 1000,
                       "timeout": 10.0, "max_connections": 32,
                       "replay_file": SRC["default_replay_file"](5000), "providers": ["github"],
                       "branches": ["main", "release/*"], "tags": None}
    assert SRC["default_replay_file"](5000).endswith("/gitdeploy/git_webhook-5000.seen")
    with pytest.raises(ValueError, match="unknown provider"):
        SRC["parse_options"]({"port": 1, "secret": "x", "providers": ["github", "bitbucket"]})


@needs_aiohttp
def test_insecure_mode_accepts_unsigned_pushes_only_when_asked(caplog):
    caplog.set_level(logging.INFO)

    async def scenario(listener):
        body = json.dumps(payload("github")).encode()
        head = headers("github", body)
        del head["X-Hub-Signature-256"]
        assert (await listener.request(body, head))[0] == 202
        assert (await listener.event())["git_webhook"]["after"] == AFTER
    run(scenario, secret=None, insecure=True)
    assert "accepting UNSIGNED webhooks" in caplog.text

    async def verified(listener):  # a secret is always checked, insecure or not
        body = json.dumps(payload("github")).encode()
        head = headers("github", body)
        del head["X-Hub-Signature-256"]
        assert (await listener.request(body, head))[0] == 401
    run(verified, insecure=True)


@needs_aiohttp
def test_the_secret_never_reaches_logs_or_answers(caplog):
    caplog.set_level(logging.DEBUG)
    answers = []

    async def scenario(listener):
        for provider in PROVIDERS:
            body = json.dumps(payload(provider, after="%040x" % (len(answers) + 1))).encode()
            answers.append(await listener.post(provider, body))
            answers.append(await listener.post(provider, body))  # replay
            answers.append(await listener.post(provider, body, secret=WRONG))
            head = headers(provider, body)
            del head[SIGNATURE_HEADER[provider]]
            answers.append(await listener.request(body, head))
            answers.append(await listener.post(provider, b"{broken", secret=SECRET))
            answers.append(await listener.post(provider, {"x": 1}, event="ping"))
            answers.append(await listener.post(provider, {"x": 1}, event="unknown"))
        for _provider in PROVIDERS:
            await asyncio.wait_for(listener.queue.get(), DEADLINE)
    run(scenario)
    assert {status for status, _answer in answers} == {200, 202, 400, 401, 403, 409}
    logged = caplog.text + "".join(repr(record.__dict__) for record in caplog.records)
    assert "queued" in logged and "403" in logged  # the requests were logged ...
    for text in (logged, json.dumps(answers)):
        assert SECRET not in text and WRONG not in text  # ... without the secret or a wrong token


# -- pure helpers --------------------------------------------------------------
def test_verify_is_an_hmac_of_the_raw_body():
    verify = SRC["verify"]
    body = b'{"ref": "refs/heads/main"}'
    digest = _mac(SECRET, body)
    assert verify(SECRET, body, "sha256=" + digest, "sha256=")
    assert verify(SECRET, body, "sha256=" + digest.upper(), "sha256=")
    assert not verify(SECRET, body + b" ", "sha256=" + digest, "sha256=")
    assert verify(SECRET, body, digest, "hex") and not verify(SECRET, body, "sha256=" + digest, "hex")
    assert verify(SECRET, body, SECRET, "token") and not verify(SECRET, body, SECRET.upper(), "token")
    assert not verify(SECRET, body, "caf\u00e9", "token")


class CaseInsensitiveHeaders(dict):
    """Enough of aiohttp's CIMultiDict for detect()."""

    def __init__(self, items):
        super().__init__((key.lower(), value) for key, value in items.items())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


def test_gitea_is_recognised_before_the_gogs_and_github_headers_it_also_sends():
    for provider in PROVIDERS:
        detected = SRC["detect"](CaseInsensitiveHeaders(headers(provider, b"{}")))
        assert detected[0] == provider and detected[2] == SIGNATURE_HEADER[provider]
    with pytest.raises(SRC["WebhookError"]) as raised:
        SRC["detect"](CaseInsensitiveHeaders({"User-Agent": "curl/8"}))
    assert raised.value.status == 400


def test_pusher_names_are_reduced_to_a_safe_token():
    assert SRC["safe_name"]("alice.o-brien+ci@corp") == "alice.o-brien+ci@corp"
    assert SRC["safe_name"]("{{ lookup('pipe', 'id') }}") == "___lookup__pipe____id_____"
    assert SRC["safe_name"](None) == "unknown" and SRC["safe_name"]("") == "unknown"


# -- the rulebook ------------------------------------------------------------------
def test_the_rulebook_is_valid_and_maps_a_push_to_a_deploy(monkeypatch):
    pytest.importorskip("ansible_rulebook")
    from ansible_rulebook.conf import settings
    from ansible_rulebook.rules_parser import parse_rule_sets
    from ansible_rulebook.util import substitute_variables
    from ansible_rulebook.validators import Validate

    # The parser looks the source plugin's collection up with ansible-galaxy.
    monkeypatch.setattr(settings, "ansible_galaxy_path", str(Path(sys.executable).parent / "ansible-galaxy"))
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(collections_path()))
    data = yaml.safe_load(RULEBOOK.read_text())
    Validate.rulebook(data)
    variables = {"webhook_port": 5000, "deploy_repo": "acme/shop", "deploy_repo_url": "git@git.example.com:acme/shop.git",
                 "deploy_branches": {"main": "staging", "production": "prod"},
                 "GITDEPLOY_WEBHOOK_SECRET": SECRET}
    [ruleset] = parse_rule_sets(data, variables)
    assert ruleset.hosts == ["all,localhost"]  # the deploy playbook's first play runs on localhost
    assert ruleset.execution_strategy.name == "SEQUENTIAL"  # one deploy at a time, in arrival order
    [source] = ruleset.sources
    assert source.source_name == "gitdeploy.rollout.git_webhook"
    args = substitute_variables(source.source_args, variables)
    options = SRC["parse_options"](args)
    assert (options["host"], options["port"], options["path"]) == ("127.0.0.1", 5000, "/webhook")
    assert options["secret"] == SECRET and options["branches"] == ["main", "production"]
    assert substitute_variables(source.source_args, dict(variables, webhook_secret="from-vars"))["secret"] == "from-vars"

    [rule] = ruleset.rules
    [action] = rule.actions
    assert action.action == "run_playbook" and action.action_args["name"] == "gitdeploy.rollout.deploy"
    event = expected("github", branch="production", delivery="d-1")
    extra = substitute_variables(action.action_args["extra_vars"], dict(variables, event=event))
    assert extra == {"env": "prod", "ref": AFTER, "git_deploy_repo_url": "git@git.example.com:acme/shop.git",
                     "git_deploy_version": AFTER, "git_deploy_cache_dir": "", "git_deploy_user": "alice",
                     "reason": "deploy on push, delivery d-1"}


# -- round 2 of the security review ------------------------------------------------
@needs_aiohttp
def test_a_body_signed_for_one_provider_is_a_replay_under_another_providers_headers():
    async def scenario(listener):
        body = json.dumps(payload("github")).encode()
        assert (await listener.request(body, headers("github", body, delivery="gh-1")))[0] == 202
        await listener.event()
        # Gitea and Gogs sign the body with the same HMAC-SHA256: the captured delivery, dressed as theirs.
        for provider in ("gitea", "gogs"):
            status, answer = await listener.request(body, headers(provider, body, delivery="other-%s" % provider))
            assert (status, answer["reason"]) == (409, "delivery already received"), provider
        assert listener.queue.empty()
    run(scenario)


@needs_aiohttp
def test_a_listener_accepts_one_provider_unless_told_otherwise():
    async def scenario(listener):
        body = json.dumps(payload("gitea")).encode()
        status, answer = await listener.request(body, headers("gitea", body))
        assert status == 400 and "gitea webhooks are not accepted here (providers: github)" in answer["reason"]
        github = json.dumps(payload("github")).encode()
        assert (await listener.request(github, headers("github", github)))[0] == 202
        await listener.event()
    run(scenario, providers=["github"])


@needs_aiohttp
def test_seen_deliveries_survive_a_restart(tmp_path):
    seen = tmp_path / "state" / "seen"
    body = json.dumps(payload("github")).encode()
    head = headers("github", body, delivery="before-restart")

    async def first(listener):
        assert (await listener.request(body, head))[0] == 202
        await listener.event()

    async def after_restart(listener):
        assert (await listener.request(body, head))[0] == 409
        assert listener.queue.empty()

    run(first, replay_file=str(seen))
    assert stat.S_IMODE(seen.stat().st_mode) == 0o600
    assert len(seen.read_text().split()) == 2  # the delivery id and the body digest
    run(after_restart, replay_file=str(seen))


@needs_aiohttp
@pytest.mark.parametrize("field, value", [
    ("ref", "refs/tags/v{{ lookup('pipe', 'id') }}"),
    ("ref", "refs/heads/main%7B%7B"),
    ("ref", "refs/heads/it's"),
    ("ref", "refs/heads/a b"),
    ("ref", "refs/heads/a\u0007b"),
    ("repo", "acme/{{ 7 * 7 }}"),
    ("clone_url", "https://github.com/acme/shop.git?{{x}}"),
    ("ssh_url", "git@github.com:acme/\"shop\".git"),
])
def test_names_and_urls_outside_a_strict_character_set_are_refused(field, value):
    async def scenario(listener):
        data = payload("github", ref=value if field == "ref" else "refs/heads/main")
        if field == "repo":
            data["repository"]["full_name"] = value
        elif field != "ref":
            data["repository"][field] = value
        status, answer = await listener.post("github", data)
        assert status == 200 and answer["status"] == "refused", answer
        assert "may contain only" in answer["reason"]
        assert listener.queue.empty()
    run(scenario, tags=["v*"])


@needs_aiohttp
def test_deeply_nested_json_is_400_not_500():
    async def scenario(listener):
        body = b"[" * 100000 + b"]" * 100000
        status, answer = await listener.request(body, headers("github", body))
        assert status == 400 and "nested" in answer["reason"]
    run(scenario, max_body=1024 * 1024)


async def closed_by_server(reader):
    """True when the server closes the connection (EOF) within DEADLINE; what it sent before."""
    data = b""
    while True:
        chunk = await asyncio.wait_for(reader.read(65536), DEADLINE)
        if not chunk:
            return data
        data += chunk


@needs_aiohttp
@pytest.mark.parametrize("partial", [
    b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Ev",                               # headers, slowly
    b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"ref\":",    # body, slowly
])
def test_a_slow_client_is_cut_off_after_the_timeout(partial):
    """Slowloris: a client that never finishes its request does not keep the connection."""
    async def scenario(listener):
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(partial)
        await writer.drain()
        started = time.monotonic()
        try:
            assert b"202" not in await closed_by_server(reader)
        finally:
            writer.close()
        assert time.monotonic() - started < DEADLINE
        assert listener.queue.empty()
        # The listener still answers others.
        status, _answer = await listener.request(b"{}", headers("github", b"{}", event="ping"))
        assert status == 200
    run(scenario, timeout=0.5)


@needs_aiohttp
def test_connections_beyond_the_cap_are_answered_503():
    async def scenario(listener):
        idle = [await asyncio.open_connection("127.0.0.1", listener.port) for _n in range(2)]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            try:
                assert (await closed_by_server(reader)).startswith(b"HTTP/1.1 503")
            finally:
                writer.close()
        finally:
            for _reader, writer in idle:
                writer.close()
        # Once they are closed, requests get through again (the server sees the closes in its own time).
        deadline = time.monotonic() + DEADLINE
        while True:
            status, _answer = await listener.request(b"{}", headers("github", b"{}", event="ping"))
            if status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        assert status == 200
    run(scenario, max_connections=2)
