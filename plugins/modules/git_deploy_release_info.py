#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: git_deploy_release_info
short_description: Report the live release, the releases, the previous tag and the rollout history of a target
version_added: 0.1.0
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
description:
  - Reads the release tree under O(root) (see M(gitdeploy.rollout.git_deploy_release)) and the rollout history in
    C(<root>/.git-deploy/history.jsonl) without changing anything.
  - Tells which tag is live and its commit, which releases exist (oldest first, with their failed mark), which tag a
    revert would go to, whether an O(strategy=in_place) tree has local modifications, and the last rollouts.
options:
  strategy:
    description:
      - V(releases) (C(current) is a symlink into C(releases/)) or V(in_place) (C(current) is a working tree).
      - Local modifications are only looked for with V(in_place).
    type: str
    choices: [releases, in_place]
    default: releases
  history_limit:
    description: How many of the newest history records to return (V(0) returns none).
    type: int
    default: 20
  deploy_file_name:
    description: Path of the deploy file inside the live tree, read for RV(live_commit).
    type: str
    default: .deploy
extends_documentation_fragment:
  - gitdeploy.rollout.target
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Never changes anything, so it runs in check mode too.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The target needs Python; the C(git) binary is used for RV(live_commit) when no deploy file records it, and for
    RV(dirty) with O(strategy=in_place).
  - Unreadable lines of the history are counted in RV(history_corrupt_lines), not fatal.
seealso:
  - module: gitdeploy.rollout.git_deploy_release
"""

EXAMPLES = r"""
- name: What is live, and where would a revert go
  gitdeploy.rollout.git_deploy_release_info:
    root: "{{ git_deploy_root }}"
  register: release_info

- name: Revert to the previous release
  gitdeploy.rollout.git_deploy_release:
    root: "{{ git_deploy_root }}"
    tag: "{{ release_info.previous_tag }}"
    state: live
  when: release_info.previous_tag is not none

- name: Refuse to deploy over local edits of an in_place tree
  gitdeploy.rollout.git_deploy_release_info:
    root: "{{ git_deploy_root }}"
    strategy: in_place
  register: in_place_info
  failed_when: in_place_info.dirty
"""

RETURN = r"""
exists:
  description: Whether the root is initialised (C(<root>/repo.git) or C(<root>/current) exists).
  returned: always
  type: bool
  sample: true
current:
  description: What C(<root>/current) is - C(kind) (V(missing), V(symlink), V(directory) or V(other)) and C(target) (the symlink's value or the path).
  returned: always
  type: dict
  sample: {kind: symlink, target: releases/prod-20261121-101500}
live_tag:
  description: The tag live now (the release C(current) points at, or the tag checked out in place); null when none.
  returned: always
  type: str
  sample: prod-20261121-101500
live_commit:
  description: The commit of the live tag, from the deploy file, else the module's own record, else C(git rev-parse) of the tag.
  returned: always
  type: str
  sample: 3f2a9c0d5e6b7a8f9012345678901234567890ab
releases:
  description: The releases under C(<root>/releases), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The tag.
      type: str
    path:
      description: The release directory.
      type: str
    commit:
      description: The commit it was prepared from (null when unknown).
      type: str
    prepared:
      description: When it was prepared (ISO 8601, UTC).
      type: str
    complete:
      description: Whether it was prepared completely by M(gitdeploy.rollout.git_deploy_release).
      type: bool
    failed:
      description: Whether it is marked failed.
      type: bool
    live:
      description: Whether C(current) points at it.
      type: bool
  sample:
    - name: prod-20261121-101500
      path: /srv/app/releases/prod-20261121-101500
      commit: 3f2a9c0d5e6b7a8f9012345678901234567890ab
      prepared: "2026-11-21T10:15:03Z"
      complete: true
      failed: false
      live: true
failed_tags:
  description: Tags marked failed (named so because C(failed) is the task status key of Ansible).
  returned: always
  type: list
  elements: str
  sample: [prod-20261121-094500]
previous_tag:
  description:
    - The tag a revert without an explicit tag goes back to - the newest successful rollout in the history other than
      the live one that was not itself reverted away from; without history, the newest other complete, not failed
      release (O(strategy=in_place), the tag live before the last checkout).
  returned: always
  type: str
  sample: prod-20261120-093000
settled_tag:
  description:
    - The tag the newest finished rollout in the history left live (a success leaves its tag, a rollback the tag it
      started from; failed and aborted rollouts are skipped); null without such a record.
    - When RV(live_tag) differs from it, a rollout that never finished (a controller crash) switched this host.
  returned: always
  type: str
  sample: prod-20261121-101500
dirty:
  description:
    - With O(strategy=in_place), whether tracked files of C(current) were changed locally (or C(current) is not a
      tree this collection manages).
    - Always false with O(strategy=releases).
  returned: always
  type: bool
  sample: false
local_modifications:
  description: With O(strategy=in_place), the locally changed tracked files (C(status) is the git status letter, C(path)).
  returned: always
  type: list
  elements: dict
  sample: [{status: M, path: config/app.ini}]
history:
  description: The last O(history_limit) history records, oldest first (see the collection's design for their fields).
  returned: always
  type: list
  elements: dict
  sample: [{action: deploy, tag: prod-20261121-101500, result: success, previous_tag: prod-20261120-093000}]
history_corrupt_lines:
  description: How many lines of the history file could not be read.
  returned: always
  type: int
  sample: 0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gitdeploy.rollout.plugins.module_utils.release import (
    DEFAULT_DEPLOY_FILE,
    STRATEGIES,
    ReleaseError,
    ReleaseTree,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            strategy=dict(type="str", choices=list(STRATEGIES), default="releases"),
            history_limit=dict(type="int", default=20),
            deploy_file_name=dict(type="str", default=DEFAULT_DEPLOY_FILE),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["history_limit"] < 0:
        module.fail_json(msg="history_limit=%d is invalid: use 0 or more" % params["history_limit"])
    try:
        tree = ReleaseTree(params["root"], module.run_command, git=module.get_bin_path("git") or "git",
                           check_mode=True, deploy_file_name=params["deploy_file_name"])
        result = tree.describe(params["strategy"], params["history_limit"])
    except (ReleaseError, ValueError) as exc:
        module.fail_json(msg=str(exc), root=params["root"])
    except (IOError, OSError) as exc:
        module.fail_json(msg="%s reading %s: %s; check that the connecting user can read %s" % (
            type(exc).__name__, getattr(exc, "filename", None) or params["root"], exc, params["root"]),
            root=params["root"])
    for warning in tree.warnings:
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
