"""Helpers of the reliability suite (tests/integration/test_reliability.py).

* :class:`Rollouts` starts the real ``ansible-playbook`` of the collection's playbooks,
  blocking (:meth:`Rollouts.run`) or in the background (:meth:`Rollouts.start`, each in
  its own process group so a test can ``kill -9`` the whole controller side);
* :class:`Control` steers the *control hook* that :func:`make_app` adds to the sample
  application in every phase: the test plants files in ``<roots>/ctl`` and the hook

  - ``hold-<phase>[-<host>]``: writes ``reached-<phase>-<host>`` and blocks until
    ``go``, ``go-<phase>`` or ``go-<phase>-<host>`` exists, then writes
    ``released-<phase>-<host>`` (a test never sleeps: it waits for ``reached-*`` with a
    deadline, acts, then plants ``go``);
  - ``hang-<phase>-<host>``: writes its pid to ``hung-<phase>-<host>`` and never ends;
  - ``flood-<phase>-<host>`` (a byte count): writes that much output;

  and always records its ``id -u`` in ``uid-<phase>-<host>``;
* state readers (:func:`live`, :func:`history`, :func:`lock_record`,
  :func:`complete_release`) read the roots directly: the test hosts
  are sshd instances on this machine.

Every wait has a deadline and says what it waited for when it expires.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from apprepo import PHASES, AppRepo
from conftest import BIN, ansible_env

# Generous: the suite runs on two loaded cores, several ansible-playbook at once.
DEADLINE = float(os.environ.get("GITDEPLOY_TEST_DEADLINE", "420"))

CONTROL_HOOK = r"""#!/bin/sh
# Test control hook (tests/integration/reliability_helpers.py): files in <roots>/ctl steer it.
ctl="$GIT_DEPLOY_ROOT/../../ctl"
[ -d "$ctl" ] || exit 0
host=$(basename "$(dirname "$GIT_DEPLOY_ROOT")")
p="$GIT_DEPLOY_PHASE"
id -u > "$ctl/uid-$p-$host"
if [ -e "$ctl/flood-$p-$host" ]; then
    yes "flood flood flood flood flood flood flood flood flood flood flood flood flood" \
        | head -c "$(cat "$ctl/flood-$p-$host")"
fi
if [ -e "$ctl/hang-$p-$host" ]; then
    echo $$ > "$ctl/hung-$p-$host"
    exec sleep 100000
fi
if [ -e "$ctl/hold-$p" ] || [ -e "$ctl/hold-$p-$host" ]; then
    echo "$GIT_DEPLOY_ACTION $GIT_DEPLOY_ROLLOUT_TAG" > "$ctl/.reached-$p-$host.$$"
    mv "$ctl/.reached-$p-$host.$$" "$ctl/reached-$p-$host"
    n=0
    until [ -e "$ctl/go" ] || [ -e "$ctl/go-$p" ] || [ -e "$ctl/go-$p-$host" ]; do
        n=$((n + 1))
        # Never outlive a broken test by much: give up after ~10 minutes.
        if [ "$n" -gt 12000 ]; then echo "control hook: nobody said go" >&2; exit 9; fi
        sleep 0.05
    done
    : > "$ctl/released-$p-$host"
fi
exit 0
"""


def make_app(base: Path, envs=("staging", "prod"), big: int = 0) -> AppRepo:
    """The sample application with the control hook in every phase (committed and pushed).

    ``big``: bytes of incompressible data in ``big.bin`` (a slow transfer).
    """
    app = AppRepo.create(base, envs=envs)
    for phase in PHASES:
        app.write(f"deploy/apps/common/{phase}.005_control", CONTROL_HOOK, mode=0o755)
    if big:
        (app.path / "big.bin").write_bytes(os.urandom(big))
    app.commit("control hooks", push=True)
    return app


# -- running playbooks ----------------------------------------------------------------

@dataclass
class Run:
    """One ansible-playbook process, in its own process group."""

    name: str
    proc: subprocess.Popen
    out: Path
    rc: int | None = None

    @property
    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def poll(self) -> int | None:
        if self.rc is None:
            self.rc = self.proc.poll()
        return self.rc

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            self.rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not finish within {timeout}s\n{self.output[-6000:]}")
        return self.rc

    def kill(self) -> None:
        """kill -9 the controller: ansible-playbook, its workers and their ssh clients.

        Ansible's workers call setsid(), so killing the process group is not enough: a
        worker would finish its task (say, a transfer and the fetch after it) on its own.
        The whole process tree is stopped first (no new children), then killed.
        """
        tree = _process_tree(self.proc.pid)
        while True:
            for pid in tree:
                _signal(pid, signal.SIGSTOP)
            grown = _process_tree(self.proc.pid)
            if set(grown) <= set(tree):
                break
            tree = sorted(set(tree) | set(grown))
        for pid in tree:
            _signal(pid, signal.SIGKILL)
        self.rc = self.proc.wait(timeout=60)

    def __str__(self) -> str:
        return f"{self.name} (rc={self.rc})\n{self.output[-8000:]}"

    def summary(self) -> str:
        """One line: name, exit status and the last error (or the recap)."""
        lines = [line for line in self.output.splitlines() if line.startswith(("fatal:", "[ERROR]", "ERROR!"))]
        last = lines[-1][:1500] if lines else self.output[-300:].replace("\n", " | ")
        return f"{self.name} rc={self.poll()}: {last}"


def _process_tree(root: int) -> list:
    """``root`` and every process descended from it (from /proc)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def describe(runs) -> str:
    runs = list(runs)
    if len(runs) == 1:
        return str(runs[0])
    return "\n".join(r.summary() for r in runs)


