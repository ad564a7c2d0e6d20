#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: git_deploy_tag_info
short_description: List an environment's rollout tags and resolve one, on the controller
version_added: 0.1.0
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
description:
  - Lists the rollout tags C(<prefix>-YYYYMMDD-HHMMSS[_A...]) of a repository, newest first, marking
    the ones that were reverted (they have a C(<tag>_reverted) marker), like C(git-deploy show).
  - Resolves one tag (O(tag)) to its commit; an unknown tag fails the task.
  - Returns the environment's last rollout (RV(latest)) and the one before it (RV(previous)), reverted
    rollouts skipped, so a revert can default to RV(previous).
  - "Runs on the controller with dulwich; use C(delegate_to: localhost), C(run_once: true) and
    C(ansible_python_interpreter: '{{ ansible_playbook_python }}')."
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only (with O(repo_url), the cache is fetched, in check mode too).
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  repo:
    description:
      - Path of the git checkout (or bare repository) on the controller. Defaults to the current directory.
      - Mutually exclusive with O(repo_url).
    type: path
  repo_url:
    description:
      - URL of the repository; a bare cache of it in O(cache_dir) is fetched and read.
    type: str
  cache_dir:
    description:
      - With O(repo_url), the bare cache repository.
      - Defaults to C(~/.cache/gitdeploy/repos/<sha256 of repo_url>.git), the cache M(gitdeploy.rollout.git_deploy_tag) uses.
    type: path
  env:
    description:
      - Only list this environment's rollout tags. Without it, the rollout tags of every environment.
    type: str
  prefix:
    description:
      - Tag prefix of the environment. Defaults to O(env).
    type: str
  tag:
    description:
      - A tag to resolve (RV(tag)). The task fails if it does not exist or is not a plain name.
    type: str
  limit:
    description:
      - At most this many entries in RV(tags). V(0) lists all.
    type: int
    default: 20
  date_format:
    description:
      - strftime format of the date in tag names, as given to M(gitdeploy.rollout.git_deploy_tag).
    type: str
    default: "%Y%m%d-%H%M%S"
requirements:
  - dulwich >= 0.22 on the controller
seealso:
  - module: gitdeploy.rollout.git_deploy_tag
"""

EXAMPLES = r"""
- name: Show the last rollouts to prod
  gitdeploy.rollout.git_deploy_tag_info:
    repo: "{{ playbook_dir }}"
    env: prod
    limit: 10
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  register: prod_tags

- name: Resolve the tag to revert to (default the rollout before the live one)
  gitdeploy.rollout.git_deploy_tag_info:
    repo: "{{ playbook_dir }}"
    env: prod
    tag: "{{ revert_to | default(omit) }}"
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  register: target

- name: Report it
  ansible.builtin.debug:
    msg: "{{ (target.tag or target.previous).name }} is {{ (target.tag or target.previous).commit }}"
"""

RETURN = r"""
tags:
  description: Rollout tags, newest first (by the date in the name, then the collision suffix).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Tag name.
      type: str
      sample: prod-20260121-101500
    env:
      description: The prefix parsed from the name (the environment).
      type: str
      sample: prod
    commit:
      description: Full id of the commit the tag points at.
      type: str
    date:
      description: When the tag was made (tagger date; commit date for a lightweight tag), UTC, ISO 8601.
      type: str
      sample: "2026-01-21T10:15:00Z"
    tagger:
      description: Tagger identity (null for a lightweight tag).
      type: str
    subject:
      description: First line of the tag's free message (commit subject for a lightweight tag).
      type: str
    reverted:
      description: Whether the rollout was reverted (a C(<tag>_reverted) marker exists).
      type: bool
tag:
  description: The resolved O(tag); null when O(tag) is not given.
  returned: always
  type: dict
  contains:
    name:
      description: Tag name.
      type: str
    env:
      description: The prefix parsed from the name; null if the name is not a rollout tag.
      type: str
    commit:
      description: Full id of the commit it points at.
      type: str
    exists:
      description: Always true (an unknown tag fails the task).
      type: bool
    date:
      description: Tagger (or commit) date, UTC, ISO 8601.
      type: str
    tagger:
      description: Tagger identity, null for a lightweight tag.
      type: str
    subject:
      description: First line of the free message.
      type: str
    message:
      description: Full tag message (the deploy file for rollout tags), null for a lightweight tag.
      type: str
    marker:
      description: Whether the tag is itself a revert marker.
      type: bool
    reverted:
      description: Whether the tag has a revert marker.
      type: bool
latest:
  description: The environment's last rollout (newest not reverted), same fields as RV(tags); null if none or no O(env).
  returned: always
  type: dict
previous:
  description: The environment's rollout before RV(latest) (reverted ones skipped); null if none or no O(env).
  returned: always
  type: dict
repo:
  description: The repository read (checkout root or bare cache).
  returned: always
  type: str
env:
  description: The environment asked for, or null.
  returned: always
  type: str
prefix:
  description: The prefix the tags were filtered by, or null.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gitdeploy.rollout.plugins.module_utils.gitrepo import (
    DULWICH_IMPORT_ERROR,
    HAS_DULWICH,
    GitError,
    open_cache,
    open_checkout,
    rollout_info,
    url_secrets,
)
from ansible_collections.gitdeploy.rollout.plugins.module_utils.tagging import DEFAULT_DATE_FORMAT


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repo=dict(type="path"),
            repo_url=dict(type="str"),
            cache_dir=dict(type="path"),
            env=dict(type="str"),
            prefix=dict(type="str"),
            tag=dict(type="str"),
            limit=dict(type="int", default=20),
            date_format=dict(type="str", default=DEFAULT_DATE_FORMAT),
        ),
        mutually_exclusive=[("repo", "repo_url")],
        required_by={"cache_dir": "repo_url"},
        supports_check_mode=True,
    )
    if not HAS_DULWICH:
        module.fail_json(msg=missing_required_lib("dulwich"), exception=DULWICH_IMPORT_ERROR)
    params = module.params
    # Whatever quotes the URL (git, dulwich, Ansible's invocation) shows ******** for its credentials.
    module.no_log_values.update(url_secrets(params["repo_url"]))
    source = None
    try:
        if params["repo_url"]:
            source = open_cache(params["repo_url"], params["cache_dir"])
        else:
            source = open_checkout(params["repo"] or os.getcwd())
        result = rollout_info(
            source,
            env=params["env"],
            prefix=params["prefix"],
            tag=params["tag"],
            limit=params["limit"],
            date_format=params["date_format"],
        )
    except GitError as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    finally:
        if source is not None:
            source.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
