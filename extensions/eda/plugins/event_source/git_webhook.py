# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Event-Driven Ansible source plugin: signed git push webhooks (GitHub, GitLab, Gitea, Gogs).

ansible-rulebook loads this file with ``runpy.run_path`` (no package context), so it is
self-contained: the pure helpers (``parse_options``, ``detect``, ``verify``, ``normalise``,
``ReplayCache``) live here and the unit tests load the file the same way.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import json
import logging
import os
import re
import tempfile
from collections import OrderedDict

try:
    from aiohttp import web
except ImportError:  # pragma: no cover - ansible-rulebook always brings aiohttp
    web = None

DOCUMENTATION = r"""
---
short_description: Receive signed git push webhooks from GitHub, GitLab, Gitea and Gogs.
description:
  - An ansible-rulebook event source that listens for git webhooks over HTTP, verifies every
    request (GitHub C(X-Hub-Signature-256), Gitea C(X-Gitea-Signature), Gogs C(X-Gogs-Signature),
    GitLab C(X-Gitlab-Token)) with a constant-time comparison, and puts one normalised event per
    accepted push on the queue.
  - "The event is C({git_webhook: {provider, repo, clone_url, ssh_url, ref, branch | tag, before,
    after, pusher, delivery, commits}}): C(branch) for pushes to C(refs/heads/...), C(tag) instead
    for pushes to C(refs/tags/...)."
  - "Answers: C(202) push queued; C(200) ping, or a delivery that is ignored (not a push, a
    deleted branch or tag, a ref outside O(branches)/O(tags)) with the reason in the JSON body;
    C(400) malformed request or payload; C(401) signature or token missing; C(403) signature or token
    wrong; C(404) other path; C(409) a delivery id or a signed body already seen; C(413) body larger
    than O(max_body); C(503) more than O(max_connections) connections open."
  - "A push whose ref, repository name or URL has characters outside a strict set (braces, C(%),
    quotes, whitespace, control characters) is answered C(200) with status C(refused) and starts
    nothing: the event reaches extra vars, which Ansible templates."
  - Every connection carries one request and is closed after O(timeout) seconds at the latest
    (headers and body included), so slow clients cannot hold the listener.
  - Refuses to start without O(secret) unless O(insecure=true). The secret is never logged.
  - Listens on the loopback interface by default; put a TLS reverse proxy in front of it to
    receive webhooks from another machine.
options:
  host:
    description: The address to listen on.
    type: str
    default: 127.0.0.1
  port:
    description: The TCP port to listen on.
    type: int
    required: true
  path:
    description: The URL path webhooks are posted to; any other path gets C(404).
    type: str
    default: /webhook
  secret:
    description:
      - The webhook secret. GitHub, Gitea and Gogs sign the body with it (HMAC-SHA256);
        GitLab sends it as its secret token.
      - Required unless O(insecure=true).
    type: str
  insecure:
    description:
      - Accept unsigned webhooks when no O(secret) is set. Only for tests on a trusted network.
      - With a O(secret), requests are always verified.
    type: bool
    default: false
  max_body:
    description: Largest accepted request body in bytes; larger bodies get C(413).
    type: int
    default: 1048576
  timeout:
    description:
      - Seconds a client has to send one request, headers and body; the connection is closed after that.
    type: float
    default: 10
  max_connections:
    description: How many connections may be open at once; one more is answered C(503) and closed.
    type: int
    default: 32
  replay_cache:
    description:
      - How many delivery ids and digests of bodies to remember; a request repeating one gets C(409) - whatever
        provider headers it comes with (a body signed for one provider is signed for the others that use
        HMAC-SHA256 too). V(0) disables replay detection.
    type: int
    default: 1000
  replay_file:
    description:
      - Where the seen deliveries are kept, so that a restart does not forget them (mode C(0600), at most
        O(replay_cache) entries).
      - Defaults to C($XDG_CACHE_HOME/gitdeploy/git_webhook-<port>.seen) (C(~/.cache) without C(XDG_CACHE_HOME)).
    type: path
  providers:
    description:
      - The providers this listener accepts (V(github), V(gitlab), V(gitea), V(gogs)); a delivery from another one gets
        C(400). One provider per listener: a delivery captured from one provider cannot come back dressed as another.
    type: list
    elements: str
    default: [github]
  branches:
    description:
      - Branches whose pushes are forwarded (names or shell patterns such as C(release/*)).
      - When O(branches) or O(tags) is set, only pushes matching one of them are forwarded.
        Unset, every push is forwarded.
    type: list
    elements: str
  tags:
    description:
      - Tags whose pushes are forwarded (names or shell patterns such as C(v*)).
      - When O(branches) or O(tags) is set, only pushes matching one of them are forwarded.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Deploy on push
  hosts: all,localhost
  sources:
    - gitdeploy.rollout.git_webhook:
        port: 5000
        secret: "{{ GITDEPLOY_WEBHOOK_SECRET }}"
        branches:
          - main
  rules:
    - name: Deploy pushes to main to staging
      condition: event.git_webhook.branch == "main"
      action:
        run_playbook:
          name: gitdeploy.rollout.deploy
          extra_vars:
            env: staging
            ref: "{{ event.git_webhook.after }}"
"""

