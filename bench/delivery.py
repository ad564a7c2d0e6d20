"""Benchmark of git object delivery (gitdeploy.rollout.git_deploy_push).

Starts its own sshd hosts (tests/hosts.py's Fleet), generates a repository with
real-ish history (``--commits`` commits over a tree of ``--files`` files, a few files
changing per commit, packed as a clone would be), then with ansible-playbook:

1. builds the bundles alone, each in a process of its own: the first delivery (all of
   ``v1``) and an incremental one (``v1`` over ``v1~39``), timing each and reading its
   peak RSS, next to ``git bundle create`` of the same ranges (the floor);
2. delivers tag ``v1`` to every host (first deploy: the whole history);
3. commits a one-file change, delivers tag ``v2`` (incremental deploy).

``--repo PATH`` (any local clone, e.g. of ansible/ansible) adds step 1 for its HEAD and
``HEAD~39``. Prints bytes, seconds and peak RSS with their ratios to git's.

    .venv/bin/python bench/delivery.py --commits 9000 --files 1000 --hosts 3 [--repo PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def load_hosts():
    """tests/hosts.py, imported by path (it is not a package)."""
    spec = importlib.util.spec_from_file_location("gitdeploy_test_hosts", REPO_ROOT / "tests" / "hosts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


PLAYBOOK = """\
- name: Deliver a rollout tag
  hosts: bench
  gather_facts: false
  tasks:
    - name: Push the tag's objects
      gitdeploy.rollout.git_deploy_push:
        root: "{{ git_deploy_root }}"
        repo: "{{ repo }}"
        tag: "{{ tag }}"
        commit: "{{ commit }}"
        cache_dir: "{{ cache_dir }}"
"""

NOOP = """\
- name: The cost of one task on every host
  hosts: bench
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""

GIT_ENV = dict(GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.com",
               GIT_CONFIG_NOSYSTEM="1")


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True,
                          env=dict(os.environ, **GIT_ENV), check=False)
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
    return proc.stdout.decode().strip()


