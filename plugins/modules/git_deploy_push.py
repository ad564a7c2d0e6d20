#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: git_deploy_push
short_description: Deliver the git objects of a rollout tag to a target over Ansible's connection
version_added: 0.1.0
author:
  - gitdeploy.rollout maintainers (@gitdeploy)
description:
  - Brings C(refs/tags/<tag>) and every object it needs into the target's bare object
    store C(<root>/repo.git), creating that repository if it is missing.
  - Only the objects the target lacks travel. The action plugin asks the target which
    commits its refs point at (its I(haves)), builds on the controller, with dulwich, a
    git bundle of the tag whose prerequisites are the boundary commits the target already
    has, copies the bundle with Ansible's own connection (whatever C(ansible_connection)
    is; never a separate C(git push) or C(git fetch) over the network), and has the target
    check its size and SHA-256, C(git bundle verify) it, index its objects with git's checks
    (C(git index-pack --strict), what C(transfer.fsckObjects) does for a fetch) and create the tag
    once every object it reaches is there.
  - The target never contacts a git remote; it needs only Python and the C(git) binary.
    The controller needs the C(dulwich) Python library and no C(git) binary.
  - Bundles are cached on the controller per (tag, tag object, commit, sorted haves) and
    built once per distinct key, even when many hosts ask at the same moment, so hosts
    in the same state share one bundle.
  - A tag already on the target transfers nothing (C(changed=false), C(bytes=0)); this is
    what makes re-runs and reverts to an earlier tag free. A tag whose commit the target
    already has travels as a bundle of the tag object alone (a few hundred bytes).
  - A tag is never moved; if C(refs/tags/<tag>) on the target points elsewhere the task
    fails and says how to inspect it.
  - A tree or blob travels as the delta git already stored for it in the controller's
    packs, else as a delta against the previous version of its path when that is less
    than half its size (that base may be on the target only, as in the thin packs
    C(git bundle create) makes), else whole. Bundles come out within a few percent of
    C(git bundle create) for the same range.
options:
  repo:
    description:
      - Path on the controller of the git repository holding I(tag) (a checkout or a bare
        cache; use the C(repo) that M(gitdeploy.rollout.git_deploy_tag) returned).
    type: path
    required: true
  tag:
    description:
      - Name of the rollout tag to deliver (a plain name, see the design document).
    type: str
    required: true
  commit:
    description:
      - Full 40-character id of the commit I(tag) points at. The controller checks its
        tag peels to it before building, the target checks again after fetching.
    type: str
    required: true
  cache_dir:
    description:
      - Controller directory of the bundle cache.
      - Defaults to C($XDG_CACHE_HOME/gitdeploy/bundles) or C(~/.cache/gitdeploy/bundles).
      - Entries unused for seven days are removed whenever a new bundle is built.
    type: path
  submodules:
    description:
      - Bring the submodules the tag's commit pins too (nested ones included; when its tree has a C(.gitmodules)).
        Their commits and what the target lacks of their history travel in the same bundle, each kept on the target
        as C(refs/git-deploy/modules/<commit>). They are read from the submodules' repositories on the controller
        (C(.git/modules) of O(repo)); a pinned commit missing there fails, naming the path and commit, before
        anything is sent.
    type: bool
    default: true
  max_bytes:
    description:
      - Refuse a bundle bigger than this many bytes, naming its size, before anything is sent. V(0) - no limit.
    type: int
    default: 0
  _mode:
    description:
      - Internal, set by the action plugin; leave unset.
      - V(haves) reports the target's refs, V(ingest) fetches a transferred bundle.
    type: str
    choices: [haves, ingest]
    default: haves
  _bundle:
    description:
      - Internal, set by the action plugin; leave unset. Target path of the transferred bundle.
    type: path
  _bundle_size:
    description:
      - Internal, set by the action plugin; leave unset. Size in bytes the bundle must have.
    type: int
  _bundle_sha256:
    description:
      - Internal, set by the action plugin; leave unset. SHA-256 the bundle must have.
    type: str
extends_documentation_fragment:
  - gitdeploy.rollout.target
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - gitdeploy.rollout.action
attributes:
  check_mode:
    support: full
    details:
      - The bundle is built into the controller's cache (nothing else is written) so
        RV(bytes) and RV(objects) are what would travel; nothing is transferred and the
        target is not changed (C(repo.git) is not even created).
  diff_mode:
    support: full
    details:
      - The diff shows C(refs/tags/<tag>) before and after.
  platform:
    platforms: posix
