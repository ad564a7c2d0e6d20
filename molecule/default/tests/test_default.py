"""Verify a converged rollout on each prod host, through Ansible's own connection."""

import json

import pytest

testinfra_hosts = ["ansible://prod"]


@pytest.fixture
def root(host):
    return host.ansible.get_variables()["git_deploy_root"]


def test_current_points_at_a_complete_release(host, root):
    current = host.file(f"{root}/current")
    assert current.is_symlink
    assert current.linked_to.startswith(f"{root}/releases/prod-")
    assert host.file(f"{root}/current/app.txt").content_string == "version 1\n"


def test_deploy_file_names_the_tag_and_commit(host, root):
    tag = host.file(f"{root}/current").linked_to.rsplit("/", 1)[-1]
    deploy_file = host.file(f"{root}/current/.deploy").content_string
    assert f"tag: {tag}" in deploy_file
    assert "commit: " in deploy_file and "environment: prod" in deploy_file


def test_log_and_history_record_the_rollout(host, root):
    log = host.file(f"{root}/logs/git-deploy.log").content_string
    assert "phase=switch switched current to prod-" in log
    assert not host.file(f"{root}/logs/git-deploy-active.log").exists
    history = [json.loads(line) for line in host.file(f"{root}/.git-deploy/history.jsonl").content_string.splitlines()]
    assert [r["result"] for r in history] == ["success"]


def test_no_lock_is_left(host, root):
    assert not host.file(f"{root}/.git-deploy/lock").exists
