#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: git_deploy_announce
short_description: Say what a rollout changed, compose its announcement, report undelivered announcements
version_added: 0.1.0
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
description:
  - "Runs on the controller and does one of two things:"
  - "B(What changed) (O(repo), O(to_ref), optionally O(from_ref)): the commits between two
    rollouts, newest first, as a shortlog (RV(changes.commits)), the commits the second one
    takes back out (RV(changes.removed), what a revert undoes) and a diffstat of the trees
    (RV(changes.files)), with dulwich, like C(git log --oneline from..to) and
    C(git diff --stat from to). The lists are capped by O(max_commits) and O(max_files); the
    totals count everything."
  - "With O(rollout), also B(the announcement) of the rollout (RV(announcement)): a one-line
    subject, a plain text for mail, a chat text and a JSON payload for Slack- and
    Mattermost-compatible webhooks (C(text) plus structured fields), with the environment,
    tag, previous tag, commit, who and from where, duration, result, hosts, what changed and,
    for a failure, where it failed and whom to contact. A repository that cannot be read gives
    an announcement without the changes (and a warning), never a failure."
  - "B(Report) (O(report)): turns the outcome of the announcement deliveries into warnings,
    with O(secrets) masked, so that a failed announcement is reported without failing anything
    and without showing a webhook URL or a password."
  - "Use C(delegate_to: localhost), C(run_once: true) and
    C(ansible_python_interpreter: '{{ ansible_playbook_python }}'); the role
    C(gitdeploy.rollout.git_deploy) runs it at the end of every rollout, revert, rollback and
    failure (see C(docs/announce.md))."
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads the repository; it does the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  repo:
    description:
      - Path of the repository on the controller, a checkout or a bare repository (the C(repo)
        returned by M(gitdeploy.rollout.git_deploy_tag)).
      - Without it, the announcement is composed without the changes.
    type: path
  from_ref:
    description:
      - The earlier rollout, usually the tag that was live before (tag, branch or commit id).
      - Empty for a first rollout; then every commit of O(to_ref) counts as new and every file
        as added.
    type: str
  to_ref:
    description:
      - The rollout announced (tag, branch or commit id). Required with O(repo).
    type: str
  max_commits:
    description:
      - How many commits RV(changes.commits) and RV(changes.removed) list at most.
    type: int
    default: 50
  max_files:
    description:
      - How many files RV(changes.files) lists at most.
    type: int
    default: 100
  max_chars:
    description:
      - The announcement's text is cut at a line break to at most this many characters
        (chat servers refuse long posts; Mattermost's limit is 16383).
    type: int
    default: 12000
  hook_dir:
    description:
      - Directory of the hooks in the repository; with O(rollout), RV(log_hooks) says whether
        O(from_ref) or O(to_ref) has C(log) hooks for the environment there.
    type: str
    default: deploy
  rollout:
    description:
      - The facts of the finished rollout; with them the module composes RV(announcement).
    type: dict
    suboptions:
      env:
        description: The environment.
        type: str
        required: true
      action:
        description: What ran.
        type: str
        choices: [deploy, revert]
        default: deploy
      result:
        description: How it ended.
        type: str
        choices: [success, rolled_back, failed]
        default: success
      tag:
        description: The rollout tag.
        type: str
      previous_tag:
        description: The tag that was live before.
        type: str
      commit:
        description: The commit rolled out.
        type: str
      deploy_id:
        description: The rollout's id.
        type: str
      user:
        description: Who ran it.
        type: str
      controller:
        description: The controller it ran from.
        type: str
      start:
        description: When it started, C(YYYY-mm-ddTHH:MM:SSZ) (UTC).
        type: str
      end:
        description: When it ended, same format; defaults to now.
        type: str
      hosts:
        description: The hosts of the rollout.
        type: list
        elements: str
        default: []
      failed_hosts:
        description: The hosts that failed.
        type: list
        elements: str
        default: []
      failure:
        description: The first failure (the role's C(git_deploy_first_failure)).
        type: dict
        suboptions:
          host:
            description: Host (or C(controller)) it happened on.
            type: str
          phase:
            description: Phase it happened in.
            type: str
          hook:
            description: Path of the hook that failed, if a hook did.
            type: str
          msg:
            description: The error (clipped to 1000 characters).
            type: str
          task:
            description: The task that failed (not shown).
            type: str
      support_email:
        description: Whom to contact when something failed (shown for failures only).
        type: str
      project:
        description: Name of the application, shown in front of the subject.
        type: str
      deploy_file:
        description: Text of the C(.deploy) file; its free message is shown unless it is the default one.
        type: str
  report:
    description:
      - The outcome of each announcement delivery; every one that was not sent becomes a warning.
      - Mutually exclusive with O(repo) and O(rollout).
    type: list
    elements: dict
    suboptions:
      channel:
        description: What was tried, e.g. C(webhook), C(mail to ops@example.com), C(log hooks on web1).
        type: str
        required: true
      sent:
        description: Whether it went out.
        type: bool
        default: false
      msg:
        description: Why it did not.
        type: str
        default: ''
  secrets:
    description:
      - Values that must never be shown (webhook URLs, passwords). They are masked in the
        warnings of O(report); for a URL its path and query are masked too.
    type: list
    elements: str
    default: []
notes:
  - Line counts of the diffstat come from a line diff of each file (Python's difflib); a moved
    block may count differently than in git. Binary files (a NUL byte in their first 8000 bytes)
    and files over 1 MiB are listed without line counts.
  - The commit list stops counting at 10000 commits (RV(changes.commits_total) then says 10000).
requirements:
  - dulwich >= 0.22 on the controller (for O(repo))
seealso:
  - module: gitdeploy.rollout.git_deploy_tag
  - name: git-deploy's announce-mail, send-mail-on-ACTION and log hooks
    description: The behaviour the role's announcements follow.
    link: https://github.com/git-deploy/git-deploy#configuration
"""

EXAMPLES = r"""
- name: What changed since the last rollout
  gitdeploy.rollout.git_deploy_announce:
    repo: "{{ playbook_dir }}"
    from_ref: prod-20261120-170000
    to_ref: HEAD
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  register: changes

- name: Compose the announcement of a finished rollout
  gitdeploy.rollout.git_deploy_announce:
    repo: "{{ git_deploy_rollout.repo }}"
    from_ref: prod-20261120-170000
    to_ref: "{{ git_deploy_rollout.commit }}"
    rollout:
      env: prod
      result: success
      tag: "{{ git_deploy_rollout.tag }}"
      previous_tag: prod-20261120-170000
      commit: "{{ git_deploy_rollout.commit }}"
      user: alice
      start: "2026-11-21T10:15:00Z"
      hosts: "{{ ansible_play_hosts_all }}"
  delegate_to: localhost
  run_once: true
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  register: announcement

- name: Warn about announcements that did not go out, without showing the webhook URL
  gitdeploy.rollout.git_deploy_announce:
    report:
      - channel: webhook
        sent: "{{ posted is changed }}"
        msg: "{{ posted.msg | default('') }}"
    secrets:
      - "{{ webhook_url }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
changes:
  description: What changed from O(from_ref) to O(to_ref); null when no repository was given or it could not be read.
  returned: success
  type: dict
  contains:
    from_ref:
      description: O(from_ref), null for a first rollout.
      type: str
    to_ref:
      description: O(to_ref).
      type: str
    from_commit:
      description: Full commit id of O(from_ref).
      type: str
    to_commit:
      description: Full commit id of O(to_ref).
      type: str
    commits:
      description: Commits in O(to_ref) but not in O(from_ref), newest first (at most O(max_commits)).
      type: list
      elements: dict
      contains:
        id:
          description: Full commit id.
          type: str
        subject:
          description: First line of the commit message.
          type: str
        author:
          description: The author's name.
          type: str
    commits_total:
      description: How many commits there are in all.
      type: int
    removed:
      description: Commits in O(from_ref) but not in O(to_ref) (a revert takes them back out), same format.
      type: list
      elements: dict
    removed_total:
      description: How many commits are taken out in all.
      type: int
    files:
      description: Changed files, sorted by path (at most O(max_files)).
      type: list
      elements: dict
      contains:
        path:
          description: Path in O(to_ref) (in O(from_ref) for a deleted file).
          type: str
        old_path:
          description: Path in O(from_ref) for a renamed file, else null.
          type: str
        status:
          description: C(added), C(modified), C(deleted), C(renamed) or C(copied).
          type: str
        insertions:
          description: Lines added; null when not counted (binary, too large).
          type: int
        deletions:
          description: Lines removed; null when not counted.
          type: int
        binary:
          description: Whether the file is binary.
          type: bool
    files_total:
      description: How many files changed in all.
      type: int
    insertions:
      description: Lines added over all counted files.
      type: int
    deletions:
      description: Lines removed over all counted files.
      type: int
    stat_complete:
      description: Whether every file's lines were counted.
      type: bool
    truncated:
      description: Whether a list was cut by O(max_commits) or O(max_files).
      type: bool
    shortlog:
      description: The commit lines as text (C(<id> <subject> (<author>)), newest first).
      type: list
      elements: str
    diffstat:
      description: The diffstat lines (C(path | 3 ++-)).
      type: list
      elements: str
    summary:
      description: One line, like git's shortstat.
      type: str
      sample: 3 commits, 2 files changed, 10 insertions(+), 1 deletion(-)
announcement:
  description: The announcement (with O(rollout)).
  returned: when O(rollout) is given
  type: dict
  contains:
    event:
      description: C(deploy), C(revert), C(rollback) (failed, rolled back) or C(failure).
      type: str
    subject:
      description: One line (chat notification, mail subject, log hook message).
      type: str
      sample: "[shop] prod: alice deployed prod-20261121-101500"
    text:
      description: The plain text (mail body).
      type: str
    chat_text:
      description: The same text with the lists in code blocks.
      type: str
    payload:
      description: The webhook's JSON body, C(text) (the chat text) and C(gitdeploy) (every field, structured).
      type: dict
log_hooks:
  description:
    - With O(repo) and O(rollout), whether O(from_ref) or O(to_ref) has C(log) hooks for the environment
      (C(<hook_dir>/apps/common/log.*) or C(<hook_dir>/apps/<env>/log.*); true when a symbolic link
      hides the answer). Null when unknown.
  returned: success
  type: bool
undelivered:
  description: With O(report), the channels that were not sent (their warnings say why).
  returned: when O(report) is given
  type: list
  elements: str
msg:
  description: What the module did, in one sentence.
  returned: always
  type: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gitdeploy.rollout.plugins.module_utils import announce
from ansible_collections.gitdeploy.rollout.plugins.module_utils.changes import changes_between
from ansible_collections.gitdeploy.rollout.plugins.module_utils.gitrepo import DULWICH_IMPORT_ERROR, HAS_DULWICH, GitError
from ansible_collections.gitdeploy.rollout.plugins.module_utils.announce import mask, secret_variants


def run_report(module):
    secrets = secret_variants(module.params["secrets"])
    undelivered = []
    for item in module.params["report"]:
        if item["sent"]:
            continue
        channel = mask(item["channel"], secrets)
        undelivered.append(channel)
        why = announce.clip(mask(item["msg"], secrets), announce.MAX_MESSAGE) or "no reason given"
        module.warn("announcement by %s not sent: %s (the rollout itself is not affected)" % (channel, why))
    sent = len(module.params["report"]) - len(undelivered)
    module.exit_json(changed=False, undelivered=undelivered,
                     msg="%d announcement(s) sent, %d not sent" % (sent, len(undelivered)))


def main():
    failure_spec = dict(host=dict(type="str"), phase=dict(type="str"), hook=dict(type="str"),
                        msg=dict(type="str"), task=dict(type="str"))
    rollout_spec = dict(
        env=dict(type="str", required=True),
        action=dict(type="str", default="deploy", choices=["deploy", "revert"]),
        result=dict(type="str", default="success", choices=list(announce.RESULTS)),
        tag=dict(type="str"),
        previous_tag=dict(type="str"),
        commit=dict(type="str"),
        deploy_id=dict(type="str"),
        user=dict(type="str"),
        controller=dict(type="str"),
        start=dict(type="str"),
        end=dict(type="str"),
        hosts=dict(type="list", elements="str", default=[]),
        failed_hosts=dict(type="list", elements="str", default=[]),
        failure=dict(type="dict", options=failure_spec),
        support_email=dict(type="str"),
        project=dict(type="str"),
        deploy_file=dict(type="str"),
    )
    report_spec = dict(channel=dict(type="str", required=True), sent=dict(type="bool", default=False),
                       msg=dict(type="str", default=""))
    module = AnsibleModule(
        argument_spec=dict(
            repo=dict(type="path"),
            from_ref=dict(type="str"),
            to_ref=dict(type="str"),
            max_commits=dict(type="int", default=announce.MAX_COMMITS),
            max_files=dict(type="int", default=announce.MAX_FILES),
            max_chars=dict(type="int", default=announce.MAX_CHARS),
            hook_dir=dict(type="str", default="deploy"),
            rollout=dict(type="dict", options=rollout_spec),
            report=dict(type="list", elements="dict", options=report_spec),
            secrets=dict(type="list", elements="str", default=[], no_log=True),
        ),
        mutually_exclusive=[("report", "repo"), ("report", "rollout")],
        required_one_of=[("repo", "rollout", "report")],
        required_by={"repo": "to_ref"},
        supports_check_mode=True,
    )
    p = module.params
    if p["report"] is not None:
        return run_report(module)
    for key in ("max_commits", "max_files"):
        if p[key] < 0:
            module.fail_json(msg="%s must be 0 or more, got %s" % (key, p[key]))
    if p["max_chars"] < 200:
        module.fail_json(msg="max_chars must be at least 200, got %s" % p["max_chars"])

    changes = log_hooks = None
    if p["repo"]:
        if not HAS_DULWICH:
            module.fail_json(msg=missing_required_lib("dulwich"), exception=DULWICH_IMPORT_ERROR)
        try:
            changes, log_hooks = changes_between(p["repo"], p["from_ref"], p["to_ref"], p["max_commits"],
                                                 p["max_files"], p["hook_dir"], (p["rollout"] or {}).get("env"))
        except (GitError, KeyError, ValueError, OSError) as exc:
            text = getattr(exc, "msg", None) or str(exc) or exc.__class__.__name__
            what = "cannot tell what changed from %s to %s in %s: %s" % (
                p["from_ref"] or "the start", p["to_ref"], p["repo"], text)
            if not p["rollout"]:
                module.fail_json(msg=what, exception=traceback.format_exc())
            module.warn(what + " (the announcement goes out without the changes)")

    result = dict(changed=False, changes=changes, log_hooks=log_hooks)
    if p["rollout"]:
        result["announcement"] = announce.compose(
            p["rollout"], changes, max_commits=p["max_commits"], max_files=p["max_files"],
            max_chars=p["max_chars"])
        result["msg"] = result["announcement"]["subject"]
    else:
        result["msg"] = "%s..%s: %s" % (p["from_ref"] or "(start)", p["to_ref"], changes["summary"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
