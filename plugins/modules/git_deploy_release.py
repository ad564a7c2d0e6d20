#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: git_deploy_release
short_description: Prepare, switch to, and mark failed the release of a rollout tag on a target
version_added: 0.1.0
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
description:
  - Manages the release tree under O(root) on a deploy target, from the tags delivered into
    C(<root>/repo.git) (by M(gitdeploy.rollout.git_deploy_push)).
  - With O(strategy=releases) every tag gets its own tree C(<root>/releases/<tag>) (no C(.git)
    directory) and C(<root>/current) is a relative symlink to the live one, replaced atomically.
    Reverting is switching C(current) back to a release that is still there.
  - With O(strategy=in_place) (git-deploy's own model) C(<root>/current) is a working tree of
    C(repo.git) that is checked out to the new commit in place.
  - O(state=prepared) makes the release ready without touching what is live, O(state=live)
    makes it live, O(state=failed) marks it as the release of a failed rollout.
options:
  tag:
    description:
      - The rollout tag whose release is managed. Must be a plain name (letters, digits, C(.), C(_), C(-)).
      - For O(state=prepared) and, with O(strategy=in_place), O(state=live), C(refs/tags/<tag>) must exist in
        C(<root>/repo.git).
    type: str
    required: true
  commit:
    description:
      - The full commit id (40 or 64 hex digits) the rollout expects O(tag) to point to.
      - When set, the module fails unless C(refs/tags/<tag>) in C(repo.git) peels to this commit, and
        O(state=live) fails unless the release was prepared from it.
      - When not set, the commit C(refs/tags/<tag>) points to is used.
    type: str
  state:
    description:
      - V(prepared) makes the release ready. With O(strategy=releases) the tree of the commit is written to
        C(<root>/releases/.<tag>.tmp-<pid>), shared paths are linked, the deploy file is written, and only then
        is it renamed to C(<root>/releases/<tag>), so a release with its final name is always complete.
        Leftover temporary trees and releases marked failed (other than the live and previous ones) are removed.
        With O(strategy=in_place) local modifications of the working tree are checked (refused unless O(force))
        and the O(hook_dir) of the new commit is exported to C(<root>/.git-deploy/hooks/<tag>/) so the hooks of the
        new code can run before anything live changes.
      - V(live) makes the release live. With O(strategy=releases) C(current) is switched to C(releases/<tag>) with a
        temporary symlink renamed over it (there is never a moment without C(current)), then releases beyond
        O(keep_releases) are pruned. The release must have been prepared. With O(strategy=in_place) the commit is
        checked out into C(current) (files deleted between the trees are removed, local edits are overwritten only
        with O(force)), the deploy file is written, and the hook exports of other tags and the failed marks of tags
        other than the previous one are removed.
      - V(failed) marks the release failed with a marker C(<root>/.git-deploy/failed/<tag>) (nothing is written into
        the release tree). The tree stays for inspection; the next V(prepared) or V(live) removes it unless it is live
        or the previous release. A later V(live) of the same tag clears the mark.
    type: str
    choices: [prepared, live, failed]
    default: prepared
  deploy_file:
    description:
      - Text of the deploy file written to C(<release>/<deploy_file_name>) (for example the C(deploy_file) returned
        by M(gitdeploy.rollout.git_deploy_tag)), exactly as given.
      - Written on O(state=prepared) with O(strategy=releases) and on O(state=live) with O(strategy=in_place);
        ignored otherwise. When not set, no deploy file is written or checked, except that with
        O(strategy=in_place) going back to the previous tag restores that tag's deploy file, and a deploy file
        naming another tag is removed rather than left behind.
    type: str
  force:
    description:
      - With O(strategy=in_place), check out even when tracked files of C(current) were modified locally (the
        modifications are lost) or C(current) is a directory this module did not create.
      - With O(strategy=releases), switch to a release that has no record of its commit, or adopt such a release
        when it is live.
    type: bool
    default: false
  hook_dir:
    description:
      - Directory of the hooks inside the repository, exported by O(state=prepared) with O(strategy=in_place).
    type: str
    default: deploy
extends_documentation_fragment:
  - gitdeploy.rollout.target
  - gitdeploy.rollout.release
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports the release that would be created, the switch of C(current) and the releases that would be pruned.
  diff_mode:
    support: full
    details: Shows C(current) before and after (or the release's presence for O(state=prepared)).
  platform:
    platforms: posix
notes:
  - The target needs Python and the C(git) binary. All git commands run with list arguments, never through a shell.
  - Bookkeeping lives in C(<root>/.git-deploy/), never in the application tree; C(prepared/<tag>.json) records the
    commit each release was prepared from, C(failed/<tag>) marks failed rollouts, C(in_place.json) and
    C(in_place.index) describe an O(strategy=in_place) tree.
  - Releases are ordered by the date in their tag name (C(<prefix>-YYYYMMDD-HHMMSS[_A]), read as UTC); names without
    one by when they were prepared.
  - Git submodules are not checked out.
  - The lock (M(gitdeploy.rollout.git_deploy_lock)) is expected to keep two rollouts from running this module on the
    same root at the same time.
seealso:
  - module: gitdeploy.rollout.git_deploy_release_info
"""

EXAMPLES = r"""
- name: Prepare the release of the rollout tag
  gitdeploy.rollout.git_deploy_release:
    root: "{{ git_deploy_root }}"
    tag: "{{ rollout.tag }}"
    commit: "{{ rollout.commit }}"
    state: prepared
    deploy_file: "{{ rollout.deploy_file }}"
    shared_paths:
      - var/uploads
      - config/local.yml

- name: Make it live, keeping three releases
  gitdeploy.rollout.git_deploy_release:
    root: "{{ git_deploy_root }}"
    tag: "{{ rollout.tag }}"
    commit: "{{ rollout.commit }}"
    state: live
    keep_releases: 3
  register: switch

- name: Revert to the release that was live before (a symlink swap)
  gitdeploy.rollout.git_deploy_release:
    root: "{{ git_deploy_root }}"
    tag: "{{ switch.previous_tag }}"
    state: live
  when: switch.previous_tag is not none

- name: Mark the release of a failed rollout
  gitdeploy.rollout.git_deploy_release:
    root: "{{ git_deploy_root }}"
    tag: "{{ rollout.tag }}"
    state: failed

- name: Deploy git-deploy style, checking out in place
  gitdeploy.rollout.git_deploy_release:
    root: "{{ git_deploy_root }}"
    tag: "{{ rollout.tag }}"
    commit: "{{ rollout.commit }}"
    strategy: in_place
    state: live
    deploy_file: "{{ rollout.deploy_file }}"
"""

RETURN = r"""
release:
  description:
    - The tree of the release. With O(strategy=releases), C(<root>/releases/<tag>).
    - With O(strategy=in_place), C(<root>/.git-deploy/hooks/<tag>) for O(state=prepared) (holds O(hook_dir) of the new
      commit, for pre-sync hooks) and C(<root>/current) for O(state=live).
    - For O(state=failed), the release or hook export if it exists, else null.
  returned: always
  type: str
  sample: /srv/app/releases/prod-20261121-101500
commit:
  description: The commit of the release (null in check mode when the tag is not delivered yet, and for O(state=failed) without a record).
  returned: always
  type: str
  sample: 3f2a9c0d5e6b7a8f9012345678901234567890ab
live_tag:
  description: The tag live after the task (for O(state=prepared) and O(state=failed), the one live now); null when nothing is live.
  returned: always
  type: str
  sample: prod-20261121-101500
previous_tag:
  description:
    - For O(state=live), what C(current) held before the task (equal to RV(live_tag) when nothing changed, null on the
      first deploy) - the release to switch back to if the rollout fails.
    - For O(state=prepared) and O(state=failed), the release a revert would go to (from the history, else the newest
      other complete release).
  returned: always
  type: str
  sample: prod-20261120-093000
settled_tag:
  description:
    - The tag the newest finished rollout in the history left live (a success leaves its tag, a rollback the tag it
      started from; failed and aborted rollouts are skipped); null without such a record.
    - When RV(live_tag) differs from it, a rollout that never finished (a controller crash) switched this host.
  returned: always
  type: str
  sample: prod-20261121-101500
pruned:
  description:
    - Releases deleted (or that would be, in check mode), in deletion order.
    - With O(strategy=in_place) and O(state=live), the tags whose hook exports were removed.
  returned: always
  type: list
  elements: str
  sample: [prod-20261101-120000]
cleaned:
  description: Leftover temporary directories of interrupted runs that were removed.
  returned: always
  type: list
  elements: str
  sample: [/srv/app/releases/.prod-20261121-101500.tmp-4242]
local_modifications:
  description:
    - With O(strategy=in_place), the tracked files of C(current) changed since the last checkout (the deploy file
      excluded); C(status) is the git status letter (C(M) modified, C(D) deleted, C(T) type changed).
  returned: always
  type: list
  elements: dict
  sample: [{status: M, path: config/app.ini}]
actions:
  description: What was done (or, in check mode, would be done), one line each.
  returned: always
  type: list
  elements: str
  sample: ["create release /srv/app/releases/prod-20261121-101500 from commit 3f2a9c0d"]
diff:
  description: C(current) (or the release) before and after.
  returned: always
  type: dict
  sample: {before: "/srv/app/current -> releases/prod-20261120-093000\n", after: "/srv/app/current -> releases/prod-20261121-101500\n"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gitdeploy.rollout.plugins.module_utils.release import (
    DEFAULT_DEPLOY_FILE,
    DEFAULT_HOOK_DIR,
    DEFAULT_KEEP,
    STATES,
    STRATEGIES,
    ReleaseError,
    ReleaseTree,
    check_commit,
    check_keep,
)
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import check_name


def run(module, params):
    check_name(params["tag"], "tag")
    keep = check_keep(params["keep_releases"])
    commit = check_commit(params["commit"]) if params["commit"] else None
    strategy, state = params["strategy"], params["state"]
    if strategy == "in_place" and params["shared_paths"]:
        raise ValueError("shared_paths %s can only be used with strategy=releases: an in_place working tree keeps "
                         "its own files; remove shared_paths or use strategy: releases" % (params["shared_paths"],))
    tree = ReleaseTree(params["root"], module.run_command, git=module.get_bin_path("git", required=True),
                       check_mode=module.check_mode, deploy_file_name=params["deploy_file_name"],
                       hook_dir=params["hook_dir"], submodules=params["submodules"])
    tag, force = params["tag"], params["force"]
    if state == "failed":
        result = tree.mark_failed(tag, commit)
        result.pop("marked")
        live = tree.current_state()[2]
        result.update(live_tag=live, previous_tag=tree.previous_tag(live), pruned=[])
    elif strategy == "releases" and state == "prepared":
        result = tree.prepare_release(tag, commit, params["deploy_file"], params["shared_paths"], force)
    elif strategy == "releases":
        result = tree.switch_release(tag, commit, keep, force)
        result.setdefault("commit", (tree.meta(tag) or {}).get("commit") or commit)
    elif state == "prepared":
        result = tree.prepare_in_place(tag, commit, force)
    else:
        result = tree.switch_in_place(tag, commit, params["deploy_file"], force)
    result.pop("changed_current", None)
    result.setdefault("local_modifications", [])
    result["settled_tag"] = tree.settled_tag()
    result.update(changed=bool(tree.actions), actions=tree.actions, cleaned=tree.cleaned)
    return tree, result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            tag=dict(type="str", required=True),
            commit=dict(type="str"),
            strategy=dict(type="str", choices=list(STRATEGIES), default="releases"),
            submodules=dict(type="bool", default=True),
            state=dict(type="str", choices=list(STATES), default="prepared"),
            deploy_file=dict(type="str"),
            deploy_file_name=dict(type="str", default=DEFAULT_DEPLOY_FILE),
            shared_paths=dict(type="list", elements="str", default=[]),
            keep_releases=dict(type="int", default=DEFAULT_KEEP),
            force=dict(type="bool", default=False),
            hook_dir=dict(type="str", default=DEFAULT_HOOK_DIR),
        ),
        supports_check_mode=True,
    )
    try:
        tree, result = run(module, module.params)
    except (ReleaseError, ValueError) as exc:
        module.fail_json(msg=str(exc), root=module.params["root"], tag=module.params["tag"])
    except (IOError, OSError) as exc:
        module.fail_json(msg="%s on %s: %s; check the permissions and free space of %s" % (
            type(exc).__name__, getattr(exc, "filename", None) or module.params["root"], exc,
            module.params["root"]), root=module.params["root"], tag=module.params["tag"])
    for warning in tree.warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
