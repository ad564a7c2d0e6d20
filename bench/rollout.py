"""Benchmark of a rollout's cost: remote module runs per host, tasks, wall time and
controller CPU of a deploy of a change, a revert and a status, side by side with
playbooks of plain ``ansible.builtin.ping`` tasks on the same hosts, in one run.

Starts its own sshd hosts (tests/hosts.py's Fleet, group ``prod``) and an application
(tests/apprepo.py; ``--hooks sample`` gives it a recording hook in every phase, ``none``
none at all, like most applications). Every host's Python is a wrapper that logs each
start: that count is the number of remote module runs (each starts Python on the
target, plus ssh). Per cycle, on fresh roots: a first deploy, ``--change`` commits, then
the measured runs: ping x4, the deploy of the change, ping x3, the revert, ping x1, the
status. Prints the medians and the ratios the rollout engine issue asks for.

The first deploy is measured too, next to what a peer role does for one: each target
clones the upstream over ``file://`` (``ansible.builtin.git``) and a symlink switches
(``--repo PATH`` deploys a clone of that repository, e.g. pallets/flask, instead of the
generated application).

    .venv/bin/python bench/rollout.py [--hosts 10] [--repeat 3] [--hooks none] [--repo PATH] [--log DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
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

WRAPPER = """#!/bin/sh
echo x >> {log}
exec {python} "$@"
"""


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


def peer_playbook(path: Path, upstream: Path) -> Path:
    """A peer role's first deploy: every target clones the upstream itself, then a symlink switches."""
    path.write_text(f"""- name: A first deploy the peers' way (each target clones over file://)
  hosts: prod
  gather_facts: false
  tasks:
    - name: Clone the release
      ansible.builtin.git:
        repo: "file://{upstream}"
        dest: "{{{{ git_deploy_root }}}}/peer/releases/first"
        version: main
    - name: Switch current
      ansible.builtin.file:
        src: "{{{{ git_deploy_root }}}}/peer/releases/first"
        dest: "{{{{ git_deploy_root }}}}/peer/current"
        state: link
""")
    return path


def ping_playbook(path: Path, count: int) -> Path:
    tasks = "".join(f"    - name: Ping {i + 1}\n      ansible.builtin.ping:\n" for i in range(count))
    path.write_text(f"- name: {count} pings\n  hosts: prod\n  gather_facts: false\n  tasks:\n{tasks}")
    return path