LOGGER = logging.getLogger("gitdeploy.rollout.git_webhook")

DEFAULTS = {
    "host": "127.0.0.1",
    "port": None,
    "path": "/webhook",
    "secret": None,
    "insecure": False,
    "max_body": 1024 * 1024,
    "timeout": 10.0,
    "max_connections": 32,
    "replay_cache": 1000,
    "replay_file": None,
    "providers": ["github"],
    "branches": None,
    "tags": None,
}

# Provider -> (event header, signature header, delivery headers, signature style).
# Order matters: Gitea also sends X-Gogs-* and X-GitHub-* headers, Gogs X-GitHub-* ones.
PROVIDERS = (
    ("gitea", "X-Gitea-Event", "X-Gitea-Signature", ("X-Gitea-Delivery",), "hex"),
    ("gogs", "X-Gogs-Event", "X-Gogs-Signature", ("X-Gogs-Delivery",), "hex"),
    ("gitlab", "X-Gitlab-Event", "X-Gitlab-Token", ("X-Gitlab-Event-UUID", "Idempotency-Key"), "token"),
    ("github", "X-GitHub-Event", "X-Hub-Signature-256", ("X-GitHub-Delivery",), "sha256="),
)
PUSH_EVENTS = {"push", "push hook", "tag push hook"}
PING_EVENTS = {"ping"}
OBJECT_ID = re.compile(r"\A(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
DELIVERY_ID = re.compile(r"\A[A-Za-z0-9._:-]{1,128}\Z")
UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._@+-]")
# What a branch, tag, repository name or URL of an event may contain: it reaches extra vars, which
# Ansible templates - a pushed tag named v{{ lookup('pipe', 'id') }} would run on the controller.
SAFE_REF = re.compile(r"\A[A-Za-z0-9._/+-]{1,255}\Z")
SAFE_REPO = re.compile(r"\A[A-Za-z0-9._/-]{1,255}\Z")
SAFE_URL = re.compile(r"\A[A-Za-z0-9._~:/@+-]{1,1024}\Z")
TRUE_WORDS = {"true", "yes", "on", "1"}
FALSE_WORDS = {"false", "no", "off", "0", ""}


