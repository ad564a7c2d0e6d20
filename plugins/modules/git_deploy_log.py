#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: git_deploy_log
short_description: Write a rollout's log lines and history record on a target
version_added: 0.1.0
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
description:
  - Appends timestamped lines to the active log C(<root>/logs/git-deploy-active.log)
    while a rollout runs.
  - At the end of a rollout (success or failure) appends one structured record to
    C(<root>/.git-deploy/history.jsonl) and moves the active log to the end of
    C(<root>/logs/git-deploy.log), like git-deploy's active and archive logs.
  - The history feeds C(status) and C(revert) (the rollout before the live one).
extends_documentation_fragment:
  - gitdeploy.rollout.target
  - ansible.builtin.action_common_attributes
options:
  line:
    description: A log line to append to the active log.
    type: str
  fields:
    description:
      - Context for the log line, written as C(key=value) after the timestamp.
      - Known keys, in this order, are C(id), C(user), C(env), C(tag) and C(phase).
    type: dict
    default: {}
  record:
    description:
      - A history record to append (one JSON object per line).
      - Expected keys are C(id), C(action), C(env), C(tag), C(commit), C(previous_tag),
        C(user), C(controller), C(start), C(end), C(result) (one of C(success), C(failed),
        C(rolled_back)), C(failed_host), C(failed_phase), C(failed_hook).
      - C(end) is set to the current time when missing.
    type: dict
  archive:
    description: Append the active log to the archive log and remove the active log.
    type: bool
    default: false
notes:
  - Files are created with mode C(0640) and directories with C(0750) (minus the umask),
    so a team sharing a deploy group can read them and nobody else can write them.
attributes:
  check_mode:
    support: full
    details: Reports what it would write and writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Log the switch
  gitdeploy.rollout.git_deploy_log:
    root: /srv/app
    line: switched current to prod-20261121-101500
    fields: {id: 20261121T101500Z-4711, user: alice, env: prod, tag: prod-20261121-101500, phase: switch}

- name: Record the rollout and archive its log
  gitdeploy.rollout.git_deploy_log:
    root: /srv/app
    archive: true
    record:
      id: 20261121T101500Z-4711
      action: deploy
      env: prod
      tag: prod-20261121-101500
      result: success
"""

RETURN = r"""
active_log:
  description: Path of the active log.
  returned: always
  type: str
archive_log:
  description: Path of the archive log.
  returned: always
  type: str
history:
  description: Path of the history file.
  returned: always
  type: str
record:
  description: The history record written (with C(end) filled in).
  returned: when I(record) is given
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gitdeploy.rollout.plugins.module_utils import journal
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import Layout


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            line=dict(type="str"),
            fields=dict(type="dict", default={}),
            record=dict(type="dict"),
            archive=dict(type="bool", default=False),
        ),
        required_one_of=[("line", "record", "archive")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        layout = Layout(params["root"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    result = dict(changed=False, active_log=layout.active_log,
                  archive_log=layout.archive_log, history=layout.history)
    record = None
    if params["record"] is not None:
        record = dict(params["record"])
        record.setdefault("end", journal.isoformat(journal.utcnow()))
        result["record"] = record
    if module.check_mode:
        result["changed"] = True
        module.exit_json(**result)

    if params["line"]:
        journal.log(layout.active_log, params["line"], **params["fields"])
        result["changed"] = True
    if record is not None:
        journal.append_history(layout.history, record)
        result["changed"] = True
    if params["archive"]:
        result["changed"] = journal.archive(layout.active_log, layout.archive_log) or result["changed"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
