#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: git_deploy_tag
short_description: Preflight a rollout and create its annotated git tag on the controller
version_added: 0.1.0
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
description:
  - Checks that a commit may be rolled out to an environment and records the rollout as an
    annotated git tag C(<prefix>-YYYYMMDD-HHMMSS), the way git-deploy does, then pushes the tag.
  - "Preflight, in this order: the working tree is clean, untracked files included (O(allow_dirty)
    overrides); the commit is on its upstream branch, that is, no unpushed commits (O(force)
    overrides); the commit descends from the environment's last rollout tag, so a rollout never
    drops commits that are live (non-fast-forward, O(force) overrides)."
  - The last rollout tag of an environment is its newest rollout tag without a revert marker
    C(<tag>_reverted).
  - If the commit already is the environment's last rollout, nothing is tagged (RV(created=false))
    and that tag is returned; it is still pushed if the remote lacks it, so a re-run after a failed
    push completes the push.
  - With O(revert_of), no rollout tag is made; instead the marker tag C(<revert_of>_reverted) records
    that O(revert_of) was reverted to the tag O(ref).
  - The tag message is the deploy file (RV(deploy_file)) that the role writes to the targets.
  - "Runs on the controller with dulwich; use C(delegate_to: localhost), C(run_once: true) and
    C(ansible_python_interpreter: '{{ ansible_playbook_python }}')."
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Runs the whole preflight and reports the tag it would create; writes no tag and pushes nothing.
  diff_mode:
    support: full
    details: The diff lists the commits (one line each) between the last rollout and this one.
  platform:
    platforms: posix
