"""git_deploy_push over real SSH: delivery of git objects to the prod hosts.

Each test builds a repository with the git CLI (annotated tags, an ``origin`` that
points nowhere reachable), delivers tags with one small playbook (a few looped steps
per run, to keep the number of ansible-playbook runs low) and reads every host's
results from the file ansible-core's ``tree`` callback writes for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_FILE = REPO_ROOT / "plugins" / "modules" / "git_deploy_push.py"
UNREACHABLE = "ssh://git.invalid:2222/nowhere/app.git"

# Steps, in order, each a list (empty = skipped):
#   ingest: the target half alone (a playbook-adjacent module name without an action
#           plugin) fed a damaged file, the way a broken transfer would;
#   check:  tags delivered in check mode;
#   deliver: tags delivered, failures tolerated when expect_failure;
#   retry:  tags delivered after that (all hosts finished "deliver" first).
PLAYBOOK = """\
- name: Deliver rollout tags
  hosts: prod
  gather_facts: false
  tasks:
    - name: Put the damaged bundles on the host
      ansible.builtin.copy:
        src: "{{ item.file }}"
        dest: "{{ git_deploy_root | dirname }}/{{ item.file | basename }}"
        mode: "0600"
      loop: "{{ ingest | default([]) }}"

    - name: Ingest it with the target half alone
      git_deploy_push_target:
        root: "{{ git_deploy_root }}"
        repo: unused-on-the-target
        tag: "{{ item.tag }}"
        commit: "{{ item.commit }}"
        _mode: ingest
        _bundle: "{{ git_deploy_root | dirname }}/{{ item.file | basename }}"
        _bundle_size: "{{ item.size }}"
        _bundle_sha256: "{{ item.sha256 }}"
      loop: "{{ ingest | default([]) }}"
      register: ingested
      ignore_errors: true

    - name: Deliver in check mode
      gitdeploy.rollout.git_deploy_push:
        root: "{{ git_deploy_root }}"
        repo: "{{ repo }}"
        cache_dir: "{{ cache_dir }}"
        tag: "{{ item.tag }}"
        commit: "{{ item.commit }}"
      loop: "{{ check | default([]) }}"
      check_mode: true
      register: checked

    - name: Deliver
      gitdeploy.rollout.git_deploy_push:
        root: "{{ git_deploy_root }}"
        repo: "{{ repo }}"
        cache_dir: "{{ cache_dir }}"
        tag: "{{ item.tag }}"
        commit: "{{ item.commit }}"
      loop: "{{ deliver | default([]) }}"
      register: pushed
      ignore_errors: "{{ expect_failure | default(false) }}"

    - name: Deliver again
      gitdeploy.rollout.git_deploy_push:
        root: "{{ git_deploy_root }}"
        repo: "{{ repo }}"
        cache_dir: "{{ cache_dir }}"
        tag: "{{ item.tag }}"
        commit: "{{ item.commit }}"
      loop: "{{ retry | default([]) }}"
      register: retried

    - name: Hand the results to the test (the tree callback writes them per host)
      ansible.builtin.debug:
        msg:
          ingest: "{{ ingested.results | default([]) }}"
          check: "{{ checked.results | default([]) }}"
          deliver: "{{ pushed.results | default([]) }}"
          retry: "{{ retried.results | default([]) }}"
