#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: git_deploy_lock
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
version_added: 0.1.0
short_description: Take or release the exclusive rollout lock on a target
description:
  - Takes (O(state=present)) or releases (O(state=absent)) the lock that lets one rollout at a time
    change a target's O(root), like C(git-deploy start) / C(git-deploy finish).
  - The lock is a JSON record at C(<root>/.git-deploy/lock), or C(<lock_dir>/lock) when O(lock_dir) is set.
  - Taking the lock is atomic. The complete record is written to a temporary file in the same directory and then
    hard-linked to the lock path, so of several rollouts racing for the lock exactly one wins and a reader never sees a half-written
    lock. Every read-decide-write runs under C(flock) on the lock directory.
  - Taking a lock this rollout (O(deploy_id)) already holds renews it - its C(expires) moves O(ttl) seconds ahead (the
    role renews at every step, so a rollout longer than the TTL keeps its lock) - and is not reported as a change.
    A lock held by another rollout fails the task with a message naming the holder, its rollout, since when, why, its expiry,
    and the command that clears it.
  - A lock past its C(expires) time is stale and is taken over with a warning. Before then only O(force_lock=true) takes it over.
  - Releasing removes the lock only when O(deploy_id) matches the holder's. A rollout never removes someone else's lock unless
    O(force=true).
  - Forced takeovers and releases, and takeovers of stale locks, are recorded in the root's active log
    (C(<root>/logs/git-deploy-active.log), phase C(lock)). The previous record is returned as RV(taken_over).
options:
  state:
    description:
      - V(present) takes the lock for O(deploy_id), V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  deploy_id:
    description:
      - The id of the rollout taking or releasing the lock, a plain name (letters, digits, C(.), C(_), C(-)).
      - Required for O(state=present). Required for O(state=absent) unless O(force=true).
    type: str
  env:
    description:
      - The environment being rolled out (a plain name). Recorded in the lock. The unlock command in messages uses it.
    type: str
  action:
    description:
      - What the rollout does, for example V(deploy), V(revert), V(abort) or V(unlock). Recorded in the lock.
    type: str
  tag:
    description:
      - The rollout tag. Recorded in the lock.
    type: str
  force:
    description:
      - With O(state=present), take over a corrupt lock and take the lock despite O(block_file); an expired lock is
        taken over without it. It does not take over a lock its holder renewed within its TTL - that needs
        O(force_lock).
      - With O(state=absent), release any lock, also a corrupt one or one of another rollout.
      - Recorded in the active log.
    type: bool
    default: false
  force_lock:
    description:
      - With O(state=present), take over the lock of another rollout even though it has not expired (its holder renewed it
        within its TTL). Recorded in the active log, and the previous holder is named in RV(taken_over).
    type: bool
    default: false
extends_documentation_fragment:
  - gitdeploy.rollout.target
  - gitdeploy.rollout.lock
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would happen (RV(would_acquire), RV(would_release), RV(would_fail)) and fails exactly when the real run
      would, with the same message. Nothing is created or changed.
  diff_mode:
    support: full
    details: Shows the lock record before and after.
  platform:
    platforms: posix
notes:
  - A lock directory this module creates gets mode C(0770) minus the umask of the remote user,
    which is C(0750) with the usual umask C(0022). A lock file gets C(0660) minus the umask, which is C(0640). Neither is ever
    world-writable.
  - The lock file is never rewritten in place. It is created, replaced by C(rename), or removed, and those need write access
    to the lock directory only. Teams that share one deploy user need nothing more.
  - Teams whose members deploy as their own users (git-deploy's C(deploy.restrict-umask) story) put those users in one group
    and create the lock directory (C(<root>/.git-deploy) or O(lock_dir)) once, owned by that group with mode C(2770).
    The setgid bit gives new lock files the directory's group.
    Any member can then read the lock, release it, or take it over with O(force=true).
    Do not set the sticky bit on it, because that stops members from replacing each other's lock.
    A umask of C(0002) also makes directories this module creates group-writable.
  - The C(flock) serialising lock operations needs a local file system (or NFSv4).
    Where it is unavailable, taking a free lock stays exclusive through C(link), but two simultaneous takeovers of a stale lock may both report success.
seealso:
  - module: gitdeploy.rollout.git_deploy_lock_info
"""

EXAMPLES = r"""
- name: Take the rollout lock
  gitdeploy.rollout.git_deploy_lock:
    root: /srv/app
    deploy_id: "{{ deploy_id }}"
    env: prod
    action: deploy
    tag: prod-20261121-101500
    reason: "ticket OPS-1234: new checkout flow"
    owner: alice@deploy-host
    ttl: 3600
    block_file: /etc/ROLLOUTS_BLOCKED

- name: Release it at the end of the rollout
  gitdeploy.rollout.git_deploy_lock:
    root: /srv/app
    deploy_id: "{{ deploy_id }}"
    state: absent

- name: Share one lock between two applications on the host (interlock)
  gitdeploy.rollout.git_deploy_lock:
    root: /srv/static
    lock_dir: /var/lib/git-deploy
    deploy_id: "{{ deploy_id }}"
    env: prod

- name: Clear a dead rollout's lock (what the unlock playbook does)
  gitdeploy.rollout.git_deploy_lock:
    root: /srv/app
    state: absent
    force: true
    owner: bob@controller
"""

RETURN = r"""
lock:
  description:
    - The record in the lock file after the task, or that would be in check mode. This is the new holder's record after
      taking the lock and null after releasing it.
    - On failure, this is the record of the holder that turned the task away, or null when the lock file is corrupt or absent.
  returned: always
  type: dict
  sample:
    deploy_id: 3f2a9c
    owner: alice@controller
    env: prod
    action: deploy
    tag: prod-20261121-101500
    reason: "ticket OPS-1234"
    created: "2026-11-21T10:15:00Z"
    expires: "2026-11-21T11:15:00Z"
    host: web1
    root: /srv/app
taken_over:
  description:
    - The record of another rollout that this task replaced (stale or forced takeover) or removed (forced release).
    - For a corrupt lock file, V(corrupt=true), its V(content) head and the V(error).
    - Null when no other rollout's lock was touched.
  returned: always
  type: dict
  sample:
    deploy_id: 77b1e0
    owner: bob@controller
    env: prod
    action: deploy
    tag: prod-20261121-090000
    reason: null
    created: "2026-11-21T09:00:00Z"
    expires: "2026-11-21T10:00:00Z"
    host: web1
    root: /srv/app
path:
  description: The lock file's path on the target.
  returned: always
  type: str
  sample: /srv/app/.git-deploy/lock
msg:
  description: What happened, or why not and the command that fixes it.
  returned: always
  type: str
  sample: "Lock /srv/app/.git-deploy/lock on web1 taken by alice@controller (deploy 3f2a9c: deploy of tag
    prod-20261121-101500 to env prod, root /srv/app); it expires at 2026-11-21T11:15:00Z."