class WebhookError(Exception):
    """A request that is answered with an HTTP error status and a reason."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


# -- options -----------------------------------------------------------------------
def _as_bool(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ValueError("git_webhook: option %s must be a boolean" % name)


def _as_int(name, value, minimum, maximum=None):
    if isinstance(value, bool):
        raise ValueError("git_webhook: option %s must be an integer" % name)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("git_webhook: option %s must be an integer" % name) from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = ">= %d" % minimum if maximum is None else "between %d and %d" % (minimum, maximum)
        raise ValueError("git_webhook: option %s must be %s" % (name, bounds))
    return number


def _as_seconds(name, value):
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or not 0 < number <= 3600:
        raise ValueError("git_webhook: option %s must be a number of seconds between 0 and 3600" % name)
    return number


def _as_patterns(name, value):
    if value is None:
        return None
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ValueError("git_webhook: option %s must be a list of names" % name)
    patterns = [item for item in value if item]
    if not patterns:
        raise ValueError("git_webhook: option %s must not be empty (leave it unset to accept every ref)" % name)
    return patterns


def parse_options(args):
    """Validate the source arguments; return a dict with every option set.

    Raises ValueError with a message meant for the operator. Messages never contain
    the secret.
    """
    unknown = sorted(k for k in args if k not in DEFAULTS and not k.startswith("eda_"))
    if unknown:
        raise ValueError("git_webhook: unknown option(s): %s (known: %s)"
                         % (", ".join(unknown), ", ".join(sorted(DEFAULTS))))
    options = dict(DEFAULTS)
    options.update({k: v for k, v in args.items() if k in DEFAULTS and v is not None})
    if options["port"] is None:
        raise ValueError("git_webhook: option port is required")
    options["port"] = _as_int("port", options["port"], 1, 65535)
    options["max_body"] = _as_int("max_body", options["max_body"], 1)
    options["replay_cache"] = _as_int("replay_cache", options["replay_cache"], 0)
    options["timeout"] = _as_seconds("timeout", options["timeout"])
    options["max_connections"] = _as_int("max_connections", options["max_connections"], 1)
    options["insecure"] = _as_bool("insecure", options["insecure"])
    if not isinstance(options["host"], str) or not options["host"]:
        raise ValueError("git_webhook: option host must be a non-empty string")
    if not isinstance(options["path"], str) or not options["path"].startswith("/"):
        raise ValueError("git_webhook: option path must start with '/'")
    secret = options["secret"]
    if isinstance(secret, int) and not isinstance(secret, bool):
        secret = str(secret)  # ansible-rulebook's native templating turns "12345" into 12345
    if secret is not None and not isinstance(secret, str):
        raise ValueError("git_webhook: option secret must be a string")
    options["secret"] = secret or None
    if options["secret"] is None and not options["insecure"]:
        raise ValueError(
            "git_webhook: no secret configured: set the source option 'secret' (the webhook secret or "
            "GitLab token), or set 'insecure: true' to accept unsigned webhooks (tests only)"
        )
    options["branches"] = _as_patterns("branches", options["branches"])
    options["tags"] = _as_patterns("tags", options["tags"])
    providers = _as_patterns("providers", options["providers"])
    known = [p[0] for p in PROVIDERS]
    unknown = sorted(set(providers) - set(known))
    if unknown:
        raise ValueError("git_webhook: option providers: unknown provider(s) %s (known: %s)"
                         % (", ".join(unknown), ", ".join(known)))
    options["providers"] = providers
    if options["replay_file"] is not None and not isinstance(options["replay_file"], str):
        raise ValueError("git_webhook: option replay_file must be a path")
    options["replay_file"] = options["replay_file"] or default_replay_file(options["port"])
    return options


def default_replay_file(port):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gitdeploy", "git_webhook-%d.seen" % port)


# -- requests ----------------------------------------------------------------------
def detect(headers):
    """Return (provider, event name, signature header, delivery headers, style) or raise WebhookError."""
    for provider, event_header, signature_header, delivery_headers, style in PROVIDERS:
        event = headers.get(event_header)
        if event is not None:
            return provider, event.strip().lower(), signature_header, delivery_headers, style
    raise WebhookError(400, "not a git webhook: no X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event or X-Gogs-Event header")


def verify(secret, body, received, style):
    """True if ``received`` (a header value) authenticates ``body`` for ``secret``, in constant time."""
    key = secret.encode("utf-8")
    received = received.strip().encode("utf-8", "surrogateescape")
    if style == "token":
        return hmac.compare_digest(received, key)
    expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode("ascii")
    if style == "sha256=":
        expected = b"sha256=" + expected
    return hmac.compare_digest(received.lower(), expected)


def authenticate(options, headers, body, signature_header, style):
    """Raise WebhookError 401 (missing) or 403 (wrong) unless the request is authentic."""
    if options["secret"] is None:  # insecure mode, explicitly asked for
        return
    received = headers.get(signature_header)
    if received is None or not received.strip():
        raise WebhookError(401, "missing %s header" % signature_header)
    if not verify(options["secret"], body, received, style):
        what = "token" if style == "token" else "signature"
        raise WebhookError(403, "wrong %s in %s" % (what, signature_header))


def delivery_ids(headers, delivery_headers):
    """The delivery ids of the request (checked for a safe charset), first one first."""
    ids = []
    for name in delivery_headers:
        value = headers.get(name)
        if value is None:
            continue
        value = value.strip()
        if not DELIVERY_ID.match(value):
            raise WebhookError(400, "malformed %s header" % name)
        ids.append(value)
    return ids


def _get(data, *path):
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _text(*candidates):
    for value in candidates:
        if isinstance(value, str) and value:
            return value
    return None


def _object_id(name, value):
    if not isinstance(value, str) or not OBJECT_ID.match(value):
        raise WebhookError(400, "malformed push payload: %s is not a commit id" % name)
    return value


def _count(*candidates):
    for value in candidates:
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value >= 0:
            return value
        if isinstance(value, list):
            return len(value)
    return 0


def safe_name(value):
    """A login-like token: letters, digits and ``._@+-`` only (payload text reaches extra vars)."""
    if not isinstance(value, str):
        return "unknown"
    return UNSAFE_NAME_CHARS.sub("_", value)[:100] or "unknown"


def normalise(provider, payload, delivery):
    """The ``git_webhook`` event data of a push payload, or raise WebhookError 400."""
    if not isinstance(payload, dict):
        raise WebhookError(400, "malformed push payload: not a JSON object")
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise WebhookError(400, "malformed push payload: no ref")
    if provider == "gitlab":
        repo = _text(_get(payload, "project", "path_with_namespace"))
        clone_url = _text(_get(payload, "project", "git_http_url"), _get(payload, "repository", "git_http_url"))
        ssh_url = _text(_get(payload, "project", "git_ssh_url"), _get(payload, "repository", "git_ssh_url"))
        pusher = _text(payload.get("user_username"), payload.get("user_name"))
        commits = _count(payload.get("total_commits_count"), payload.get("commits"))
    else:
        repo = _text(_get(payload, "repository", "full_name"))
        clone_url = _text(_get(payload, "repository", "clone_url"))
        ssh_url = _text(_get(payload, "repository", "ssh_url"))
        pusher = _text(_get(payload, "pusher", "login"), _get(payload, "pusher", "username"),
                       _get(payload, "pusher", "name"), _get(payload, "sender", "login"))
        commits = _count(payload.get("total_commits"), payload.get("commits"))
    if repo is None:
        raise WebhookError(400, "malformed push payload: no repository name")
    data = {
        "provider": provider,
        "repo": repo,
        "clone_url": clone_url,
        "ssh_url": ssh_url,
        "ref": ref,
        "before": _object_id("before", payload.get("before")),
        "after": _object_id("after", payload.get("after")),
        "pusher": safe_name(pusher),
        "delivery": delivery,
        "commits": commits,
    }
    if ref.startswith("refs/heads/"):
        data["branch"] = ref[len("refs/heads/"):]
    elif ref.startswith("refs/tags/"):
        data["tag"] = ref[len("refs/tags/"):]
    return data


def unsafe_reason(data):
    """Why a push's names or URLs cannot be forwarded (characters outside a strict set), or None."""
    checks = [("repository name", data["repo"], SAFE_REPO, "letters, digits and . _ / -"),
              ("ref", data["ref"], SAFE_REF, "letters, digits and . _ / + -")]
    checks += [(key, data[key], SAFE_URL, "letters, digits and . _ ~ : / @ + -")
               for key in ("clone_url", "ssh_url") if data.get(key) is not None]
    for what, value, allowed, words in checks:
        if not allowed.match(value):
            shown = "".join(c if c.isprintable() else "?" for c in value)[:80]
            return ("refused: the %s %r may contain only %s (no braces, %%, quotes, spaces or control characters: "
                    "the event reaches Ansible's templating)" % (what, shown, words))
    return None


