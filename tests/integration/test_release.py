"""git_deploy_release / git_deploy_release_info on real SSH hosts (the ``deployment`` fixture).

Each test sets up ``<root>/repo.git`` on every host itself (``git clone --bare`` of a
small repository with annotated rollout tags: delivery is another module's job), then
runs its steps as one small playbook (``play``): every step registers its result, and a
last task writes them all to ``<root>/../results.json`` on the host. The test hosts are
sshd instances on this machine, so the test reads that file, and the roots, directly.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

RELEASE = "gitdeploy.rollout.git_deploy_release"
INFO = "gitdeploy.rollout.git_deploy_release_info"
ROOT = "{{ git_deploy_root }}"
PROD = ("prod1", "prod2", "prod3")
HOST = "prod1"
TAGS = ["prod-20260101-000000", "prod-20260102-000000", "prod-20260103-000000",
        "prod-20260104-000000", "prod-20260105-000000"]
T1, T2, T3, T4, T5 = TAGS
_playbooks = itertools.count()


def git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """An application repository with five annotated rollout tags: (path, {tag: commit})."""
    src = tmp_path_factory.mktemp("release-src") / "app"
    src.mkdir()
    git("init", "-q", "-b", "main", str(src))
    git("config", "user.email", "test@example.com", cwd=src)
    git("config", "user.name", "Test", cwd=src)
    commits = {}
    for number, tag in enumerate(TAGS, 1):
        files = {"app.txt": "release %d\n" % number,
                 "deploy/apps/common/pre-sync.010_check.sh": "#!/bin/sh\necho %d\n" % number}
        if number == 1:
            files["old.txt"] = "only in the first release\n"
            files["var/uploads/seed.txt"] = "seeded from the tree\n"
        subprocess.run(["git", "rm", "-rq", "--ignore-unmatch", "."], cwd=src, check=True)
        for name, text in files.items():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_text(text)
        git("add", "-A", cwd=src)
        git("commit", "-qm", "release %d" % number, cwd=src)
        git("tag", "-a", tag, "-m", "rollout of prod", cwd=src)
        commits[tag] = git("rev-parse", "HEAD", cwd=src)
    return src, commits


def seed(deployment, source, hosts=PROD):
    """Give every host's root an object store holding the tags, as delivery would."""
    for host in hosts:
        root = deployment.root(host)
        root.mkdir(parents=True, exist_ok=True)
        git("clone", "-q", "--bare", str(source[0]), str(root / "repo.git"))


def release(**args):
    return {RELEASE: dict(root=ROOT, **args)}


def info(**args):
    return {INFO: dict(root=ROOT, **args)}


def deploy_file(tag, commit):
    return "commit: %s\ntag: %s\ndeployed-by: test\n\nrollout of prod\n" % (commit, tag)


def play(deployment, tmp_path, steps, hosts="prod", args=(), collect=True):
    """Run ``steps`` (name, task) on ``hosts`` as one playbook; return {host: {name: result}}.

    Steps may fail (``ignore_errors``); a last task prints every host's results (``debug``
    runs on the controller: no extra round trip to the hosts) and they are read back here.
    """
    tasks = [dict(task, name=name, register=name, ignore_errors=True) for name, task in steps]
    if collect:
        tasks.append({"name": "collect", "ansible.builtin.debug": {"var": "collected"},
                      "vars": {"collected": "{{ {%s} }}" % ", ".join("'%s': %s" % (name, name) for name, _task in steps)}})
    playbook = tmp_path / ("play-%d.yml" % next(_playbooks))
    playbook.write_text(json.dumps([{"hosts": hosts, "gather_facts": False, "tasks": tasks}], indent=1))
    proc = deployment.playbook(playbook, *args)
    out = {}
    if collect:
        start = proc.stdout.find("TASK [collect]")
        assert start >= 0, proc.stdout
        for match in re.finditer(r"^ok: \[([\w.-]+)\] => ", proc.stdout[start:], re.MULTILINE):
            value, _end = json.JSONDecoder().raw_decode(proc.stdout, start + match.end())
            out[match.group(1)] = value["collected"]
    return out