requirements:
  - dulwich on the controller
  - git on the target
notes:
  - Run it under the rollout's lock (M(gitdeploy.rollout.git_deploy_lock)); two rollouts
    fetching the same tag at once are not coordinated beyond git's own ref locking.
  - The target's C(repo.git) keeps every delivered tag; that is what makes later
    deliveries small and reverts free.
seealso:
  - module: gitdeploy.rollout.git_deploy_tag
  - module: gitdeploy.rollout.git_deploy_release
"""

EXAMPLES = r"""
- name: Ship the objects of the rollout tag to every host
  gitdeploy.rollout.git_deploy_push:
    root: "{{ git_deploy_root }}"
    repo: "{{ rollout_tag.repo }}"
    tag: "{{ rollout_tag.tag }}"
    commit: "{{ rollout_tag.commit }}"
  register: pushed

- name: Report what travelled
  ansible.builtin.debug:
    msg: "{{ pushed.bytes }} bytes, {{ pushed.objects }} objects"

- name: Revert to an earlier tag (already on the hosts, so nothing travels)
  gitdeploy.rollout.git_deploy_push:
    root: /srv/app
    repo: /home/deploy/src/app
    tag: prod-20261121-101500
    commit: 3f2a9c0d7e5b4a1f8c6d2e0b9a7f5c3e1d0b8a6f
    cache_dir: /var/cache/gitdeploy/bundles
"""

RETURN = r"""
changed:
  description: Whether C(refs/tags/<tag>) was created on the target (or would be, in check mode).
  returned: always
  type: bool
bytes:
  description: Size of the bundle transferred (or that would be, in check mode); 0 when nothing travels.
  returned: always
  type: int
  sample: 1873
objects:
  description: Number of objects in the bundle's pack; 0 when nothing travels.
  returned: always
  type: int
  sample: 7
haves:
  description: Commits the target's refs pointed at before delivery (peeled, sorted).
  returned: always
  type: list
  elements: str
  sample: [3f2a9c0d7e5b4a1f8c6d2e0b9a7f5c3e1d0b8a6f]
prerequisites:
  description:
    - Commits the bundle requires on the target (the boundary between what the target
      has and what travels); empty for a first delivery or when nothing travels.
  returned: always
  type: list
  elements: str
transferred:
  description: Whether a bundle was copied to the target.
  returned: always
  type: bool
tag:
  description: The tag delivered.
  returned: always
  type: str
  sample: prod-20261121-101500
commit:
  description: The commit the tag points at on the target.
  returned: always
  type: str
repo:
  description: Path of the target's object store.
  returned: always
  type: str
  sample: /srv/app/repo.git
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import Layout, check_name
from ansible_collections.gitdeploy.rollout.plugins.module_utils.store import Store, StoreError, check_commit

# The task's options; the action plugin validates them with this same spec.
OPTIONS = dict(
    root=dict(type="path", required=True),
    repo=dict(type="path", required=True),
    tag=dict(type="str", required=True),
    commit=dict(type="str", required=True),
    cache_dir=dict(type="path"),
    submodules=dict(type="bool", default=True),
    max_bytes=dict(type="int", default=0),
)
# Set by the action plugin when it runs this module on the target.
INTERNAL_OPTIONS = dict(
    _mode=dict(type="str", choices=["haves", "ingest"], default="haves"),
    _bundle=dict(type="path"),
    _bundle_size=dict(type="int"),
    _bundle_sha256=dict(type="str"),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(OPTIONS, **INTERNAL_OPTIONS),
        required_if=[("_mode", "ingest", ("_bundle", "_bundle_size", "_bundle_sha256"))],
        supports_check_mode=True,
    )
    params = module.params
    try:
        layout = Layout(params["root"])
        tag = check_name(params["tag"], "tag")
        commit = check_commit(params["commit"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    store = Store(layout.repo, module.run_command, module.get_bin_path("git", required=True))
    result = dict(changed=False, tag=tag, commit=commit, repo=layout.repo)
    try:
        if params["_mode"] == "haves":
            created = False if module.check_mode else store.init()
            result.update(store.haves(tag, commit), created=created or not store.exists, changed=created)
        elif module.check_mode:
            module.fail_json(msg="_mode=ingest is never run in check mode", **result)
        else:
            result["changed"] = store.ingest(tag, commit, params["_bundle"], params["_bundle_size"],
                                             params["_bundle_sha256"])
    except StoreError as exc:
        result.update(exc.fields)
        module.fail_json(msg=exc.msg, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
