"""Real SSH test hosts for gitdeploy.rollout: one ``sshd`` per host on 127.0.0.1.

Every host has its own port, host key, ``authorized_keys`` (a client key made at
start-up, never committed) and its own ``git_deploy_root``.  Nothing relies on
hosts sharing a directory: a test that wants fresh hosts asks for a fresh
inventory, which gives every host a new, empty root.

Used by the pytest fixtures in ``tests/conftest.py`` and, for humans, as a CLI::

    python tests/hosts.py up     # start the hosts, print the inventory path
    python tests/hosts.py down   # stop them and remove their directory
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GROUPS = {"staging": 1, "prod": 3}
DEFAULT_BASE = REPO_ROOT / ".build" / "hosts"
START_TIMEOUT = 15.0


def collections_path() -> Path:
    """A collections path where ``gitdeploy.rollout`` is this checkout."""
    base = REPO_ROOT / ".build" / "collections"
    link = base / "ansible_collections" / "gitdeploy" / "rollout"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    return base


def ensure_sshd() -> str:
    """Return the sshd binary, installing openssh-server through apt if missing."""
    for candidate in (shutil.which("sshd"), "/usr/sbin/sshd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("sshd is not installed: install openssh-server")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "openssh-server", "openssh-client"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )
    return "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, deadline: float) -> bool:
    """Poll until sshd accepts connections; False if it exited first."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                if conn.recv(4).startswith(b"SSH-"):
                    return True
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"sshd on port {port} did not come up in {START_TIMEOUT}s")


@dataclass
class Host:
    name: str
    group: str
    directory: Path
    port: int = 0
    pid: int = 0

    @property
    def config(self) -> Path:
        return self.directory / "sshd_config"


@dataclass
class Fleet:
    """A set of sshd test hosts under ``base``, grouped like an inventory."""

    base: Path
    groups: dict = field(default_factory=lambda: dict(DEFAULT_GROUPS))
    hosts: list = field(default_factory=list)

    @property
    def client_key(self) -> Path:
        return self.base / "id_ed25519"

    @property
    def state_file(self) -> Path:
        return self.base / "fleet.json"

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def group(self, name: str) -> list:
        return [h for h in self.hosts if h.group == name]

    # -- lifecycle ---------------------------------------------------------
    def up(self) -> "Fleet":
        sshd = ensure_sshd()
        self.base.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        _keygen(self.client_key)
        authorized = self.base / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        self.hosts = [
            Host(f"{group}{i}", group, self.base / f"{group}{i}")
            for group, count in self.groups.items()
            for i in range(1, count + 1)
        ]
        try:
            for host in self.hosts:
                self._start(sshd, host, authorized)
        except Exception:
            self.down()
            raise
        self.state_file.write_text(json.dumps({
            "groups": self.groups,
            "hosts": [{"name": h.name, "group": h.group, "port": h.port, "pid": h.pid}
                      for h in self.hosts],
        }))
        return self

    def _start(self, sshd: str, host: Host, authorized: Path) -> None:
        host.directory.mkdir(parents=True, exist_ok=True)
        key = host.directory / "ssh_host_ed25519_key"
        _keygen(key)
        for _attempt in range(5):
            host.port = _free_port()
            host.config.write_text(_sshd_config(host, key, authorized))
            log = open(host.directory / "sshd.log", "ab")  # noqa: SIM115 (kept by sshd)
            proc = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(host.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )
            log.close()
            if _wait_listening(host.port, proc, time.monotonic() + START_TIMEOUT):
                host.pid = proc.pid
                (host.directory / "sshd.pid").write_text(str(proc.pid))
                return
        raise RuntimeError(f"sshd for {host.name} failed: see {host.directory}/sshd.log")

    def down(self) -> None:
        """Stop every sshd of this fleet and wait for it; remove the directory."""
        pids = [h.pid for h in self.hosts if h.pid]
        if not pids and self.state_file.exists():
            pids = [h["pid"] for h in json.loads(self.state_file.read_text())["hosts"]]
        for pid in pids:
            _terminate(pid)
        shutil.rmtree(self.base, ignore_errors=True)

    @classmethod
    def load(cls, base: Path) -> "Fleet":
        state = json.loads((base / "fleet.json").read_text())
        fleet = cls(base=base, groups=state["groups"])
        fleet.hosts = [Host(h["name"], h["group"], base / h["name"], h["port"], h["pid"])
                       for h in state["hosts"]]
        return fleet

    # -- inventory ---------------------------------------------------------
    def inventory(self, roots: Path, path: Path | None = None, extra_vars: dict | None = None) -> Path:
        """Write an inventory giving every host a fresh root under ``roots``.

        Returns the inventory path.  Each call with a new ``roots`` directory gives
        every host an empty ``git_deploy_root``: tests never share state.
        """
        roots.mkdir(parents=True, exist_ok=True)
        children = {}
        for host in self.hosts:
            root = roots / host.name / "root"
            tmp = roots / host.name / "tmp"
            tmp.mkdir(parents=True, exist_ok=True)
            # Connection variables go on each host, not on "all": the implicit
            # localhost reads "all" vars, and controller-side tasks run there.
            children.setdefault(host.group, {"hosts": {}})["hosts"][host.name] = dict(
                self.connection_vars(),
                ansible_port=host.port,
                git_deploy_root=str(root),
                ansible_remote_tmp=str(tmp),
            )
        inventory = {"all": {"vars": dict(extra_vars or {}), "children": children}}
        path = path or roots / "inventory.json"
        path.write_text(json.dumps(inventory, indent=2))
        return path

    def connection_vars(self) -> dict:
        return {
            "ansible_host": "127.0.0.1",
            "ansible_user": getpass.getuser(),
            "ansible_connection": "ssh",
            "ansible_ssh_private_key_file": str(self.client_key),
            "ansible_ssh_common_args": (
                "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                "-o LogLevel=ERROR"
            ),
            "ansible_python_interpreter": _target_python(),
        }