@dataclass
class Rollouts:
    """Runs the collection's playbooks from the application checkout against ``inventory``."""

    inventory: Path
    app: AppRepo
    logs: Path
    env: dict = field(default_factory=dict)
    runs: list = field(default_factory=list)

    def _cmd(self, playbook: str, args: tuple, extra_vars: dict) -> list:
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), f"gitdeploy.rollout.{playbook}", *args]
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        return cmd

    def _environ(self) -> dict:
        return ansible_env(
            SYNC_LOG=str(self.app.path.parent / "sync.log"),
            # Each test gets its own bundle cache (a corrupted entry stays in its test).
            XDG_CACHE_HOME=str(self.logs / "cache"),
            ANSIBLE_SHOW_CUSTOM_STATS="true",
            **self.env,
        )

    def start(self, playbook: str, *args: str, name: str | None = None, **extra_vars) -> Run:
        self.logs.mkdir(parents=True, exist_ok=True)
        name = name or f"{len(self.runs):02d}-{playbook}"
        out = self.logs / f"{name}.log"
        with open(out, "wb") as handle:
            proc = subprocess.Popen(self._cmd(playbook, args, extra_vars), cwd=self.app.path, env=self._environ(),
                                    stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        run = Run(name, proc, out)
        self.runs.append(run)
        return run

    def run(self, playbook: str, *args: str, check: bool = True, **extra_vars) -> Run:
        run = self.start(playbook, *args, **extra_vars)
        run.wait()
        if check:
            assert run.rc == 0, str(run)
        return run

    def observe(self, text: str) -> None:
        """Note what a test saw (``<logs>/observations.txt``): for the report, not an assertion."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / "observations.txt", "a") as handle:
            handle.write(text + "\n")

    def cleanup(self) -> None:
        """Kill whatever a failed test left running."""
        for run in self.runs:
            if run.poll() is None:
                run.kill()


# -- the control hook ---------------------------------------------------------------------

class Control:
    """Files in ``<roots>/ctl`` that steer the control hook (see the module docstring)."""

    def __init__(self, roots: Path):
        self.dir = roots / "ctl"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _touch(self, name: str, text: str = "") -> None:
        (self.dir / name).write_text(text)

    def hold(self, phase: str, host: str | None = None) -> None:
        self._touch(f"hold-{phase}" + (f"-{host}" if host else ""))

    def hang(self, phase: str, host: str) -> None:
        self._touch(f"hang-{phase}-{host}")

    def flood(self, phase: str, host: str, size: int) -> None:
        self._touch(f"flood-{phase}-{host}", str(size))

    def go(self) -> None:
        self._touch("go")

    def reached(self, phase: str, host: str) -> str | None:
        path = self.dir / f"reached-{phase}-{host}"
        return path.read_text().strip() if path.exists() else None

    def uid(self, phase: str, host: str) -> int | None:
        path = self.dir / f"uid-{phase}-{host}"
        return int(path.read_text()) if path.exists() else None

    def hung_pid(self, phase: str, host: str) -> int | None:
        path = self.dir / f"hung-{phase}-{host}"
        return int(path.read_text()) if path.exists() and path.read_text().strip() else None

    def reset(self, deadline: float = DEADLINE) -> None:
        """Let every held hook go (also those a killed controller left behind on the targets),
        wait until they did, then forget every instruction: the next run starts clean."""
        self.go()
        reached = [p.name[len("reached-"):] for p in self.dir.glob("reached-*")]
        wait_for(lambda: all((self.dir / f"released-{r}").exists() for r in reached),
                 "the held hooks to let go", deadline=deadline)
        for path in self.dir.iterdir():
            if path.name != "go" and not path.name.startswith(("uid-", ".")):
                path.unlink()
        (self.dir / "go").unlink()

    def wait_reached(self, phase: str, hosts, runs=(), deadline: float = DEADLINE) -> None:
        """Wait until the hook of ``phase`` blocks on every one of ``hosts``.

        Fails early, with their output, if every run in ``runs`` has ended (none of them
        can get there any more).
        """
        wait_for(lambda: all(self.reached(phase, h) is not None for h in hosts),
                 f"the {phase} hook to be reached on {', '.join(hosts)}", runs, deadline)


def wait_for(condition, what: str, runs=(), deadline: float = DEADLINE, interval: float = 0.01):
    """Poll ``condition`` until it is true; fail after ``deadline`` seconds or when all ``runs`` ended."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if runs and all(r.poll() is not None for r in runs):
            value = condition()
            if value:
                return value
            raise AssertionError(f"every run ended before {what}:\n" + describe(runs))
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}:\n" + describe(runs))
        time.sleep(interval)


