#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: git_deploy_step
short_description: Do one host's part of a rollout step in one run on the target
version_added: 0.2.0
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
description:
  - The rollout engine of the role C(gitdeploy.rollout.git_deploy). A rollout is a few steps that every host must
    pass before any may go on (locked everywhere, prepared everywhere, switched batch by batch, synced, finished);
    each step is one task, and on each host one run of this module doing all of that host's work for the step.
  - O(step=lock) takes the rollout lock and reports what the host has (live, settled and previous tag, releases,
    history, the objects of C(repo.git)) in the same run. With O(unless_live), a host where that tag is live and
    finished already is not locked.
  - O(step=prepare) keeps the lock (or takes it, O(take_lock)), fetches the bundle the action plugin transferred,
    checks the release out, links O(shared_paths), writes the deploy file and runs the C(pre-sync) hooks.
  - O(step=switch) makes the release live and runs C(pre-pull)/C(post-pull) around it, C(post-tree-update) (and
    C(post-reset) on a revert), then the health O(checks); a failing check fails the host (on a revert it is
    reported, and the revert stands).
  - O(step=check) runs the O(checks) again in the live release (the canary, after C(git_deploy_canary_wait)).
  - O(step=post-sync) runs the C(post-sync) hooks of the live release.
  - O(step=finish) rolls the host back if told to (O(rollback)), logs the outcome, archives the log, appends
    O(record) to the history, passes O(announce) to the C(log) hooks and releases the lock.
  - O(step=probe) only reports (what the status playbook shows); O(step=abort) is the unlock playbook's step
    (C(post-abort) hooks, an C(aborted) record, the lock released).
  - O(step=freeze) writes C(.git-deploy/freeze) (who, why - O(reason), required - and since when), and no rollout
    takes the host's lock until O(step=unfreeze) removes it (the freeze and unfreeze playbooks; not even O(force)
    overrides it; a rollout already holding the lock finishes).
  - The action plugin decides, for the whole fleet, whether this host takes part in the step (it reads the
    rollout, registered as C(git_deploy_rollout), and every host's state, registered as C(git_deploy_host)); a host
    that does not take part costs no run on the target. It builds and transfers the bundle for O(step=prepare).
    The failure of a host is part of its result, not a task failure, so that the rollout can roll back and unlock
    everywhere; the role's last task fails the play.
  - Every step prints one line per host (step, result, duration, what happened).
options:
  step:
    description: The step to do on this host.
    type: str
    required: true
    choices: [probe, lock, prepare, switch, check, post-sync, finish, abort, freeze, unfreeze]
  env:
    description: The environment (a plain name); the hooks of C(deploy/apps/<env>/) run.
    type: str
    required: true
  action:
    description:
      - What the rollout does. Hooks see git-deploy's action for their phase as E(GIT_DEPLOY_ACTION)
        (V(start), V(sync), V(finish) or V(abort) for a deploy, V(revert) for a revert, V(abort) for an abort).
    type: str
    choices: [deploy, revert, status, unlock, abort, freeze, unfreeze]
    default: deploy
  deploy_id:
    description: The rollout's id (a plain name); the lock is this rollout's when it carries this id.
    type: str
  host:
    description: The host's inventory name, for messages.
    type: str
  user:
    description: Who runs the rollout, for the log and the history.
    type: str
  controller:
    description: The controller the rollout runs on, for the history.
    type: str
  start:
    description: When the rollout started (ISO 8601, UTC), for the history.
    type: str
  tag:
    description: The rollout tag.
    type: str
  commit:
    description: The full commit id the rollout tag points to.
    type: str
  deploy_file:
    description: Text of the deploy file of the release (the tag's message).
    type: str
  force:
    description:
      - Passed to the lock (take over an expired or corrupt lock, override O(block_file)) and to the release (see
        M(gitdeploy.rollout.git_deploy_release)).
    type: bool
    default: false
  force_lock:
    description: Take over another rollout's lock even though its holder renewed it within its TTL.
    type: bool
    default: false
  hook_dir:
    description: Directory of the hooks inside the release.
    type: str
    default: deploy
  hook_timeout:
    description: Seconds each hook may run before its process group is killed.
    type: int
    default: 600
  checks:
    description:
      - Health checks (the role's C(git_deploy_checks)), in order, stopping at the first failure - each a dict with a
        C(name) and one of C(command) (a list of arguments, run without a shell in the live release; passes on exit
        0), C(url) (passes on C(status), default 200, with C(contains) in the body if given) or C(port) (a TCP
        connection to C(host), default 127.0.0.1), plus C(retries) (0), C(delay) (1) and C(timeout) (seconds per try -
        command 30, url 10, port 5).
    type: list
    elements: dict
    default: []
  keep_tags:
    description: With O(step=lock) or O(step=probe), report the tags the host's last O(keep_tags) history records
      name (C(recent_tags); the role's C(git_deploy_keep_tags) never deletes them).
    type: int
    default: 0
  unless_live:
    description: With O(step=lock), a tag; a host where it is live and finished (and not dirty) is not locked.
    type: str
  take_lock:
    description: With O(step=prepare), take the lock first (a host O(unless_live) left unlocked).
    type: bool
    default: false
  start_tag:
    description: The tag this host goes back to when the rollout fails (the tag live before it).
    type: str
  resuming:
    description: With O(step=switch), the host was switched by a rollout of the same tag that never finished; its hooks run again.
    type: bool
    default: false
  rollback:
    description: With O(step=finish), switch back to O(start_tag) and mark the release failed.
    type: bool
    default: false
  post_sync:
    description:
      - With O(step=finish), run the post-sync hooks of the live release first (a revert runs its
        post-sync in the finish run). A failure is reported as a warning; the release stays live.
    type: bool
    default: false
  record:
    description: With O(step=finish), the history record to append (C(end) is added).
    type: dict
  announce:
    description:
      - With O(step=finish), the announcement for the C(log) hooks of the live release, with C(message) and C(level)
        (C(GIT_DEPLOY_LOG_ANNOUNCE=1)); their failures are warnings.
    type: dict
  history_limit:
    description: How many of the newest history records the probe reports (the tags of all of them always are).
    type: int
    default: 0
  lock_first:
    description:
      - With O(step=lock), the first round - only the rollout's first host takes its lock (the role runs it with
        C(run_once) and registers it as C(git_deploy_first)); the others take theirs in the next task, if it did. Of
        rollouts started together, the one that gets the first host goes on.
    type: bool
    default: false
  batch:
    description: With O(step=switch), the index of the batch of the rollout's switch batches that switches now.
    type: int
  lock_wait:
    description:
      - With O(step=lock), how long (seconds) to wait for a lock another rollout holds, asking again every few
        seconds and saying who holds it, before the host fails the lock step naming the holder. V(0) - fail at once.
      - Only a lock held by a live rollout is waited for; a block file, a corrupt lock or a lock this rollout lost
        fail at once.
    type: int
    default: 0
  cache_dir:
    description:
      - Controller directory of the bundle cache (O(step=prepare)).
      - Defaults to C($XDG_CACHE_HOME/gitdeploy/bundles) or C(~/.cache/gitdeploy/bundles).
    type: path
  announce_log_hooks:
    description: With O(step=finish), pass the announcement to the C(log) hooks.
    type: bool
    default: true
  bundle:
    description: Set by the action plugin with O(step=prepare); path of the transferred bundle on the target.
    type: path
  bundle_data:
    description:
      - Set by the action plugin with O(step=prepare) for a small bundle (base64), sent with the module instead of
        as a file - no round trips to make, copy and remove a remote temporary file.
    type: str
  bundle_size:
    description: Set by the action plugin; the size in bytes the bundle must have.
    type: int
  bundle_sha256:
    description: Set by the action plugin; the SHA-256 the bundle must have.
    type: str
extends_documentation_fragment:
  - gitdeploy.rollout.target
  - gitdeploy.rollout.lock
  - gitdeploy.rollout.release
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - gitdeploy.rollout.action
attributes:
  check_mode:
    support: full
    details: Takes no lock, transfers nothing, writes nothing; every step reports what it would do.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - dulwich on the controller (for O(step=prepare))
  - git on the target
seealso:
  - module: gitdeploy.rollout.git_deploy_rollout
  - module: gitdeploy.rollout.git_deploy_lock
  - module: gitdeploy.rollout.git_deploy_release
  - module: gitdeploy.rollout.git_deploy_hooks
"""

EXAMPLES = r"""
# What the role does (roles/git_deploy/tasks/): every option but the step comes from
# module_defaults, every decision from the registered rollout and host states.
- name: Lock every other host
  gitdeploy.rollout.git_deploy_step:
    step: lock
  register: git_deploy_host

- name: A host's status, on its own
  gitdeploy.rollout.git_deploy_step:
    step: probe
    root: /srv/app
    env: prod
  register: probe
"""

RETURN = r"""
step:
  description: What this host did in the step.
  returned: always
  type: dict
  contains:
    step:
      description: The step.
      type: str
    ran:
      description: Whether the host took part (false - it had nothing to do, or the rollout stopped).
      type: bool
    changed:
      description: Whether the host changed.
      type: bool
    seconds:
      description: How long the step took on this host.
      type: float
    note:
      description: What happened, on one line.
      type: str
  sample: {step: prepare, ran: true, changed: true, seconds: 0.84, note: "prepared prod-20261203-101500 in /srv/app/releases/prod-20261203-101500"}
state:
  description:
    - Everything the rollout knows of this host, grown by every step (the probe, whether it holds the lock, its start
      tag, whether it switched, its failure). The role registers it as C(git_deploy_host).
  returned: always
  type: dict
  sample: {host: web1, locked: true, switched: true, start_tag: prod-20261121-101500, failure: null}
failure:
  description: This host's failure in this step (C(host), C(phase), C(hook), C(msg)), or null.
  returned: always
  type: dict
  sample: {host: web1, phase: pre-sync, hook: /srv/app/releases/prod-20261203-101500/deploy/apps/common/pre-sync.010_check, msg: "pre-sync hook ... exited 3"}
msg:
  description: The line printed for this host.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gitdeploy.rollout.plugins.module_utils.lock import DEFAULT_TTL
from ansible_collections.gitdeploy.rollout.plugins.module_utils.steps import STEPS, Step

OPTIONS = dict(
    step=dict(type="str", required=True, choices=list(STEPS)),
    root=dict(type="path", required=True),
    env=dict(type="str", required=True),
    action=dict(type="str", default="deploy", choices=["deploy", "revert", "status", "unlock", "abort", "freeze",
                                                       "unfreeze"]),
    deploy_id=dict(type="str"),
    host=dict(type="str"),
    user=dict(type="str"),
    controller=dict(type="str"),
    start=dict(type="str"),
    tag=dict(type="str"),
    commit=dict(type="str"),
    deploy_file=dict(type="str"),
    force=dict(type="bool", default=False),
    force_lock=dict(type="bool", default=False),
    lock_wait=dict(type="int", default=0),
    lock_dir=dict(type="path"),
    ttl=dict(type="int", default=DEFAULT_TTL),
    block_file=dict(type="path"),
    reason=dict(type="str"),
    owner=dict(type="str"),
    strategy=dict(type="str", choices=["releases", "in_place"], default="releases"),
    submodules=dict(type="bool", default=True),
    deploy_file_name=dict(type="str", default=".deploy"),
    shared_paths=dict(type="list", elements="str", default=[]),
    keep_releases=dict(type="int", default=5),
    hook_dir=dict(type="str", default="deploy"),
    hook_timeout=dict(type="int", default=600),
    checks=dict(type="list", elements="dict", default=[]),
    unless_live=dict(type="str"),
    take_lock=dict(type="bool", default=False),
    start_tag=dict(type="str"),
    resuming=dict(type="bool", default=False),
    rollback=dict(type="bool", default=False),
    post_sync=dict(type="bool", default=False),
    record=dict(type="dict"),
    announce=dict(type="dict"),
    history_limit=dict(type="int", default=0),
    keep_tags=dict(type="int", default=0),
    bundle=dict(type="path"),
    bundle_data=dict(type="str"),
    bundle_size=dict(type="int"),
    bundle_sha256=dict(type="str"),
    # Options of the action plugin (the controller half); the target half ignores them.
    lock_first=dict(type="bool", default=False),
    batch=dict(type="int"),
    cache_dir=dict(type="path"),
    announce_log_hooks=dict(type="bool", default=True),
)


def main():
    module = AnsibleModule(argument_spec=OPTIONS, supports_check_mode=True)
    # The result's ``state`` is the rollout's record of this host, not a file's state.
    module.add_path_info = lambda result: result
    params = module.params
    try:
        step = Step(params, module.run_command, git=module.get_bin_path("git") or "git",
                    check_mode=module.check_mode, tmpdir=module.tmpdir)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    report = step.run(params["step"])
    for warning in report.pop("warnings"):
        module.warn(warning)
    module.exit_json(**report)


if __name__ == "__main__":
    main()