def _target_python() -> str:
    """Targets use the system Python, as a real server would."""
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("no python3 for the test hosts")


def _keygen(path: Path) -> None:
    if not path.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gitdeploy-test", "-f", str(path)],
            check=True,
        )


def _sshd_config(host: Host, key: Path, authorized: Path) -> str:
    return "\n".join([
        f"Port {host.port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {key}",
        f"AuthorizedKeysFile {authorized}",
        f"PidFile {host.directory / 'sshd.pid.sshd'}",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "Subsystem sftp internal-sftp",
        "MaxStartups 200:30:400",
        "MaxSessions 200",
        "LogLevel ERROR",
        # Bash sources ~/.bashrc in a top-level (SHLVL 1) shell that sshd starts. On
        # machines whose bashrc runs `pyenv init` (CI's among them) that costs 0.12 s
        # of CPU per session, a third of each task's cost: these hosts stand for
        # servers, whose sessions do not start the controller user's tooling.
        "SetEnv SHLVL=1",
        "",
    ])


def _terminate(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child (CLI 'down'): probe instead
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            done = 0
        if done:
            return
        time.sleep(0.01)
    os.killpg(pid, signal.SIGKILL)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("action", choices=["up", "down", "inventory"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_BASE, help="where the hosts live")
    parser.add_argument("--group", action="append", default=[], metavar="NAME=COUNT",
                        help="a host group and its size (default: staging=1 prod=3)")
    args = parser.parse_args(argv)
    base = args.dir.resolve()
    if args.action == "up":
        groups = dict(g.split("=", 1) for g in args.group) or DEFAULT_GROUPS
        if (base / "fleet.json").exists():
            Fleet.load(base).down()
        fleet = Fleet(base=base, groups={k: int(v) for k, v in groups.items()}).up()
        path = fleet.inventory(base / "roots", base / "inventory.json")
        for host in fleet.hosts:
            print(f"{host.name:10} {host.group:8} 127.0.0.1:{host.port}")
        print(path)
    elif args.action == "down":
        if (base / "fleet.json").exists():
            Fleet.load(base).down()
        else:
            shutil.rmtree(base, ignore_errors=True)
    else:
        print(base / "inventory.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