# -- inventories ------------------------------------------------------------------------

def write_inventory(fleet, roots: Path, groups: dict, path: Path | None = None, extra_vars: dict | None = None,
                    host_vars: dict | None = None) -> Path:
    """An inventory over ``fleet``'s sshd hosts with groups of *aliases*.

    ``groups``: ``{group: {alias: fleet host name}}``; an alias gets the fleet host's port
    and its own root ``<roots>/<alias>/root``. Two aliases of one fleet host are two
    deploy roots on one machine (two applications on one server).
    ``host_vars``: extra variables per alias.
    """
    children = {}
    for group, members in groups.items():
        hosts = {}
        for alias, real in members.items():
            tmp = roots / alias / "tmp"
            tmp.mkdir(parents=True, exist_ok=True)
            hosts[alias] = dict(fleet.connection_vars(), ansible_port=fleet.host(real).port,
                                git_deploy_root=str(roots / alias / "root"), ansible_remote_tmp=str(tmp),
                                **(host_vars or {}).get(alias, {}))
        children[group] = {"hosts": hosts}
    path = path or roots / "inventory.json"
    path.write_text(json.dumps({"all": {"vars": dict(extra_vars or {}), "children": children}}, indent=2))
    return path


# -- reading the targets ----------------------------------------------------------------

def live(root: Path) -> str | None:
    current = root / "current"
    return os.path.basename(os.readlink(current)) if current.is_symlink() else None


def complete_release(root: Path) -> str:
    """The live tag, asserting that ``current`` is a complete release: a symlink to
    ``releases/<tag>`` whose tree has its ``.deploy`` file naming that tag."""
    current = root / "current"
    assert current.is_symlink(), f"{current} is not a symlink"
    target = os.readlink(current)
    tag = os.path.basename(target)
    assert os.path.normpath(os.path.join(root, target)) == str(root / "releases" / tag), target
    release = root / "releases" / tag
    assert release.is_dir(), f"{current} -> {target}, which does not exist"
    deploy = (release / ".deploy").read_text()
    assert f"tag: {tag}" in deploy, deploy
    assert (release / "app.txt").is_file()
    return tag


def history(root: Path) -> list:
    path = root / ".git-deploy" / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def lock_path(root: Path, lock_dir: Path | None = None) -> Path:
    return (lock_dir or root / ".git-deploy") / "lock"


def lock_record(root: Path, lock_dir: Path | None = None) -> dict | None:
    path = lock_path(root, lock_dir)
    return json.loads(path.read_text()) if path.exists() else None


def expire_lock(root: Path) -> dict:
    """Make the lock on ``root`` look like a dead rollout's whose TTL ran out."""
    path = lock_path(root)
    record = json.loads(path.read_text())
    record.update(created="2000-01-01T00:00:00Z", expires="2000-01-01T01:00:00Z")
    path.write_text(json.dumps(record))
    return record


def rollout_tags(app: AppRepo, prefix: str = "prod") -> list:
    """Rollout tags of ``prefix`` in the checkout and upstream (markers excluded), sorted."""
    names = set(app.tags()) | set(app.upstream_tags())
    return sorted(t for t in names if t.startswith(prefix + "-") and not t.endswith("_reverted"))


def diff_snapshots(before: dict, after: dict) -> list:
    keys = sorted(set(before) | set(after))
    return [f"{k}: {before.get(k, 'absent')} -> {after.get(k, 'absent')}"
            for k in keys if before.get(k) != after.get(k)]


def world_writable(paths) -> list:
    """Those of ``paths`` (files and directories, recursively for directories) writable by others."""
    found = []
    for base in paths:
        base = Path(base)
        candidates = [base]
        if base.is_dir() and not base.is_symlink():
            for dirpath, dirnames, filenames in os.walk(base):
                candidates += [Path(dirpath) / n for n in dirnames + filenames]
        for path in candidates:
            if path.is_symlink() or not path.exists():
                continue
            if path.stat().st_mode & 0o002:
                found.append(f"{path} {oct(path.stat().st_mode & 0o7777)}")
    return found
