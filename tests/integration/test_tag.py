"""git_deploy_tag and git_deploy_tag_info: real ansible-playbook runs on real git repositories.

Every test makes its repositories with the git CLI (an "upstream" bare repository and a
clone of it), runs the modules through ``ansible-playbook`` on localhost, and checks
the result and the repositories with the git CLI.  A run executes a list of steps
(one module call each, in order) and saves every step's result to a JSON file.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ansible_env

BIN = Path(sys.executable).parent
TAG_RE = re.compile(r"^prod-\d{8}-\d{6}(_[A-Z]+)?$")

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}

TAG_OPTIONS = (
    "repo", "repo_url", "version", "cache_dir", "env", "prefix", "ref", "tag_message", "date_format",
    "utc", "allow_dirty", "force", "remote", "push", "deployed_by", "deploy_id", "new_tag", "revert_of",
)
INFO_OPTIONS = ("repo", "repo_url", "cache_dir", "env", "prefix", "tag", "limit", "date_format")


# -- helpers -----------------------------------------------------------------

def git(cwd, *args: str) -> str:
    """Run the git CLI (tests only; the modules never do) and return its stdout."""
    env = dict(os.environ, **GIT_IDENTITY)
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in {cwd} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


def commit(work: Path, name: str, content: str | None = None, message: str | None = None) -> str:
    (work / name).write_text(content if content is not None else f"{name}\n")
    git(work, "add", name)
    git(work, "commit", "-q", "-m", message or f"add {name}")
    return git(work, "rev-parse", "HEAD")


def refs(repo: Path) -> str:
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


def tags(repo: Path) -> set:
    out = git(repo, "for-each-ref", "--format=%(refname:strip=2)", "refs/tags")
    return set(out.split()) if out else set()


def _playbook(module: str, options: tuple) -> str:
    args = "\n".join(f'        {o}: "{{{{ item.{o} | default(omit) }}}}"' for o in options)
    return f"""\
- name: Run {module} steps
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Step
      gitdeploy.rollout.{module}:
{args}
      loop: "{{{{ steps }}}}"
      check_mode: "{{{{ item.check_mode | default(false) }}}}"
      diff: "{{{{ item.diff | default(false) }}}}"
      vars:
        ansible_python_interpreter: "{{{{ item.python | default(ansible_playbook_python) }}}}"
      register: outcome
      ignore_errors: true

    - name: Save the results
      ansible.builtin.copy:
        content: "{{{{ outcome.results | to_json }}}}"
        dest: "{{{{ out }}}}"
        mode: "0600"
      check_mode: false
      vars:
        ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
