# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller-side git work for rollouts, with dulwich (never the git CLI).

* :func:`open_checkout` / :func:`open_cache` give a :class:`Source`: a working
  checkout, or a bare cache of ``repo_url`` kept under ``~/.cache/gitdeploy``;
* :func:`tag_rollout` runs the preflight (dirty tree, unpushed commits,
  non-fast-forward), creates the annotated rollout tag (or a revert marker)
  and pushes it; :func:`rollout_info` lists an environment's rollout tags.

Every failure is a :class:`GitError` whose message says what is wrong, where,
and the command or option that fixes it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import datetime
import io
import posixpath
import getpass
import hashlib
import os
import re
import socket
import traceback

from urllib.parse import unquote, urlsplit, urlunsplit

from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import check_name
from ansible_collections.gitdeploy.rollout.plugins.module_utils import tagging

try:
    from dulwich.client import get_transport_and_path
    from dulwich.config import ConfigFile, parse_submodules
    from dulwich.errors import NotGitRepository, NotTreeError
    from dulwich.objects import S_ISGITLINK, Commit, Tag
    from dulwich.objectspec import parse_commit
    from dulwich.repo import Repo
except ImportError:
    HAS_DULWICH = False
    DULWICH_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_DULWICH = True
    DULWICH_IMPORT_ERROR = None

TAGS = b"refs/tags/"
HEADS = b"refs/heads/"
REMOTES = b"refs/remotes/"
CACHE_ROOT = os.path.join("~", ".cache", "gitdeploy", "repos")
CACHE_REMOTE = "origin"
COMMIT_LIST_LIMIT = 200
DIRTY_LIST_LIMIT = 30


class GitError(Exception):
    """A failure with a message for a human and result fields for the caller."""

    def __init__(self, msg, **result):
        super(GitError, self).__init__(msg)
        self.msg = msg
        self.result = result


def _b(value):
    return value.encode("utf-8") if isinstance(value, str) else value


