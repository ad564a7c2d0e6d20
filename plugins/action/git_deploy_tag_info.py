# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""git_deploy_tag_info defaults to the controller's current directory, like git_deploy_tag."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gitdeploy.rollout.plugins.action.git_deploy_tag import ActionModule  # noqa: F401 pylint: disable=unused-import