def ignore_reason(options, data, payload):
    """Why a well-formed push is not forwarded, or None to forward it."""
    if payload.get("deleted") is True or not data["after"].strip("0"):
        return "%s was deleted" % data["ref"]
    if "branch" not in data and "tag" not in data:
        return "%s is neither a branch nor a tag" % data["ref"]
    if options["branches"] is None and options["tags"] is None:
        return None
    kind, name = ("branch", data["branch"]) if "branch" in data else ("tag", data["tag"])
    patterns = options["branches"] if kind == "branch" else options["tags"]
    if patterns and any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
        return None
    return "%s %s is not configured for deployment" % (kind, name)


class ReplayCache:
    """The last ``size`` keys seen (delivery ids, body digests), oldest forgotten first; kept
    in ``path`` (one key a line, mode 0600, rewritten atomically) across restarts."""

    def __init__(self, size, path=None):
        self.size = size
        self.path = path
        self._keys = OrderedDict()
        if path and size > 0:
            try:
                with open(path) as handle:
                    for line in handle:
                        if line.strip():
                            self._keys[line.strip()] = True
            except FileNotFoundError:
                pass
            except (OSError, UnicodeDecodeError) as exc:
                LOGGER.warning("git_webhook: cannot read the seen deliveries in %s (%s): starting empty", path, exc)
            self._trim()

    def _trim(self):
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)

    def seen(self, keys):
        return self.size > 0 and any(key in self._keys for key in keys)

    def remember(self, keys):
        if self.size <= 0:
            return
        for key in keys:
            self._keys[key] = True
            self._keys.move_to_end(key)
        self._trim()
        if self.path:
            self._save()

    def _save(self):
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, 0o700, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=".seen.", dir=directory)  # 0600
            with os.fdopen(handle, "w") as out:
                out.write("".join(key + "\n" for key in self._keys))
            os.replace(tmp, self.path)
        except OSError as exc:
            LOGGER.warning("git_webhook: cannot keep the seen deliveries in %s: %s", self.path, exc)