def _s(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _short(sha):
    return _s(sha)[:12] if sha else sha


def _userinfo(url):
    """``(parts, userinfo)`` of a URL with a scheme and credentials (``token@``, ``user:pw@``), else None."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        return None
    if not parts or not parts.scheme or "@" not in parts.netloc:
        return None
    return parts, parts.netloc.rsplit("@", 1)[0]


def redact(url):
    """``url`` fit for messages, results and files: its whole userinfo (a token, a user and
    password, ``oauth2:<token>``) becomes ``***``."""
    found = _userinfo(url)
    if not found:
        return url
    parts, _userinfo_text = found
    return urlunsplit(parts._replace(netloc="***@%s" % parts.netloc.rsplit("@", 1)[1]))


def strip_credentials(url):
    """``url`` without its userinfo (what a cache's config keeps: credentials are never stored)."""
    found = _userinfo(url)
    if not found:
        return url
    parts, _userinfo_text = found
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def url_secrets(url):
    """Every form in which the credentials of ``url`` may be quoted (raw and percent-decoded:
    the whole userinfo, and the password - or the user, when it is the token), longest first;
    modules add them to their no_log values."""
    found = _userinfo(url)
    if not found:
        return []
    userinfo = found[1]
    forms = set()
    for text in (userinfo, unquote(userinfo)):
        user, colon, password = text.partition(":")
        # The password; without one, the user is the secret (a token: https://<token>@host).
        forms.update((text, password) if colon else (text,))
    return sorted((f for f in forms if f), key=len, reverse=True)


def mask_secrets(text, url):
    """``text`` with every form of the credentials of ``url`` replaced by ``***``."""
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


def _describe(exc, url=None):
    """An exception as one readable string (some dulwich errors have an empty str()),
    with the credentials of ``url`` masked wherever the library quoted them."""
    text = str(exc).strip()
    name = exc.__class__.__name__
    if text and name not in ("GitError", "Exception"):
        text = "%s: %s" % (name, text)
    return mask_secrets(text or name, url)


class Source:
    """The repository a rollout is tagged in: a checkout, or a bare cache of ``url``."""

    def __init__(self, repo, path, url=None, remote_head=None):
        self.repo = repo
        self.path = path
        self.url = url
        self.remote_head = remote_head

    @property
    def cache(self):
        return self.url is not None

    @property
    def bare(self):
        return bool(self.repo.bare)

    def close(self):
        try:
            self.repo.close()
        except Exception:  # pylint: disable=broad-except
            pass


# -- opening ---------------------------------------------------------------

def open_checkout(path):
    """The checkout (or bare repository) at or above ``path``."""
    path = os.path.abspath(os.path.expanduser(path or os.getcwd()))
    if not os.path.isdir(path):
        raise GitError(
            "repo %s does not exist or is not a directory: set repo: to the path of your git checkout "
            "(git clone <url> %s), or use repo_url: to tag in a cache of a remote." % (path, path)
        )
    try:
        discover = getattr(Repo, "discover", None)
        repo = discover(path) if discover else Repo(path)
    except NotGitRepository:
        raise GitError(
            "%s is not a git repository (no .git in it or any parent directory): set repo: to your "
            "checkout (git clone <url> %s), or use repo_url: to tag in a cache of a remote." % (path, path)
        )
    root = os.path.abspath(_s(repo.path))
    return Source(repo, root)


def default_cache_dir(url):
    """``~/.cache/gitdeploy/repos/<sha256 of url>.git``."""
    digest = hashlib.sha256(_b(url)).hexdigest()[:24]
    return os.path.join(os.path.expanduser(CACHE_ROOT), digest + ".git")


def open_cache(url, cache_dir=None, fetch=True):
    """A bare cache of ``url`` (created when missing), fetched unless ``fetch`` is False."""
    path = os.path.abspath(os.path.expanduser(cache_dir or default_cache_dir(url)))
    try:
        if not os.path.exists(path):
            os.makedirs(path, 0o750)
            repo = Repo.init_bare(path)
        else:
            repo = Repo(path)
    except NotGitRepository:
        raise GitError(
            "cache_dir %s exists but is not a git repository: remove it (rm -rf %s) or point "
            "cache_dir: at another directory." % (path, path)
        )
    except OSError as exc:
        raise GitError("cannot create the repository cache %s: %s. Set cache_dir: to a writable "
                       "directory." % (path, _describe(exc)))
    if not repo.bare:
        raise GitError("cache_dir %s is a checkout, not a bare cache: point cache_dir: at a directory "
                       "of its own (or leave it unset)." % path)
    config = repo.get_config()
    section = (b"remote", _b(CACHE_REMOTE))
    try:
        known = _s(config.get(section, b"url"))
    except KeyError:
        known = None
    stored = strip_credentials(url)
    if known is None or (known != stored and strip_credentials(known) == stored):
        # The URL without its credentials: they come with every run, never from this file
        # (caches made by earlier versions kept them: rewritten here).
        config.set(section, b"url", _b(stored))
        config.set(section, b"fetch", b"+refs/heads/*:refs/heads/*")
        config.write_to_path()
        os.chmod(os.path.join(path, "config"), 0o600)
    elif known != stored:
        raise GitError(
            "cache_dir %s is the cache of %s, not of %s: leave cache_dir unset (one cache per URL) or "
            "remove it (rm -rf %s)." % (path, redact(known), redact(url), path)
        )
    source = Source(repo, path, url=url)
    if fetch:
        fetch_cache(source)
    return source


def fetch_cache(source):
    """Fetch every branch and tag of ``source.url`` into the bare cache.

    Branches mirror the remote; remote tags are added or updated, tags only
    the cache has (say, a rollout tag whose push failed) are kept.
    """
    repo = source.repo
    try:
        client, path = get_transport_and_path(source.url, config=repo.get_config_stack())
        result = client.fetch(path, repo)
    except Exception as exc:  # pylint: disable=broad-except
        raise GitError(
            "could not fetch %s into the cache %s: %s. Check the URL and that this controller can "
            "read it (ssh key, credentials, network)." % (redact(source.url), source.path, _describe(exc, source.url)),
            repo=source.path,
        )
    refs = getattr(result, "refs", result) or {}
    symrefs = getattr(result, "symrefs", None) or {}
    refs = dict((k, v) for k, v in refs.items() if v and not k.endswith(b"^{}"))
    for name, sha in refs.items():
        if name.startswith(HEADS) or name.startswith(TAGS):
            if repo.refs.read_ref(name) != sha:
                repo.refs[name] = sha
    for name in repo.refs.allkeys():
        if name.startswith(HEADS) and name not in refs:
            del repo.refs[name]
    target = symrefs.get(b"HEAD")
    if target and target in refs:
        repo.refs.set_symbolic_ref(b"HEAD", target)
    source.remote_head = refs.get(b"HEAD")
    return refs


def module_url(base, url):
    """A submodule's URL from ``.gitmodules``: relative ones (``./``, ``../``) are relative to
    ``base``, the URL of the repository that names it (as ``git submodule`` resolves them)."""
    if not (url.startswith("./") or url.startswith("../")):
        return url
    parts = urlsplit(base)
    if parts.scheme and parts.netloc:
        path = posixpath.normpath(posixpath.join(parts.path.rstrip("/"), url))
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))
    if ":" in base and not base.startswith("/") and "://" not in base:  # scp-like host:path
        host, _sep, path = base.partition(":")
        return "%s:%s" % (host, posixpath.normpath(posixpath.join(path.rstrip("/"), url)))
    return posixpath.normpath(posixpath.join(base.rstrip("/"), url))


def pinned_modules(repo, commit):
    """``[(path, name, url, commit)]`` (text) of the submodules ``commit`` (bytes) pins: the
    entries of its ``.gitmodules`` whose path is a gitlink of its tree."""
    tree = repo.object_store[repo[commit].tree]
    try:
        _mode, blob = tree[b".gitmodules"]
    except KeyError:
        return []
    config = ConfigFile.from_file(io.BytesIO(repo.object_store[blob].data))
    found = []
    for path, url, name in parse_submodules(config):
        try:
            mode, sha = tree.lookup_path(repo.object_store.__getitem__, path)
        except (KeyError, NotTreeError):
            continue
        if S_ISGITLINK(mode):
            found.append((_s(path), _s(name), _s(url), sha))
    return found


def fetch_modules(source, commit):
    """Bring the submodules ``commit`` (hex) pins, nested ones too, into caches of their URLs
    kept in ``<cache>/modules/<name>`` of the cache ``source`` (where the bundle builder finds
    them): the controller reads each submodule's URL, the targets never do. Returns the
    submodule paths fetched."""
    pending = [(source.repo, source.path, source.url, "", _b(commit))]
    fetched, opened = [], []
    try:
        while pending:
            repo, path, url, prefix, sha = pending.pop(0)
            for sub_path, name, sub_url, pinned in pinned_modules(repo, sha):
                check_relative_name(name)
                cache = open_cache(module_url(url, sub_url), os.path.join(path, "modules", name))
                opened.append(cache)
                fetched.append(prefix + sub_path)
                if pinned in cache.repo.object_store:
                    pending.append((cache.repo, cache.path, cache.url, prefix + sub_path + "/", pinned))
    finally:
        for cache in opened:
            cache.close()
    return fetched