would_acquire:
  description: Whether the task would take the lock (free, stale, corrupt or forced).
  returned: check mode
  type: bool
would_release:
  description: Whether the task would remove the lock.
  returned: check mode
  type: bool
would_fail:
  description: Whether the task would fail. The task then fails in check mode too, with the same RV(msg).
  returned: check mode
  type: bool
"""

import json
import os
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import Layout
from ansible_collections.gitdeploy.rollout.plugins.module_utils.lock import (
    ACQUIRE,
    DEFAULT_TTL,
    RELEASE,
    TAKEOVER,
    LockError,
    Request,
    apply,
    hostname,
)


def default_owner():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return "uid-%d" % os.geteuid()


def diff(decision, path):
    def text(content):
        if isinstance(content, dict):
            return json.dumps(content, indent=2, sort_keys=True) + "\n"
        return getattr(content, "head", "") or ""
    after = decision.record if decision.action in (ACQUIRE, TAKEOVER) else None
    return {"before": text(decision.existing), "after": text(after),
            "before_header": path, "after_header": path}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            lock_dir=dict(type="path"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            deploy_id=dict(type="str"),
            env=dict(type="str"),
            action=dict(type="str"),
            tag=dict(type="str"),
            reason=dict(type="str"),
            owner=dict(type="str"),
            ttl=dict(type="int", default=DEFAULT_TTL),
            force=dict(type="bool", default=False),
            force_lock=dict(type="bool", default=False),
            block_file=dict(type="path"),
        ),
        required_if=[("state", "present", ("deploy_id",))],
        supports_check_mode=True,
    )
    # The returned ``path`` is the lock's: keep AnsibleModule from adding that file's stat
    # (``owner``, ``state``, ``mode``...) to the result, where ``owner`` and ``state`` would mislead.
    module.add_path_info = lambda result: result
    params = module.params
    try:
        layout = Layout(params["root"], params["lock_dir"])
        request = Request(
            state=params["state"], deploy_id=params["deploy_id"], owner=params["owner"] or default_owner(),
            env=params["env"], action=params["action"], tag=params["tag"], reason=params["reason"],
            ttl=params["ttl"], force=params["force"], force_lock=params["force_lock"], root=layout.root,
            block_file=params["block_file"],
        ).check()
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    try:
        decision = apply(request, layout.lock, layout.active_log, check_mode=module.check_mode)
    except LockError as exc:
        module.fail_json(msg=str(exc), path=layout.lock, lock=None, taken_over=None)
    except OSError as exc:
        module.fail_json(
            msg="Cannot %s lock %s on %s: %s. Check that user %s may write to %s "
                "(see the module notes on umask and groups)."
                % ("release" if request.state == "absent" else "take", layout.lock, hostname(), exc,
                   default_owner(), os.path.dirname(layout.lock)),
            path=layout.lock, lock=None, taken_over=None)

    for warning in decision.warnings:
        module.warn(warning)
    result = dict(changed=decision.changed, msg=decision.msg, path=layout.lock,
                  lock=decision.record, taken_over=decision.taken_over)
    if module.check_mode:
        result.update(would_acquire=decision.action in (ACQUIRE, TAKEOVER),
                      would_release=decision.action == RELEASE, would_fail=decision.failed)
    if module._diff and decision.changed:
        result["diff"] = diff(decision, layout.lock)
    if decision.failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
