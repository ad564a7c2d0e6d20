# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Where the rollout lock lives and what its record says (git_deploy_lock, git_deploy_step)."""

    DOCUMENTATION = r"""
options:
  lock_dir:
    description:
      - A directory holding the lock instead of C(<root>/.git-deploy). Several roots (applications) on one host that use the
        same O(lock_dir) share one lock, so only one of them is rolled out at a time (git-deploy's C(deploy.lock-dir-root) interlock).
      - Created if missing, with mode C(0770) minus the umask (never world-writable).
    type: path
  ttl:
    description:
      - Seconds the lock is valid. After that it is stale and the next rollout takes it over with a warning.
    type: int
    default: 3600
  block_file:
    description:
      - A file on the target that blocks new rollouts while it exists, for example V(/etc/ROLLOUTS_BLOCKED).
        Its content is the reason shown to whoever is turned away. Only taking a new lock is blocked. A lock already held
        and releasing are not.
    type: path
  reason:
    description:
      - Why this rollout runs, free text. Recorded in the lock and shown to anyone the lock turns away.
    type: str
  owner:
    description:
      - Who holds the lock, for example V(alice@controller). Recorded in the lock and named in messages.
      - Defaults to the user the module runs as on the target.
    type: str
"""