def generate(repo: Path, commits: int, files: int, seed: int = 7) -> None:
    """A history through git fast-import: every commit edits 1-4 files (a few lines
    each, sometimes appending a function), now and then a new file appears."""
    rng = random.Random(seed)
    dirs = ["src/app", "src/app/api", "src/app/models", "src/lib", "tests", "docs", "config"]
    tree = {}
    for i in range(files):
        path = f"{rng.choice(dirs)}/file_{i:04d}.{rng.choice(['py', 'py', 'md', 'yml'])}"
        tree[path] = [f"line {n} of {path}: {rng.getrandbits(64):x}\n" for n in range(rng.randint(20, 200))]
    stream = []
    when = 1_700_000_000

    def blob(lines):
        data = "".join(lines).encode()
        return b"data %d\n%s\n" % (len(data), data)

    for number in range(commits):
        when += rng.randint(60, 7200)
        if number == 0:
            changed = list(tree)
        else:
            changed = rng.sample(sorted(tree), rng.randint(1, 4))
            for path in changed:
                lines = tree[path]
                for dummy in range(rng.randint(1, 5)):
                    lines[rng.randrange(len(lines))] = f"edited in {number}: {rng.getrandbits(48):x}\n"
                if rng.random() < 0.3:
                    lines.extend(f"def added_{number}_{k}():\n    return {k}\n" for k in range(rng.randint(2, 8)))
            if rng.random() < 0.05:
                path = f"{rng.choice(dirs)}/new_{number}.py"
                tree[path] = [f"new file line {n}\n" for n in range(rng.randint(10, 80))]
                changed.append(path)
        message = f"commit {number}: touch {len(changed)} file(s)".encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(b"committer Bench <bench@example.com> %d +0000\n" % when)
        stream.append(b"data %d\n%s\n" % (len(message), message))
        for path in changed:
            stream.append(b"M 100644 inline %s\n" % path.encode())
            stream.append(blob(tree[path]))
        stream.append(b"\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "fast-import", "--quiet", stdin=b"".join(stream))
    git(repo, "checkout", "-q", "main")
    git(repo, "repack", "-q", "-a", "-d", "-f")  # packed with fresh deltas, as a clone is
    git(repo, "prune-packed")
    git(repo, "remote", "add", "origin", "ssh://git.invalid/nowhere.git")


def playbook(inventory: Path, path: Path, extra: dict, tree: Path) -> float:
    env = dict(os.environ,
               ANSIBLE_CONFIG=str(REPO_ROOT / "tests" / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(load_hosts().collections_path()),
               ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree",
               ANSIBLE_CALLBACK_TREE_DIR=str(tree),
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    start = time.monotonic()
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(path),
                           "-e", json.dumps(extra)], capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"ansible-playbook failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def deploy(inventory: Path, work: Path, repo: Path, tag: str, cache: Path, hosts: list) -> tuple:
    tree = work / f"results-{tag}"
    extra = dict(repo=str(repo), tag=tag, commit=git(repo, "rev-parse", f"{tag}^{{commit}}"),
                 cache_dir=str(cache))
    elapsed = playbook(inventory, work / "push.yml", extra, tree)
    results = {h: json.loads((tree / h).read_text()) for h in hosts}
    return elapsed, results


def floor(repo: Path, out: Path, *revs: str) -> tuple:
    start = time.monotonic()
    git(repo, "bundle", "create", "-q", str(out), *revs)
    return time.monotonic() - start, out.stat().st_size


BUILD = """
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.gitdeploy.rollout.plugins.module_utils import bundle

def status(field):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":")) / 1024

peak = [0.0]
def sample():  # the kernel keeps no high-water mark of anonymous memory: look often
    while True:
        peak[0] = max(peak[0], status("RssAnon"))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
repo = bundle.open_repo(sys.argv[2])
start = time.monotonic()
info = bundle.write_tag_bundle(repo, "bench", sys.argv[3], bundle.known_commits(repo, sys.argv[5:]), sys.argv[4])
seconds = time.monotonic() - start
print(json.dumps(dict(seconds=seconds, objects=info["objects"], rss=status("VmHWM"), anon=peak[0])))
repo.close()
"""


def git_rss(argv: list, cwd: Path) -> tuple:
    """(seconds, peak RSS in MiB or None) of a git command; RSS read by GNU time if there."""
    timer = shutil.which("time") or ("/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None)
    start = time.monotonic()
    if timer is None:
        git(cwd, *argv)
        return time.monotonic() - start, None
    proc = subprocess.run([timer, "-f", "%M", "git", *argv], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, **GIT_ENV), check=True)
    return time.monotonic() - start, int(proc.stderr.strip().splitlines()[-1]) / 1024


def build_table(label: str, repo: Path, work: Path) -> None:
    """Step 1 for ``repo``: first and incremental (``HEAD~39``) bundles, ours and git's."""
    head = git(repo, "rev-parse", "HEAD")
    depth = int(git(repo, "rev-list", "--count", "HEAD"))
    cases = [("first", head, [])]
    if depth > 39:
        cases.append(("incremental (39 commits)", head, [git(repo, "rev-parse", "HEAD~39")]))
    collections = str(load_hosts().collections_path())
    for name, want, haves in cases:
        ours = work / "ours.bundle"
        proc = subprocess.run([sys.executable, "-c", BUILD, collections, str(repo), want, str(ours), *haves],
                              capture_output=True, text=True, check=True)
        got = json.loads(proc.stdout)
        floor_file = work / "git.bundle"
        git_seconds, rss = git_rss(["bundle", "create", "-q", str(floor_file), "HEAD", *["^" + h for h in haves]], repo)
        size, floor_size = ours.stat().st_size, floor_file.stat().st_size
        git_mem = f"{rss:5.0f} MiB RSS" if rss is not None else "RSS n/a"
        print(f"{label} {name:<25} {got['objects']:>7} objects | ours {human(size):>10} {got['seconds']:6.2f} s "
              f"{got['rss']:5.0f} MiB RSS ({got['anon']:.0f} anonymous) | git bundle create {human(floor_size):>10} "
              f"{git_seconds:6.2f} s {git_mem} | bytes x{size / floor_size:.3f}, time x{got['seconds'] / git_seconds:.1f}")


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--commits", type=int, default=9000)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--files", type=int, default=1000, help="files in the tree")
    parser.add_argument("--repo", type=Path, help="a local clone to measure the bundle build on too")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    hosts_module = load_hosts()
    work = Path(tempfile.mkdtemp(prefix="gitdeploy-bench-"))
    fleet = None
    try:
        repo = work / "app"
        repo.mkdir()
        start = time.monotonic()
        generate(repo, args.commits, args.files)
        git(repo, "tag", "-a", "v1", "-m", "rollout v1")
        c1 = git(repo, "rev-parse", "v1^{commit}")
        counts = dict(line.split(": ", 1) for line in git(repo, "count-objects", "-vH").splitlines())
        print(f"repository: {args.commits} commits, {git(repo, 'ls-files').count(chr(10)) + 1} files, "
              f"{counts['in-pack']} objects in {counts['size-pack']} of pack "
              f"(generated in {time.monotonic() - start:.1f} s)")

        build_table("generated:", repo, work)
        if args.repo:
            build_table(f"{args.repo.name}:", args.repo.resolve(), work)

        fleet = hosts_module.Fleet(base=work / "fleet", groups={"bench": args.hosts}).up()
        inventory = fleet.inventory(work / "roots")
        names = [h.name for h in fleet.hosts]
        (work / "push.yml").write_text(PLAYBOOK)
        (work / "noop.yml").write_text(NOOP)
        cache = work / "cache"
        noop = playbook(inventory, work / "noop.yml", {}, work / "results-noop")

        first_time, first = deploy(inventory, work, repo, "v1", cache, names)

        path = next(p for p in sorted(Path(repo).rglob("*.py")) if ".git" not in p.parts)
        with open(path, "a") as handle:
            handle.write("\ndef hotfix():\n    return 'one-file change'\n")
        git(repo, "commit", "-q", "-am", "one-file change")
        git(repo, "tag", "-a", "v2", "-m", "rollout v2")
        second_time, second = deploy(inventory, work, repo, "v2", cache, names)
        idle_time, idle = deploy(inventory, work, repo, "v2", cache, names)

        floor_full_time, floor_full = floor(repo, work / "full.bundle", "v1")
        floor_inc_time, floor_inc = floor(repo, work / "inc.bundle", "v2", f"^{c1}")

        for name in names:
            store = work / "roots" / name / "root" / "repo.git"
            got = subprocess.run(["git", f"--git-dir={store}", "rev-parse", "v2^{commit}"],
                                 capture_output=True, text=True, check=False).stdout.strip()
            assert got == git(repo, "rev-parse", "v2^{commit}"), f"{name} lacks v2"
            assert idle[name]["bytes"] == 0 and not idle[name]["changed"]

        def row(label, seconds, results, floor_bytes, floor_seconds):
            sizes = sorted({r["bytes"] for r in results.values()})
            objects = sorted({r["objects"] for r in results.values()})
            per_host = sizes[0] if len(sizes) == 1 else f"{sizes[0]}..{sizes[-1]}"
            print(f"{label:<22} {seconds:7.1f} s  {human(sizes[-1]):>10} ({per_host} B, "
                  f"{objects[-1]} objects) per host | git bundle create: {floor_seconds:5.2f} s "
                  f"{human(floor_bytes):>10} ({floor_bytes} B) | ratio {sizes[-1] / floor_bytes:.3f}")

        print(f"hosts: {args.hosts}; ansible-playbook with one no-op task: {noop:.1f} s")
        row("first deploy (v1)", first_time, first, floor_full, floor_full_time)
        row("incremental (v2 ^v1)", second_time, second, floor_inc, floor_inc_time)
        print(f"{'again (v2, idle)':<22} {idle_time:7.1f} s  {0:>10} B per host")
        return 0
    finally:
        if fleet is not None:
            fleet.down()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