class Bench:
    def __init__(self, base: Path, hosts: int, hook_mode: str, log: Path | None):
        self.base, self.log = base, log
        self.hostsmod, self.apprepo = load("hosts"), load("apprepo")
        self.collections = self.hostsmod.collections_path()
        self.fleet = self.hostsmod.Fleet(base=base / "fleet", groups={"prod": hosts}).up()
        self.hook_mode = hook_mode
        self.names = [h.name for h in self.fleet.group("prod")]

    def cycle(self, index: int, repo: Path | None = None):
        base = self.base / f"cycle{index}"
        inventory = self.fleet.inventory(base / "roots")
        data = json.loads(inventory.read_text())
        self.counts = base / "runs"
        self.counts.mkdir(parents=True)
        python = data["all"]["children"]["prod"]["hosts"][self.names[0]]["ansible_python_interpreter"]
        for name, hostvars in data["all"]["children"]["prod"]["hosts"].items():
            wrapper = base / f"python-{name}"
            wrapper.write_text(WRAPPER.format(log=self.counts / name, python=python))
            wrapper.chmod(0o755)
            hostvars["ansible_python_interpreter"] = str(wrapper)
        inventory.write_text(json.dumps(data))
        self.inventory = inventory
        if repo is None:
            self.app = self.apprepo.AppRepo.create(base / "src", hooks=self.hook_mode == "sample")
        else:
            self.app = self.clone(repo, base / "src")

    def clone(self, repo: Path, base: Path):
        """An application that is a clone of ``repo`` (its default branch as main), with an upstream."""
        app = self.apprepo.AppRepo(base / "app", base / "upstream.git")
        base.mkdir(parents=True)
        subprocess.run(["git", "clone", "-q", "--bare", "--single-branch", str(repo), str(app.upstream)], check=True)
        subprocess.run(["git", "--git-dir", str(app.upstream), "branch", "-m", "main"], check=False,
                       capture_output=True)
        subprocess.run(["git", "--git-dir", str(app.upstream), "symbolic-ref", "HEAD", "refs/heads/main"], check=True)
        subprocess.run(["git", "clone", "-q", str(app.upstream), str(app.path)], check=True)
        return app

    def runs_per_host(self) -> dict:
        return {name: len((self.counts / name).read_text().split()) if (self.counts / name).exists() else 0
                for name in self.names}

    def run(self, what: str, playbook: str, **extra: str) -> dict:
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "tests" / "ansible.cfg"),
                   ANSIBLE_COLLECTIONS_PATH=str(self.collections), ANSIBLE_NOCOLOR="1",
                   SYNC_LOG=str(self.app.path.parent / "sync.log"), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), playbook]
        for key, value in extra.items():
            cmd += ["-e", f"{key}={value}"]
        before = self.runs_per_host()
        cpu0, wall0 = children_cpu(), time.monotonic()
        proc = subprocess.run(cmd, cwd=self.app.path, env=env, capture_output=True, text=True, check=False)
        wall, cpu = time.monotonic() - wall0, children_cpu() - cpu0
        if self.log is not None:
            self.log.mkdir(parents=True, exist_ok=True)
            (self.log / f"{what.replace(' ', '_')}-{time.strftime('%H%M%S')}-{os.getpid()}.log").write_text(proc.stdout)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
        after = self.runs_per_host()
        runs = [after[h] - before[h] for h in self.names]
        return {"wall": wall, "cpu_per_host": cpu / len(self.names), "runs": max(runs), "runs_min": min(runs),
                "tasks": sum(1 for line in proc.stdout.splitlines() if line.startswith("TASK ["))}

    def down(self):
        self.fleet.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=10, help="target hosts (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="cycles to measure (default 3)")
    parser.add_argument("--change", type=int, default=39, help="commits in the deployed change (default 39)")
    parser.add_argument("--hooks", choices=["none", "sample"], default="none",
                        help="none: no hooks; sample: a recording hook in every phase")
    parser.add_argument("--repo", type=Path, help="deploy a clone of this repository (default: a generated one)")
    parser.add_argument("--log", type=Path, help="keep each run's ansible-playbook output in this directory")
    options = parser.parse_args()

    samples: dict = {}
    with tempfile.TemporaryDirectory(prefix="gitdeploy-bench-") as tmp:
        pings = {n: str(ping_playbook(Path(tmp) / f"ping{n}.yml", n)) for n in (1, 3, 4)}
        bench = Bench(Path(tmp), options.hosts, options.hooks, options.log)
        try:
            for cycle in range(options.repeat):
                bench.cycle(cycle, options.repo)
                peer = str(peer_playbook(Path(tmp) / f"peer{cycle}.yml", bench.app.upstream))
                samples.setdefault("peer first deploy", []).append(bench.run("peer first deploy", peer))
                samples.setdefault("deploy (first)", []).append(
                    bench.run("deploy (first)", "gitdeploy.rollout.deploy", env="prod"))
                for number in range(options.change):
                    bench.app.change("app.txt", f"version {number + 2}\n", f"change {number + 2}")
                measured = [
                    ("ping x4", pings[4], {}),
                    ("deploy (a change)", "gitdeploy.rollout.deploy", {"env": "prod"}),
                    ("ping x3", pings[3], {}),
                    ("revert", "gitdeploy.rollout.revert", {"env": "prod"}),
                    ("ping x1", pings[1], {}),
                    ("status", "gitdeploy.rollout.status", {"env": "prod"}),
                ]
                for name, playbook, extra in measured:
                    samples.setdefault(name, []).append(bench.run(name, playbook, **extra))
        finally:
            bench.down()

    median = {name: {key: statistics.median(s[key] for s in runs) for key in runs[0]} for name, runs in samples.items()}
    print(f"{options.hosts} hosts, hooks: {options.hooks}, {options.repeat} cycle(s), medians")
    print(f"{'run':<20}{'runs/host':>10}{'tasks':>7}{'wall s':>9}{'ctrl CPU s/host':>17}")
    for name, m in median.items():
        print(f"{name:<20}{m['runs']:>10.0f}{m['tasks']:>7.0f}{m['wall']:>9.2f}{m['cpu_per_host']:>17.2f}")
    print(f"deploy / ping x4: {median['deploy (a change)']['wall'] / median['ping x4']['wall']:.2f}  (issue: <= 1.4)")
    print(f"revert / ping x3: {median['revert']['wall'] / median['ping x3']['wall']:.2f}  (issue: <= 1.2)")
    print(f"status / ping x1: {median['status']['wall'] / median['ping x1']['wall']:.2f}")
    first = median["deploy (first)"]["wall"]
    print(f"first deploy / peer first deploy: {first / median['peer first deploy']['wall']:.2f}; "
          f"first deploy - deploy of a change: {first - median['deploy (a change)']['wall']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
