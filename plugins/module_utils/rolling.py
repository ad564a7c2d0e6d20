# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rolling rollouts: split an environment's hosts into switch batches.

``serial`` follows the play keyword's rules: a list of sizes, each an integer or a
percentage of all hosts (rounded down, at least 1); the last size repeats until
every host is in a batch; an empty list means one batch of every host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def batch_size(value, total):
    """Size of one batch for a ``serial`` entry (int, "3" or "50%")."""
    text = str(value).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if percent <= 0:
                raise ValueError
            size = int(percent * total / 100.0)
        else:
            size = int(text)
    except ValueError:
        raise ValueError("git_deploy_serial entry %r is not a positive number or percentage" % (value,))
    if size < 0 or (not text.endswith("%") and size == 0):
        raise ValueError("git_deploy_serial entry %r must be positive" % (value,))
    return max(size, 1)


def batches(hosts, serial=None):
    """Return ``hosts`` cut into consecutive batches following ``serial``."""
    hosts = list(hosts)
    if serial in (None, "", []):
        return [hosts] if hosts else []
    if not isinstance(serial, (list, tuple)):
        serial = [serial]
    sizes = [batch_size(value, len(hosts)) for value in serial]
    result, start, index = [], 0, 0
    while start < len(hosts):
        size = sizes[min(index, len(sizes) - 1)]
        result.append(hosts[start:start + size])
        start += size
        index += 1
    return result
