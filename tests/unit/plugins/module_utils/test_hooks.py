"""Unit tests of plugins/module_utils/hooks.py: discovery, order, ignore rules,
environment, output capping, the log stream and the runner."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from hosts import collections_path

sys.path.insert(0, str(collections_path()))

from ansible_collections.gitdeploy.rollout.plugins.module_utils import hooks  # noqa: E402


def script(path, body, mode=0o755):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(mode)
    return path


@pytest.fixture
def release(tmp_path):
    rel = tmp_path / "releases" / "prod-20261121-101500"
    apps = rel / "deploy" / "apps"
    for name in ("pre-sync.020_b", "pre-sync.010_a", "post-sync.010_x", "pre-sync.030_c~"):
        script(apps / "common" / name, "exit 0\n")
    for name in ("pre-sync.002_z", "pre-sync.001_y", "pre-sync.001_y.bak", "pre-syncer"):
        script(apps / "prod" / name, "exit 0\n")
    script(apps / "cows" / "pre-sync.001_moo", "exit 0\n")
    return rel


def names(entries):
    return ["%s/%s" % (e["prefix"], e["name"]) for e in entries]


# -- discovery and order ---------------------------------------------------
def test_common_first_then_env_each_sorted(release):
    found = hooks.discover(str(release / "deploy"), str(release), "pre-sync", "prod")
    assert names(found) == [
        "common/pre-sync.010_a", "common/pre-sync.020_b", "common/pre-sync.030_c~",
        "prod/pre-sync.001_y", "prod/pre-sync.001_y.bak", "prod/pre-sync.002_z",
    ]
    runnable = [e["name"] for e in found if not e["skipped"]]
    assert runnable == ["pre-sync.010_a", "pre-sync.020_b", "pre-sync.001_y", "pre-sync.002_z"]
    assert all(e["phase"] == "pre-sync" for e in found)


def test_sort_is_byte_order_not_natural(tmp_path):
    for name in ("pre-sync.10", "pre-sync.9", "pre-sync.B", "pre-sync.a"):
        script(tmp_path / "deploy" / "apps" / "common" / name, "exit 0\n")
    found = hooks.discover(str(tmp_path / "deploy"), str(tmp_path), "pre-sync", "prod")
    assert [e["name"] for e in found] == ["pre-sync.10", "pre-sync.9", "pre-sync.B", "pre-sync.a"]


def test_backup_names_skipped_without_running(release):
    found = hooks.discover(str(release / "deploy"), str(release), "pre-sync", "prod")
    backups = [e for e in found if e["name"].endswith(("~", ".bak"))]
    assert len(backups) == 2
    assert all(e["skipped"] and "backup" in e["reason"] for e in backups)
    assert hooks.skip_reason("x.bak") and hooks.skip_reason("x~")
    assert hooks.skip_reason("x.bakery") is None


def test_missing_hook_dir_or_env_dir_is_no_hooks(tmp_path, release):
    assert hooks.discover(str(tmp_path / "nope"), str(tmp_path), "pre-sync", "prod") == []
    found = hooks.discover(str(release / "deploy"), str(release), "post-sync", "goats")
    assert names(found) == ["common/post-sync.010_x"]


def test_env_named_common_runs_common_once(release):
    found = hooks.discover(str(release / "deploy"), str(release), "pre-sync", "common")
    assert len(found) == 3


def test_non_executable_skipped_with_reason(release):
    (release / "deploy/apps/prod/pre-sync.001_y").chmod(0o644)
    found = {e["name"]: e for e in hooks.discover(str(release / "deploy"), str(release), "pre-sync", "prod")}
    assert found["pre-sync.001_y"]["skipped"]
    assert "not executable" in found["pre-sync.001_y"]["reason"]


def test_directory_and_broken_link_skipped(release):
    (release / "deploy/apps/prod/pre-sync.005_dir").mkdir()
    (release / "deploy/apps/prod/pre-sync.006_dangling").symlink_to("does-not-exist")
    found = {e["name"]: e for e in hooks.discover(str(release / "deploy"), str(release), "pre-sync", "prod")}
    assert found["pre-sync.005_dir"]["reason"] == "not a regular file"
    assert "broken symlink" in found["pre-sync.006_dangling"]["reason"]


def test_symlink_inside_release_is_a_hook(release):
    (release / "deploy/apps/prod/pre-sync.003_link").symlink_to("pre-sync.001_y")
    (release / "bin").mkdir()
    script(release / "bin" / "tool", "exit 0\n")
    (release / "deploy/apps/prod/pre-sync.004_tool").symlink_to(release / "bin" / "tool")
    found = {e["name"]: e for e in hooks.discover(str(release / "deploy"), str(release), "pre-sync", "prod")}
    assert not found["pre-sync.003_link"]["skipped"]
    assert not found["pre-sync.004_tool"]["skipped"]
    assert found["pre-sync.003_link"]["path"] == str(release / "deploy/apps/prod/pre-sync.003_link")


def test_symlink_escaping_release_refuses_the_phase(tmp_path, release):
    outside = script(tmp_path / "outside.sh", "exit 0\n")
    (release / "deploy/apps/prod/pre-sync.009_evil").symlink_to(outside)
    with pytest.raises(hooks.HookError, match="outside the release"):
        hooks.discover(str(release / "deploy"), str(release), "pre-sync", "prod")
    # A sibling release is outside too, even with a common path prefix.
    sibling = script(tmp_path / "releases" / "prod-20261121-101500x" / "h", "exit 0\n")
    (release / "deploy/apps/prod/pre-sync.009_evil").unlink()
    (release / "deploy/apps/prod/pre-sync.009_sib").symlink_to(sibling)
    with pytest.raises(hooks.HookError):
        hooks.discover(str(release / "deploy"), str(release), "pre-sync", "prod")


def test_release_reached_through_a_symlink(tmp_path, release):
    current = tmp_path / "current"
    current.symlink_to(release)
    found = hooks.discover(str(current / "deploy"), str(current), "pre-sync", "prod")
    assert len(found) == 6


def test_sync_hook_discovery(tmp_path):
    assert hooks.discover(str(tmp_path / "deploy"), str(tmp_path), "sync", "prod") == []
    script(tmp_path / "deploy" / "sync" / "prod.sync", "exit 0\n")
    found = hooks.discover(str(tmp_path / "deploy"), str(tmp_path), "sync", "prod")
    assert [(e["name"], e["prefix"], e["phase"], e["skipped"]) for e in found] == [
        ("prod.sync", "prod", "sync", False)]
    assert hooks.discover(str(tmp_path / "deploy"), str(tmp_path), "sync", "cows") == []


# -- rules -----------------------------------------------------------------
@pytest.mark.parametrize("phase", [p for p in hooks.PHASES if p != "log"])
def test_deploy_failures_are_never_ignored_except_log(phase):
    for action in ("start", "sync", "finish", "hotfix"):
        assert hooks.failure_ignored(phase, action) is False


@pytest.mark.parametrize("action", hooks.ACTIONS)
def test_log_failures_always_ignored(action):
    assert hooks.failure_ignored("log", action) is True


@pytest.mark.parametrize("action", ["revert", "abort"])
def test_tree_update_and_reset_ignored_on_the_way_back(action):
    assert hooks.failure_ignored("post-tree-update", action)
    assert hooks.failure_ignored("post-reset", action)
    assert hooks.failure_ignored("post-pull", action)
    for phase in ("pre-sync", "post-sync", "sync", "post-abort", "pre-start", "post-start"):
        assert not hooks.failure_ignored(phase, action)


@pytest.mark.parametrize("rollout,phase,action", [
    ("deploy", "pre-start", "start"), ("deploy", "pre-pull", "start"), ("deploy", "post-pull", "start"),
    ("deploy", "post-tree-update", "start"), ("deploy", "post-start", "start"), ("deploy", "pre-sync", "sync"),
    ("deploy", "sync", "sync"), ("deploy", "post-sync", "sync"), ("deploy", "log", "finish"),
    ("deploy", "post-reset", "abort"), ("deploy", "post-abort", "abort"),
    ("hotfix", "pre-pull", "hotfix"), ("hotfix", "post-start", "hotfix"), ("hotfix", "sync", "sync"),
    ("revert", "pre-sync", "revert"), ("revert", "post-tree-update", "revert"), ("revert", "log", "revert"),
    ("abort", "post-tree-update", "abort"), ("abort", "post-abort", "abort"),
])
def test_hooks_see_git_deploys_action_names(rollout, phase, action):
    assert hooks.hook_action(rollout, phase) == action
    assert action in hooks.ACTIONS


# -- environment -----------------------------------------------------------
def test_hook_environment():
    base = {"PATH": "/bin", "GIT_DEPLOY_LOG_MESSAGE": "stale", "DEPLOY_HOSTS": "stale"}
    env = hooks.hook_environment(base, "deploy", "pre-sync", "prod", "common", "/r/rel",
                                 rollout_tag="prod-1", start_tag="prod-0", root="/r")
    assert env == {
        "PATH": "/bin",
        "GIT_DEPLOY_ACTION": "deploy",
        "GIT_DEPLOY_PHASE": "pre-sync",
        "GIT_DEPLOY_PREFIX": "prod",
        "GIT_DEPLOY_HOOK_PREFIX": "common",
        "GIT_DEPLOY_ROLLOUT_TAG": "prod-1",
        "GIT_DEPLOY_START_TAG": "prod-0",
        "GIT_DEPLOY_RELEASE": "/r/rel",
        "GIT_DEPLOY_ROOT": "/r",
    }
    assert base["GIT_DEPLOY_LOG_MESSAGE"] == "stale"  # caller's dict untouched


def test_unknown_values_are_empty_strings():
    env = hooks.hook_environment({}, "revert", "post-reset", "prod", "prod", "/rel")
    assert env["GIT_DEPLOY_START_TAG"] == env["GIT_DEPLOY_ROLLOUT_TAG"] == env["GIT_DEPLOY_ROOT"] == ""


def test_log_environment():
    env = hooks.hook_environment({}, "deploy", "log", "prod", "prod", "/rel", log_level="warning",
                                 log_message="hello world", log_announce=True)
    assert (env["GIT_DEPLOY_LOG_LEVEL"], env["GIT_DEPLOY_LOG_MESSAGE"], env["GIT_DEPLOY_LOG_ANNOUNCE"]) == (
        "warning", "hello world", "1")
    quiet = hooks.hook_environment({}, "deploy", "log", "prod", "prod", "/rel")
    assert (quiet["GIT_DEPLOY_LOG_LEVEL"], quiet["GIT_DEPLOY_LOG_ANNOUNCE"]) == ("info", "0")
    other = hooks.hook_environment({}, "deploy", "pre-sync", "prod", "prod", "/rel", log_message="x")
    assert "GIT_DEPLOY_LOG_MESSAGE" not in other


def test_sync_environment():
    env = hooks.sync_environment({"HOME": "/h"}, "deploy", "prod", "/rel", "/tmp/d", rollout_tag="prod-2",
                                 start_tag="prod-1", root="/r", hosts=["a", "b"], deploy_text="tag: x\n")
    assert env["DEPLOY_ROLLOUT_TAG"] == "prod-2"
    assert env["DEPLOY_ROLLBACK_TAG"] == "prod-1"
    assert env["DEPLOY_DEPLOY_FILE"] == "/tmp/d"
    assert env["DEPLOY_DEPLOY_TEXT"] == "tag: x\n"
    assert env["DEPLOY_ROLLOUT_PREFIX"] == "prod"
    assert env["DEPLOY_HOSTS"] == "a b"
    assert env["GIT_DEPLOY_PHASE"] == "sync" and env["GIT_DEPLOY_HOOK_PREFIX"] == "prod"
    assert env["HOME"] == "/h"


def test_fail_whale():
    text = hooks.fail_whale(None, "/x/prod.sync", "ops@example.com")
    assert text.startswith("DON'T PANIC") and "/x/prod.sync" in text and "ops@example.com" in text
    assert "{" not in hooks.fail_whale(None, "/x")
    assert hooks.fail_whale("{SYNC_HOOK} broke, mail {SUPPORT_EMAIL}", "/s", "a@b") == "/s broke, mail a@b"


# -- output ----------------------------------------------------------------
def test_output_cap_keeps_the_tail():
    cap = hooks.OutputCap(10)
    for chunk in (b"0123456789", b"abcdef", b"XYZ"):
        cap.feed(chunk)
    assert cap.text() == "789abcdefXYZ"[-10:]
    assert cap.truncated and cap.total == 19
    assert hooks.cap_output(b"short", 10) == ("short", False)
    assert hooks.cap_output(b"exactly10!", 10) == ("exactly10!", False)
    assert hooks.cap_output(b"anything", 0) == ("", True)
    assert hooks.cap_output(b"", 0) == ("", False)


def test_output_cap_survives_cut_utf8():
    text, truncated = hooks.cap_output("ééé".encode("utf-8"), 5)
    assert truncated and text.endswith("éé")


def test_tail():
    assert hooks.tail("\n".join(str(i) for i in range(100)) + "\n", lines=3) == "97\n98\n99"
    assert hooks.tail("x" * 5000, chars=10) == "x" * 10
    assert hooks.tail(None) == ""


def test_hook_log_lines(tmp_path):
    log = hooks.HookLog(str(tmp_path / "logs" / "active.log"), phase="pre-sync", env="prod", tag="prod-1")
    log.event("common/a start")
    log.output("common/a", "out", b"one\ntw")
    log.output("common/a", "out", b"o\nthree")
    log.output("common/a", "err", b"oops\n")
    log.flush("common/a")
    log.close()
    lines = (tmp_path / "logs" / "active.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "env=prod tag=prod-1 phase=pre-sync common/a start",
        "env=prod tag=prod-1 phase=pre-sync common/a out: one",
        "env=prod tag=prod-1 phase=pre-sync common/a out: two",
        "env=prod tag=prod-1 phase=pre-sync common/a err: oops",
        "env=prod tag=prod-1 phase=pre-sync common/a out: three",
    ]
    assert oct((tmp_path / "logs" / "active.log").stat().st_mode & 0o777) == oct(0o640)


def test_hook_log_splits_endless_lines(tmp_path):
    log = hooks.HookLog(str(tmp_path / "log"), phase="x")
    for _round in range(5):
        log.output("h", "out", b"y" * 10000)
    log.flush("h")
    log.close()
    lines = (tmp_path / "log").read_text().splitlines()
    assert sum(line.count("y") for line in lines) == 50000
    assert max(len(line) for line in lines) < hooks.MAX_LOG_LINE + 100


# -- runner ----------------------------------------------------------------
def test_run_command_captures(tmp_path):
    hook = script(tmp_path / "h", 'echo "out $1 $FOO"; pwd; echo bad >&2; exit 3\n')
    seen = []
    result = hooks.run_command([str(hook), "arg"], str(tmp_path), {"FOO": "bar", "PATH": os.environ["PATH"]},
                               5, 1000, on_output=lambda s, d: seen.append(s))
    assert result.rc == 3
    assert result.stdout == "out arg bar\n%s\n" % tmp_path
    assert result.stderr == "bad\n"
    assert not result.truncated and not result.timed_out
    assert set(seen) == {"out", "err"}


def test_run_command_never_uses_a_shell(tmp_path):
    odd = script(tmp_path / "name with spaces; echo injected", "echo ran\n")
    result = hooks.run_command([str(odd)], str(tmp_path), dict(os.environ), 5, 1000)
    assert result.stdout == "ran\n"


def _dead(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _wait_dead(pid, deadline):
    while time.monotonic() < deadline:
        if _dead(pid):
            return True
        time.sleep(0.02)
    return _dead(pid)


def test_timeout_kills_the_process_group(tmp_path):
    hook = script(tmp_path / "h", """\
        sh -c 'echo $$ > child.pid; exec sleep 300' &
        sh -c 'trap "" TERM; echo $$ > stubborn.pid; exec sleep 300' &
        echo started
        wait
        """)
    start = time.monotonic()
    result = hooks.run_command([str(hook)], str(tmp_path), dict(os.environ), 0.5, 1000, kill_grace=0.5)
    assert result.timed_out and result.rc is not None and result.rc < 0
    assert result.stdout == "started\n"
    assert time.monotonic() - start < 5
    for name in ("child.pid", "stubborn.pid"):
        pid = int((tmp_path / name).read_text())
        assert _wait_dead(pid, time.monotonic() + 5), name


def test_timeout_when_hook_closes_its_output(tmp_path):
    hook = script(tmp_path / "h", "exec >/dev/null 2>&1\nexec sleep 300\n")
    result = hooks.run_command([str(hook)], str(tmp_path), dict(os.environ), 0.5, 1000, kill_grace=0.5)
    assert result.timed_out


def test_background_child_holding_the_pipe_does_not_hang(tmp_path):
    hook = script(tmp_path / "h", "sh -c 'echo $$ > daemon.pid; exec sleep 30' &\necho done\n")
    start = time.monotonic()
    result = hooks.run_command([str(hook)], str(tmp_path), dict(os.environ), 20, 1000, drain=0.3)
    assert result.rc == 0 and not result.timed_out and result.stdout == "done\n"
    assert time.monotonic() - start < 5
    pid = int((tmp_path / "daemon.pid").read_text())
    assert not _dead(pid)  # a hook may leave daemons running
    os.kill(pid, 15)


def test_big_output_is_streamed_not_held(tmp_path):
    """50 MB through the runner and the log: the process's peak memory stays flat."""
    hook = script(tmp_path / "h", "yes \"$(printf '%0999d' 0)\" | head -c 52428800\n")
    program = textwrap.dedent("""\
        import resource, sys
        sys.path.insert(0, %r)
        from ansible_collections.gitdeploy.rollout.plugins.module_utils import hooks
        log = hooks.HookLog(%r, phase="pre-sync", env="prod")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = hooks.run_command([%r], %r, {"PATH": "/usr/bin:/bin"}, 60, 4096,
                              on_output=lambda s, d: log.output("h", s, d))
        log.flush("h")
        log.close()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(r.rc, r.truncated, len(r.stdout), after - before)
        """) % (str(collections_path()), str(tmp_path / "log"), str(hook), str(tmp_path))
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
    rc, truncated, kept, grown_kb = out.split()
    assert (rc, truncated, kept) == ("0", "True", "4096")
    assert int(grown_kb) < 20 * 1024
    with open(tmp_path / "log", "rb") as handle:
        payload = sum(len(line.split(b"h out: ", 1)[1]) - 1 for line in handle)
    assert payload == 52428800 - 52428800 // 1000  # every byte but the newlines


