# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: rollout_batches
short_description: Cut an environment's hosts into the switch batches of a rolling rollout
version_added: 0.1.0
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
description:
  - Splits a list of hosts into consecutive batches following C(git_deploy_serial),
    with the rules of the play keyword C(serial) (integers or percentages, the last
    size repeats). The lock and the tag stay one per rollout; only the switch is batched.
positional: serial
options:
  _input:
    description: The hosts, in rollout order.
    type: list
    elements: str
    required: true
  serial:
    description: Batch sizes; an empty list means a single batch.
    type: list
    elements: raw
    default: []
"""

EXAMPLES = r"""
- name: Show the batches of a canary rollout
  ansible.builtin.debug:
    msg: "{{ ['p1', 'p2', 'p3', 'p4'] | gitdeploy.rollout.rollout_batches([1, '50%']) }}"
  # => [['p1'], ['p2', 'p3'], ['p4']]
"""

RETURN = r"""
_value:
  description: The batches, each a list of hosts.
  type: list
  elements: list
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.gitdeploy.rollout.plugins.module_utils.rolling import batches


def rollout_batches(hosts, serial=None):
    try:
        return batches(hosts, serial)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"rollout_batches": rollout_batches}
