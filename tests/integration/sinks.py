"""Local sinks for the announcement tests, on 127.0.0.1 only: an HTTP server that
records webhook posts, an SMTP server (aiosmtpd) that records mail and logins,
a port nobody listens on, and community.general (for community.general.mail)
in a test-only collections path, taken from the ``ansible`` package on PyPI.

Every sink keeps what it received in a queue; ``get()`` waits for the next item
with a deadline, ``drain()`` takes what is there (ansible-playbook has finished
by then: the webhook and the mail were acknowledged after they were queued).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from hosts import REPO_ROOT

# community.general comes from the "ansible" community package, the release made
# for the pinned ansible-core (ansible 14.x requires ansible-core ~= 2.21.5).
ANSIBLE_PACKAGE = "ansible==14.5.0"
TEST_COLLECTIONS = REPO_ROOT / ".build" / "test-collections"
WHEELS = REPO_ROOT / ".build" / "wheels"
DEADLINE = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections (bound once, then released)."""
    return free_port()


def _drain(items: queue.Queue) -> list:
    out = []
    while True:
        try:
            out.append(items.get_nowait())
        except queue.Empty:
            return out


# -- HTTP ---------------------------------------------------------------------

@dataclass
class Post:
    path: str
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8"))


class HttpSink:
    """An HTTP server on 127.0.0.1 that answers every POST with ``status`` and records it."""

    def __init__(self, status: int = 200):
        self.status = status
        self.posts: queue.Queue = queue.Queue()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                sink.posts.put(Post(self.path, dict(self.headers.items()), body))
                self.send_response(sink.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, timeout: float = DEADLINE) -> Post:
        return self.posts.get(timeout=timeout)

    def drain(self) -> list:
        return _drain(self.posts)

    def __enter__(self) -> "HttpSink":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=DEADLINE)


# -- SMTP ---------------------------------------------------------------------

@dataclass
class Mail:
    sender: str
    recipients: list
    data: bytes
    logins: list = field(default_factory=list)

    @property
    def message(self):
        return message_from_bytes(self.data, policy=policy.default)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        message = self.message
        part = message.get_body(preferencelist=("plain",)) if message.is_multipart() else message
        return part.get_content()


class SmtpSink:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that accepts any login, without TLS, and records mail."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.mails: queue.Queue = queue.Queue()
        self.logins: list = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
                sink.mails.put(Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                                    list(sink.logins)))
                return "250 Message accepted for delivery"

        def authenticator(server, session, envelope, mechanism, auth_data):
            login = getattr(auth_data, "login", b"") or b""
            password = getattr(auth_data, "password", b"") or b""
            sink.logins.append((mechanism, login.decode(), password.decode()))
            return AuthResult(success=True)

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     authenticator=authenticator, auth_require_tls=False)

    def get(self, timeout: float = DEADLINE) -> Mail:
        return self.mails.get(timeout=timeout)

    def drain(self) -> list:
        return _drain(self.mails)

    def __enter__(self) -> "SmtpSink":
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


# -- community.general ---------------------------------------------------------

def _mail_module(base: Path) -> Path:
    return base / "ansible_collections" / "community" / "general" / "plugins" / "modules" / "mail.py"


def community_general(base: Path = TEST_COLLECTIONS) -> Path:
    """A collections path holding community.general; made once from the ``ansible`` wheel.

    ``pip download --no-deps`` fetches the wheel (about 50 MB, kept in .build/wheels) and
    only ``ansible_collections/community/general`` is unpacked; nothing is installed into
    the virtualenv, so no other test sees the collection.
    """
    if _mail_module(base).is_file():
        return base
    base.parent.mkdir(parents=True, exist_ok=True)
    with open(base.parent / ".test-collections.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers: one download
        if _mail_module(base).is_file():
            return base
        WHEELS.mkdir(parents=True, exist_ok=True)
        name = ANSIBLE_PACKAGE.replace("==", "-")
        wheels = sorted(WHEELS.glob(f"{name}-*.whl"))
        if not wheels:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                 "--only-binary=:all:", "-d", str(WHEELS), ANSIBLE_PACKAGE],
                capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
            wheels = sorted(WHEELS.glob(f"{name}-*.whl"))
            if proc.returncode != 0 or not wheels:
                raise RuntimeError(f"cannot download {ANSIBLE_PACKAGE} for community.general "
                                   f"(pip exited {proc.returncode}): {proc.stderr[-2000:]}")
        prefix = "ansible_collections/community/general/"
        staging = Path(tempfile.mkdtemp(prefix="test-collections-", dir=base.parent))
        try:
            with zipfile.ZipFile(wheels[-1]) as wheel:
                wheel.extractall(staging, [n for n in wheel.namelist() if n.startswith(prefix)])
            if not _mail_module(staging).is_file():
                raise RuntimeError(f"{wheels[-1]} has no community.general mail module")
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(base)
            os.replace(staging, base)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return base