"""


def run(tmp_path: Path, steps: list, module: str = "git_deploy_tag", **env: str) -> list:
    """Run ``steps`` (dicts of module options plus check_mode/diff/python) in one playbook."""
    options = TAG_OPTIONS if module == "git_deploy_tag" else INFO_OPTIONS
    runs = sorted(tmp_path.glob("run-*.json"))
    out = tmp_path / f"run-{len(runs):02d}.json"
    playbook = tmp_path / f"{module}.yml"
    playbook.write_text(_playbook(module, options))
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook),
           "-e", json.dumps({"steps": steps, "out": str(out)})]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(**env),
                          stdin=subprocess.DEVNULL, check=False, cwd=tmp_path)
    if not out.exists():
        raise AssertionError(f"playbook did not finish:\n{proc.stdout}\n{proc.stderr}")
    results = json.loads(out.read_text())
    assert len(results) == len(steps), proc.stdout
    return results


def ok(result: dict) -> dict:
    assert not result.get("failed"), result.get("msg")
    return result


def failed(result: dict) -> str:
    assert result.get("failed"), f"step should have failed: {result}"
    return result["msg"]


@pytest.fixture
def upstream(tmp_path):
    """(upstream bare repo, clone with one pushed commit on main tracking origin/main)."""
    up = tmp_path / "up.git"
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(up))
    git(tmp_path, "clone", "-q", str(up), str(work))
    git(work, "checkout", "-q", "-b", "main")
    git(work, "config", "user.name", "Deploy Bot")
    git(work, "config", "user.email", "bot@example.com")
    (work / ".gitignore").write_text("*.log\n")
    git(work, "add", ".gitignore")
    commit(work, "README", "hello\n", "first commit")
    git(work, "push", "-q", "-u", "origin", "main")
    return up, work


# -- git_deploy_tag ------------------------------------------------------------

def test_rollout_tag_is_annotated_pushed_and_idempotent(tmp_path, upstream):
    up, work = upstream
    head = git(work, "rev-parse", "HEAD")
    first, again = run(tmp_path, [
        {"repo": str(work), "env": "prod", "deployed_by": "alice", "deploy_id": "d-1"},
        {"repo": str(work), "env": "prod", "deployed_by": "alice", "deploy_id": "d-2"},
    ])
    ok(first)
    tag = first["tag"]
    assert TAG_RE.match(tag)
    assert first["created"] and first["pushed"] and first["changed"]
    assert first["commit"] == head
    assert first["previous_tag"] is None and first["previous_commit"] is None
    assert first["repo"] == str(work)
    assert first["commits"] == [{"id": head, "subject": "first commit"}]
    assert first["preflight"]["clean"] is True and first["preflight"]["upstream"] == "origin/main"
    assert first["tagger"] == "Deploy Bot <bot@example.com>"

    # the upstream has the annotated tag, and its message is the deploy file
    assert git(up, "for-each-ref", "--format=%(objecttype) %(refname)", "refs/tags") == f"tag refs/tags/{tag}"
    shown = git(up, "cat-file", "-p", tag)
    assert f"object {head}\ntype commit\ntag {tag}\ntagger Deploy Bot <bot@example.com>" in shown
    message = shown.split("\n\n", 1)[1]
    assert message + "\n" == first["deploy_file"]
    date = re.search(r"^deploy-date: (.+)$", message, re.M).group(1)
    stamp = datetime.datetime.strptime(tag[len("prod-"):], "%Y%m%d-%H%M%S")
    assert date == stamp.strftime("%Y-%m-%d %H:%M:%S")
    assert first["deploy_file"] == (
        f"commit: {head}\ntag: {tag}\ndeploy-date: {date}\ndeployed-from: {socket.gethostname()}\n"
        f"deployed-by: alice\nenvironment: prod\ndeploy-id: d-1\n\nrollout of {tag} to prod by alice\n"
    )

    # second run: same commit is already the last rollout -> nothing to do
    ok(again)
    assert again["tag"] == tag
    assert not again["created"] and not again["pushed"] and not again["changed"]
    assert again["deploy_file"] == first["deploy_file"]
    assert tags(work) == tags(up) == {tag}


def test_collision_suffixes_and_new_tag(tmp_path, upstream):
    up, work = upstream
    year = datetime.datetime.now(datetime.timezone.utc).strftime("%Y")
    step = {"repo": str(work), "env": "prod", "date_format": "%Y", "tag_message": "msg %TAG"}
    results = run(tmp_path, [step, dict(step, new_tag=True), dict(step, new_tag=True), step])
    names = [ok(r)["tag"] for r in results]
    assert names == [f"prod-{year}", f"prod-{year}_A", f"prod-{year}_B", f"prod-{year}_B"]
    assert [r["created"] for r in results] == [True, True, True, False]
    assert results[1]["previous_tag"] == f"prod-{year}"
    assert results[3]["previous_tag"] == f"prod-{year}_A"
    assert results[2]["deploy_file"].endswith(f"\n\nmsg prod-{year}_B\n")
    assert tags(up) == set(names)


def test_dirty_trees_fail_unless_allow_dirty_and_ignored_files_do_not_count(tmp_path, upstream):
    up, work = upstream
    (work / "notes.txt").write_text("draft\n")
    (work / "build.log").write_text("ignored\n")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(up), str(other))
    (other / "README").write_text("changed\n")
    before = refs(work), refs(other)
    untracked, modified, allowed = run(tmp_path, [
        {"repo": str(work), "env": "prod"},
        {"repo": str(other), "env": "prod"},
        {"repo": str(other), "env": "prod", "allow_dirty": True},
    ])
    msg = failed(untracked)
    assert f"the working tree {work} is not clean (1 path)" in msg
    assert "untracked: notes.txt" in msg and "build.log" not in msg
    assert "allow_dirty" in msg and ".gitignore" in msg
    assert untracked["preflight"]["dirty"] == ["untracked: notes.txt"]
    assert refs(work) == before[0]
    assert "modified: README" in failed(modified)
    ok(allowed)
    assert allowed["created"] and allowed["preflight"]["overridden"] == ["allow_dirty"]
    assert any("not clean" in w for w in allowed["warnings"])
    assert tags(up) == {allowed["tag"]}


def test_unpushed_commits_fail_unless_forced(tmp_path, upstream):
    up, work = upstream
    pushed_head = git(up, "rev-parse", "main")
    local = commit(work, "feature.txt", message="local only work")
    refused, forced, no_push, no_remote = run(tmp_path, [
        {"repo": str(work), "env": "prod"},
        {"repo": str(work), "env": "prod", "force": True},
        {"repo": str(work), "env": "prod", "force": True, "new_tag": True, "push": False},
        {"repo": str(work), "env": "prod", "new_tag": True, "remote": "none"},
    ])
    msg = failed(refused)
    assert f"commit {local[:12]} is not on origin/main" in msg
    assert "local only work" in msg and "git push origin main" in msg and "force: true" in msg
    assert refused["preflight"]["unpushed"] == [{"id": local, "subject": "local only work"}]
    ok(forced)
    assert forced["commit"] == local and forced["preflight"]["overridden"] == ["force (unpushed)"]
    # only the tag was pushed, not the branch
    assert git(up, "rev-parse", "main") == pushed_head
    # push: false and remote: none tag locally only (remote none: no unpushed check either)
    assert ok(no_push)["created"] and not no_push["pushed"] and no_push["remote"] == str(up)
    assert ok(no_remote)["created"] and not no_remote["pushed"] and no_remote["remote"] is None
    assert no_remote["preflight"]["upstream"] is None and no_remote["previous_tag"] == no_push["tag"]
    assert tags(up) == {forced["tag"]}
    assert tags(work) == {forced["tag"], no_push["tag"], no_remote["tag"]}


def test_non_fast_forward_and_older_commits_are_refused(tmp_path, upstream):
    up, work = upstream
    base = git(work, "rev-parse", "HEAD")
    git(work, "checkout", "-q", "-b", "side")
    side = commit(work, "side.txt", message="sideways work")
    git(work, "push", "-q", "-u", "origin", "side")
    git(work, "checkout", "-q", "main")
    main = commit(work, "main.txt", message="main work")
    git(work, "push", "-q", "origin", "main")
    live, older, sideways, forced = run(tmp_path, [
        {"repo": str(work), "env": "prod"},
        {"repo": str(work), "env": "prod", "ref": base},
        {"repo": str(work), "env": "prod", "ref": "side"},
        {"repo": str(work), "env": "prod", "ref": "side", "force": True},
    ])
    tag = ok(live)["tag"]
    assert live["commit"] == main
    msg = failed(older)
    assert f"does not descend from {tag}" in msg and "older than the live rollout" in msg
    assert "revert" in msg and "force: true" in msg
    msg = failed(sideways)
    assert f"commit {side[:12]} does not descend from {tag}" in msg and "non-fast-forward" in msg
    assert sideways["preflight"]["fast_forward"] is False
    ok(forced)
    assert forced["commit"] == side and forced["previous_tag"] == tag
    assert tags(up) == {tag, forced["tag"]}


def test_push_failure_keeps_the_tag_and_a_rerun_pushes_it(tmp_path, upstream):
    up, work = upstream
    moved = tmp_path / "moved.git"
    up.rename(moved)
    [result] = run(tmp_path, [{"repo": str(work), "env": "prod"}])
    msg = failed(result)
    tag = result["tag"]
    assert f"tag {tag} is in {work} but pushing it to origin ({up}) failed" in msg
    assert "No git repository was found" in msg and str(up) in msg
    assert "The tag is kept" in msg and f"git push origin refs/tags/{tag}" in msg
    assert result["created"] is True and result["pushed"] is False
    assert tags(work) == {tag}

    moved.rename(up)
    [retry] = run(tmp_path, [{"repo": str(work), "env": "prod"}])
    ok(retry)
    assert retry["tag"] == tag and not retry["created"] and retry["pushed"] and retry["changed"]
    assert tags(up) == {tag}
    assert git(up, "cat-file", "-t", tag) == "tag"


def test_check_mode_writes_nothing_and_diff_lists_the_commits(tmp_path, upstream):
    up, work = upstream
    live = "prod-20260101-000000"
    git(work, "tag", "-a", live, "-m", "made by hand")
    one = commit(work, "a.txt", message="add feature a")
    two = commit(work, "b.txt", message="fix bug b")
    git(work, "push", "-q", "origin", "main")
    before = (refs(work), refs(up), (work / ".git" / "index").read_bytes())
    [checked] = run(tmp_path, [{"repo": str(work), "env": "prod", "check_mode": True, "diff": True}])
    ok(checked)
    assert checked["changed"] and checked["created"] and not checked["pushed"]
    assert TAG_RE.match(checked["tag"])
    assert checked["previous_tag"] == live and checked["commit"] == two
    assert checked["commits"] == [{"id": two, "subject": "fix bug b"}, {"id": one, "subject": "add feature a"}]
    assert checked["deploy_file"].startswith(f"commit: {two}\ntag: {checked['tag']}\n")
    prepared = checked["diff"]["prepared"]
    assert f"rollout {live} (" in prepared and f"-> {checked['tag']} ({two[:12]})" in prepared
    assert f"{two[:12]} fix bug b\n{one[:12]} add feature a\n" in prepared
    assert (refs(work), refs(up), (work / ".git" / "index").read_bytes()) == before


def test_revert_marker_and_the_next_rollout(tmp_path, upstream):
    up, work = upstream
    year = datetime.datetime.now(datetime.timezone.utc).strftime("%Y")
    old = git(work, "rev-parse", "HEAD")
    new = commit(work, "bad.txt", message="bad change")
    git(work, "push", "-q", "origin", "main")
    t1, t2 = f"prod-{year}", f"prod-{year}_A"
    common = {"repo": str(work), "env": "prod", "date_format": "%Y", "deployed_by": "carol"}
    steps = [
        dict(common, ref=old),
        dict(common),
        dict(common, ref=t1, revert_of=t2, check_mode=True),
        dict(common, ref=t1, revert_of=t2, deploy_id="r-1"),
        dict(common, ref=t1, revert_of=t2),
        dict(common, ref="HEAD", revert_of=t2),
        dict(common, ref=t1, revert_of="prod-1999"),
        dict(common),
    ]
    first, second, check, revert, again, not_a_tag, unknown, after = run(tmp_path, steps)
    assert ok(first)["tag"] == t1 and ok(second)["tag"] == t2
    ok(check)
    assert check["created"] and check["marker"] == f"{t2}_reverted"

    ok(revert)
    assert revert["tag"] == t1 and revert["commit"] == old and revert["marker"] == f"{t2}_reverted"
    assert revert["previous_tag"] == t2 and revert["previous_commit"] == new
    assert revert["created"] and revert["pushed"]
    assert revert["commits"] == [{"id": new, "subject": "bad change"}]
    assert revert["deploy_file"] == first["deploy_file"]
    shown = git(up, "cat-file", "-p", f"{t2}_reverted")
    assert f"object {new}\ntype commit\ntag {t2}_reverted\n" in shown
    for line in (f"commit: {new}", f"tag: {t2}", f"reverted-to: {t1}", f"reverted-to-commit: {old}",
                 "reverted-by: carol", "environment: prod", "deploy-id: r-1", "revert-date: "):
        assert "\n" + line in shown

    ok(again)
    assert not again["created"] and not again["changed"] and again["marker"] == f"{t2}_reverted"
    assert "must be the rollout tag to go back to" in failed(not_a_tag)
    assert "revert_of prod-1999 is not a tag" in failed(unknown)

    # t2 is reverted: the last rollout is t1 again, so HEAD gets a new tag
    ok(after)
    assert after["tag"] == f"prod-{year}_B" and after["previous_tag"] == t1 and after["created"]
    assert tags(up) == {t1, t2, f"{t2}_reverted", f"prod-{year}_B"}


def test_repo_url_tags_in_a_bare_cache_and_pushes_back(tmp_path, upstream):
    up, work = upstream
    git(work, "checkout", "-q", "-b", "release")
    release = commit(work, "r.txt", message="release work")
    git(work, "push", "-q", "origin", "release")
    cache = tmp_path / "cache" / "up.git"
    common = {"repo_url": str(up), "cache_dir": str(cache), "env": "staging"}
    first, again, head, missing, other = run(tmp_path, [
        dict(common, version="release"),
        dict(common, version="release"),
        dict(common, version="HEAD", new_tag=True, force=True),
        dict(common, version="no-such-branch"),
        {"repo_url": str(tmp_path / "other.git"), "cache_dir": str(cache), "env": "staging"},
    ])
    ok(first)
    assert first["repo"] == str(cache) and first["commit"] == release
    assert first["created"] and first["pushed"] and first["remote"] == str(up)
    assert first["preflight"]["clean"] is None and first["preflight"]["upstream"] is None
    assert git(cache, "rev-parse", "--is-bare-repository") == "true"
    assert git(cache, "rev-parse", "refs/heads/release") == release
    assert git(up, "cat-file", "-t", first["tag"]) == "tag"
    assert git(up, "rev-parse", first["tag"] + "^{commit}") == release
    ok(again)
    assert again["tag"] == first["tag"] and not again["changed"]
    # HEAD of the cache follows the remote's HEAD (main), an ancestor of the release rollout
    ok(head)
    assert head["commit"] == git(up, "rev-parse", "main")
    assert "'no-such-branch' is not a branch, tag or commit of the cache of" in failed(missing)
    assert f"is the cache of {up}" in failed(other)


def test_preflight_errors_fallback_identity_and_missing_dulwich(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    plain = tmp_path / "plain"
    plain.mkdir()
    empty = tmp_path / "empty"
    git(tmp_path, "init", "-q", "-b", "main", str(empty))
    local = tmp_path / "local"
    git(tmp_path, "init", "-q", "-b", "main", str(local))
    commit(local, "x.txt", message="only commit")  # identity from the environment, not config
    results = run(tmp_path, [
        {"repo": str(plain), "env": "prod"},
        {"repo": str(empty), "env": "prod"},
        {"repo": str(local), "env": "bad/env"},
        {"repo": str(local), "env": "prod", "date_format": "%Y %m"},
        {"repo": str(local), "env": "prod", "deploy_id": "a\nb"},
        {"repo": str(local), "env": "prod", "ref": "nope"},
        {"repo": str(local), "env": "prod"},
        {"repo": str(local), "env": "prod", "python": "/usr/bin/python3"},
    ], HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    plain_r, empty_r, bad_env, bad_fmt, bad_id, bad_ref, local_r, no_dulwich = results
    assert f"{plain} is not a git repository" in failed(plain_r)
    assert "has no commits yet" in failed(empty_r)
    assert "env 'bad/env' is not a plain name" in failed(bad_env)
    assert "date_format '%Y %m' contains ' '" in failed(bad_fmt)
    assert "deploy_id" in failed(bad_id)
    assert "ref 'nope' is not a branch, tag or commit of" in failed(bad_ref)
    ok(local_r)
    user, host = getpass.getuser(), socket.gethostname()
    assert local_r["tagger"] == f"{user} <{user}@{host}>"
    assert local_r["pushed"] is False and local_r["remote"] is None
    assert any("has no remote 'origin'" in w for w in local_r["warnings"])
    assert any("no git user.name/user.email" in w for w in local_r["warnings"])
    assert git(local, "cat-file", "-p", local_r["tag"]).count(f"tagger {user} <{user}@{host}>") == 1
    if shutil.which("/usr/bin/python3"):
        assert "Failed to import the required Python library (dulwich)" in failed(no_dulwich)


# -- git_deploy_tag_info -------------------------------------------------------

def test_tag_info_lists_resolves_and_refuses_unknown_tags(tmp_path, upstream):
    up, work = upstream
    first = git(work, "rev-parse", "HEAD")
    second = commit(work, "2.txt", message="second")
    third = commit(work, "3.txt", message="third")

    def tag(name, target, message):
        git(work, "tag", "-a", name, target, "-m", message)

    tag("prod-20260101-090000", first, f"commit: {first}\ntag: prod-20260101-090000\n\nrollout one")
    tag("prod-20260102-090000", second, "plain annotated message")
    git(work, "tag", "prod-20260102-090000_A", second)  # lightweight
    tag("prod-20260103-090000", third, "bad one")
    tag("prod-20260103-090000_reverted", third, "reverted")
    tag("prod-eu-20260104-090000", third, "eu")
    tag("v1.0", first, "release")
    git(work, "push", "-q", "origin", "main", "--tags")
    cache = tmp_path / "info-cache.git"
    common = {"repo": str(work)}
    listing, limited, everything, resolved, unknown, bad, check, cached = run(tmp_path, [
        dict(common, env="prod", limit=0),
        dict(common, env="prod", limit=2),
        dict(common),
        dict(common, env="prod", tag="prod-20260102-090000"),
        dict(common, env="prod", tag="prod-20990101-000000"),
        dict(common, tag="../etc"),
        dict(common, env="prod-eu", check_mode=True),
        {"repo_url": str(up), "cache_dir": str(cache), "env": "prod", "tag": "prod-20260101-090000"},
    ], module="git_deploy_tag_info")
    ok(listing)
    assert not listing["changed"]
    assert [(t["name"], t["reverted"]) for t in listing["tags"]] == [
        ("prod-20260103-090000", True),
        ("prod-20260102-090000_A", False),
        ("prod-20260102-090000", False),
        ("prod-20260101-090000", False),
    ]
    newest, light, annotated, oldest = listing["tags"]
    assert newest["commit"] == third and newest["env"] == "prod" and newest["subject"] == "bad one"
    assert light["tagger"] is None and light["subject"] == "second" and light["commit"] == second
    assert annotated["tagger"].startswith("Test Author <author@example.com>") or annotated["tagger"].startswith(
        "Deploy Bot <bot@example.com>")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", annotated["date"])
    assert oldest["subject"] == "rollout one"
    assert listing["latest"]["name"] == "prod-20260102-090000_A"
    assert listing["previous"]["name"] == "prod-20260102-090000"

    assert [t["name"] for t in ok(limited)["tags"]] == ["prod-20260103-090000", "prod-20260102-090000_A"]
    assert ok(everything)["tags"][0]["name"] == "prod-eu-20260104-090000"
    assert "v1.0" not in [t["name"] for t in everything["tags"]]
    assert everything["previous"] is None

    ok(resolved)
    assert resolved["tag"]["name"] == "prod-20260102-090000" and resolved["tag"]["commit"] == second
    assert resolved["tag"]["env"] == "prod" and resolved["tag"]["exists"] is True
    msg = failed(unknown)
    assert "tag prod-20990101-000000 does not exist in" in msg and "prod-20260103-090000" in msg
    assert "tag '../etc' is not a plain name" in failed(bad)
    ok(check)
    assert [t["name"] for t in check["tags"]] == ["prod-eu-20260104-090000"]
    assert check["latest"]["commit"] == third and check["previous"] is None

    ok(cached)
    assert cached["repo"] == str(cache)
    assert cached["tag"]["commit"] == first and cached["latest"]["name"] == "prod-20260102-090000_A"
    assert [t["name"] for t in cached["tags"]] == [t["name"] for t in listing["tags"]]
