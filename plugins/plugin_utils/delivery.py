# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of delivering a rollout tag's objects: build (or reuse) the bundle of
what a target lacks and copy it over the task's own connection.

Shared by the action plugins of git_deploy_push and git_deploy_step.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64

from ansible_collections.gitdeploy.rollout.plugins.module_utils import bundle

# Bundles up to this size go inside the module's arguments (no remote file to make,
# copy and remove: three round trips to the host less).
INLINE = 512 * 1024


class DeliveryFailed(Exception):
    """Nothing was delivered; the message says why and what to do."""


class TooBig(DeliveryFailed):
    """The bundle a host needs is bigger than the rollout allows (max_bytes)."""


def check_size(size, max_bytes, host):
    """Refuse a bundle of ``size`` bytes for ``host`` above ``max_bytes`` (0: no limit)."""
    if max_bytes and size > max_bytes:
        raise TooBig(
            "the bundle for %s is %s (%d bytes), above git_deploy_max_bundle_bytes=%d (%s; max_bytes of "
            "git_deploy_push): nothing was delivered. Raise the limit for this rollout "
            "(-e git_deploy_max_bundle_bytes=%d), or seed the host's store another way first."
            % (host, human(size), size, max_bytes, human(max_bytes), size))


def human(size):
    """``size`` bytes, as a person reads them (1.5 MiB)."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return ("%d %s" % (value, unit)) if unit == "bytes" else ("%.1f %s" % (value, unit))
        value /= 1024


def submodules_of(settings):
    """Whether a host whose step settings are ``settings`` takes the submodules (the default).
    The tag step and the host's prepare step ask the same way, so they build the same bundle."""
    return (settings or {}).get("submodules", True) is not False


def needed(store, commit):
    """Whether a target whose store reports ``store`` (haves, commit_present, tag_commit) needs a bundle."""
    return (store or {}).get("tag_commit") != commit


def build(repo, tag, commit, store, cache_dir, check_mode, host, max_bytes=0, submodules=True):
    """The bundle bringing ``tag`` to a target with ``store``: ``(built, info)``.

    ``built`` is a :class:`bundle.Built` (None in check mode when the tag is not cut yet);
    ``info`` has ``bytes``, ``objects`` and ``prerequisites``. A bundle above ``max_bytes``
    (0: no limit) is :class:`TooBig` (it stays in the cache: raising the limit reuses it).
    With ``submodules`` the commits the tag pins as submodules travel too.
    """
    store = store or {}
    if store.get("tag_commit") not in (None, commit):
        raise DeliveryFailed("refs/tags/%s on %s points to commit %s, not %s: a rollout tag is never moved"
                             % (tag, host, store["tag_commit"], commit))
    haves = list(store.get("haves") or [])
    if store.get("commit_present"):
        haves.append(commit)
    cache_dir = cache_dir or bundle.default_cache_dir()
    try:
        built = bundle.tag_bundle(cache_dir, repo, tag, commit, haves, submodules)
    except bundle.TagMissing as exc:
        if not check_mode:
            raise DeliveryFailed("%s (host %s)" % (exc, host))
        # A check-mode rollout has not cut its tag: weigh the commit instead.
        size, objects, prerequisites = bundle.preview(repo, commit, haves, submodules)
        check_size(size, max_bytes, host)
        return None, dict(bytes=size, objects=objects, prerequisites=prerequisites)
    except bundle.BundleError as exc:
        raise DeliveryFailed("%s (host %s)" % (exc, host))
    check_size(built.size, max_bytes, host)
    return built, dict(bytes=built.size, objects=built.objects, prerequisites=built.prerequisites)


def send(action, built, tag, inline=INLINE):
    """Module arguments that bring ``built`` to the target: a small bundle travels inside the
    arguments (base64), a bigger one is copied to the remote tmp dir first."""
    args = dict(bundle_size=built.size, bundle_sha256=built.sha256)
    if built.size <= inline:
        with open(built.path, "rb") as handle:
            args["bundle_data"] = base64.b64encode(handle.read()).decode("ascii")
    else:
        args["bundle"] = transfer(action, built, tag)
    return args


def transfer(action, built, tag):
    """Copy ``built`` into the target's remote tmp dir; return its path there."""
    shell = action._connection._shell
    tmpdir = shell.tmpdir or action._make_tmp_path()
    remote = shell.join_path(tmpdir, "%s.bundle" % tag)
    action._transfer_file(built.path, remote)
    action._fixup_perms2((tmpdir, remote), execute=False)
    return remote


def forget(built, cache_dir):
    """The target found the bundle damaged: drop the cached copy, the next run rebuilds it."""
    bundle.forget(cache_dir or bundle.default_cache_dir(), built.key)