def adhoc(deployment, tmp_path, hosts, module, args, *flags):
    """Run one module ad hoc on ``hosts``; return {host: result} (the ``tree`` callback's files)."""
    tree = tmp_path / ("tree-%d" % next(_playbooks))
    deployment.ansible(hosts, "-m", module, "-a", json.dumps(args), *flags, check=False,
                       ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree",
                       ANSIBLE_CALLBACK_TREE_DIR=str(tree))
    return {host: json.loads((tree / host).read_text()) for host in os.listdir(tree)}


def listing(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def checksum(root):
    """One digest of every path under ``root``: type, mode, mtime, link target, content."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest.update(("%s %o %d\n" % (os.path.relpath(path, root), st.st_mode, st.st_mtime_ns)).encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def test_prepare_live_second_release_idempotence_shared_paths_and_revert(deployment, tmp_path, source):
    commits = source[1]
    seed(deployment, source)
    shared = ["var/uploads", "tmp/cache"]
    results = play(deployment, tmp_path, [
        ("prep1", release(tag=T1, commit=commits[T1], state="prepared", shared_paths=shared,
                          deploy_file=deploy_file(T1, commits[T1]))),
        ("live1", release(tag=T1, commit=commits[T1], state="live")),
        ("prep2", release(tag=T2, commit=commits[T2], state="prepared", shared_paths=shared,
                          deploy_file=deploy_file(T2, commits[T2]))),
        ("prep2_again", release(tag=T2, commit=commits[T2], state="prepared", shared_paths=shared,
                                deploy_file=deploy_file(T2, commits[T2]))),
        ("live2", release(tag=T2, commit=commits[T2], state="live")),
        ("live2_again", release(tag=T2, commit=commits[T2], state="live")),
    ], args=("--diff",))
    assert tuple(sorted(results)) == PROD
    before = {}
    for host in PROD:
        r = results[host]
        root = deployment.root(host)
        for step in r:
            assert not r[step].get("failed"), (host, step, r[step])
        # prepare: the tree, no .git, the deploy file, shared paths linked (seeded / created)
        assert r["prep1"]["changed"] and r["prep1"]["release"] == str(root / "releases" / T1)
        assert r["prep1"]["commit"] == commits[T1] and r["prep1"]["live_tag"] is None
        rel1, rel2 = root / "releases" / T1, root / "releases" / T2
        assert (rel1 / "app.txt").read_text() == "release 1\n"
        assert not (rel1 / ".git").exists()
        assert (rel1 / ".deploy").read_text() == deploy_file(T1, commits[T1])
        assert os.readlink(rel1 / "var" / "uploads") == "../../../shared/var/uploads"
        assert (root / "shared/var/uploads/seed.txt").read_text() == "seeded from the tree\n"
        assert (root / "shared/tmp/cache").is_dir() and os.readlink(rel2 / "tmp" / "cache") == "../../../shared/tmp/cache"
        # first switch
        assert r["live1"]["changed"] and r["live1"]["previous_tag"] is None and r["live1"]["live_tag"] == T1
        # second release: prepared once, then unchanged; live with the previous tag; then unchanged
        assert r["prep2"]["changed"] and r["prep2"]["live_tag"] == T1
        assert not r["prep2_again"]["changed"] and r["prep2_again"]["actions"] == []
        assert r["live2"]["changed"] and r["live2"]["previous_tag"] == T1 and r["live2"]["pruned"] == []
        assert r["live2"]["diff"]["before"] == "%s/current -> releases/%s\n" % (root, T1)
        assert r["live2"]["diff"]["after"] == "%s/current -> releases/%s\n" % (root, T2)
        assert not r["live2_again"]["changed"] and r["live2_again"]["previous_tag"] == T2
        assert (rel2 / ".deploy").read_text() == deploy_file(T2, commits[T2])
        assert not (rel2 / "old.txt").exists() and (rel2 / "var/uploads/seed.txt").exists()
        # a user uploads through the live release; the old release is left as it was
        (root / "current" / "var" / "uploads" / "user.txt").write_text("uploaded by a user\n")
        before[host] = checksum(root / "releases"), os.stat(rel1).st_ino
    reverted = adhoc(deployment, tmp_path, "prod", RELEASE, {"root": ROOT, "tag": T1, "state": "live"})
    for host in PROD:
        r = reverted[host]
        root = deployment.root(host)
        # revert: a pure symlink swap back to the untouched release, which sees the upload
        assert r["changed"] and r["previous_tag"] == T2 and r["live_tag"] == T1 and r["pruned"] == []
        assert r["actions"] == ["switch %s/current from releases/%s to releases/%s" % (root, T2, T1)]
        assert (checksum(root / "releases"), os.stat(root / "releases" / T1).st_ino) == before[host]
        assert os.readlink(root / "current") == "releases/" + T1
        assert (root / "current" / "app.txt").read_text() == "release 1\n"
        assert (root / "current" / "var/uploads/user.txt").read_text() == "uploaded by a user\n"
        assert listing(root / "releases") == [T1, T2]
        assert sorted(os.listdir(root)) == [".git-deploy", "current", "releases", "repo.git", "shared"]


def test_switch_is_atomic_for_a_reader(deployment, tmp_path, source):
    """A reader hammering current while the switches run never sees it missing or half-written."""
    commits = source[1]
    seed(deployment, source, [HOST])
    currents = [deployment.root(HOST) / "current"]
    valid = set("releases/" + tag for tag in (T1, T2))
    stats = {"reads": 0, "seen": set(), "errors": []}
    stop = threading.Event()

    def reader():
        appeared = set()
        while not stop.is_set():
            if stats["reads"] % 8 == 0:
                time.sleep(0.0005)  # leave the CPU to ansible now and then; still thousands of reads
            for current in currents:
                try:
                    target = os.readlink(current)
                except FileNotFoundError:
                    if current in appeared:
                        stats["errors"].append("%s missing" % current)
                    continue
                appeared.add(current)
                try:
                    os.stat(current)
                    content = (current / "app.txt").read_text()
                except OSError as exc:
                    stats["errors"].append("%s: %s" % (current, exc))
                    continue
                if target not in valid or not content.startswith("release "):
                    stats["errors"].append("%s -> %r (%r)" % (current, target, content))
                stats["seen"].add(target)
                stats["reads"] += 1

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        results = play(deployment, tmp_path, [
            ("prep", dict(release(tag="{{ item }}", commit="{{ commits[item] }}", state="prepared"),
                          loop=[T1, T2])),
            ("switch", dict(release(tag="{{ item }}", state="live"), loop=[T1, T2, T1, T2])),
        ], hosts=HOST, args=("-e", json.dumps({"commits": commits})))
    finally:
        stop.set()
        thread.join()
    assert stats["errors"] == []
    assert stats["reads"] > 1000, stats["reads"]
    assert stats["seen"] == valid
    switches = results[HOST]["switch"]["results"]
    assert [s["changed"] for s in switches] == [True] * 4
    assert [s["previous_tag"] for s in switches] == [None, T1, T2, T1]
    assert os.readlink(deployment.root(HOST) / "current") == "releases/" + T2
    assert not [n for n in os.listdir(deployment.root(HOST)) if n.startswith(".current")]


def test_keep_releases_prunes_failed_and_unfinished_first_never_live_or_previous(deployment, tmp_path, source):
    commits = source[1]
    seed(deployment, source, [HOST])
    root = deployment.root(HOST)
    unfinished = "prod-20260106-000000"
    leftover = root / "releases" / (".%s.tmp-999999999" % T4)
    (leftover / "half").mkdir(parents=True)  # an interrupted prepare
    (root / "releases" / unfinished).mkdir()  # a tree this module did not finish
    r = play(deployment, tmp_path, [
        ("prep", dict(release(tag="{{ item }}", commit="{{ commits[item] }}", state="prepared"), loop=TAGS[:4])),
        ("live1", release(tag=T1, state="live", keep_releases=10)),
        ("fail2", release(tag=T2, state="failed")),
        ("fail2_again", release(tag=T2, state="failed")),
        ("live4", release(tag=T4, state="live", keep_releases=2)),
        ("keep0", release(tag=T4, state="live", keep_releases=0)),
    ], hosts=HOST, args=("-e", json.dumps({"commits": commits})))[HOST]
    assert r["prep"]["results"][0]["cleaned"] == [str(leftover)] and not leftover.exists()
    assert r["live1"]["pruned"] == []
    assert r["fail2"]["changed"] and not r["fail2_again"]["changed"]
    assert r["fail2"]["actions"] == ["mark %s failed (%s)" % (T2, root / ".git-deploy" / "failed" / T2)]
    # T4 live, T1 previous (and the oldest): failed first, then unfinished, then the oldest others
    assert r["live4"]["previous_tag"] == T1
    assert r["live4"]["pruned"] == [T2, unfinished, T3]
    assert listing(root / "releases") == [T1, T4]
    assert listing(root / ".git-deploy" / "failed") == []
    assert listing(root / ".git-deploy" / "prepared") == [T1 + ".json", T4 + ".json"]
    assert r["keep0"]["failed"] and "keep_releases=0 is invalid: it must be 1 or more" in r["keep0"]["msg"]


def test_in_place_strategy(deployment, tmp_path, source):
    commits = source[1]
    seed(deployment, source, [HOST])
    root = deployment.root(HOST)
    current = root / "current"

    def step(tag, state, **kw):
        return release(tag=tag, commit=commits[tag], state=state, strategy="in_place",
                       deploy_file=deploy_file(tag, commits[tag]), **kw)

    r = play(deployment, tmp_path, [
        ("prep1", step(T1, "prepared")),
        ("live1", step(T1, "live")),
        ("live2", step(T2, "live")),
        ("live2_again", step(T2, "live")),
        ("edit", {"ansible.builtin.lineinfile": {"path": ROOT + "/current/app.txt", "line": "edited on the server"}}),
        ("prep3_refused", step(T3, "prepared")),
        ("dirty", info(strategy="in_place")),
        ("prep3", step(T3, "prepared", force=True)),
        ("live3", step(T3, "live", force=True)),
    ], hosts=HOST)[HOST]
    assert r["prep1"]["changed"] and r["prep1"]["release"] == str(root / ".git-deploy" / "hooks" / T1)
    assert r["prep1"]["local_modifications"] == []
    assert r["live1"]["changed"] and r["live1"]["previous_tag"] is None
    assert r["live1"]["release"] == str(current)
    assert r["live2"]["changed"] and r["live2"]["previous_tag"] == T1 and r["live2"]["pruned"] == [T1]
    assert not r["live2_again"]["changed"], r["live2_again"]
    # a local modification: refused and reported, then overridden by force
    refused = r["prep3_refused"]
    assert refused["failed"] and "1 tracked file(s) in %s were changed locally: M app.txt" % current in refused["msg"]
    assert "force: true" in refused["msg"]
    assert r["dirty"]["dirty"] and r["dirty"]["local_modifications"] == [{"status": "M", "path": "app.txt"}]
    assert r["dirty"]["live_tag"] == T2 and r["dirty"]["live_commit"] == commits[T2]
    assert r["prep3"]["changed"] and r["prep3"]["local_modifications"] == [{"status": "M", "path": "app.txt"}]
    hook = root / ".git-deploy" / "hooks" / T3 / "deploy/apps/common/pre-sync.010_check.sh"
    assert hook.read_text() == "#!/bin/sh\necho 3\n" and not (hook.parents[3] / "app.txt").exists()
    assert r["live3"]["changed"] and r["live3"]["previous_tag"] == T2 and r["live3"]["pruned"] == []
    assert r["live3"]["local_modifications"] == [{"status": "M", "path": "app.txt"}]
    assert json.loads((root / ".git-deploy" / "in_place.json").read_text())["previous_tag"] == T2
    # the tree: the new commit, files deleted between the trees gone, no .git
    assert (current / "app.txt").read_text() == "release 3\n"
    assert not (current / "old.txt").exists() and not (current / "var").exists()
    assert not (current / ".git").exists() and not (root / "releases").exists()
    assert (current / ".deploy").read_text() == deploy_file(T3, commits[T3])
    assert listing(root / ".git-deploy" / "hooks") == [T3]


def test_check_mode_touches_nothing(deployment, tmp_path, source):
    commits = source[1]
    seed(deployment, source, [HOST])
    root = deployment.root(HOST)
    play(deployment, tmp_path, [
        ("prep", dict(release(tag="{{ item }}", commit="{{ commits[item] }}", state="prepared",
                              shared_paths=["var/uploads"]), loop=[T1, T2, T3])),
        ("live1", release(tag=T1, state="live")),
    ], hosts=HOST, args=("-e", json.dumps({"commits": commits})), collect=False)
    leftover = root / "releases" / (".%s.tmp-999999999" % T4)
    leftover.mkdir()
    before = checksum(root)
    r = play(deployment, tmp_path, [
        ("prep4", release(tag=T4, commit=commits[T4], state="prepared", shared_paths=["var/uploads", "new/dir"],
                          deploy_file="x\n")),
        ("live2", release(tag=T2, state="live", keep_releases=1)),
        ("live5", release(tag=T5, state="live")),
        ("failed", release(tag=T3, state="failed")),
        ("info", info()),
    ], hosts=HOST, args=("--check", "--diff"))[HOST]
    assert checksum(root) == before
    assert not any(r[step].get("failed") for step in r), r
    assert r["prep4"]["changed"] and r["prep4"]["release"] == str(root / "releases" / T4)
    assert "would create release %s from commit %s" % (root / "releases" / T4, commits[T4]) in r["prep4"]["actions"]
    assert r["prep4"]["cleaned"] == [str(leftover)]
    assert r["live2"]["changed"] and r["live2"]["previous_tag"] == T1 and r["live2"]["pruned"] == [T3]
    assert r["live2"]["diff"]["after"] == "%s/current -> releases/%s\n" % (root, T2)
    assert r["live5"]["changed"] and r["live5"]["warnings"]  # not prepared: a real run prepares it first
    assert r["failed"]["changed"] and r["failed"]["actions"][0].startswith("would mark %s failed" % T3)
    assert r["info"]["live_tag"] == T1 and r["info"]["failed_tags"] == []
    assert os.readlink(root / "current") == "releases/" + T1


def test_release_info(deployment, tmp_path, source):
    commits = source[1]
    seed(deployment, source, [HOST])
    root = deployment.root(HOST)
    history = [
        {"action": "deploy", "tag": T1, "result": "success", "previous_tag": None},
        {"action": "deploy", "tag": T2, "result": "rolled_back", "previous_tag": T1},
        {"action": "deploy", "tag": T3, "result": "success", "previous_tag": T1},
    ]
    (root / ".git-deploy").mkdir(parents=True)
    (root / ".git-deploy" / "history.jsonl").write_text(
        "".join(json.dumps(record) + "\n" for record in history[:2]) + "{not json\n" + json.dumps(history[2]) + "\n")
    results = play(deployment, tmp_path, [
        ("prep", dict(release(tag="{{ item }}", commit="{{ commits[item] }}", state="prepared",
                              deploy_file="commit: {{ commits[item] }}\ntag: {{ item }}\n"), loop=[T1, T2, T3])),
        ("live3", release(tag=T3, state="live")),
        ("fail1", release(tag=T1, state="failed")),
        ("info", info(history_limit=2)),
    ], hosts=HOST + ":staging", args=("-e", json.dumps({"commits": commits})))
    i = results[HOST]["info"]
    assert not i["changed"] and i["exists"]
    assert i["live_tag"] == T3 and i["live_commit"] == commits[T3]
    assert i["current"] == {"kind": "symlink", "target": "releases/" + T3}
    assert [rel["name"] for rel in i["releases"]] == [T1, T2, T3]
    assert [rel["failed"] for rel in i["releases"]] == [True, False, False]
    assert [rel["live"] for rel in i["releases"]] == [False, False, True]
    assert i["releases"][0] == dict(i["releases"][0], path=str(root / "releases" / T1), commit=commits[T1],
                                    complete=True)
    assert i["failed_tags"] == [T1]
    # the history says T2's rollout was rolled back: a revert goes to T1 (without history, the
    # newest other release that is not marked failed would be chosen: T2)
    assert i["previous_tag"] == T1
    assert i["history"] == history[1:] and i["history_corrupt_lines"] == 1
    assert i["dirty"] is False and i["local_modifications"] == []
    # a host whose root was never used
    empty = results["staging1"]["info"]
    assert empty["exists"] is False and empty["live_tag"] is None and empty["releases"] == []
    assert empty["current"] == {"kind": "missing", "target": None} and empty["previous_tag"] is None
    assert results["staging1"]["prep"]["results"][0]["failed"]
    assert "git_deploy_push" in results["staging1"]["prep"]["results"][0]["msg"]
