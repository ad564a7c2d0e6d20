"""Benchmark of one rollout's cost: deploy, deploy a change, revert (3 prod hosts).

Starts its own sshd hosts (tests/hosts.py's Fleet) and a sample application
(tests/apprepo.py, hooks in every phase), then runs the real playbooks and prints,
per run: wall time, controller CPU (ansible-playbook, its workers and ssh clients),
machine CPU (every process of this machine: the controller plus the targets'
sshd sessions, remote Python, hooks and git; run it on an idle machine), the
number of tasks and of per-host task results (each result is one worker process
forked by the controller).  Controller and targets are this one machine, so CPU
is the number that matters on a busy CI runner; wall time is shown for reference.

    .venv/bin/python bench/rollout.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


def load(name: str):
    """A module of tests/ (not a package), imported by path."""
    spec = importlib.util.spec_from_file_location(f"gitdeploy_bench_{name}", REPO_ROOT / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (user, nice, system, irq, softirq)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:8]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields)
    return (user + nice + system + irq + softirq) / TICK


def run(collections: Path, inventory: Path, app, playbook: str, log: Path | None, **extra: str) -> dict:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "tests" / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1",
               SYNC_LOG=str(app.path.parent / "sync.log"),
               PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    args = [f"{key}={value}" for key, value in extra.items()]
    cmd = [str(BIN / "ansible-playbook"), "-i", str(inventory), f"gitdeploy.rollout.{playbook}"]
    for arg in args:
        cmd += ["-e", arg]
    cpu0, machine0, wall0 = children_cpu(), machine_cpu(), time.monotonic()
    proc = subprocess.run(cmd, cwd=app.path, env=env, capture_output=True, text=True, check=False)
    wall, cpu, machine = time.monotonic() - wall0, children_cpu() - cpu0, machine_cpu() - machine0
    if log is not None:
        log.mkdir(parents=True, exist_ok=True)
        (log / f"{playbook}-{time.strftime('%H%M%S')}-{os.getpid()}.log").write_text(proc.stdout)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    lines = proc.stdout.splitlines()
    results = sum(1 for line in lines if line.split(":", 1)[0] in ("ok", "changed", "skipping", "failed", "fatal", "included"))
    return {"wall": wall, "controller": cpu, "machine": machine,
            "tasks": sum(1 for line in lines if line.startswith("TASK [")), "results": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="rollout cycles to measure (default 3)")
    parser.add_argument("--log", type=Path, help="keep each run's ansible-playbook output in this directory")
    options = parser.parse_args()

    hosts, apprepo = load("hosts"), load("apprepo")
    collections = hosts.collections_path()
    runs = {"deploy (first)": [], "deploy (a change)": [], "revert": []}
    with tempfile.TemporaryDirectory(prefix="gitdeploy-bench-") as tmp:
        fleet = hosts.Fleet(base=Path(tmp) / "fleet").up()
        try:
            for cycle in range(options.repeat):
                base = Path(tmp) / f"cycle{cycle}"
                inventory = fleet.inventory(base / "roots")
                app = apprepo.AppRepo.create(base / "src")
                runs["deploy (first)"].append(run(collections, inventory, app, "deploy", options.log, env="prod"))
                app.change("app.txt", "version 2\n", "version 2")
                runs["deploy (a change)"].append(run(collections, inventory, app, "deploy", options.log, env="prod"))
                runs["revert"].append(run(collections, inventory, app, "revert", options.log, env="prod"))
        finally:
            fleet.down()

    print(f"{'run (3 hosts)':<20}{'wall s':>9}{'ctrl CPU s':>12}{'machine CPU s':>15}{'tasks':>7}{'results':>9}")
    for name, samples in runs.items():
        median = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
        print(f"{name:<20}{median['wall']:>9.1f}{median['controller']:>12.1f}{median['machine']:>15.1f}"
              f"{median['tasks']:>7.0f}{median['results']:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