def test_run_hooks_stops_at_first_failure(tmp_path):
    script(tmp_path / "deploy/apps/common/pre-sync.1", "echo 1 >> order\n")
    script(tmp_path / "deploy/apps/prod/pre-sync.2", "echo 2 >> order; echo broken >&2; exit 4\n")
    script(tmp_path / "deploy/apps/prod/pre-sync.3", "echo 3 >> order\n")
    entries = hooks.discover(str(tmp_path / "deploy"), str(tmp_path), "pre-sync", "prod")
    summary = hooks.run_hooks(entries, str(tmp_path), lambda e: dict(os.environ), "pre-sync", "deploy",
                              timeout=5)
    assert (tmp_path / "order").read_text() == "1\n2\n"
    assert summary["failed_hook"] == str(tmp_path / "deploy/apps/prod/pre-sync.2")
    assert "exited 4" in summary["failure"] and "broken" in summary["failure"]
    assert "pre-sync" in summary["failure"]
    assert summary["hooks"][2]["skipped"] and "earlier" in summary["hooks"][2]["reason"]
    assert summary["ran"] == 2


def test_run_hooks_ignored_failures_continue(tmp_path):
    script(tmp_path / "deploy/apps/common/post-reset.1", "exit 1\n")
    script(tmp_path / "deploy/apps/prod/post-reset.2", "echo ran > ran\n")
    entries = hooks.discover(str(tmp_path / "deploy"), str(tmp_path), "post-reset", "prod")
    summary = hooks.run_hooks(entries, str(tmp_path), lambda e: dict(os.environ), "post-reset", "abort")
    assert summary["failure"] is None and summary["failed_hook"] is None
    assert [f["rc"] for f in summary["ignored_failures"]] == [1]
    assert (tmp_path / "ran").exists()
    assert any("ignored" in w for w in summary["warnings"])


