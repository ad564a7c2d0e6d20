"""The rollout playbooks as AWX / Automation Controller runs them: through ansible-runner.

Every job gets a private data dir laid out like the one AWX hands to ansible-runner in
the execution environment:

    project/playbooks/*.yml   the project checkout (this collection's playbooks)
    inventory/hosts.json      the job's inventory: groups per environment, no credentials
    env/extravars             AWX's awx_*/tower_* job variables, the job template's extra
                              vars, the survey answers (and, in a workflow, the artifacts)
    env/envvars               ANSIBLE_COLLECTIONS_PATH, ANSIBLE_CONFIG, ...
    env/settings              job and idle timeouts
    env/ssh_key               the Machine credential's key (ansible-runner loads it into ssh-agent)
    env/cmdline               -u <the credential's user>

The job template settings (playbook, extra vars, survey defaults) are the ones
playbooks/awx_configure.yml sends to the controller: it is run first against a stand-in
awx.awx collection that records what each module was asked to do. AWX has no checkout
of the application, so jobs roll out from git_deploy_repo_url (the app's upstream bare
repository). Jobs run with stdin at EOF (/dev/null) and without a controlling terminal,
bounded by ansible-runner's timeouts: a prompt would end the job as "timeout", not hang
the suite.
"""

from __future__ import annotations

import getpass
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from apprepo import AppRepo
from conftest import BIN, ansible_env
from hosts import REPO_ROOT, collections_path

RUNNER_BIN = BIN / "ansible-runner"
PROD = ["prod1", "prod2", "prod3"]
JOB_TIMEOUT = 900     # ansible-runner job_timeout (s): the job is ended and reported "timeout"
IDLE_TIMEOUT = 300    # ansible-runner idle_timeout: no output for this long ends the job
PROMPTS = re.compile(r"password:|passphrase|\(yes/no|\[y/n\]|continue connecting", re.IGNORECASE)
ROLLOUT = "gitdeploy.rollout."
# The role publishes its outcome with set_stats under these names: <prefix>id, env, action,
# tag, commit, previous_tag, hosts, failed_hosts, result (deploy, revert); <prefix>status.
STATS = "git_deploy_last_"
# Per host, in this order, each one run on the host (git_deploy_step): lock, prepare
# (objects, release, pre-sync), switch, post-sync (the sample app has post-sync hooks),
# finish (record, unlock).
STEPS = ["lock", "prepare", "switch", "post-sync", "finish"]

pytestmark = pytest.mark.skipif(not RUNNER_BIN.exists(), reason="ansible-runner is not installed")

# A stand-in for the awx.awx collection: every module is an action plugin that records
# its arguments (and check mode) and reports "changed", or, with AWX_STUB_EXISTING=1,
# "unchanged" (the object exists already).
STUB_ACTION = textwrap.dedent('''\
    import json
    import os

    from ansible.plugins.action import ActionBase


    class ActionModule(ActionBase):
        TRANSFERS_FILES = False

        def run(self, tmp=None, task_vars=None):
            result = super().run(tmp, task_vars)
            with open(os.environ["AWX_STUB_LOG"], "a") as log:
                log.write(json.dumps({"module": self._task.action, "check_mode": self._play_context.check_mode,
                                      "args": self._task.args}, default=str) + "\\n")
            result["changed"] = os.environ.get("AWX_STUB_EXISTING") != "1"
            return result
''')
STUB_MODULES = ("execution_environment", "group", "inventory", "inventory_source", "job_template", "project",
                "workflow_job_template")


# -- what awx_configure.yml configures -----------------------------------------------------