options:
  repo:
    description:
      - Path of the git checkout (or bare repository) to tag in, on the controller.
      - Defaults to the current directory. Mutually exclusive with O(repo_url).
    type: path
  repo_url:
    description:
      - URL of the repository to roll out from when there is no checkout (AWX, CI).
      - A bare cache of it is kept in O(cache_dir) and fetched on every run; the tag is made there and
        pushed back to O(repo_url). Dirty and unpushed checks do not apply to the cache.
    type: str
  version:
    description:
      - With O(repo_url), the branch, tag or commit id to roll out. Defaults to O(ref), that is the
        remote's HEAD.
    type: str
  cache_dir:
    description:
      - With O(repo_url), the bare cache repository.
      - Defaults to C(~/.cache/gitdeploy/repos/<sha256 of repo_url>.git).
    type: path
  env:
    description:
      - The environment (Ansible group) rolled out to. Letters, digits, C(.), C(_) and C(-).
    type: str
    required: true
  prefix:
    description:
      - Tag prefix. Defaults to O(env).
    type: str
  ref:
    description:
      - The branch, tag, commit id or V(HEAD) to roll out.
      - With O(revert_of), the rollout tag being reverted to.
    type: str
    default: HEAD
  tag_message:
    description:
      - Free text of the tag message, after the deploy file fields (git-deploy's C(--message)). C(%TAG) is
        replaced by the tag name.
      - Named C(tag_message) because C(message) is reserved by Ansible.
      - "Defaults to C(rollout of %TAG to <env> by <deployed_by>)."
    type: str
  date_format:
    description:
      - strftime format of the date in tag names. Only C(%Y), C(%y), C(%m), C(%d), C(%H), C(%M),
        C(%S), C(%j) and the characters allowed in names, so names stay sortable and parseable.
    type: str
    default: "%Y%m%d-%H%M%S"
  utc:
    description:
      - Date tag names and deploy dates in UTC; V(false) uses the controller's local time.
    type: bool
    default: true
  allow_dirty:
    description:
      - Roll out even if the working tree has changes or untracked files (not ignored by C(.gitignore)).
    type: bool
    default: false
  force:
    description:
      - Roll out even if the commit has not been pushed to its upstream branch, or does not descend
        from the environment's last rollout (non-fast-forward).
    type: bool
    default: false
  remote:
    description:
      - Name of the configured remote to check unpushed commits against and to push the tag to.
      - V(none), or a remote the checkout does not have, means no remote actions (a warning says so).
      - With O(repo_url), the remote is O(repo_url) itself; only V(none) changes that.
    type: str
    default: origin
  push:
    description:
      - Push the tag (or revert marker) to the remote. A failed push fails the task and keeps the local tag.
    type: bool
    default: true
  deployed_by:
    description:
      - Who rolls out, recorded as C(deployed-by). Defaults to the controller user.
    type: str
  deploy_id:
    description:
      - Identifier of this rollout, recorded as C(deploy-id) in the tag message and deploy file.
    type: str
  new_tag:
    description:
      - Tag even if the commit already is the environment's last rollout (a re-rollout of the same commit).
    type: bool
    default: false
  revert_of:
    description:
      - The rollout tag that is live and being reverted away from. O(ref) must then be the rollout tag
        reverted to. No preflight checks; the marker tag C(<revert_of>_reverted) is created (if missing)
        and pushed.
    type: str
notes:
  - The tagger is C(GIT_COMMITTER_NAME)/C(GIT_COMMITTER_EMAIL), else git's C(user.name)/C(user.email), else
    the fallback identity C(<controller user> <controller user@controller hostname>) (with a warning).
  - The upstream branch is the branch's configured upstream (C(branch.<name>.merge)), else
    C(<remote>/<branch>); for a detached HEAD, a tag or a commit id, any branch of the remote.
    Remote-tracking branches are read as they are; the module does not fetch into a checkout.
  - Tags of other operators are only seen once fetched (C(git fetch --tags)); with O(repo_url) the cache
    is fetched on every run, in check mode too.
  - Tag names sort by the date in the name, then by the collision suffix C(_A), C(_B) ... C(_Z), C(_AA).
requirements:
  - dulwich >= 0.22 on the controller
seealso:
  - module: gitdeploy.rollout.git_deploy_tag_info
"""

EXAMPLES = r"""
- name: Preflight and tag the rollout of the checkout's HEAD to prod
  gitdeploy.rollout.git_deploy_tag:
    repo: "{{ playbook_dir }}"
    env: prod
    deploy_id: "{{ git_deploy_id }}"
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  register: rollout

- name: Tag a release branch from a cache of the remote (AWX), without pushing the tag
  gitdeploy.rollout.git_deploy_tag:
    repo_url: git@git.example.com:shop/site.git
    version: release-2.4
    env: staging
    push: false
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"

- name: Record a revert from the live tag to the previous rollout
  gitdeploy.rollout.git_deploy_tag:
    repo: "{{ playbook_dir }}"
    env: prod
    ref: prod-20260101-101500
    revert_of: prod-20260102-093000
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""

RETURN = r"""
tag:
  description:
    - The rollout tag (created, would be created in check mode, or the existing last rollout).
    - With O(revert_of), the tag reverted to (O(ref)).
  returned: success
  type: str
  sample: prod-20260121-101500
commit:
  description: Full id of the commit rolled out.
  returned: success
  type: str
  sample: 7e25a770901c9b1eb75ad1511580a98acff4ad60
previous_tag:
  description:
    - The environment's rollout before this one (the last non-reverted rollout tag), or null for the first.
    - With O(revert_of), the tag reverted away from.
  returned: success
  type: str
  sample: prod-20260120-170000
previous_commit:
  description: Commit of RV(previous_tag), or null.
  returned: success
  type: str
created:
  description: Whether a tag (or revert marker) was created (would be, in check mode).
  returned: always
  type: bool
pushed:
  description: Whether the tag (or marker) was pushed to the remote by this run (false if the remote had it).
  returned: always
  type: bool
marker:
  description: With O(revert_of), the revert marker tag C(<revert_of>_reverted); else null.
  returned: success
  type: str
  sample: prod-20260121-101500_reverted
deploy_file:
  description:
    - Text of the deploy file (C(.deploy)) of the rollout; it is also the tag's message.
    - "Fields C(commit), C(tag), C(deploy-date), C(deployed-from), C(deployed-by), C(environment),
      C(deploy-id) (when set), a blank line, then the message."
  returned: success
  type: str
  sample: "commit: 7e25a770901c9b1eb75ad1511580a98acff4ad60\ntag: prod-20260121-101500\n...\n\nrollout of prod-20260121-101500 to prod by alice\n"
commits:
  description:
    - Commits between RV(previous_tag) and RV(tag), newest first (at most 200).
    - With O(revert_of), the commits taken back out.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Full commit id.
      type: str
    subject:
      description: First line of the commit message.
      type: str
repo:
  description: The repository actually used (the checkout's root, or the bare cache of O(repo_url)).
  returned: always
  type: str
  sample: /home/alice/.cache/gitdeploy/repos/4f1c0a2b9d3e5f60718293a4.git
remote:
  description: URL the tag is pushed to, or null when there are no remote actions.
  returned: always
  type: str
env:
  description: The environment.
  returned: always
  type: str
prefix:
  description: The tag prefix used.
  returned: always
  type: str
tagger:
  description: The identity the tag was created with.
  returned: when a tag was created
  type: str
  sample: Alice <alice@example.com>
preflight:
  description: Outcome of the preflight checks (empty with O(revert_of)).
  returned: always
  type: dict
  contains:
    clean:
      description: Whether the working tree was clean (null for a bare repository or cache).
      type: bool
    dirty:
      description: "What made it unclean, one C(<state>: <path>) string each."
      type: list
      elements: str
    upstream:
      description: The remote-tracking branch (or C(any branch of <remote>)) the commit was checked against.
      type: str
    unpushed:
      description: Commits not on the upstream (C(id), C(subject)).
      type: list
      elements: dict
    fast_forward:
      description: Whether the commit descends from the last rollout (null for the first rollout).
      type: bool
    overridden:
      description: Checks that failed but were overridden (C(allow_dirty), C(force ...)).
      type: list
      elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gitdeploy.rollout.plugins.module_utils.gitrepo import (
    DULWICH_IMPORT_ERROR,
    HAS_DULWICH,
    GitError,
    open_cache,
    open_checkout,
    url_secrets,
    tag_rollout,
)
from ansible_collections.gitdeploy.rollout.plugins.module_utils.tagging import DEFAULT_DATE_FORMAT


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repo=dict(type="path"),
            repo_url=dict(type="str"),
            version=dict(type="str"),
            cache_dir=dict(type="path"),
            env=dict(type="str", required=True),
            prefix=dict(type="str"),
            ref=dict(type="str", default="HEAD"),
            tag_message=dict(type="str"),
            date_format=dict(type="str", default=DEFAULT_DATE_FORMAT),
            utc=dict(type="bool", default=True),
            allow_dirty=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            remote=dict(type="str", default="origin"),
            push=dict(type="bool", default=True),
            deployed_by=dict(type="str"),
            deploy_id=dict(type="str"),
            new_tag=dict(type="bool", default=False),
            revert_of=dict(type="str"),
        ),
        mutually_exclusive=[("repo", "repo_url")],
        required_by={"version": "repo_url", "cache_dir": "repo_url"},
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
            ref = params["version"] or params["ref"]
        else:
            source = open_checkout(params["repo"] or os.getcwd())
            ref = params["ref"]
        result = tag_rollout(
            source,
            env=params["env"],
            prefix=params["prefix"],
            ref=ref,
            message=params["tag_message"],
            date_format=params["date_format"],
            utc=params["utc"],
            allow_dirty=params["allow_dirty"],
            force=params["force"],
            remote=params["remote"],
            push=params["push"],
            deployed_by=params["deployed_by"],
            deploy_id=params["deploy_id"],
            new_tag=params["new_tag"],
            revert_of=params["revert_of"],
            check_mode=module.check_mode,
        )
    except GitError as exc:
        fields = dict(exc.result)
        for warning in fields.pop("warnings", None) or []:
            module.warn(warning)
        fields.pop("log", None)
        module.fail_json(msg=exc.msg, **fields)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    finally:
        if source is not None:
            source.close()
    for warning in result.pop("warnings", []):
        module.warn(warning)
    log = result.pop("log", None)
    if module._diff and log and result["changed"]:
        result["diff"] = {"prepared": log}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