def test_run_hooks_check_mode_runs_nothing(tmp_path):
    script(tmp_path / "deploy/apps/common/pre-sync.1", "touch ran\n")
    entries = hooks.discover(str(tmp_path / "deploy"), str(tmp_path), "pre-sync", "prod")
    summary = hooks.run_hooks(entries, str(tmp_path), lambda e: {}, "pre-sync", "deploy", check_mode=True)
    assert summary["ran"] == 1 and summary["hooks"][0]["rc"] is None
    assert not (tmp_path / "ran").exists()


def test_unrunnable_hook_is_a_failure(tmp_path):
    hook = tmp_path / "deploy/apps/common/pre-sync.1"
    hook.parent.mkdir(parents=True)
    hook.write_text("#!/nonexistent/interpreter\n")
    hook.chmod(0o755)
    entries = hooks.discover(str(tmp_path / "deploy"), str(tmp_path), "pre-sync", "prod")
    summary = hooks.run_hooks(entries, str(tmp_path), lambda e: {}, "pre-sync", "deploy")
    assert summary["hooks"][0]["rc"] == 126 and "cannot execute" in summary["failure"]


# -- hooks from a commit ---------------------------------------------------
def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "README").write_text("app\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "no hooks")
    script(path / "deploy/apps/common/pre-sync.1", "echo 1\n")
    script(path / "deploy/apps/common/pre-sync.2", "echo 2\n", mode=0o644)
    (path / "deploy/apps/prod").mkdir(parents=True)
    (path / "deploy/apps/prod/pre-sync.3").symlink_to("../common/pre-sync.1")
    script(path / "other/file", "x\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "hooks")
    git(path, "tag", "-a", "prod-1", "-m", "rollout")
    return path


def test_export_hook_dir_keeps_modes_and_links(tmp_path, repo):
    dest = tmp_path / "export"
    dest.mkdir()
    sha, exported = hooks.export_hook_dir(str(repo), "prod-1", "deploy", str(dest))
    assert exported and sha == git(repo, "rev-parse", "prod-1^{commit}")
    assert sorted(p.name for p in (dest / "deploy/apps/common").iterdir()) == ["pre-sync.1", "pre-sync.2"]
    assert os.access(dest / "deploy/apps/common/pre-sync.1", os.X_OK)
    assert not os.access(dest / "deploy/apps/common/pre-sync.2", os.X_OK)
    assert os.readlink(dest / "deploy/apps/prod/pre-sync.3") == "../common/pre-sync.1"
    assert not (dest / "other").exists() and not (dest / "README").exists()
    found = hooks.discover(str(dest / "deploy"), str(dest), "pre-sync", "prod")
    assert [(e["name"], e["skipped"]) for e in found] == [
        ("pre-sync.1", False), ("pre-sync.2", True), ("pre-sync.3", False)]


def test_export_hook_dir_short_id_and_missing_dir(tmp_path, repo):
    first = git(repo, "rev-parse", "HEAD~1")
    sha, exported = hooks.export_hook_dir(str(repo), first[:10], "deploy", str(tmp_path))
    assert (sha, exported) == (first, False)
    assert not (tmp_path / "deploy").exists()
    assert hooks.export_hook_dir(str(repo), "main", "other", str(tmp_path))[1] is True
    with pytest.raises(hooks.HookError, match="not a commit"):
        hooks.export_hook_dir(str(repo), "no-such-tag", "deploy", str(tmp_path))
    with pytest.raises(ValueError):
        hooks.export_hook_dir(str(repo), "main", "../escape", str(tmp_path))


def test_dulwich_only_imported_for_commits():
    program = ("import sys; sys.path.insert(0, %r); "
               "from ansible_collections.gitdeploy.rollout.plugins.module_utils import hooks; "
               "print('dulwich' in sys.modules)") % str(collections_path())
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_phases_present_lists_the_phases_a_release_has_hooks_for(release):
    present = hooks.phases_present(str(release), "deploy", "prod")
    assert present == ["pre-sync", "post-sync"]  # common and prod; cows is another env
    assert hooks.phases_present(str(release), "nowhere", "prod") == []


def test_executables_named_after_no_phase_are_found_for_the_env_and_common(release):
    apps = release / "deploy" / "apps"
    script(apps / "common" / "pre-pul.010_lb", "exit 0\n")  # a typo: it would never run
    script(apps / "prod" / "post-pull.010_ok", "exit 0\n")
    script(apps / "prod" / "NOTES.txt", "not a hook\n", mode=0o644)
    script(apps / "cows" / "presync.010_other_env", "exit 0\n")
    assert hooks.unknown_phases(str(release), "deploy", "prod") == [
        "deploy/apps/common/pre-pul.010_lb", "deploy/apps/prod/pre-syncer"]
    assert hooks.unknown_phases(str(release), "nowhere", "prod") == []


def test_run_phase_discovers_runs_and_describes(tmp_path):
    release = tmp_path / "release"
    hook = release / "deploy" / "apps" / "common" / "post-sync.010_say"
    hook.parent.mkdir(parents=True)
    hook.write_text("#!/bin/sh\necho \"$GIT_DEPLOY_PHASE $GIT_DEPLOY_ACTION $GIT_DEPLOY_ROLLOUT_TAG\"\n")
    hook.chmod(0o755)
    log = tmp_path / "active.log"
    summary = hooks.run_phase(str(release), "deploy", "post-sync", "prod", "deploy", rollout_tag="prod-1",
                              log_file=str(log))
    assert summary["failure"] is None and summary["ran"] == 1
    assert summary["msg"] == "ran 1 post-sync hook(s) for prod"
    assert summary["hooks"][0]["stdout"] == "post-sync deploy prod-1\n"
    assert "common/post-sync.010_say out: post-sync deploy prod-1" in log.read_text()
    none = hooks.run_phase(str(release), "deploy", "pre-sync", "prod", "deploy")
    assert none["ran"] == 0 and none["msg"].startswith("no pre-sync hooks for prod")
    check = hooks.run_phase(str(release), "deploy", "post-sync", "prod", "deploy", check_mode=True)
    assert check["msg"] == "check mode: would run 1 post-sync hook(s) for prod in this order: common/post-sync.010_say"


def test_a_hook_re_pointed_by_an_earlier_hook_is_not_run(tmp_path):
    """The first hook re-points the second one (a symlink checked inside the release) at a
    script outside it: the second hook does not run, and the phase fails saying why."""
    release = tmp_path / "release"
    apps = release / "deploy" / "apps" / "common"
    outside = script(tmp_path / "outside.sh", "touch %s\n" % (tmp_path / "pwned"))
    script(release / "bin" / "check.sh", "exit 0\n")
    second = apps / "pre-sync.020_check"
    apps.mkdir(parents=True)
    second.symlink_to(release / "bin" / "check.sh")
    script(apps / "pre-sync.010_repoint", "ln -sfn %s %s\n" % (outside, second))
    summary = hooks.run_phase(str(release), "deploy", "pre-sync", "prod", "deploy")
    assert not (tmp_path / "pwned").exists()
    assert summary["failed_hook"] == str(second)
    assert "resolved to %s when the pre-sync hooks were checked and resolves to %s now" % (
        release / "bin" / "check.sh", outside) in summary["failure"]