def configure_awx(base: Path, *extra_args: str, existing: bool = False) -> tuple[subprocess.CompletedProcess, list]:
    """Run playbooks/awx_configure.yml against the awx.awx stand-in; return the run and its calls."""
    stub = base / "stub-collections"
    plugins = stub / "ansible_collections" / "awx" / "awx" / "plugins" / "action"
    if not plugins.exists():
        plugins.mkdir(parents=True)
        (plugins.parent.parent / "meta").mkdir()
        (plugins.parent.parent / "meta" / "runtime.yml").write_text('---\nrequires_ansible: ">=2.15"\n')
        (plugins / "_record.py").write_text(STUB_ACTION)
        for name in STUB_MODULES:
            (plugins / f"{name}.py").write_text(
                "from ansible_collections.awx.awx.plugins.action._record import ActionModule  # noqa: F401\n")
    log = base / f"awx-calls-{time.monotonic_ns()}.jsonl"
    log.touch()
    env = ansible_env(ANSIBLE_COLLECTIONS_PATH=f"{stub}:{collections_path()}", AWX_STUB_LOG=str(log),
                      AWX_STUB_EXISTING="1" if existing else "0", CONTROLLER_HOST="https://awx.example.invalid")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), str(REPO_ROOT / "playbooks" / "awx_configure.yml"),
         "-e", json.dumps({"gitdeploy_awx_app_repo_url": "git@git.example.invalid:acme/myapp.git",
                           "gitdeploy_awx_machine_credential": "myapp targets"}), *extra_args],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False, timeout=300)
    return proc, [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def awx_objects(tmp_path_factory) -> dict:
    """The controller objects awx_configure.yml creates, by module (job templates by key)."""
    proc, calls = configure_awx(tmp_path_factory.mktemp("awx-configure"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    objects: dict = {}
    for call in calls:
        objects.setdefault(call["module"].removeprefix("awx.awx."), []).append(call["args"])
    objects["templates"] = {t["playbook"].rsplit("/", 1)[-1].removesuffix(".yml"): t
                            for t in objects["job_template"]}
    return objects


def survey_defaults(template: dict) -> dict:
    return {q["variable"]: q["default"] for q in template["survey_spec"]["spec"] if "default" in q}


# -- jobs ------------------------------------------------------------------------------------

@dataclass
class Job:
    ident: str
    status: str
    rc: int
    stdout: str
    events: list
    seconds: float

    @property
    def artifacts(self) -> dict:
        """The set_stats data, as AWX stores it as the job's artifacts."""
        [stats] = [e for e in self.events if e["event"] == "playbook_on_stats"]
        return stats["event_data"].get("artifact_data", {})

    @property
    def outcome(self) -> dict:
        """The role's published outcome, by short name (tag, commit, result, ...)."""
        return {k.removeprefix(STATS): v for k, v in self.artifacts.items() if k.startswith(STATS)}

    def actions(self, host: str) -> list:
        """(task name, action) of every task that ran on ``host``, in order."""
        return [(e["event_data"].get("task"), e["event_data"].get("task_action")) for e in self.events
                if e["event"] in ("runner_on_ok", "runner_on_failed") and e["event_data"].get("host") == host]

    def steps(self, host: str) -> list:
        """The rollout steps that ran on ``host`` (one git_deploy_step run each), in order."""
        found = []
        for event in self.events:
            data = event.get("event_data") or {}
            step = (data.get("res") or {}).get("step") or {}
            if (event["event"] in ("runner_on_ok", "runner_on_failed") and data.get("host") == host
                    and data.get("task_action") == ROLLOUT + "git_deploy_step" and step.get("ran")):
                found.append(step["step"])
        return found

    def explain(self) -> str:
        return f"job {self.ident}: status={self.status} rc={self.rc} after {self.seconds:.0f}s\n{self.stdout[-6000:]}"


class Controller:
    """Launches job templates the way AWX does: one private data dir per job, run by ansible-runner."""

    job_ids = itertools.count(1001)

    def __init__(self, deployment, app: AppRepo, awx_objects: dict, base: Path):
        self.deployment = deployment
        self.app = app
        self.templates = awx_objects["templates"]
        self.base = base

    def inventory(self, slice_number: int = 1, slice_count: int = 1) -> dict:
        """The job's inventory. AWX gives a sliced job's slice N of M the hosts sorted by
        name, hosts[N-1::M], and only the groups' members among them."""
        inventory = json.loads(self.deployment.inventory.read_text())
        hosts = sorted(h for group in inventory["all"]["children"].values() for h in group["hosts"])
        keep = set(hosts[slice_number - 1::slice_count])
        for group in inventory["all"]["children"].values():
            group["hosts"] = {name: {k: v for k, v in hostvars.items()
                                     # the Machine credential gives the user and the key
                                     if k not in ("ansible_user", "ansible_ssh_private_key_file")}
                              for name, hostvars in group["hosts"].items() if name in keep}
        return inventory

    def launch(self, template: str, answers: dict, *, inventory: dict | None = None, artifacts: dict | None = None,
               workflow: str | None = None, sliced: bool = False) -> Job:
        """Launch job template ``template`` ("deploy", ...) with survey ``answers``.

        ``artifacts`` are the set_stats of earlier workflow nodes (AWX passes them on as extra
        vars, over the node's own data); ``workflow`` names the workflow job this job is a
        node of; ``sliced`` makes it one slice of a sliced job (AWX runs those as nodes of a
        workflow job that has the job template's name)."""
        spec = self.templates[template]
        job_id = next(self.job_ids)
        ident = str(job_id)
        pdd = self.base / "jobs" / ident
        (pdd / "project").mkdir(parents=True)
        shutil.copytree(REPO_ROOT / "playbooks", pdd / "project" / "playbooks")
        (pdd / "inventory").mkdir()
        (pdd / "inventory" / "hosts.json").write_text(json.dumps(inventory or self.inventory(), indent=2))
        env = pdd / "env"
        env.mkdir()
        meta = {"job_id": job_id, "job_launch_type": "workflow" if (workflow or sliced) else "manual",
                "job_template_id": 7, "job_template_name": spec["name"], "user_id": 1, "user_name": "admin",
                "inventory_id": 3, "inventory_name": "myapp environments", "project_revision": "0" * 40,
                "project_scm_branch": "main"}
        if workflow or sliced:
            meta.update(workflow_job_id=job_id - 500, workflow_job_name=spec["name"] if sliced else workflow)
        extra_vars = {f"{prefix}_{key}": value for prefix in ("awx", "tower") for key, value in meta.items()}
        extra_vars.update(spec.get("extra_vars") or {})
        extra_vars.update(survey_defaults(spec))
        extra_vars.update(answers)
        extra_vars.update(artifacts or {})
        extra_vars["git_deploy_repo_url"] = str(self.app.upstream)
        (env / "extravars").write_text(json.dumps(extra_vars, indent=2))
        (env / "envvars").write_text(json.dumps({
            "ANSIBLE_CONFIG": str(REPO_ROOT / "tests" / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(collections_path()),
            "ANSIBLE_NOCOLOR": "1",
            "SYNC_LOG": str(self.base / "sync.log"),
        }))
        (env / "settings").write_text(json.dumps({
            "job_timeout": JOB_TIMEOUT, "idle_timeout": IDLE_TIMEOUT, "suppress_ansible_output": True,
        }))
        (env / "ssh_key").write_text(self.deployment.fleet.client_key.read_text())
        (env / "cmdline").write_text(f"-u {getpass.getuser()}")
        return run_job(pdd, ident, spec["playbook"])


def run_job(pdd: Path, ident: str, playbook: str) -> Job:
    """Run one job with `ansible-runner run`, as AWX's worker does: the runner has no
    controlling terminal and its stdin is at EOF; ansible-playbook gets the runner's pty,
    where only the password prompts the job was given are answered. Anything else that
    prompts waits there until idle_timeout and the job ends as "timeout"."""
    cmd = [str(RUNNER_BIN), "run", str(pdd), "--ident", ident, "-p", playbook]
    # A fresh home per job, like the execution environment's container (short: ssh's
    # ControlPath sockets live under it).
    home = Path(tempfile.mkdtemp(prefix="awx-home-"))
    env = {"PATH": ansible_env()["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "USER": getpass.getuser()}
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                              start_new_session=True, timeout=JOB_TIMEOUT + 120, check=False)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    seconds = time.monotonic() - start
    artifacts = pdd / "artifacts" / ident
    if not (artifacts / "status").exists():
        raise AssertionError(f"ansible-runner wrote no status for job {ident} (exit {proc.returncode})\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    events = [json.loads(p.read_text()) for p in (artifacts / "job_events").glob("*.json")]
    events.sort(key=lambda e: e["counter"])
    stdout = (artifacts / "stdout").read_text() if (artifacts / "stdout").exists() else ""
    return Job(ident=ident, status=(artifacts / "status").read_text().strip(),
               rc=int((artifacts / "rc").read_text().strip()), stdout=stdout, events=events, seconds=seconds)


def assert_successful(job: Job) -> None:
    assert (job.status, job.rc) == ("successful", 0), job.explain()
    assert not PROMPTS.search(job.stdout), job.explain()


def assert_phases(job: Job, host: str) -> None:
    """The host ran lock, prepare, switch, post-sync and finish, in that order, once each."""
    assert job.steps(host) == STEPS, f"{host}: steps that ran: {job.steps(host)}; tasks: {job.actions(host)}"


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture
def app(tmp_path) -> AppRepo:
    repo = AppRepo.create(tmp_path / "src")
    # Like a hosted repository: HEAD is the default branch (`git init --bare` may leave it
    # on a "master" that does not exist). Jobs deploy the Ref answer, HEAD by default.
    subprocess.run(["git", "symbolic-ref", "HEAD", "refs/heads/main"], cwd=repo.upstream, check=True)
    return repo


@pytest.fixture
def awx(deployment, app, awx_objects, tmp_path) -> Controller:
    return Controller(deployment, app, awx_objects, tmp_path)


def live(deployment, host: str) -> str | None:
    current = deployment.root(host) / "current"
    return current.resolve().name if current.is_symlink() else None


def rollout_tags(app: AppRepo, env: str) -> list:
    return sorted(t for t in app.upstream_tags() if t.startswith(env + "-") and not t.endswith("_reverted"))


# -- the job templates -----------------------------------------------------------------------

def test_awx_configure_templates(awx_objects, tmp_path):
    """awx_configure.yml: four templates on the collection's playbooks, never sliced, Deploy
    and Revert never concurrent, surveys on the playbooks' short vars, the workflow."""
    templates = awx_objects["templates"]
    assert sorted(templates) == ["deploy", "revert", "status", "unlock"]
    for key, template in templates.items():
        assert (REPO_ROOT / template["playbook"]).is_file()
        assert template["job_slice_count"] == 1 and template["ask_job_slice_count_on_launch"] is False
        assert template["ask_limit_on_launch"] is False
        assert template["extra_vars"]["git_deploy_repo_url"] == "git@git.example.invalid:acme/myapp.git"
        spec = template["survey_spec"]["spec"]
        assert template["survey_enabled"] and spec[0]["variable"] == "env" and spec[0]["required"]
        assert spec[0]["choices"] == ["staging", "prod"]
        assert {q["variable"] for q in spec} <= {"env", "ref", "tag", "force", "message", "reason"}
        for question in spec:
            assert {"question_name", "variable", "type", "required"} <= set(question), question
            if question["type"] == "multiplechoice":
                assert question["default"] in question["choices"], question
    assert templates["deploy"]["allow_simultaneous"] is False
    assert templates["revert"]["allow_simultaneous"] is False
    assert [q["variable"] for q in templates["revert"]["survey_spec"]["spec"]] == ["env", "tag", "reason", "force"]
    # Controller login: nothing committed, nothing sent unless given.
    assert not {"controller_password", "controller_oauthtoken", "controller_username"} & set(templates["deploy"])

    [workflow] = awx_objects["workflow_job_template"]
    nodes = {node["identifier"]: node for node in workflow["workflow_nodes"]}
    assert nodes["deploy-staging"]["extra_data"] == {"env": "staging"}
    assert nodes["deploy-prod"]["extra_data"] == {"env": "prod"}
    assert nodes["approve-prod"]["unified_job_template"]["type"] == "workflow_approval"
    assert nodes["deploy-staging"]["related"]["success_nodes"] == [{"identifier": "approve-prod"}]
    assert nodes["approve-prod"]["related"]["success_nodes"] == [{"identifier": "deploy-prod"}]
    # Workflow extra vars override every node: the workflow must not ask for env.
    assert "env" not in {q["variable"] for q in workflow["survey_spec"]["spec"]}

    # Check mode against an empty controller: nothing that needs a missing object runs;
    # against a configured one: every task runs, in check mode.
    proc, calls = configure_awx(tmp_path, "--check")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert all(call["check_mode"] for call in calls)
    assert "awx.awx.job_template" not in {call["module"] for call in calls}
    proc, calls = configure_awx(tmp_path, "--check", existing=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert all(call["check_mode"] for call in calls)
    assert sum(call["module"] == "awx.awx.job_template" for call in calls) == 4
    assert "awx.awx.workflow_job_template" in {call["module"] for call in calls}


# -- jobs against the SSH test hosts ---------------------------------------------------------

def test_deploy_deploy_revert_status_as_awx_jobs(awx, deployment, app):
    # 1. Deploy. Nothing may prompt: no terminal, stdin closed, bounded by runner's timeouts.
    job = awx.launch("deploy", {"env": "prod"})
    assert_successful(job)
    assert job.seconds < JOB_TIMEOUT
    [tag1] = rollout_tags(app, "prod")
    commit1 = app.head()
    for host in PROD:
        assert_phases(job, host)
        assert live(deployment, host) == tag1
    assert job.actions("staging1") == []
    assert job.outcome == {
        "id": f"awx-{job.ident}", "env": "prod", "action": "deploy", "tag": tag1, "commit": commit1,
        "previous_tag": "", "hosts": PROD, "failed_hosts": [], "result": "success",
    }, job.explain()

    # 2. A change, deployed.
    commit2 = app.change("app.txt", "version 2\n", "version 2")
    job = awx.launch("deploy", {"env": "prod", "reason": "ship version 2"})
    assert_successful(job)
    [tag2] = [t for t in rollout_tags(app, "prod") if t != tag1]
    out = job.outcome
    assert (out["tag"], out["commit"], out["previous_tag"], out["hosts"], out["result"]) == (
        tag2, commit2, tag1, PROD, "success"), job.explain()
    for host in PROD:
        assert_phases(job, host)
        assert live(deployment, host) == tag2
        assert (deployment.root(host) / "current" / "app.txt").read_text() == "version 2\n"

    # 3. Revert to the rollout before the live one (empty Tag answer).
    job = awx.launch("revert", {"env": "prod"})
    assert_successful(job)
    out = job.outcome
    assert (out["action"], out["tag"], out["previous_tag"], out["hosts"], out["result"]) == (
        "revert", tag1, tag2, PROD, "success"), job.explain()
    for host in PROD:
        assert live(deployment, host) == tag1
        assert (deployment.root(host) / "current" / "app.txt").read_text() == "version 1\n"

    # 4. Status.
    job = awx.launch("status", {"env": "prod"})
    assert_successful(job)
    status = job.outcome["status"]
    assert (status["env"], status["live_tags"], status["drift"]) == ("prod", [tag1], False), job.explain()
    assert [(h["host"], h["live_tag"], h["locked"]) for h in status["hosts"]] == [(h, tag1, False) for h in PROD]
    assert status["history"][0]["action"] == "revert" and status["history"][0]["tag"] == tag1


def test_sliced_deploy_is_refused_before_anything_changes(awx, deployment, app):
    """A job template launched with job slicing > 1 runs once per slice, each with part of the
    environment: each slice would cut its own tag and lock only its hosts. The role must
    refuse. AWX gives the playbook no slice number or count: a slice is a job launched by
    a workflow job that carries the job template's own name."""
    job = awx.launch("deploy", {"env": "prod"}, inventory=awx.inventory(slice_number=1, slice_count=2),
                     sliced=True)
    assert job.status == "failed" and job.rc != 0, job.explain()
    assert re.search(r"slic", job.stdout, re.IGNORECASE), job.explain()
    assert app.upstream_tags() == []
    for host in PROD:
        assert not deployment.root(host).exists(), host


def test_workflow_promotes_the_commit_staging_got(awx, deployment, app):
    """The staging -> approval -> prod workflow of awx_configure.yml. AWX passes the staging
    job's set_stats artifacts to the prod node as extra vars, over the node's own data
    (env=prod); the Deploy template's git_deploy_ref picks git_deploy_last_commit from them,
    so prod gets the commit staging got even though main has moved on since."""
    workflow = "myapp staging to prod"
    # The workflow's survey asked for the branch; the nodes set env.
    staging = awx.launch("deploy", {"env": "staging", "ref": "main"}, workflow=workflow)
    assert_successful(staging)
    commit1 = app.head()
    assert staging.outcome["commit"] == commit1
    app.change("app.txt", "version 2\n", "version 2 (not approved for prod)")

    prod = awx.launch("deploy", {"env": "prod", "ref": "main"}, artifacts=staging.artifacts, workflow=workflow)
    assert_successful(prod)
    assert prod.outcome["env"] == "prod", (
        f"the prod node deployed to {prod.outcome.get('env')}: the staging job's set_stats key {STATS}env "
        "reached it as an extra var and won over env=prod. Artifacts become extra vars of the workflow "
        "nodes that follow, so the role must publish them under names it never reads or sets "
        "(git_deploy_env, _id, _tag, _action, _result, _failed_hosts, _status are role variables).\n"
        + prod.explain())
    assert prod.outcome["id"] != staging.outcome["id"]
    assert prod.outcome["commit"] == commit1
    for host in PROD:
        assert (deployment.root(host) / "current" / "app.txt").read_text() == "version 1\n"
