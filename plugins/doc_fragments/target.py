# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The deploy root every target-side module works in (action group C(gitdeploy.rollout.target))."""

    DOCUMENTATION = r"""
options:
  root:
    description:
      - The target's C(git_deploy_root), absolute and not C(/). Everything this collection keeps on a host lives under
        it - C(repo.git), C(releases/), C(current), C(shared/), C(.git-deploy/) and C(logs/) (see the collection's
        design document).
      - The role sets it for every module of the action group C(gitdeploy.rollout.target) with C(module_defaults).
    type: path
    required: true
"""