"""


def git(*args: str, cwd: Path | None = None) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.com",
               GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="dev@example.com",
               GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd or Path.cwd()))
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def make_repo(path: Path) -> Path:
    """A small application with some history, tagged ``v1``; origin is unreachable."""
    git("init", "-q", "-b", "main", str(path))
    for i in range(30):
        (path / "src").mkdir(exist_ok=True)
        lines = "".join(f"def function_{i}_{n}(x):\n    return x * {n} + {i}\n\n" for n in range(60))
        (path / "src" / f"module_{i}.py").write_text(lines)
    (path / "README.md").write_text("# app\n" + "documentation line\n" * 200)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "initial import", cwd=path)
    for n in range(10):
        with open(path / "src" / f"module_{n}.py", "a") as handle:
            handle.write(f"# revision {n}\n")
        git("commit", "-q", "-am", f"revision {n}", cwd=path)
    git("remote", "add", "origin", UNREACHABLE, cwd=path)
    tag(path, "v1")
    return path


def tag(path: Path, name: str, ref: str = "HEAD") -> str:
    git("tag", "-a", name, "-m", f"rollout {name}", ref, cwd=path)
    return git("rev-parse", f"{name}^{{commit}}", cwd=path)


def one_file_change(path: Path, name: str) -> str:
    with open(path / "src" / "module_7.py", "a") as handle:
        handle.write("def hotfix(x):\n    return x\n")
    git("commit", "-q", "-am", "one-file change", cwd=path)
    return tag(path, name)


def step(repo: Path, name: str, commit: str | None = None) -> dict:
    return {"tag": name, "commit": commit or git("rev-parse", f"{name}^{{commit}}", cwd=repo)}


def run(deployment, repo: Path, label: str, **steps) -> dict:
    """One ansible-playbook run over the prod hosts; every host's results by step."""
    playbook = deployment.workdir / "push.yml"
    if not playbook.exists():
        playbook.write_text(PLAYBOOK)
        library = deployment.workdir / "library"
        library.mkdir()
        (library / "git_deploy_push_target.py").symlink_to(MODULE_FILE)
    extra_vars = dict(repo=str(repo), cache_dir=str(deployment.workdir / "cache"), **steps)
    tree = deployment.workdir / ("results-" + label)
    # Anything on the controller trying to reach a git remote fails instead of hanging.
    deployment.playbook(playbook, extra_vars=extra_vars, GIT_SSH_COMMAND="false",
                        GIT_ALLOW_PROTOCOL="file", ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree",
                        ANSIBLE_CALLBACK_TREE_DIR=str(tree))
    return {host: json.loads((tree / host).read_text())["msg"] for host in deployment.hosts("prod")}


