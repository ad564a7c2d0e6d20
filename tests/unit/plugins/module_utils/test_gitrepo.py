"""Masking credentials of repository URLs, and publishing or dropping a rollout tag (the
rest of gitrepo is tested against real repositories in tests/integration/test_tag.py)."""

from __future__ import annotations

import subprocess
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


# -- the tag of a rollout, pushed or dropped after prepare ---------------------------------------

def _git(*args, cwd):
    return subprocess.run(("git",) + args, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    """A checkout with one commit, on main of a bare upstream."""
    upstream, work = tmp_path / "upstream.git", tmp_path / "work"
    _git("init", "-q", "--bare", "-b", "main", str(upstream), cwd=tmp_path)
    _git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    for key, value in (("user.name", "T"), ("user.email", "t@example.com")):
        _git("config", key, value, cwd=work)
    (work / "app.txt").write_text("one\n")
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "one", cwd=work)
    _git("remote", "add", "origin", str(upstream), cwd=work)
    _git("push", "-q", "origin", "main", cwd=work)
    return work, upstream


def test_a_tag_cut_without_push_is_published_later_or_dropped(checkout):
    work, upstream = checkout
    source = gitrepo.open_checkout(str(work))
    try:
        cut = gitrepo.tag_rollout(source, env="prod", push=False, deployed_by="alice", hostname="ctl")
        assert cut["created"] and not cut["pushed"]
        assert _git("tag", "-l", cwd=upstream) == ""
        assert gitrepo.publish_tag(source, "origin", cut["tag"]) == (True, str(upstream))
        assert _git("tag", "-l", cwd=upstream) == cut["tag"]
        assert gitrepo.publish_tag(source, "origin", cut["tag"]) == (False, str(upstream))  # there already
        assert gitrepo.publish_tag(source, "none", cut["tag"]) == (False, None)

        again = gitrepo.tag_rollout(source, env="prod", push=False, deployed_by="alice", hostname="ctl",
                                    new_tag=True)
        assert gitrepo.drop_tag(source, again["tag"])
        assert not gitrepo.drop_tag(source, again["tag"])
        assert _git("tag", "-l", cwd=work) == cut["tag"]
    finally:
        source.close()
    # The dropped tag is not the environment's last rollout: the next rollout starts from the pushed one.
    source = gitrepo.open_checkout(str(work))
    try:
        assert gitrepo.tag_rollout(source, env="prod", push=False, check_mode=True)["tag"] == cut["tag"]
    finally:
        source.close()


def test_old_tags_are_deleted_upstream_and_here_in_one_push(checkout):
    work, upstream = checkout
    for name in ("prod-20261201-100000", "prod-20261202-100000", "prod-20261202-100000_reverted", "keep-me"):
        _git("tag", "-a", "-m", name, name, cwd=work)
    _git("push", "-q", "origin", "--tags", cwd=work)
    _git("tag", "-a", "-m", "local", "prod-20261203-100000", cwd=work)  # only here
    source = gitrepo.open_checkout(str(work))
    try:
        url, names = gitrepo.remote_tags(source, "origin")
        assert url == str(upstream) and "prod-20261202-100000_reverted" in names and "prod-20261203-100000" not in names
        assert gitrepo.remote_tags(source, "none") == (None, [])
        gone = gitrepo.delete_tags(source, url, ["prod-20261201-100000", "prod-20261203-100000",
                                                 "prod-20261202-100000_reverted"])
        assert gone == ["prod-20261201-100000", "prod-20261202-100000_reverted"]
    finally:
        source.close()
    assert _git("tag", "-l", cwd=upstream).split() == ["keep-me", "prod-20261202-100000"]
    assert _git("tag", "-l", cwd=work).split() == ["keep-me", "prod-20261202-100000"]


def test_the_remotes_tags_are_fetched_before_a_rollout_and_local_ones_are_kept(checkout, tmp_path):
    work, upstream = checkout
    other = tmp_path / "other"
    _git("clone", "-q", str(upstream), str(other), cwd=tmp_path)
    for key, value in (("user.name", "O"), ("user.email", "o@example.com")):
        _git("config", key, value, cwd=other)
    (other / "app.txt").write_text("two\n")
    _git("commit", "-q", "-am", "two", cwd=other)
    _git("push", "-q", "origin", "main", cwd=other)
    # Another operator's rollout (of a commit this checkout has never seen), and a tag both have.
    _git("tag", "-a", "-m", "theirs", "prod-20261202-100000", cwd=other)
    _git("tag", "-a", "-m", "theirs", "prod-20261201-100000", cwd=other)
    _git("push", "-q", "origin", "--tags", cwd=other)
    _git("tag", "-a", "-m", "mine", "prod-20261201-100000", cwd=work)
    mine = _git("rev-parse", "prod-20261201-100000", cwd=work)
    source = gitrepo.open_checkout(str(work))
    try:
        assert gitrepo.fetch_tags(source, "none") == {"fetched": [], "differ": [], "url": None}
        assert gitrepo.fetch_tags(source, "") == {"fetched": [], "differ": [], "url": None}
        assert gitrepo.fetch_tags(source, "nosuchremote")["fetched"] == []
        got = gitrepo.fetch_tags(source, "origin")
        assert got == {"fetched": ["prod-20261202-100000"], "differ": ["prod-20261201-100000"], "url": str(upstream)}
        assert gitrepo.fetch_tags(source, "origin")["fetched"] == []  # once only
    finally:
        source.close()
    assert _git("rev-parse", "prod-20261202-100000^{commit}", cwd=work) == _git("rev-parse", "HEAD", cwd=other)
    assert _git("rev-parse", "prod-20261201-100000", cwd=work) == mine
    _git("remote", "set-url", "origin", str(tmp_path / "gone.git"), cwd=work)
    source = gitrepo.open_checkout(str(work))
    try:
        with pytest.raises(gitrepo.GitError, match="could not fetch the tags of origin .* git_deploy_remote: ''"):
            gitrepo.fetch_tags(source, "origin")
    finally:
        source.close()
