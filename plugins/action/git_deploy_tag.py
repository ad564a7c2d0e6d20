# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller-side defaults for git_deploy_tag and git_deploy_tag_info.

Like git-deploy, these run "inside the repository": without ``repo`` or
``repo_url`` the repository is the directory ansible-playbook was started in.
Modules cannot see that directory themselves: with the local connection Ansible
runs them in the playbook's directory. The action plugin can, so it fills in
``repo`` and then runs the module as usual.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        if not args.get("repo") and not args.get("repo_url"):
            args["repo"] = os.getcwd()
        result.update(self._execute_module(module_name=self._task.resolved_action,
                                           module_args=args, task_vars=task_vars))
        return result
