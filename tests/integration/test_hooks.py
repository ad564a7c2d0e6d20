"""git_deploy_hooks through real Ansible: over SSH on the test hosts, and on the
controller (localhost) for the sync hook and hooks taken from a commit."""

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

MODULE = "gitdeploy.rollout.git_deploy_hooks"
ENV = "sheep"
TAG = "sheep-20261121-101500"
START = "sheep-20261120-090000"

# Every recording hook appends "<prefix>/<name as invoked>" to ./order (cwd is the
# release), dumps its GIT_DEPLOY_* variables and says something on stdout.
RECORD = """\
#!/bin/sh
me="$GIT_DEPLOY_HOOK_PREFIX/$(basename "$0")"
echo "$me" >> order
env | grep '^GIT_DEPLOY_' | sort > "env.$(basename "$0")"
pwd > "cwd.$(basename "$0")"
echo "hello from $me"
"""


def write(path: Path, text: str, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def sheep_release(root: Path) -> Path:
    """A release with git-deploy's sheep/cows/goats hook tree (POD example)."""
    release = root / "releases" / TAG
    apps = release / "deploy" / "apps"
    write(apps / "common" / "pre-sync.001_setup_affiliate_symlink.sh", RECORD)
    write(apps / "common" / "pre-sync.002_check_permissions.sh", RECORD)
    write(apps / "common" / "pre-sync.002_check_permissions.sh.bak", RECORD)
    write(apps / "common" / "pre-sync.003_editor_leftover.sh~", RECORD)
    write(apps / "common" / "pre-sync.004_not_executable.sh", RECORD, mode=0o644)
    write(apps / "sheep" / "pre-sync.010_nobranch_rollout.sh", RECORD)
    write(apps / "sheep" / "pre-sync.020_check_that_we_are_in_the_load_balancer.sh", RECORD)
    write(apps / "sheep" / "pre-sync.021_take_us_out_of_the_load_balancer.sh", RECORD)
    (apps / "sheep" / "pre-sync.022_check_that_we_are_not_in_the_load_balancer.sh").symlink_to(
        "pre-sync.020_check_that_we_are_in_the_load_balancer.sh")
    write(apps / "sheep" / "post-sync.010_httpd_configtest.sh", RECORD)
    write(apps / "cows" / "pre-sync.010_moo.sh", RECORD)
    write(apps / "goats" / "pre-sync.010_baa.sh", RECORD)
    return release


def run_module(deployment, host: str, *extra: str, **args):
    """Run the module ad hoc on ``host``; return (status, result, stderr)."""
    proc = deployment.ansible(host, "-m", MODULE, "-a", json.dumps(args), *extra, check=False)
    header, sep, body = proc.stdout.partition(" => ")
    assert sep, f"unexpected ansible output:\n{proc.stdout}\n{proc.stderr}"
    status = header.strip().split(" | ")[-1]
    return status, json.loads(body), proc.stderr


def lines(path: Path) -> list:
    return path.read_text().splitlines()


def dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_dead(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not dead(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- phase hooks on a target, over SSH ---------------------------------------
def test_runs_common_then_env_hooks_in_sort_order(deployment):
    root = deployment.root("prod1")
    release = sheep_release(root)
    status, result, stderr = run_module(
        deployment, "prod1", release=str(release), root=str(root), phase="pre-sync", env=ENV,
        rollout_tag=TAG, start_tag=START)
    assert status == "CHANGED", result
    assert lines(release / "order") == [
        "common/pre-sync.001_setup_affiliate_symlink.sh",
        "common/pre-sync.002_check_permissions.sh",
        "sheep/pre-sync.010_nobranch_rollout.sh",
        "sheep/pre-sync.020_check_that_we_are_in_the_load_balancer.sh",
        "sheep/pre-sync.021_take_us_out_of_the_load_balancer.sh",
        "sheep/pre-sync.022_check_that_we_are_not_in_the_load_balancer.sh",  # via its symlink
    ]
    # The environment each hook saw.
    for prefix, name in (("common", "pre-sync.001_setup_affiliate_symlink.sh"),
                         ("sheep", "pre-sync.022_check_that_we_are_not_in_the_load_balancer.sh")):
        assert lines(release / f"env.{name}") == [
            "GIT_DEPLOY_ACTION=sync",
            f"GIT_DEPLOY_HOOK_PREFIX={prefix}",
            "GIT_DEPLOY_PHASE=pre-sync",
            f"GIT_DEPLOY_PREFIX={ENV}",
            f"GIT_DEPLOY_RELEASE={release}",
            f"GIT_DEPLOY_ROLLOUT_TAG={TAG}",
            f"GIT_DEPLOY_ROOT={root}",
            f"GIT_DEPLOY_START_TAG={START}",
        ]
        assert lines(release / f"cwd.{name}") == [str(release)]
    # The result: every hook in order, skipped ones with a reason.
    by_name = {h["name"]: h for h in result["hooks"]}
    assert [h["name"] for h in result["hooks"]][:5] == [
        "pre-sync.001_setup_affiliate_symlink.sh", "pre-sync.002_check_permissions.sh",
        "pre-sync.002_check_permissions.sh.bak", "pre-sync.003_editor_leftover.sh~",
        "pre-sync.004_not_executable.sh"]
    assert "pre-sync.010_moo.sh" not in by_name and "post-sync.010_httpd_configtest.sh" not in by_name
    first = by_name["pre-sync.001_setup_affiliate_symlink.sh"]
    assert first["rc"] == 0 and not first["skipped"] and first["prefix"] == "common"
    assert first["stdout"] == "hello from common/pre-sync.001_setup_affiliate_symlink.sh\n"
    assert first["path"] == str(release / "deploy/apps/common/pre-sync.001_setup_affiliate_symlink.sh")
    assert isinstance(first["duration"], float) and first["truncated"] is False
    for name in ("pre-sync.002_check_permissions.sh.bak", "pre-sync.003_editor_leftover.sh~"):
        assert by_name[name]["skipped"] and "backup" in by_name[name]["reason"]
    lazy = by_name["pre-sync.004_not_executable.sh"]
    assert lazy["skipped"] and "not executable" in lazy["reason"] and lazy["rc"] is None
    assert "pre-sync.004_not_executable.sh skipped: not executable" in stderr  # the warning
    assert "backup" not in stderr
    assert result["failed_hook"] is None and result["ignored_failures"] == []
    assert not (release / "env.pre-sync.002_check_permissions.sh.bak").exists()
    # Full output in the active log, one journal line per output line.
    log = lines(root / "logs" / "git-deploy-active.log")
    assert f"env={ENV} tag={TAG} phase=pre-sync common/pre-sync.001_setup_affiliate_symlink.sh out: " \
           "hello from common/pre-sync.001_setup_affiliate_symlink.sh" in [line.split(" ", 1)[1] for line in log]
    assert result["log_file"] == str(root / "logs" / "git-deploy-active.log")


def test_missing_hook_dir_means_no_hooks(deployment):
    root = deployment.root("prod2")
    release = root / "releases" / TAG
    release.mkdir(parents=True)
    status, result, _stderr = run_module(deployment, "prod2", release=str(release), phase="post-sync", env=ENV)
    assert status == "SUCCESS", result
    assert result["changed"] is False and result["hooks"] == []
    assert "no post-sync hooks" in result["msg"]


def test_check_mode_lists_hooks_without_running_them(deployment):
    root = deployment.root("prod1")
    release = sheep_release(root)
    status, result, _stderr = run_module(deployment, "prod1", "--check", release=str(release), root=str(root),
                                         phase="pre-sync", env=ENV)
    assert status == "CHANGED", result
    would = [(h["phase"], h["prefix"], h["name"]) for h in result["hooks"] if not h["skipped"]]
    assert would == [
        ("pre-sync", "common", "pre-sync.001_setup_affiliate_symlink.sh"),
        ("pre-sync", "common", "pre-sync.002_check_permissions.sh"),
        ("pre-sync", "sheep", "pre-sync.010_nobranch_rollout.sh"),
        ("pre-sync", "sheep", "pre-sync.020_check_that_we_are_in_the_load_balancer.sh"),
        ("pre-sync", "sheep", "pre-sync.021_take_us_out_of_the_load_balancer.sh"),
        ("pre-sync", "sheep", "pre-sync.022_check_that_we_are_not_in_the_load_balancer.sh"),
    ]
    assert all(h["rc"] is None for h in result["hooks"])
    assert "would run 6 pre-sync hook(s)" in result["msg"]
    assert not (release / "order").exists()
    assert not (root / "logs").exists()


def test_escaping_symlink_refuses_the_whole_phase(deployment, tmp_path):
    root = deployment.root("prod1")
    release = sheep_release(root)
    outside = write(tmp_path / "elsewhere" / "evil.sh", "#!/bin/sh\ntouch /dev/null\n")
    (release / "deploy/apps/sheep/pre-sync.030_evil.sh").symlink_to(outside)
    status, result, _stderr = run_module(deployment, "prod1", release=str(release), phase="pre-sync", env=ENV)
    assert status == "FAILED!", result
    assert "outside the release" in result["msg"] and str(outside) in result["msg"]
    assert not (release / "order").exists()  # not even the common hooks ran


def test_failing_hook_stops_later_hooks(deployment):
    root = deployment.root("prod3")
    release = sheep_release(root)
    broken = release / "deploy/apps/sheep/pre-sync.020_check_that_we_are_in_the_load_balancer.sh"
    broken.write_text("#!/bin/sh\necho checking\necho 'not in the load balancer' >&2\nexit 3\n")
    status, result, _stderr = run_module(deployment, "prod3", release=str(release), root=str(root),
                                         phase="pre-sync", env=ENV, rollout_tag=TAG)
    assert status == "FAILED!", result
    assert lines(release / "order") == [
        "common/pre-sync.001_setup_affiliate_symlink.sh",
        "common/pre-sync.002_check_permissions.sh",
        "sheep/pre-sync.010_nobranch_rollout.sh",
    ]
    assert result["failed_hook"] == str(broken)
    msg = result["msg"]
    assert str(broken) in msg and "pre-sync" in msg and "exited 3" in msg
    assert "not in the load balancer" in msg
    later = {h["name"]: h for h in result["hooks"]}["pre-sync.021_take_us_out_of_the_load_balancer.sh"]
    assert later["skipped"] and later["rc"] is None
    log = (root / "logs" / "git-deploy-active.log").read_text()
    assert "err: not in the load balancer" in log and "exited 3" in log


@pytest.mark.parametrize("action, expect", [("revert", "SUCCESS"), ("abort", "SUCCESS"), ("start", "FAILED!")])
def test_post_tree_update_failures_ignored_only_on_the_way_back(deployment, action, expect):
    root = deployment.root("prod2")
    release = root / "releases" / TAG
    write(release / "deploy/apps/common/post-tree-update.010_restart_httpd",
          "#!/bin/sh\necho 'httpd: no such service' >&2\nexit 1\n")
    write(release / "deploy/apps/sheep/post-tree-update.020_after", RECORD)
    status, result, stderr = run_module(deployment, "prod2", release=str(release), phase="post-tree-update",
                                        env=ENV, action=action)
    if expect == "SUCCESS":
        assert status == "CHANGED", result
        assert [(f["path"], f["rc"]) for f in result["ignored_failures"]] == [
            (str(release / "deploy/apps/common/post-tree-update.010_restart_httpd"), 1)]
        assert result["failed_hook"] is None
        assert "httpd: no such service" in stderr and "ignored" in stderr  # the warning
        assert lines(release / "order") == ["sheep/post-tree-update.020_after"]  # later hooks still run
    else:
        assert status == "FAILED!", result
        assert result["failed_hook"].endswith("post-tree-update.010_restart_httpd")
        assert not (release / "order").exists()


def test_log_hooks_get_the_message_and_never_fail(deployment):
    root = deployment.root("prod1")
    release = root / "releases" / TAG
    write(release / "deploy/apps/common/log.010_irc",
          "#!/bin/sh\nenv | grep '^GIT_DEPLOY_LOG_' | sort > log-env\nexit 7\n")
    write(release / "deploy/apps/sheep/log.020_after", RECORD)
    status, result, _stderr = run_module(deployment, "prod1", release=str(release), phase="log", env=ENV,
                                         log_level="warning", log_message="rollout of sheep: done", log_announce=True)
    assert status == "CHANGED", result
    assert lines(release / "log-env") == [
        "GIT_DEPLOY_LOG_ANNOUNCE=1",
        "GIT_DEPLOY_LOG_LEVEL=warning",
        "GIT_DEPLOY_LOG_MESSAGE=rollout of sheep: done",
    ]
    assert [f["rc"] for f in result["ignored_failures"]] == [7]
    assert lines(release / "order") == ["sheep/log.020_after"]


def test_timeout_kills_the_hook_and_its_children(deployment):
    root = deployment.root("prod3")
    release = root / "releases" / TAG
    write(release / "deploy/apps/sheep/pre-sync.010_hang", """\
#!/bin/sh
sh -c 'echo $$ > child.pid; exec sleep 300' &
sh -c 'trap "" TERM; echo $$ > stubborn.pid; exec sleep 300' &
wait
""")
    write(release / "deploy/apps/sheep/pre-sync.020_never", RECORD)
    started = time.monotonic()
    status, result, _stderr = run_module(deployment, "prod3", release=str(release), phase="pre-sync", env=ENV,
                                         timeout=1)
    assert time.monotonic() - started < 30
    assert status == "FAILED!", result
    assert "timed out after 1 seconds" in result["msg"]
    hung = result["hooks"][0]
    assert hung["timed_out"] and hung["rc"] < 0
    for name in ("child.pid", "stubborn.pid"):  # SIGTERM got one, SIGKILL the other
        pid = int((release / name).read_text())
        assert wait_dead(pid, 10), f"{name} {pid} survived the timeout"
    assert not (release / "order").exists()


def test_fifty_megabytes_of_output(deployment):
    root = deployment.root("prod2")
    release = root / "releases" / TAG
    write(release / "deploy/apps/common/post-sync.010_chatty",
          "#!/bin/sh\nyes \"$(printf '%0999d' 0)\" | head -c 52428800\necho 'the end' >&2\n")
    status, result, _stderr = run_module(deployment, "prod2", release=str(release), root=str(root), phase="post-sync",
                                         env=ENV, rollout_tag=TAG, output_limit=4096)
    assert status == "CHANGED", {k: v for k, v in result.items() if k != "hooks"}
    hook = result["hooks"][0]
    assert hook["rc"] == 0 and hook["truncated"] is True
    assert len(hook["stdout"]) == 4096 and hook["stderr"] == "the end\n"
    payload = 0
    with open(root / "logs" / "git-deploy-active.log", "rb") as handle:
        for line in handle:
            _head, sep, text = line.partition(b"common/post-sync.010_chatty out: ")
            if sep:
                payload += len(text) - 1
    assert payload == 52428800 - 52428800 // 1000  # all of it, without the newlines


# -- on the controller: the sync hook and hooks from a commit ------------------
SYNC_PLAYBOOK = """\
- name: Run the sync hook on the controller
  hosts: localhost
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Sync hook of sheep
      gitdeploy.rollout.git_deploy_hooks:
        release: "{{ release }}"
        phase: sync
        env: sheep
        rollout_tag: sheep-20261121-101500
        start_tag: sheep-20261120-090000
        hosts: [prod1, prod2, prod3]
        deploy_file: "{{ deploy_text }}"
      register: good

    - name: Failing sync hook of cows, default message
      gitdeploy.rollout.git_deploy_hooks:
        release: "{{ release }}"
        phase: sync
        env: cows
        support_email: ops@example.com
      register: whale
      ignore_errors: true

    - name: Failing sync hook of cows, site message
      gitdeploy.rollout.git_deploy_hooks:
        release: "{{ release }}"
        phase: sync
        env: cows
        support_email: ops@example.com
        fail_message: "Sync {SYNC_HOOK} broke: page {SUPPORT_EMAIL} now."
      register: custom
      ignore_errors: true

    - name: Keep the results
      ansible.builtin.copy:
        content: "{{ {'good': good, 'whale': whale, 'custom': custom} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def test_sync_hook_on_the_controller(deployment, tmp_path):
    checkout = tmp_path / "checkout"
    write(checkout / "deploy/sync/sheep.sync", """\
#!/bin/sh
env | grep '^DEPLOY_' | grep -v '^DEPLOY_DEPLOY_TEXT' | sort > sync-env
cat "$DEPLOY_DEPLOY_FILE" > sync-deploy-file
printf '%s' "$DEPLOY_DEPLOY_TEXT" > sync-deploy-text
pwd > sync-cwd
echo synced
""")
    write(checkout / "deploy/sync/cows.sync", "#!/bin/sh\necho 'a cat ate the pigeon' >&2\nexit 2\n")
    playbook = write(tmp_path / "sync.yml", SYNC_PLAYBOOK, mode=0o644)
    deploy_text = f"tag: {TAG}\nuser: alice\n\nrollout of sheep\n"
    out = tmp_path / "results.json"
    deployment.playbook(playbook, extra_vars={"release": str(checkout), "deploy_text": deploy_text,
                                              "out": str(out)})
    results = json.loads(out.read_text())

    good = results["good"]
    assert good["changed"] is True and good["hooks"][0]["stdout"] == "synced\n"
    assert good["hooks"][0]["path"] == str(checkout / "deploy/sync/sheep.sync")
    env = dict(line.split("=", 1) for line in lines(checkout / "sync-env"))
    deploy_file = env.pop("DEPLOY_DEPLOY_FILE")
    assert env == {
        "DEPLOY_HOSTS": "prod1 prod2 prod3",
        "DEPLOY_ROLLBACK_TAG": START,
        "DEPLOY_ROLLOUT_PREFIX": "sheep",
        "DEPLOY_ROLLOUT_TAG": TAG,
    }
    assert not os.path.exists(deploy_file)  # a temporary file, removed afterwards
    assert (checkout / "sync-deploy-file").read_text() == deploy_text
    assert (checkout / "sync-deploy-text").read_text() == deploy_text
    assert lines(checkout / "sync-cwd") == [str(checkout)]
    assert good["log_file"] is None  # nothing written on the controller unless asked

    cows = str(checkout / "deploy/sync/cows.sync")
    whale = results["whale"]
    assert whale["failed"] is True and whale["failed_hook"] == cows
    assert whale["msg"].startswith("DON'T PANIC. The sync hook %s failed." % cows)
    assert "ops@example.com" in whale["msg"] and "a cat ate the pigeon" in whale["msg"]
    assert "exited 2" in whale["msg"]
    custom = results["custom"]
    assert custom["msg"].startswith("Sync %s broke: page ops@example.com now.\n" % cows)


COMMIT_PLAYBOOK = """\
- name: Hooks from a commit
  hosts: localhost
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Sync hook of the tagged commit
      gitdeploy.rollout.git_deploy_hooks:
        repo: "{{ repo }}"
        commit: "{{ tag }}"
        phase: sync
        env: sheep
        rollout_tag: "{{ tag }}"
      register: sync

    - name: Phase hooks of the same commit, working directory elsewhere
      gitdeploy.rollout.git_deploy_hooks:
        repo: "{{ repo }}"
        commit: "{{ tag }}"
        release: "{{ workdir }}"
        phase: pre-sync
        env: sheep
      register: phase

    - name: Keep the results
      ansible.builtin.copy:
        content: "{{ {'sync': sync, 'phase': phase} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=t@example.com",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def test_hooks_from_a_commit(deployment, tmp_path):
    repo, record, workdir = tmp_path / "repo", tmp_path / "record", tmp_path / "work"
    record.mkdir()
    workdir.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    write(repo / "deploy/sync/sheep.sync", f"#!/bin/sh\necho committed > {record}/sync\n")
    write(repo / "deploy/apps/common/pre-sync.010_hook",
          f"#!/bin/sh\necho \"$(basename \"$0\") $(pwd)\" >> {record}/order\n")
    (repo / "deploy/apps/sheep").mkdir(parents=True)
    (repo / "deploy/apps/sheep/pre-sync.020_link").symlink_to("../common/pre-sync.010_hook")
    write(repo / "deploy/apps/sheep/pre-sync.030_plain", "#!/bin/sh\necho never > never\n", mode=0o644)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hooks")
    git(repo, "tag", "-a", TAG, "-m", "rollout of sheep")
    commit = git(repo, "rev-parse", f"{TAG}^{{commit}}")
    # The working tree moves on: the commit's hooks must run, not these.
    write(repo / "deploy/sync/sheep.sync", f"#!/bin/sh\necho working-tree > {record}/sync\n")

    out = tmp_path / "results.json"
    playbook = write(tmp_path / "commit.yml", COMMIT_PLAYBOOK, mode=0o644)
    deployment.playbook(playbook, extra_vars={"repo": str(repo), "tag": TAG,
                                              "workdir": str(workdir), "out": str(out)})
    results = json.loads(out.read_text())

    assert lines(record / "sync") == ["committed"]
    assert results["sync"]["commit"] == commit and results["sync"]["changed"] is True
    assert lines(record / "order") == [f"pre-sync.010_hook {workdir}", f"pre-sync.020_link {workdir}"]
    skipped = [h for h in results["phase"]["hooks"] if h["skipped"]]
    assert [h["name"] for h in skipped] == ["pre-sync.030_plain"]  # the mode came from the commit
    assert not os.path.exists(results["sync"]["hook_dir"])  # the export is cleaned up
    assert stat.S_ISLNK(os.lstat(repo / "deploy/apps/sheep/pre-sync.020_link").st_mode)
