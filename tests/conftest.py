"""Pytest fixtures shared by the unit and integration suites.

Integration tests get real sshd hosts (``tests/hosts.py``) and run the real
``ansible-playbook``/``ansible`` of this virtualenv against them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hosts import REPO_ROOT, Fleet, collections_path  # noqa: E402

# Unit tests import the collection as ansible_collections.gitdeploy.rollout.
sys.path.insert(0, str(collections_path()))

BIN = Path(sys.executable).parent


def ansible_env(**extra: str) -> dict:
    """Environment for an ansible command run by a test."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO_ROOT / "tests" / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(collections_path()),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


@dataclass
class Deployment:
    """A fresh inventory over the session's sshd hosts: every host gets an empty root."""

    fleet: Fleet
    inventory: Path
    workdir: Path

    def root(self, host: str) -> Path:
        return self.workdir / "roots" / host / "root"

    def hosts(self, group: str) -> list:
        return [h.name for h in self.fleet.group(group)]

    def ansible(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        return _run([str(BIN / "ansible"), "-i", str(self.inventory), *args], check, env)

    def playbook(self, playbook: str | Path, *args: str, extra_vars: dict | None = None,
                 check: bool = True, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), str(playbook), *args]
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        return _run(cmd, check, env, cwd)


def snapshot(paths) -> dict:
    """Every file, link and directory under ``paths`` with its content hash."""
    state = {}
    for base in paths:
        for dirpath, dirnames, filenames in os.walk(base):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                if path.is_symlink():
                    state[str(path)] = "link:" + os.readlink(path)
                elif path.is_file():
                    state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                else:
                    state[str(path)] = "dir"
    return state


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _run(cmd: list, check: bool, env: dict, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(**env), cwd=cwd,
                          stdin=subprocess.DEVNULL, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def ssh_fleet(tmp_path_factory):
    """sshd test hosts for the whole session: staging (1 host) and prod (3 hosts)."""
    fleet = Fleet(base=tmp_path_factory.mktemp("fleet")).up()
    yield fleet
    fleet.down()


@pytest.fixture
def deployment(ssh_fleet, tmp_path) -> Deployment:
    """The session's hosts with fresh, empty roots for this test."""
    inventory = ssh_fleet.inventory(tmp_path / "roots")
    return Deployment(fleet=ssh_fleet, inventory=inventory, workdir=tmp_path)
