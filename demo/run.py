"""The demo: a real rollout story on local SSH test hosts.

Starts sshd test hosts (staging: 1, prod: 3), creates a sample application repo
with git-deploy hooks and an "upstream" remote, then runs the real playbooks:
deploy to staging, deploy to prod, change something, deploy again, revert,
and show the status. Everything happens under .build/demo; the hosts are
stopped at the end.

    make demo
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from hosts import Fleet, collections_path  # noqa: E402

BIN = Path(sys.executable).parent
WORK = REPO_ROOT / ".build" / "demo"

HOOKS = {
    "deploy/apps/common/pre-sync.010_check.sh":
        'echo "[$GIT_DEPLOY_PHASE] checking $GIT_DEPLOY_ROLLOUT_TAG in $PWD"\ntest -f app.txt\n',
    "deploy/apps/common/post-tree-update.010_restart.sh":
        'echo "[$GIT_DEPLOY_PHASE/$GIT_DEPLOY_ACTION] restarting app: $(cat app.txt)"\n',
    "deploy/apps/prod/post-sync.010_smoke.sh":
        'echo "[$GIT_DEPLOY_PHASE] smoke test on prod: ok"\n',
    "deploy/apps/common/post-reset.010_notify.sh":
        'echo "[$GIT_DEPLOY_PHASE] back on $GIT_DEPLOY_ROLLOUT_TAG"\n',
    "deploy/sync/prod.sync":
        'echo "[sync] $DEPLOY_ROLLOUT_TAG is live on: $DEPLOY_HOSTS"\n',
}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_app(path: Path, upstream: Path) -> None:
    subprocess.run(["git", "init", "-q", "--bare", str(upstream)], check=True)
    path.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=path)
    git("config", "user.name", "Demo Developer", cwd=path)
    git("config", "user.email", "dev@demo.invalid", cwd=path)
    (path / "app.txt").write_text("hello, version 1\n")
    for name, body in HOOKS.items():
        hook = path / name
        hook.parent.mkdir(parents=True, exist_ok=True)
        hook.write_text("#!/bin/sh\nset -e\n" + body)
        hook.chmod(0o755)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "First version of the demo app", cwd=path)
    git("remote", "add", "origin", str(upstream), cwd=path)
    git("push", "-q", "-u", "origin", "main", cwd=path)


def step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def playbook(name: str, inventory: Path, app: Path, *extra: str) -> None:
    env = dict(os.environ,
               ANSIBLE_CONFIG=str(REPO_ROOT / "tests" / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(collections_path()),
               ANSIBLE_DISPLAY_SKIPPED_HOSTS="false",
               ANSIBLE_DISPLAY_OK_HOSTS="true")
    cmd = [str(BIN / "ansible-playbook"), "-i", str(inventory), f"gitdeploy.rollout.{name}", *extra]
    print("$ " + " ".join(["ansible-playbook", f"gitdeploy.rollout.{name}", *extra]), flush=True)
    subprocess.run(cmd, cwd=app, env=env, check=True, stdin=subprocess.DEVNULL)


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    fleet = Fleet(base=WORK / "hosts")
    try:
        step("Start local SSH test hosts (staging: 1, prod: 3)")
        fleet.up()
        for host in fleet.hosts:
            print(f"  {host.name:9} {host.group:8} ssh://127.0.0.1:{host.port}")
        inventory = fleet.inventory(WORK / "roots", WORK / "inventory.json")
        app = WORK / "app"
        make_app(app, WORK / "upstream.git")

        step("Deploy to staging")
        playbook("deploy", inventory, app, "-e", "env=staging")
        step("Deploy the same commit to prod (its own tag, prod-YYYYMMDD-HHMMSS)")
        playbook("deploy", inventory, app, "-e", "env=prod")

        step("Change the app, commit, push, and deploy to prod again")
        (app / "app.txt").write_text("hello, version 2\n")
        git("commit", "-q", "-am", "Version 2 of the demo app", cwd=app)
        git("push", "-q", "origin", "main", cwd=app)
        playbook("deploy", inventory, app, "-e", "env=prod", "-e", "message=demo: version 2 for %TAG")

        step("Revert prod to the rollout before the live one")
        playbook("revert", inventory, app, "-e", "env=prod")

        step("Status of prod")
        playbook("status", inventory, app, "-e", "env=prod")

        step("What the hosts and the upstream repository now hold")
        root = WORK / "roots" / "prod1" / "root"
        print(f"  prod1 current -> {os.readlink(root / 'current')}")
        print("  prod1 .deploy:\n" + textwrap.indent((root / "current" / ".deploy").read_text(), "    "))
        print("  upstream tags: " + git("tag", "-l", cwd=WORK / "upstream.git").replace("\n", ", "))
        print("\nDemo finished: deploy, deploy, deploy, revert and status all ran for real.")
    finally:
        fleet.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