class Receiver:
    """Turns one HTTP request into (status, answer, event or None). No aiohttp in here."""

    def __init__(self, options):
        self.options = options
        self.replays = ReplayCache(options["replay_cache"], options.get("replay_file"))

    def handle(self, headers, body):
        provider, event, signature_header, delivery_headers, style = detect(headers)
        if provider not in self.options["providers"]:
            raise WebhookError(400, "%s webhooks are not accepted here (providers: %s)"
                               % (provider, ", ".join(self.options["providers"])))
        authenticate(self.options, headers, body, signature_header, style)
        ids = delivery_ids(headers, delivery_headers)
        delivery = ids[0] if ids else None
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookError(400, "body is not JSON") from None
        except RecursionError:
            raise WebhookError(400, "body is not JSON this listener reads (nested too deeply)") from None
        if not isinstance(payload, dict):
            raise WebhookError(400, "body is not a JSON object")
        # The body alone: a delivery signed for one provider, sent again with another's headers, is a replay.
        keys = ["delivery:%s" % value for value in ids]
        keys.append("body:%s" % hashlib.sha256(body).hexdigest())
        if self.replays.seen(keys):
            raise WebhookError(409, "delivery already received")
        if event in PING_EVENTS:
            self.replays.remember(keys)
            return 200, {"status": "pong", "provider": provider, "delivery": delivery}, None
        if event not in PUSH_EVENTS:
            self.replays.remember(keys)
            return 200, {"status": "ignored", "reason": "%s event %s is not handled" % (provider, safe_name(event))}, None
        data = normalise(provider, payload, delivery)
        refused = unsafe_reason(data)
        self.replays.remember(keys)
        if refused:
            return 200, {"status": "refused", "reason": refused, "delivery": delivery}, None
        reason = ignore_reason(self.options, data, payload)
        if reason:
            return 200, {"status": "ignored", "reason": reason, "delivery": delivery}, None
        return 202, {"status": "queued", "delivery": delivery}, {"git_webhook": data}