def check_relative_name(name):
    """A submodule name from ``.gitmodules`` used as a directory name under the cache."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise GitError("submodule name %r in .gitmodules is not a safe relative name: rename the submodule" % name)
    return name


# -- reading ---------------------------------------------------------------

def head_commit(source):
    """The commit HEAD points at, or None in a repository without commits."""
    try:
        return peel(source.repo, source.repo.refs[b"HEAD"])
    except (KeyError, GitError):
        if source.cache and source.remote_head:
            return peel(source.repo, source.remote_head)
        return None


def require_commits(source):
    branches = [name for name in source.repo.refs.allkeys() if name.startswith(HEADS)]
    if head_commit(source) is None and not tag_refs(source.repo) and not branches:
        if source.cache:
            raise GitError("the repository %s has no commits: push something to it first." % redact(source.url),
                           repo=source.path)
        raise GitError("the repository %s has no commits yet: commit what you want to roll out "
                       "(git add ... && git commit) first." % source.path, repo=source.path)


def peel(repo, sha):
    """The commit id ``sha`` (a commit or a chain of tags) points at."""
    try:
        obj = repo[sha]
        while isinstance(obj, Tag):
            obj = repo[obj.object[1]]
    except KeyError:
        raise GitError("object %s is missing from %s: fetch it (git fetch --tags)." % (_s(sha), _s(repo.path)))
    if not isinstance(obj, Commit):
        raise GitError("%s points at a %s, not a commit." % (_s(sha), _s(obj.type_name)))
    return obj.id


def resolve(source, ref, prefer_tags=False):
    """``(commit id, full ref name or None)`` for a branch, tag, commit id or HEAD.

    A name is looked up as a branch, then a tag (tag first with ``prefer_tags``),
    then a remote-tracking branch, then as a commit id or other git revision.
    """
    repo = source.repo
    name = (ref or "HEAD").strip()
    if not name or "\n" in name or "\x00" in name:
        raise GitError("ref %r is not a ref: give a branch, tag, commit id or HEAD." % (ref,))
    if name == "HEAD":
        candidates = [b"HEAD"]
    elif name.startswith("refs/"):
        candidates = [_b(name)]
    else:
        candidates = [HEADS + _b(name), TAGS + _b(name), REMOTES + _b(name)]
        if prefer_tags:
            candidates[:2] = candidates[1::-1]
    for candidate in candidates:
        try:
            sha = repo.refs[candidate]
        except (KeyError, ValueError):
            continue
        if candidate == b"HEAD":
            names = repo.refs.follow(b"HEAD")[0]
            candidate = names[-1] if names else b"HEAD"
        return peel(repo, sha), candidate
    if name == "HEAD" and source.remote_head:
        return peel(repo, source.remote_head), None
    try:
        return parse_commit(repo, _b(name)).id, None
    except Exception:  # pylint: disable=broad-except
        pass
    where = source.url and ("the cache of %s (%s)" % (redact(source.url), source.path)) or source.path
    raise GitError(
        "ref %r is not a branch, tag or commit of %s: give one that exists there%s."
        % (name, where, "" if source.cache else " (git fetch --tags to get the remote's)"),
        repo=source.path,
    )


def tag_refs(repo):
    """``{tag name: sha of the tag object}`` of every tag."""
    return dict(
        (_s(name[len(TAGS):]), repo.refs[name])
        for name in repo.refs.allkeys() if name.startswith(TAGS)
    )


def _iso(epoch):
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def tag_record(repo, name, sha):
    """What a tag says: name, commit, annotated, tagger, date (ISO, UTC), message, subject."""
    record = {"name": name, "commit": None, "annotated": False, "tagger": None,
              "date": None, "message": None, "subject": ""}
    obj = repo[sha]
    if isinstance(obj, Tag):
        record.update(annotated=True, tagger=_s(obj.tagger), date=_iso(obj.tag_time),
                      message=_s(obj.message or b""))
        record["subject"] = tagging.subject(record["message"])
    commit_id = peel(repo, sha)
    record["commit"] = _s(commit_id)
    if not record["annotated"]:
        commit = repo[commit_id]
        record["date"] = _iso(commit.commit_time)
        record["subject"] = tagging.subject(_s(commit.message))
    return record


def current_branch(repo):
    """The branch HEAD is on, or None when detached."""
    names = repo.refs.follow(b"HEAD")[0]
    if names and names[-1].startswith(HEADS):
        return names[-1][len(HEADS):]
    return None


def remote_url(repo, remote):
    """The push URL of the configured remote ``remote``, or None if there is no such remote."""
    config = repo.get_config_stack()
    for key in (b"pushurl", b"url"):
        try:
            return _s(config.get((b"remote", _b(remote)), key))
        except KeyError:
            continue
    return None


def upstream_refs(repo, remote, branch):
    """``[(ref, sha)]`` the rolled-out commit must be reachable from, and a label for them.

    The branch's upstream (``branch.<b>.remote``/``merge``), else
    ``<remote>/<branch>``, else every branch of ``<remote>``.
    """
    config = repo.get_config_stack()
    candidates = []
    if branch:
        try:
            up_remote = config.get((b"branch", branch), b"remote")
            merge = config.get((b"branch", branch), b"merge")
        except KeyError:
            up_remote = merge = None
        if up_remote and merge and up_remote != b".":
            if merge.startswith(HEADS):
                merge = merge[len(HEADS):]
            candidates.append(REMOTES + up_remote + b"/" + merge)
        candidates.append(REMOTES + _b(remote) + b"/" + branch)
    for candidate in candidates:
        sha = repo.refs.read_ref(candidate) and repo.refs[candidate]
        if sha:
            return [(candidate, sha)], _s(candidate[len(REMOTES):])
    base = REMOTES + _b(remote) + b"/"
    found = [(name, repo.refs[name]) for name in sorted(repo.refs.allkeys())
             if name.startswith(base) and not name.endswith(b"/HEAD")]
    return found, "any branch of %s" % remote


def is_ancestor(repo, ancestor, descendant):
    """True if commit ``ancestor`` is ``descendant`` or one of its ancestors."""
    if ancestor == descendant:
        return True
    seen = set()
    queue = collections.deque([descendant])
    while queue:
        sha = queue.popleft()
        if sha in seen:
            continue
        seen.add(sha)
        if sha == ancestor:
            return True
        try:
            commit = repo[sha]
        except KeyError:  # shallow history
            continue
        queue.extend(commit.parents)
    return False


def commits_between(repo, new, exclude=(), limit=COMMIT_LIST_LIMIT):
    """``[{id, subject}]`` reachable from ``new`` but not from any of ``exclude``, newest first."""
    walker = repo.get_walker(include=[new], exclude=[sha for sha in exclude if sha], max_entries=limit)
    return [{"id": _s(entry.commit.id), "subject": tagging.subject(_s(entry.commit.message))}
            for entry in walker]


def dirty_paths(repo):
    """What makes a working tree unclean, as ``"<state>: <path>"`` strings (.gitignore respected)."""
    # porcelain is a slow import that only checkouts need
    from dulwich import porcelain  # pylint: disable=import-outside-toplevel

    try:
        status = porcelain.status(repo, untracked_files="normal", optional_locks=False)
    except (TypeError, NotImplementedError, ValueError):  # older dulwich
        status = porcelain.status(repo, untracked_files="all")
    found = []
    labels = (("add", "staged new file"), ("delete", "staged deletion"), ("modify", "staged change"))
    for key, label in labels:
        for path in status.staged.get(key, []):
            found.append("%s: %s" % (label, os.fsdecode(path)))
    modules = _index_gitlinks(repo)
    for path in status.unstaged:
        if _b(path) not in modules:
            found.append("modified: %s" % os.fsdecode(path))
    for path in status.untracked:
        if _b(path).rstrip(b"/") not in modules:
            found.append("untracked: %s" % os.fsdecode(path))
    for path, pinned in sorted(modules.items()):
        state = _module_state(repo, path, pinned)
        if state:
            found.append("modified: %s (%s)" % (os.fsdecode(path), state))
    return found


def _index_gitlinks(repo):
    """{path: commit} (bytes) of the submodules the index pins."""
    try:
        index = repo.open_index()
    except Exception:  # pylint: disable=broad-except
        return {}
    found = {}
    for path, entry in index.items():
        mode, sha = getattr(entry, "mode", None), getattr(entry, "sha", None)
        if mode is not None and S_ISGITLINK(mode):
            found[path] = sha
    return found


def _module_state(repo, path, pinned):
    """What ``git status`` says of a checked-out submodule: None when it is at ``pinned`` and
    clean (or not checked out), else "new commits" or "modified content"."""
    work = os.path.join(os.fsdecode(repo.path), os.fsdecode(path))
    if not os.path.exists(os.path.join(work, ".git")):
        return None
    try:
        sub = Repo(work)
    except (NotGitRepository, OSError):
        return None
    try:
        try:
            head = sub.head()
        except KeyError:
            return "new commits"
        if head != pinned:
            return "new commits"
        return "modified content" if dirty_paths(sub) else None
    finally:
        sub.close()


def identity(repo, user, hostname):
    """``(tagger, fallback)``: GIT_COMMITTER_NAME/EMAIL, else user.name/user.email, else
    ``<user> <user@hostname>`` (``fallback`` True when any part was made up)."""
    config = repo.get_config_stack()
    parts = {}
    for key, env in (("name", "GIT_COMMITTER_NAME"), ("email", "GIT_COMMITTER_EMAIL")):
        value = os.environ.get(env)
        if not value:
            try:
                value = _s(config.get((b"user",), _b(key)))
            except KeyError:
                value = None
        parts[key] = re.sub(r"[<>\r\n]", "", value or "").strip() or None
    fallback = not (parts["name"] and parts["email"])
    name = parts["name"] or user
    email = parts["email"] or "%s@%s" % (user, hostname)
    return "%s <%s>" % (name, email), fallback


# -- writing ---------------------------------------------------------------

def create_tag(repo, name, commit, message, tagger, moment):
    """Add annotated tag ``name`` on ``commit``; False if the name was taken meanwhile."""
    tag = Tag()
    tag.tagger = _b(tagger)
    tag.message = _b(message)
    tag.name = _b(name)
    tag.tag_time = int(moment.timestamp())
    offset = moment.utcoffset()
    tag.tag_timezone = int(offset.total_seconds()) if offset else 0
    tag.object = (Commit, commit)
    repo.object_store.add_object(tag)
    return bool(repo.refs.add_if_new(TAGS + _b(name), tag.id))


def push_tag(repo, url, name):
    """Push ``refs/tags/<name>`` to ``url``: True if sent, False if the remote had it already.

    Never overwrites a different tag of the same name on the remote.
    """
    refname = TAGS + _b(name)
    sha = repo.refs[refname]
    seen = {}

    def update_refs(refs):
        current = refs.get(refname)
        seen["remote"] = current
        if current not in (None, sha) and current != b"0" * 40:
            return {}
        return {refname: sha}

    def generate_pack_data(have, want, ofs_delta=False, progress=None, **_kwargs):
        return repo.generate_pack_data(have, want, progress=progress, ofs_delta=ofs_delta)

    try:
        client, path = get_transport_and_path(url, config=repo.get_config_stack())
        result = client.send_pack(_b(path), update_refs, generate_pack_data=generate_pack_data)
    except Exception as exc:  # pylint: disable=broad-except
        raise GitError(_describe(exc, url))
    remote = seen.get("remote")
    if remote not in (None, sha) and remote != b"0" * 40:
        raise GitError("the remote already has a different tag %s (%s): someone else made a tag of that "
                       "name; fetch the tags (git fetch --tags) and re-run" % (name, _short(remote)))
    status = getattr(result, "ref_status", None) or {}
    if status.get(refname):
        raise GitError("the remote refused %s: %s" % (name, _s(status[refname])))
    return remote != sha


# -- the rollout -------------------------------------------------------------

def _now(utc):
    if utc:
        return datetime.datetime.now(datetime.timezone.utc)
    return datetime.datetime.now().astimezone()


def _remote(source, remote, warnings):
    """``(label, url)`` to push to, or ``(None, None)`` for no remote actions."""
    if remote is None or str(remote).strip().lower() in ("", "none"):
        return None, None
    if source.cache:
        return CACHE_REMOTE, source.url
    url = remote_url(source.repo, remote)
    if url is None:
        warnings.append(
            "%s has no remote %r: the tag stays local and unpushed commits are not checked "
            "(set remote: none to silence this, or git remote add %s <url>)." % (source.path, remote, remote)
        )
        return None, None
    return remote, url


def _format_paths(paths):
    shown = ["  " + p for p in paths[:DIRTY_LIST_LIMIT]]
    if len(paths) > DIRTY_LIST_LIMIT:
        shown.append("  ... and %d more" % (len(paths) - DIRTY_LIST_LIMIT))
    return "\n".join(shown)


def _log_text(old_tag, old_commit, new_tag, new_commit, commits, verb="rollout"):
    old = "%s (%s)" % (old_tag, _short(old_commit)) if old_tag else "(no previous rollout)"
    head = "%s %s -> %s (%s)\n" % (verb, old, new_tag, _short(new_commit))
    body = "".join("%s %s\n" % (c["id"][:12], c["subject"]) for c in commits)
    if len(commits) >= COMMIT_LIST_LIMIT:
        body += "... (list stops at %d commits)\n" % COMMIT_LIST_LIMIT
    return head + (body or "(no new commits)\n")


def _tag_message(repo, refs, name):
    record = tag_record(repo, name, refs[name])
    return record["message"] if record["annotated"] else None


def _push(source, label, url, name, result):
    """Push tag ``name``; a failure is a GitError that keeps what was done in ``result``."""
    try:
        return push_tag(source.repo, url, name)
    except GitError as exc:
        result["pushed"] = False
        raise GitError(
            "tag %s is in %s but pushing it to %s (%s) failed: %s\nThe tag is kept. Fix the remote and "
            "re-run: the existing tag will be pushed (or push it yourself: git push %s refs/tags/%s)."
            % (name, source.path, label, redact(url), exc.msg, redact(url) if source.cache else label, name),
            **result
        )


def tag_rollout(source, env, prefix=None, ref=None, message=None,
                date_format=tagging.DEFAULT_DATE_FORMAT, utc=True, allow_dirty=False, force=False,
                remote="origin", push=True, deployed_by=None, deploy_id=None, new_tag=False,
                revert_of=None, check_mode=False, now=None, hostname=None):
    """Preflight, tag and push one rollout (or record a revert). Returns the result dict.

    ``log`` in the result is git-deploy's ``log``: the commits between the last
    rollout and this one, for diff mode.
    """
    check_name(env, "env")
    prefix = check_name(prefix or env, "prefix")
    tagging.check_date_format(date_format)
    hostname = hostname or socket.gethostname()
    deployed_by = tagging.check_field(deployed_by or _controller_user(), "deployed_by")
    deploy_id = tagging.check_field(deploy_id, "deploy_id") or None
    moment = now or _now(utc)
    repo = source.repo
    warnings = []
    result = dict(
        changed=False, repo=source.path, env=env, prefix=prefix, tag=None, commit=None,
        previous_tag=None, previous_commit=None, created=False, pushed=False, marker=None,
        deploy_file=None, commits=[], remote=None, preflight={}, warnings=warnings,
    )

    require_commits(source)
    commit, refname = resolve(source, ref, prefer_tags=bool(revert_of))
    result["commit"] = _s(commit)
    label, url = _remote(source, remote, warnings)
    result["remote"] = redact(url)
    do_push = bool(push and url)
    refs = tag_refs(repo)
    names = set(refs)

    if revert_of:
        return _revert(source, result, env, commit, refname, refs, revert_of, moment, hostname,
                       deployed_by, deploy_id, label, url, do_push, check_mode)

    preflight = result["preflight"]
    preflight.update(clean=None, dirty=[], upstream=None, unpushed=[], fast_forward=None, overridden=[])

    # 1. dirty working tree (untracked files included, .gitignore respected)
    if not source.bare:
        dirty = dirty_paths(repo)
        preflight["dirty"] = dirty
        preflight["clean"] = not dirty
        if dirty and not allow_dirty:
            raise GitError(
                "the working tree %s is not clean (%d path%s):\n%s\nCommit or stash the changes, delete "
                "untracked files or add them to .gitignore (git status lists them), or set allow_dirty: "
                "true to roll out anyway." % (source.path, len(dirty), "" if len(dirty) == 1 else "s",
                                              _format_paths(dirty)),
                **result
            )
        if dirty:
            preflight["overridden"].append("allow_dirty")
            warnings.append("rolling out from a working tree that is not clean (allow_dirty): %s"
                            % ", ".join(dirty[:5]))

    # 2. unpushed commits: the commit must be on the upstream branch
    if not source.cache and label:
        branch = None
        if refname and refname.startswith(HEADS):
            branch = refname[len(HEADS):]
        upstream, what = upstream_refs(repo, label, branch)
        preflight["upstream"] = what
        if not any(is_ancestor(repo, commit, sha) for _name, sha in upstream):
            ahead = commits_between(repo, commit, [sha for _name, sha in upstream])
            preflight["unpushed"] = ahead
            if not force:
                fix = "git push %s %s" % (label, _s(branch) if branch else "<branch>")
                if not upstream:
                    raise GitError(
                        "commit %s is on no branch of %s: %s has no remote-tracking branches of %s "
                        "(never pushed or fetched). Push first (git push -u %s %s), or set force: true "
                        "to roll out unpushed commits." % (_short(commit), label, source.path, label, label,
                                                           _s(branch) if branch else "<branch>"),
                        **result
                    )
                count = "%d%s" % (len(ahead), "+" if len(ahead) >= COMMIT_LIST_LIMIT else "")
                raise GitError(
                    "commit %s is not on %s: %s commit%s nobody else has (newest: %s %s). Push first (%s), "
                    "or set force: true to roll out unpushed commits."
                    % (_short(commit), what, count, "" if len(ahead) == 1 else "s",
                       ahead[0]["id"][:12], ahead[0]["subject"], fix),
                    **result
                )
            preflight["overridden"].append("force (unpushed)")
            warnings.append("rolling out %d unpushed commit(s) (force)" % len(ahead))

    # 3. the environment's last rollout (ignoring reverted ones)
    last = tagging.last_rollout(names, prefix, date_format)
    last_commit = peel(repo, refs[last]) if last else None

    if last and last_commit == commit and not new_tag:
        before = tagging.rollout_before(names, prefix, last, date_format)
        before_commit = peel(repo, refs[before]) if before else None
        result.update(tag=last, previous_tag=before, previous_commit=_s(before_commit))
        preflight["fast_forward"] = True
        result["commits"] = commits_between(repo, commit, [before_commit])
        result["log"] = _log_text(before, before_commit, last, commit, result["commits"])
        result["deploy_file"] = _tag_message(repo, refs, last) or tagging.render_deploy_file(
            tagging.deploy_fields(_s(commit), last, moment, hostname, deployed_by, env, deploy_id),
            tagging.expand_message(message or tagging.default_message(env, deployed_by), last))
        if do_push:
            if check_mode:
                result["changed"] = _remote_lacks(source, url, last, warnings)
            else:
                result["pushed"] = _push(source, label, url, last, result)
                result["changed"] = result["pushed"]
        return result

    # 4. fast-forward only (gitric): the new commit must descend from the last rollout
    result.update(previous_tag=last, previous_commit=_s(last_commit))
    if last:
        forward = is_ancestor(repo, last_commit, commit)
        preflight["fast_forward"] = forward
        if not forward and force:
            preflight["overridden"].append("force (non-fast-forward)")
            warnings.append("rolling out %s, which does not descend from %s, the last rollout of %s (force)"
                            % (_short(commit), last, prefix))
        elif not forward:
            if is_ancestor(repo, commit, last_commit):
                why = ("it is older than the live rollout: rolling it out would take %d commit(s) back out"
                       % len(commits_between(repo, last_commit, [commit])))
            else:
                why = ("history diverged (non-fast-forward): %d commit(s) of %s are not in it"
                       % (len(commits_between(repo, last_commit, [commit])), last))
            raise GitError(
                "commit %s does not descend from %s (%s), the last rollout of %s: %s. Roll out a commit "
                "that contains %s (git merge %s), go back with a revert, or set force: true."
                % (_short(commit), last, _short(last_commit), prefix, why, last, last),
                **result
            )
    result["commits"] = commits_between(repo, commit, [last_commit])

    # 5. the tag
    name = tagging.unique_tag(prefix, moment, names, date_format)
    text = message or tagging.default_message(env, deployed_by)

    def render(tag_name):
        return tagging.render_deploy_file(
            tagging.deploy_fields(_s(commit), tag_name, moment, hostname, deployed_by, env, deploy_id),
            tagging.expand_message(text, tag_name))

    result.update(tag=name, deploy_file=render(name), created=True, changed=True)
    result["log"] = _log_text(last, last_commit, name, commit, result["commits"])
    if check_mode:
        return result
    tagger, fallback = identity(repo, deployed_by, hostname)
    result["tagger"] = tagger
    if fallback:
        warnings.append("no git user.name/user.email for %s: tagged as %s (git config --global "
                        "user.name/user.email to set one)" % (source.path, tagger))
    for _attempt in range(26):
        if create_tag(repo, name, commit, result["deploy_file"], tagger, moment):
            break
        names.add(name)  # taken meanwhile: next suffix
        name = tagging.unique_tag(prefix, moment, names, date_format)
        result.update(tag=name, deploy_file=render(name))
    else:
        raise GitError("could not find a free tag name for %s in %s" % (name, source.path), **result)
    result["log"] = _log_text(last, last_commit, name, commit, result["commits"])
    if do_push:
        result["pushed"] = _push(source, label, url, name, result)
    return result


def publish_tag(source, remote, name):
    """Push rollout tag ``name``, cut earlier by :func:`tag_rollout` with ``push=False``:
    ``(pushed, url)``; ``url`` is None when there are no remote actions (no remote, or
    ``remote: none``) and the tag stays local. A failed push is a GitError; the tag is kept."""
    label, url = _remote(source, remote, [])
    if not url:
        return False, None
    return _push(source, label, url, name, {}), redact(url)


def drop_tag(source, name):
    """Delete ``refs/tags/<name>`` from the controller's repository - the tag of a rollout that
    stopped before anything went live, never pushed: it must not count as the environment's
    last rollout. True if it was there."""
    refname = TAGS + _b(name)
    sha = source.repo.refs.read_ref(refname)
    if not sha:
        return False
    return bool(source.repo.refs.remove_if_equals(refname, sha))


def fetch_tags(source, remote):
    """Fetch the tags of the checkout's ``remote`` (git-deploy fetches before it processes, so
    other operators' rollouts count as the last one and as "previous"): the names added here.

    Nothing is done for a cache (fetched whole when opened) or with no remote actions
    (``remote`` empty or ``none``, or a checkout without that remote). A tag that is here
    already is kept as it is, as ``git fetch --tags`` keeps it without ``--force``; the names
    of those that differ are returned in ``differ``. A remote that cannot be read is a GitError.
    """
    if source.cache or remote is None or str(remote).strip().lower() in ("", "none"):
        return {"fetched": [], "differ": [], "url": None}
    repo = source.repo
    try:
        url = _s(repo.get_config_stack().get((b"remote", _b(remote)), b"url"))
    except KeyError:
        return {"fetched": [], "differ": [], "url": None}
    wanted = {}

    def determine_wants(refs, depth=None):
        del depth
        for name, sha in refs.items():
            if name.startswith(TAGS) and not name.endswith(b"^{}") and repo.refs.read_ref(name) is None:
                wanted[name] = sha
        return [sha for sha in set(wanted.values()) if sha not in repo.object_store]

    try:
        client, path = get_transport_and_path(url, config=repo.get_config_stack())
        result = client.fetch(path, repo, determine_wants=determine_wants)
    except Exception as exc:  # pylint: disable=broad-except
        raise GitError("could not fetch the tags of %s (%s) into %s: %s. Check that this controller can read it, or "
                       "set git_deploy_remote: '' to roll out with no remote actions."
                       % (remote, redact(url), source.path, _describe(exc, url)), repo=source.path)
    refs = getattr(result, "refs", result) or {}
    differ = sorted(_s(name[len(TAGS):]) for name, sha in refs.items()
                    if name.startswith(TAGS) and not name.endswith(b"^{}") and name not in wanted
                    and repo.refs.read_ref(name) not in (None, sha))
    for name, sha in sorted(wanted.items()):
        repo.refs[name] = sha
    return {"fetched": sorted(_s(name[len(TAGS):]) for name in wanted), "differ": differ, "url": redact(url)}


def remote_tags(source, remote):
    """``(url, names)``: the tag names of the repository's remote (``(None, [])`` with no remote
    actions). A failure to list them is a GitError."""
    label, url = _remote(source, remote, [])
    del label
    if not url:
        return None, []
    try:
        client, path = get_transport_and_path(url, config=source.repo.get_config_stack())
        refs = client.get_refs(_b(path))
        refs = getattr(refs, "refs", refs) or {}
    except Exception as exc:  # pylint: disable=broad-except
        raise GitError(_describe(exc, url))
    return url, sorted(_s(ref[len(TAGS):]) for ref in refs if ref.startswith(TAGS) and not ref.endswith(b"^{}"))


def delete_tags(source, url, names):
    """Delete the tags ``names`` from ``url`` (one push of deletions) and from the controller's
    repository: the names deleted upstream (those the remote had)."""
    zero = b"0" * 40
    wanted = set(TAGS + _b(n) for n in names)
    gone = []

    def update_refs(refs):
        found = dict((ref, zero) for ref in refs if ref in wanted)
        gone.extend(sorted(_s(ref[len(TAGS):]) for ref in found))
        return found

    def generate_pack_data(have, want, ofs_delta=False, progress=None, **_kwargs):
        return source.repo.generate_pack_data(have, want, progress=progress, ofs_delta=ofs_delta)

    if url and names:
        try:
            client, path = get_transport_and_path(url, config=source.repo.get_config_stack())
            result = client.send_pack(_b(path), update_refs, generate_pack_data=generate_pack_data)
        except Exception as exc:  # pylint: disable=broad-except
            raise GitError(_describe(exc, url))
        refused = dict((ref, why) for ref, why in (getattr(result, "ref_status", None) or {}).items() if why)
        if refused:
            raise GitError("the remote refused to delete %s" % ", ".join(
                "%s (%s)" % (_s(ref[len(TAGS):]), _s(why)) for ref, why in sorted(refused.items())))
    for name in names:
        drop_tag(source, name)
    return gone


def _remote_lacks(source, url, name, warnings):
    """Check mode: whether ``url`` lacks tag ``name`` (True if it cannot be asked)."""
    try:
        client, path = get_transport_and_path(url, config=source.repo.get_config_stack())
        refs = client.get_refs(_b(path))
        refs = getattr(refs, "refs", refs) or {}
    except Exception as exc:  # pylint: disable=broad-except
        warnings.append("could not list the tags of %s: %s" % (redact(url), _describe(exc, url)))
        return True
    return refs.get(TAGS + _b(name)) != source.repo.refs[TAGS + _b(name)]


def _revert(source, result, env, commit, refname, refs, revert_of, moment, hostname, deployed_by,
            deploy_id, label, url, do_push, check_mode):
    """Record that ``revert_of`` was reverted to the tag ``refname``: marker tag ``<revert_of>_reverted``."""
    repo = source.repo
    warnings = result["warnings"]
    check_name(revert_of, "revert_of")
    if not refname or not refname.startswith(TAGS):
        raise GitError(
            "with revert_of, ref must be the rollout tag to go back to (a tag of %s), not %r: "
            "pick one from git_deploy_tag_info's tags." % (source.path, _s(refname) or result["commit"]),
            **result
        )
    target = _s(refname[len(TAGS):])
    if revert_of not in refs:
        raise GitError(
            "revert_of %s is not a tag of %s: give the rollout tag that is live now (the one being "
            "reverted away from)%s." % (revert_of, source.path, "" if source.cache else "; git fetch --tags"),
            **result
        )
    if revert_of == target:
        raise GitError("revert_of and ref are both %s: a revert goes back to a different rollout tag."
                       % target, **result)
    reverted_commit = peel(repo, refs[revert_of])
    marker = tagging.marker_for(revert_of)
    result.update(tag=target, previous_tag=revert_of, previous_commit=_s(reverted_commit), marker=marker)
    result["commits"] = commits_between(repo, reverted_commit, [commit])
    result["log"] = _log_text(revert_of, reverted_commit, target, commit, result["commits"], verb="revert")
    if tagging.marker_for(target) in refs:
        warnings.append("%s was itself reverted earlier (%s exists): it does not count as the last "
                        "rollout of its environment" % (target, tagging.marker_for(target)))
    result["deploy_file"] = _tag_message(repo, refs, target)
    if not tagging.parse_deploy_file(result["deploy_file"] or "")[0]:
        result["deploy_file"] = tagging.render_deploy_file(
            tagging.deploy_fields(result["commit"], target, moment, hostname, deployed_by, env, deploy_id),
            "revert to %s in %s by %s" % (target, env, deployed_by))

    if marker not in refs:
        result.update(created=True, changed=True)
        if check_mode:
            return result
        text = tagging.render_deploy_file(
            tagging.revert_fields(_s(reverted_commit), revert_of, target, result["commit"], moment,
                                  hostname, deployed_by, env, deploy_id),
            "revert of %s to %s in %s by %s" % (revert_of, target, env, deployed_by))
        tagger, _fallback = identity(repo, deployed_by, hostname)
        result["tagger"] = tagger
        create_tag(repo, marker, reverted_commit, text, tagger, moment)
        if do_push:
            result["pushed"] = _push(source, label, url, marker, result)
        return result
    if do_push:
        if check_mode:
            result["changed"] = _remote_lacks(source, url, marker, warnings)
        else:
            result["pushed"] = _push(source, label, url, marker, result)
            result["changed"] = result["pushed"]
    return result


def _controller_user():
    try:
        return getpass.getuser()
    except Exception:  # pylint: disable=broad-except
        return "unknown"


# -- info ------------------------------------------------------------------

def _entry(repo, refs, parsed, reverted):
    record = tag_record(repo, parsed.name, refs[parsed.name])
    return {"name": parsed.name, "env": parsed.prefix, "commit": record["commit"], "date": record["date"],
            "tagger": record["tagger"], "subject": record["subject"], "reverted": reverted}


def rollout_info(source, env=None, prefix=None, tag=None, limit=20, date_format=tagging.DEFAULT_DATE_FORMAT):
    """The rollout tags of an environment (or of all), newest first; one tag resolved."""
    if env is not None:
        check_name(env, "env")
    prefix = check_name(prefix, "prefix") if prefix else env
    tagging.check_date_format(date_format)
    repo = source.repo
    refs = tag_refs(repo)
    names = set(refs)
    found = tagging.rollouts(names, prefix, date_format)
    shown = found if not limit or limit <= 0 else found[:limit]
    result = {"changed": False, "repo": source.path, "env": env, "prefix": prefix,
              "tags": [_entry(repo, refs, p, r) for p, r in shown],
              "tag": None, "latest": None, "previous": None}
    if prefix is not None:
        live = [(p, r) for p, r in found if not r]
        if live:
            result["latest"] = _entry(repo, refs, *live[0])
        if len(live) > 1:
            result["previous"] = _entry(repo, refs, *live[1])
    if tag:
        check_name(tag, "tag")
        if tag not in refs:
            newest = ", ".join(p.name for p, _r in found[:5]) or "none"
            raise GitError(
                "tag %s does not exist in %s (newest rollout tags%s: %s): check the name%s."
                % (tag, source.path, " of " + prefix if prefix else "", newest,
                   "" if source.cache else ", or git fetch --tags"),
                **result
            )
        parsed = tagging.parse_tag(tag, date_format)
        record = tag_record(repo, tag, refs[tag])
        result["tag"] = {
            "name": tag, "env": parsed.prefix if parsed else None, "commit": record["commit"],
            "exists": True, "date": record["date"], "tagger": record["tagger"],
            "subject": record["subject"], "message": record["message"],
            "marker": bool(parsed and parsed.marker),
            "reverted": tagging.MARKER_SUFFIX not in tag and (tag + tagging.MARKER_SUFFIX) in names,
        }
    return result
