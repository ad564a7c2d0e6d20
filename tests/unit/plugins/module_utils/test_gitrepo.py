"""Masking credentials of repository URLs (the rest of gitrepo is tested against real
repositories in tests/integration/test_tag.py)."""

from __future__ import annotations

import sys

import pytest

try:
    from ansible_collections.gitdeploy.rollout.plugins.module_utils import gitrepo
except ImportError:  # plain pytest: put this checkout on the collections path
    from hosts import collections_path

    sys.path.insert(0, str(collections_path()))
    from ansible_collections.gitdeploy.rollout.plugins.module_utils import gitrepo


@pytest.mark.parametrize("url, shown", [
    ("https://deployer:s3cret@git.example.com/app.git", "https://deployer:***@git.example.com/app.git"),
    ("ssh://git:s3cret@git.example.com:2222/app.git", "ssh://git:***@git.example.com:2222/app.git"),
    ("https://deployer@git.example.com/app.git", "https://deployer@git.example.com/app.git"),
    ("git@git.example.com:shop/app.git", "git@git.example.com:shop/app.git"),
    ("/srv/git/app.git", "/srv/git/app.git"),
    (None, None),
])
def test_redact_masks_only_the_password(url, shown):
    assert gitrepo.redact(url) == shown


def test_url_password():
    assert gitrepo.url_password("https://u:p%40ss@h/x.git") == "p%40ss"
    assert gitrepo.url_password("git@h:x.git") is None
    assert gitrepo.url_password(None) is None


def test_describe_masks_the_password_a_library_quoted():
    exc = OSError("cannot reach https://u:hunter2@h/x.git")
    assert gitrepo._describe(exc, "https://u:hunter2@h/x.git") == "OSError: cannot reach https://u:***@h/x.git"
