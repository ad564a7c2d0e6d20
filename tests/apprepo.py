"""A sample application repository for tests and benchmarks: real git, with an
"upstream" bare remote, git-deploy hooks, and helpers to change it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Developer", "GIT_AUTHOR_EMAIL": "dev@test.invalid",
    "GIT_COMMITTER_NAME": "Test Developer", "GIT_COMMITTER_EMAIL": "dev@test.invalid",
}

# Every hook appends "<host> <phase> <prefix> <action> <tag> <name>" to <root>/hooks.log
# and fails when <root>/fail-<phase> exists: tests plant failures per host.
HOOK = """#!/bin/sh
host=$(basename "$(dirname "$GIT_DEPLOY_ROOT")")
line="$host $GIT_DEPLOY_PHASE $GIT_DEPLOY_HOOK_PREFIX $GIT_DEPLOY_ACTION $GIT_DEPLOY_ROLLOUT_TAG $(basename "$0")"
echo "$line" >> "$GIT_DEPLOY_ROOT/hooks.log"
# Test observation only: the test hosts' roots share <tmp>/roots, so one file
# records the order across hosts.
echo "$line" >> "$GIT_DEPLOY_ROOT/../../order.log"
if [ -e "$GIT_DEPLOY_ROOT/fail-$GIT_DEPLOY_PHASE" ]; then echo "planted failure of $GIT_DEPLOY_PHASE" >&2; exit 3; fi
"""
SYNC = """#!/bin/sh
echo "$DEPLOY_ROLLOUT_PREFIX $DEPLOY_ROLLOUT_TAG $DEPLOY_HOSTS" >> "$SYNC_LOG"
if [ -n "$SYNC_FAIL" ]; then echo "sync planted failure" >&2; exit 4; fi
"""
PHASES = ("pre-sync", "post-tree-update", "post-sync", "post-reset", "post-abort")


class AppRepo:
    def __init__(self, path: Path, upstream: Path | None = None):
        self.path = path
        self.upstream = upstream

    @classmethod
    def create(cls, base: Path, envs=("staging", "prod"), hooks: bool = True) -> "AppRepo":
        repo = cls(base / "app", base / "upstream.git")
        subprocess.run(["git", "init", "-q", "--bare", str(repo.upstream)], check=True)
        repo.path.mkdir(parents=True)
        repo.git("init", "-q", "-b", "main")
        repo.write("app.txt", "version 1\n")
        if hooks:
            for phase in PHASES:
                repo.write(f"deploy/apps/common/{phase}.010_record", HOOK, mode=0o755)
                for env in envs:
                    repo.write(f"deploy/apps/{env}/{phase}.020_record", HOOK, mode=0o755)
            for env in envs:
                repo.write(f"deploy/sync/{env}.sync", SYNC, mode=0o755)
        repo.commit("version 1")
        repo.git("remote", "add", "origin", str(repo.upstream))
        repo.git("push", "-q", "-u", "origin", "main")
        return repo

    def git(self, *args: str) -> str:
        env = dict(os.environ, **IDENTITY)
        return subprocess.run(["git", *args], cwd=self.path, env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def write(self, name: str, content: str, mode: int | None = None) -> None:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        if mode is not None:
            path.chmod(mode)

    def commit(self, message: str, push: bool = False) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        if push:
            self.git("push", "-q", "origin", "HEAD")
        return self.head()

    def change(self, name: str, content: str, message: str) -> str:
        """Write one file, commit and push it; return the new commit."""
        self.write(name, content)
        return self.commit(message, push=True)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def tags(self, where: Path | None = None) -> list:
        out = subprocess.run(["git", "tag", "-l"], cwd=where or self.path, check=True,
                             capture_output=True, text=True).stdout
        return out.split()

    def upstream_tags(self) -> list:
        return self.tags(self.upstream)


if __name__ == "__main__":  # pragma: no cover - used by the molecule scenario
    import sys

    base = Path(sys.argv[1])
    print(AppRepo.create(base).path)
