import pytest

from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import (
    InvalidName, Layout, check_name, check_relative, check_root)


@pytest.mark.parametrize("name", ["prod", "prod-eu.1", "a_b", "prod-20261121-101500_A", "X" * 128])
def test_plain_names_pass(name):
    assert check_name(name, "env") == name


@pytest.mark.parametrize("name", ["", "../prod", "prod/x", "a b", "prod;rm", "$(id)", "-x", ".hidden",
                                  "a..b", "prod\n", "X" * 129, None, 7])
def test_unsafe_names_are_refused_with_what_they_are(name):
    with pytest.raises(InvalidName, match="env .* is not a plain name"):
        check_name(name, "env")


@pytest.mark.parametrize("root", ["relative/path", "", "/", "//", "///"])
def test_bad_roots(root):
    with pytest.raises(ValueError, match="git_deploy_root"):
        check_root(root)


def test_root_is_normalised():
    assert check_root("/srv/app/") == "/srv/app"
    assert check_root("/srv/./app") == "/srv/app"


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "..", ""])
def test_relative_paths_must_stay_inside(path):
    with pytest.raises(ValueError, match="relative path inside the release"):
        check_relative(path, "hook_dir")


def test_relative_path_is_normalised():
    assert check_relative("deploy/./hooks/", "hook_dir") == "deploy/hooks"


def test_layout_paths():
    layout = Layout("/srv/app")
    assert layout.repo == "/srv/app/repo.git"
    assert layout.release("prod-1") == "/srv/app/releases/prod-1"
    assert layout.current == "/srv/app/current"
    assert layout.lock == "/srv/app/.git-deploy/lock"
    assert layout.history == "/srv/app/.git-deploy/history.jsonl"
    assert layout.active_log == "/srv/app/logs/git-deploy-active.log"
    assert layout.archive_log == "/srv/app/logs/git-deploy.log"


def test_lock_dir_is_shared_between_roots():
    assert Layout("/srv/a", lock_dir="/var/lock/deploy").lock == Layout("/srv/b", lock_dir="/var/lock/deploy").lock


def test_release_refuses_traversal():
    with pytest.raises(InvalidName):
        Layout("/srv/app").release("../../etc")
