#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: git_deploy_lock_info
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
version_added: 0.1.0
short_description: Show who holds the rollout lock on a target and whether rollouts are blocked
description:
  - Reads the lock that M(gitdeploy.rollout.git_deploy_lock) manages, C(<root>/.git-deploy/lock) or C(<lock_dir>/lock),
    and the block file, and reports them. Changes nothing.
options:
  lock_dir:
    description:
      - The shared lock directory, when the lock lives there instead of C(<root>/.git-deploy).
    type: path
  block_file:
    description:
      - A file that blocks new rollouts while it exists, for example V(/etc/ROLLOUTS_BLOCKED).
    type: path
  deploy_id:
    description:
      - A rollout id. RV(mine) says whether that rollout holds the lock.
    type: str
extends_documentation_fragment:
  - gitdeploy.rollout.target
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only, so it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: gitdeploy.rollout.git_deploy_lock
"""

EXAMPLES = r"""
- name: Who holds the lock?
  gitdeploy.rollout.git_deploy_lock_info:
    root: /srv/app
    block_file: /etc/ROLLOUTS_BLOCKED
  register: lock_state

- name: Say so
  ansible.builtin.debug:
    msg: "{{ lock_state.msg }}"
  when: lock_state.locked or lock_state.blocked
"""

RETURN = r"""
locked:
  description: Whether a lock file exists, valid or corrupt. A new rollout cannot take the lock unless it is stale or forced.
  returned: always
  type: bool
lock:
  description: The lock record, or null when there is no lock or it is corrupt.
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
stale:
  description: Whether the lock is past its C(expires) time, so the next rollout takes it over.
  returned: always
  type: bool
corrupt:
  description: Whether the lock file exists but is not a valid lock record.
  returned: always
  type: bool
content:
  description: The start of a corrupt lock file's content, or null.
  returned: always
  type: str
blocked:
  description: Whether O(block_file) exists, which blocks new rollouts.
  returned: always
  type: bool
block_reason:
  description: The block file's content (the reason), or null when not blocked.
  returned: always
  type: str
  sample: "Black Friday freeze until Monday -- ops"
path:
  description: The lock file's path on the target.
  returned: always
  type: str
  sample: /srv/app/.git-deploy/lock
mine:
  description: Whether the lock is held by O(deploy_id).
  returned: always
  type: bool
msg:
  description: The state in one paragraph, with the command that clears a lock that is in the way.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import Layout
from ansible_collections.gitdeploy.rollout.plugins.module_utils.lock import info


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            lock_dir=dict(type="path"),
            block_file=dict(type="path"),
            deploy_id=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    # The returned ``path`` is the lock's: keep AnsibleModule from adding that file's stat
    # (``owner``, ``state``, ``mode``...) to the result, where ``owner`` and ``state`` would mislead.
    module.add_path_info = lambda result: result
    params = module.params
    try:
        layout = Layout(params["root"], params["lock_dir"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        result = info(layout.lock, params["block_file"], params["deploy_id"])
    except OSError as exc:
        module.fail_json(msg="Cannot read lock %s: %s" % (layout.lock, exc), path=layout.lock)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