# -- HTTP --------------------------------------------------------------------------
async def _read_body(request, limit):
    if request.content_length is not None and request.content_length > limit:
        raise WebhookError(413, "body larger than %d bytes" % limit)
    body = bytearray()
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return bytes(body)
        body.extend(chunk)
        if len(body) > limit:
            raise WebhookError(413, "body larger than %d bytes" % limit)


def _make_handler(queue, options):
    receiver = Receiver(options)

    async def handler(request):
        if request.path != options["path"]:
            status, answer, event = 404, {"status": "error", "reason": "not found"}, None
        elif request.method != "POST":
            status, answer, event = 405, {"status": "error", "reason": "POST only"}, None
        else:
            try:
                body = await _read_body(request, options["max_body"])
                status, answer, event = receiver.handle(request.headers, body)
            except WebhookError as exc:
                status, answer, event = exc.status, {"status": "error", "reason": exc.reason}, None
        if event is not None:
            await queue.put(event)
            data = event["git_webhook"]
            LOGGER.info("git_webhook: %s push of %s %s to %s queued (delivery %s)", data["provider"], data["repo"],
                        data.get("branch") or data.get("tag"), data["after"], data["delivery"])
        else:
            LOGGER.info("git_webhook: %s %s -> %d %s", request.method, request.path, status,
                        answer.get("reason") or answer["status"])
        response = web.json_response(answer, status=status)
        response.force_close()  # one request per connection: its deadline covers it whole
        return response

    return handler


BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Guard(asyncio.Protocol):
    """Wraps the HTTP protocol of one connection: at most ``max_connections`` open at once
    (one more is answered 503), each closed ``timeout`` seconds after it opened - aiohttp has
    no deadline for a request's headers, a slow client would otherwise hold its connection."""

    def __init__(self, inner, guards, options):
        self.inner = inner
        self.guards = guards
        self.options = options
        self.timer = None

    def connection_made(self, transport):
        if len(self.guards) >= self.options["max_connections"]:
            self.inner = None
            transport.write(BUSY)
            transport.close()
            LOGGER.warning("git_webhook: more than %d connections open: one refused", self.options["max_connections"])
            return
        self.guards.add(self)
        self.timer = asyncio.get_running_loop().call_later(self.options["timeout"], transport.abort)
        self.inner.connection_made(transport)

    def connection_lost(self, exc):
        self.guards.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def data_received(self, data):
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received() if self.inner is not None else False

    def pause_writing(self):
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self):
        if self.inner is not None:
            self.inner.resume_writing()


async def main(queue, args):
    """Listen for git webhooks and put one normalised event per accepted push on ``queue``."""
    options = parse_options(args)
    if web is None:
        raise RuntimeError("git_webhook: the aiohttp Python package is required (it comes with ansible-rulebook)")
    if options["secret"] is None:
        LOGGER.warning("git_webhook: insecure mode: accepting UNSIGNED webhooks on %s:%d", options["host"], options["port"])
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _make_handler(queue, options))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    guards = set()
    server = None
    try:
        server = await asyncio.get_running_loop().create_server(
            lambda: _Guard(runner.server(), guards, options), options["host"], options["port"], reuse_address=True)
        LOGGER.info("git_webhook: listening on http://%s:%d%s", options["host"], options["port"], options["path"])
        await asyncio.Future()
    finally:
        if server is not None:
            server.close()
        await runner.cleanup()
