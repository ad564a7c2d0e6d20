#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: git_deploy_rollout
short_description: The controller's steps of a rollout (select, start, gate, tag, push, choose, sync, publish, report, status)
version_added: 0.2.0
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
description:
  - The controller half of the rollout engine of the role C(gitdeploy.rollout.git_deploy); the hosts' half is
    M(gitdeploy.rollout.git_deploy_step). Runs in the controller process (an action plugin without a module run);
    use it with C(run_once), except O(step=select) which runs on C(localhost).
  - O(step=select) checks the environment (a plain name of a non-empty inventory group, or the prefix of O(tag))
    and returns its hosts.
  - O(step=start) checks every host's settings (O(host_settings)), names the rollout (an id, who, from which controller, when), fixes its hosts, first host and
    switch batches (O(serial)), and for a deploy runs the tag's preflight (dirty tree, unpushed commits,
    non-fast-forward, as M(gitdeploy.rollout.git_deploy_tag) does) without writing anything; for a revert to O(tag) it
    checks the tag is a rollout of this environment.
  - O(step=gate) is a barrier and nothing else - every controller step sees every host's state once, and the hosts'
    next step decides from that snapshot (reading every host's variables on every host costs a C(get_vars) per pair of
    hosts). Given O(batch=1) after a canary batch switched, it holds O(canary_wait) seconds and returns
    RV(canary_hold) (the role then runs the canary's checks again).
  - O(step=tag) cuts the rollout tag once every host is locked (or finds the deploy a no-op - the tag is live and
    finished on every host), and builds the bundle of git objects each host lacks (once per distinct set of objects
    the hosts have; the hosts' prepare step then only copies it). A bundle above O(max_bundle_bytes) refuses the
    rollout before any host is touched.
  - O(step=push) pushes the rollout tag upstream once every host is prepared (its pre-sync hooks passed); when the
    rollout stopped before that, it deletes the tag it cut instead, so that a failed rollout never counts as the
    environment's last one (git-deploy cuts no tag when pre-sync fails).
  - O(step=choose) chooses the rollout a revert goes back to from what every host reported when it was locked, and
    builds the bundle of each host that lacks that release, as O(step=tag) does.
  - O(step=sync) runs C(deploy/sync/<env>.sync) of the rollout's commit once every host is live. Its failure fails a deploy
    (the hosts roll back); a revert is reported and stands.
  - O(step=publish) makes the revert marker C(<tag>_reverted), prunes old rollout tags (O(keep_tags)), puts the announcement together (what changed, by whom,
    where, the result) and posts it to O(announce_webhook_url); it prepares the mail for C(community.general.mail).
  - O(step=report) publishes the outcome with set_stats (C(git_deploy_last_*)), prints the closing summary and says
    what could not be announced; RV(rollout_failed) tells the role to fail the play.
  - O(step=status) prints and publishes (C(git_deploy_last_status)) the environment's status from the probe step.
  - Every step reads the rollout registered as C(git_deploy_rollout) and every host's state registered as
    C(git_deploy_host), and returns the rollout, updated, as RV(rollout). The options O(step=start) was given stand
    for the whole rollout (the rollout keeps them as C(settings)); a later step is given only its own, and
    O(repo_url), O(announce_webhook_url) and O(smtp_password), which the rollout never keeps.
options:
  step:
    description: The controller step.
    type: str
    required: true
    choices: [select, start, gate, tag, push, choose, sync, publish, report, status]
  action:
    description: With O(step=start), what the rollout does.
    type: str
    choices: [deploy, revert, status, unlock, freeze, unfreeze]
    default: deploy
  env:
    description: The environment (an inventory group).
    type: str
    default: ''
  prefix:
    description: The prefix of the rollout tags; empty means O(env).
    type: str
  repo:
    description: The application's checkout on the controller; empty means the directory ansible-playbook runs in.
    type: path
  repo_url:
    description: A git URL to deploy from instead of a checkout (a bare cache is kept on the controller).
    type: str
    default: ''
  version:
    description: Branch, tag or commit of O(repo_url) to deploy (an explicit O(ref) wins).
    type: str
    default: HEAD
  cache_dir:
    description: Where the bare cache of O(repo_url) lives.
    type: path
  ref:
    description: The ref to deploy.
    type: str
    default: HEAD
  tag:
    description:
      - The rollout tag a revert goes back to (empty - the rollout before the live one).
      - With O(step=select), the tag whose prefix names the environment.
    type: str
    default: ''
  message:
    description: Free text for the tag message and the deploy file (C(%TAG) is replaced by the tag).
    type: str
    default: ''
  date_format:
    description: strftime format of the date in rollout tag names.
    type: str
    default: '%Y%m%d-%H%M%S'
  remote:
    description:
      - The remote of the checkout the tags are fetched from (at O(step=start), before anything is decided)
        and the tag is pushed to; V(none) or empty for no remote actions.
    type: str
    default: origin
  push:
    description: Push the rollout tag (and the revert marker).
    type: bool
    default: true
  all_hosts:
    description: With O(step=select), O(env=all) selects every host of the inventory (the freeze playbooks).
    type: bool
    default: false
  max_bundle_bytes:
    description:
      - The largest bundle a host may be sent (O(step=tag), O(step=choose)), in bytes; a bigger one refuses the rollout,
        naming the host and the size, before any host is touched. V(0) - no limit.
    type: int
    default: 0
  new_tag:
    description: Cut a new tag even when the commit is the last rollout's.
    type: bool
    default: false
  allow_dirty:
    description: Roll out from a working tree that is not clean.
    type: bool
    default: false
  force:
    description: Override the preflight (unpushed, non-fast-forward).
    type: bool
    default: false
  serial:
    description: Switch batch sizes (integers or percentages, the last repeats); empty - one batch.
    type: list
    elements: raw
    default: []
  max_failures:
    description: How many hosts may fail to switch (or in post-sync) before the rollout stops and rolls back.
    type: int
    default: 0
  canary_wait:
    description: Seconds O(step=gate) holds before the second switch batch, once the first (the canary) switched.
    type: int
    default: 0
  batch:
    description: With O(step=gate), the index of the switch batch about to switch.
    type: int
  keep_tags:
    description:
      - With O(step=publish) after a successful rollout, delete the environment's rollout tags (and their revert
        markers) beyond the O(keep_tags) newest, upstream (O(remote)) and in the controller's repository - never one
        that is live, previous or settled on a host, where this rollout started, or named in a host's last
        O(keep_tags) history records. 0 keeps every tag. Check mode lists what would go.
    type: int
    default: 0
  rollback_on_failure:
    description: Put every switched host back when the rollout fails.
    type: bool
    default: true
  hook_dir:
    description: Directory of the hooks inside the repository.
    type: str
    default: deploy
  hook_timeout:
    description: Seconds the sync hook may run.
    type: int
    default: 600
  support_email:
    description: Who to ask when the sync hook fails (in its message and in failure announcements).
    type: str
    default: ''
  sync_fail_message:
    description: Text shown when the sync hook fails; C({SYNC_HOOK}) and C({SUPPORT_EMAIL}) are replaced.
    type: str
    default: ''
  user:
    description: Who runs the rollout; empty - AWX's user, else C(USER), C(LOGNAME) or the login name on the controller.
    type: str
  announce_on:
    description: Which outcomes are announced (V(deploy), V(revert), V(rollback), V(failure)).
    type: list
    elements: str
    default: [deploy, revert, rollback, failure]
  announce_project:
    description: Name of the application in the announcement; empty - the repository's name.
    type: str
    default: ''
  announce_webhook_url:
    description: A chat webhook the announcement is posted to (JSON); its URL never shows.
    type: str
    default: ''
  announce_webhook_fields:
    description: Fields added to the webhook's JSON body (for example C(channel)).
    type: dict
    default: {}
  announce_mail:
    description: Recipients of the announcement mail (a list, or a comma-separated string).
    type: raw
    default: []
  announce_mail_from:
    description: Sender of the announcement mail; empty - C(<user>@<controller>).
    type: str
    default: ''
  announce_log_hooks:
    description: Also pass the announcement to the C(log) hooks of every host.
    type: bool
    default: true
  announce_max_commits:
    description: How many commits the announcement lists at most.
    type: int
    default: 50
  announce_max_files:
    description: How many files the announcement's diffstat lists at most.
    type: int
    default: 100
  announce_timeout:
    description: Seconds the webhook post may take.
    type: int
    default: 10
  smtp_tls:
    description: How the mail is sent (V(starttls), V(ssl), V(none)).
    type: str
    choices: [starttls, ssl, none]
    default: starttls
  smtp_password:
    description: The SMTP password, only to keep it out of messages.
    type: str
    default: ''
  mailed:
    description: With O(step=report), the result of the mail task.
    type: dict
  host_settings:
    description:
      - With O(step=start), role variables to check on every host before anything is touched (C(git_deploy_root),
        C(git_deploy_keep_releases), C(git_deploy_hook_dir)), with this host's values; each host's own value is read
        from its variables, this one's stands in where the inventory sets none.
    type: dict
    default: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - gitdeploy.rollout.action
attributes:
  check_mode:
    support: full
    details: The tag is only previewed, no hook runs, nothing is posted or pushed.
  diff_mode:
    support: partial
    details: O(step=start) shows the commits the rollout brings.
  platform:
    platforms: posix
requirements:
  - dulwich on the controller
seealso:
  - module: gitdeploy.rollout.git_deploy_step
  - module: gitdeploy.rollout.git_deploy_tag
  - module: gitdeploy.rollout.git_deploy_announce
"""

EXAMPLES = r"""
# What the role does (roles/git_deploy/tasks/main.yml); the options come from module_defaults.
- name: Start (name the rollout, fix its hosts and batches, preflight its tag)
  gitdeploy.rollout.git_deploy_rollout:
    step: start
    action: deploy
  run_once: true
  register: git_deploy_rollout
"""

RETURN = r"""
rollout:
  description:
    - The rollout, as every later step reads it (the role registers it as C(git_deploy_rollout)) - C(id), C(action),
      C(env), C(user), C(controller), C(start), C(hosts), C(first_host), C(batches), C(tag), C(commit), C(repo),
      C(deploy_file), C(previous_tag), C(failures) of the controller's steps.
  returned: always
  type: dict
  sample: {id: 20261203T101500Z-3f2a9c0d5e6b, action: deploy, env: prod, tag: prod-20261203-101500, hosts: [web1, web2]}
env:
  description: With O(step=select), the environment.
  returned: success
  type: str
hosts:
  description: With O(step=select), the environment's hosts.
  returned: success
  type: list
  elements: str
mail_ready:
  description: With O(step=publish), whether a mail is to go out through C(community.general.mail).
  returned: success
  type: bool
pruned_tags:
  description: With O(step=publish), the old rollout tags and markers deleted (or, in check mode, to be deleted).
  returned: when O(keep_tags) pruned
  type: list
  elements: str
canary_hold:
  description: With O(step=gate), whether the canary was held and is to be checked again before this batch.
  returned: success
  type: bool
rollout_failed:
  description: With O(step=report), whether the rollout failed (the role then fails the play with RV(msg)).
  returned: success
  type: bool
status:
  description: With O(step=status), the environment's status (C(env), C(live_tags), C(drift), C(hosts), C(history)).
  returned: success
  type: dict
msg:
  description: What the step did.
  returned: always
  type: str
"""