def target_commit(deployment, host: str, ref: str) -> str | None:
    store = deployment.root(host) / "repo.git"
    proc = subprocess.run(["git", f"--git-dir={store}", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() or None


def git_bundle_size(repo: Path, tmp: Path, *revs: str) -> int:
    out = tmp / "floor.bundle"
    git("bundle", "create", "-q", str(out), *revs, cwd=repo)
    return out.stat().st_size


def test_first_deploy_then_one_file_change_ships_only_the_change(deployment, tmp_path):
    repo = make_repo(tmp_path / "app")
    assert git("remote", "get-url", "origin", cwd=repo) == UNREACHABLE
    c1 = git("rev-parse", "v1^{commit}", cwd=repo)
    tag(repo, "v1-again", c1)  # a second rollout tag of the same commit, delivered later
    hosts = deployment.hosts("prod")
    assert len(hosts) == 3

    first = run(deployment, repo, "first", deliver=[step(repo, "v1")])
    for host in hosts:
        result = first[host]["deliver"][0]
        assert result["changed"] and result["transferred"], result
        assert result["bytes"] > 0 and result["objects"] > 0
        assert result["haves"] == [] and result["prerequisites"] == []
        assert result["tag"] == "v1" and result["commit"] == c1
        store = deployment.root(host) / "repo.git"
        assert result["repo"] == str(store)
        assert target_commit(deployment, host, "v1") == c1
        # The annotated tag object itself arrived, not just the commit ...
        assert git("--git-dir", str(store), "cat-file", "-t", "v1") == "tag"
        # ... and the target knows no remote: delivery never needed one.
        assert "remote." not in git("config", "--file", str(store / "config"), "--list")
    # Hosts in the same state share one bundle (built once).
    assert len({first[h]["deliver"][0]["bytes"] for h in hosts}) == 1
    assert len(list((deployment.workdir / "cache").glob("*.bundle"))) == 1

    c2 = one_file_change(repo, "v2")
    floor = git_bundle_size(repo, tmp_path, "v2", f"^{c1}")
    second = run(deployment, repo, "second", deliver=[
        step(repo, "v2"),        # the one-file change
        step(repo, "v2"),        # again: nothing to do
        step(repo, "v1"),        # revert: the tag is already there
        step(repo, "v1-again"),  # new tag, known commit: only the tag object travels
        step(repo, "v1", c2),    # v1 is on the hosts at c1: a tag is never moved
    ], expect_failure=True)
    for host in hosts:
        change, again, revert, retag, moved = second[host]["deliver"]
        assert change["changed"] and change["transferred"], change
        assert change["haves"] == [c1] and change["prerequisites"] == [c1]
        assert change["bytes"] * 10 < first[host]["deliver"][0]["bytes"], change
        assert change["bytes"] <= 1.1 * floor, (change["bytes"], floor)
        assert target_commit(deployment, host, "v2") == c2
        assert target_commit(deployment, host, "v1") == c1

        for idle in (again, revert):
            assert not idle["changed"] and not idle["transferred"], idle
            assert idle["bytes"] == 0 and idle["objects"] == 0 and idle["prerequisites"] == []
        assert again["haves"] == sorted([c1, c2])

        assert retag["changed"] and retag["transferred"], retag
        assert retag["objects"] == 1 and retag["prerequisites"] == [c1]
        assert 0 < retag["bytes"] < 1024
        assert target_commit(deployment, host, "v1-again") == c1

        assert moved["failed"] and f"points to commit {c1}, not {c2}" in moved["msg"], moved
        assert "never moved" in moved["msg"] and not moved["transferred"]
        assert target_commit(deployment, host, "v1") == c1


def test_check_mode_and_damaged_bundles_change_nothing(deployment, tmp_path):
    repo = make_repo(tmp_path / "app")
    c1 = git("rev-parse", "v1^{commit}", cwd=repo)
    good = tmp_path / "v1.bundle"
    git("bundle", "create", "-q", str(good), "v1", cwd=repo)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.bundle"
    truncated.write_bytes(data[: len(data) // 2])
    damaged = tmp_path / "damaged.bundle"
    damaged.write_bytes(data[:-30] + bytes([data[-30] ^ 0xFF]) + data[-29:])
    announced = dict(tag="v1", commit=c1, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    first = run(deployment, repo, "first", check=[step(repo, "v1")],
                ingest=[dict(announced, file=str(truncated)), dict(announced, file=str(damaged))])
    for host in deployment.hosts("prod"):
        # A transfer cut short, or damaged on the way (same size): refused before git sees it.
        cut, flipped = first[host]["ingest"]
        assert cut["failed"] and "truncated" in cut["msg"], cut
        assert f"{len(data) // 2} bytes on the target, {len(data)} expected" in cut["msg"]
        assert flipped["failed"] and "sha256" in flipped["msg"] and "damaged" in flipped["msg"], flipped
        # Check mode: the bytes that would travel, nothing on the target.
        check = first[host]["check"][0]
        assert check["changed"] and not check["transferred"], check
        assert check["bytes"] > 0 and check["objects"] > 0
        assert not (deployment.root(host) / "repo.git").exists()

    # A cached bundle damaged on the controller (same size) is not sent: the cache checks
    # its SHA-256 and builds it again.
    cached = next((deployment.workdir / "cache").glob("*.bundle"))
    pristine = cached.read_bytes()
    cached.write_bytes(pristine[:-30] + bytes([pristine[-30] ^ 0xFF]) + pristine[-29:])
    wrong = "0" * 40
    second = run(deployment, repo, "second", expect_failure=True,
                 deliver=[step(repo, "v1", wrong), step(repo, "v1")])
    for host in deployment.hosts("prod"):
        mistaken, delivered = second[host]["deliver"]
        # The controller's tag peels elsewhere: refused before anything is built or sent.
        assert mistaken["failed"] and f"points to commit {c1}, not {wrong}" in mistaken["msg"], mistaken
        assert host in mistaken["msg"] and not mistaken["transferred"]
        assert not delivered.get("failed") and delivered["changed"] and delivered["transferred"], delivered
        assert delivered["bytes"] == first[host]["check"][0]["bytes"]
        assert target_commit(deployment, host, "v1") == c1
    assert cached.read_bytes() == pristine
