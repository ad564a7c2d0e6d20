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
    ("https://deployer:s3cret@git.example.com/app.git", "https://***@git.example.com/app.git"),
    ("ssh://git:s3cret@git.example.com:2222/app.git", "ssh://***@git.example.com:2222/app.git"),
    ("https://ghp_T0kenT0ken@github.com/acme/app.git", "https://***@github.com/acme/app.git"),
    ("https://oauth2:glpat-T0ken@gitlab.example.com/app.git", "https://***@gitlab.example.com/app.git"),
    ("https://x-token-auth:T0k%2Fen@bitbucket.org/app.git", "https://***@bitbucket.org/app.git"),
    ("https://us%40er:p%3Ass@git.example.com/app.git", "https://***@git.example.com/app.git"),
    ("git@git.example.com:shop/app.git", "git@git.example.com:shop/app.git"),
    ("/srv/git/app.git", "/srv/git/app.git"),
    ("https://git.example.com/app.git", "https://git.example.com/app.git"),
    (None, None),
])
def test_redact_masks_the_whole_userinfo(url, shown):
    assert gitrepo.redact(url) == shown


@pytest.mark.parametrize("url, secrets", [
    ("https://u:p%40ss@h/x.git", ["u:p%40ss", "u:p@ss", "p%40ss", "p@ss"]),
    ("https://ghp_T0ken@h/x.git", ["ghp_T0ken"]),
    ("https://oauth2:glpat-T0ken@h/x.git", ["oauth2:glpat-T0ken", "glpat-T0ken"]),
    ("ssh://git:pw@h/x.git", ["git:pw", "pw"]),  # a user name next to a password is not masked alone
    ("git@h:x.git", []),
    (None, []),
])
def test_url_secrets_are_every_form_a_library_may_quote(url, secrets):
    assert sorted(gitrepo.url_secrets(url)) == sorted(secrets)


def test_strip_credentials():
    assert gitrepo.strip_credentials("https://t0k@h:8443/x.git") == "https://h:8443/x.git"
    assert gitrepo.strip_credentials("/srv/x.git") == "/srv/x.git"


@pytest.mark.parametrize("quoted", ["hunter2", "u:hunter2", "u%3Ahunter2"])
def test_describe_masks_the_credentials_a_library_quoted(quoted):
    url = "https://u:hunter2@h/x.git"
    text = gitrepo._describe(OSError("cannot reach %s (%s)" % (url, quoted)), url)
    assert "hunter2" not in text and text.startswith("OSError: cannot reach https://***@h/x.git")
