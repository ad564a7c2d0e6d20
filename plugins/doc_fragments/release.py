# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """How releases are laid out under the root (git_deploy_release, git_deploy_step)."""

    DOCUMENTATION = r"""
options:
  strategy:
    description:
      - V(releases) keeps one tree per tag under C(<root>/releases) and switches the C(current) symlink.
      - V(in_place) keeps a single working tree in C(<root>/current) and checks each tag out into it.
    type: str
    choices: [releases, in_place]
    default: releases
  deploy_file_name:
    description:
      - Path of the deploy file, relative to the release (or to C(current) with O(strategy=in_place)).
      - With O(strategy=in_place) this file is not counted as a local modification.
    type: str
    default: .deploy
  shared_paths:
    description:
      - Paths, relative to the release, that every release shares (uploads, caches, local configuration).
      - Each C(<release>/<path>) is replaced with a relative symlink to C(<root>/shared/<path>). When
        C(<root>/shared/<path>) does not exist yet, it is seeded with what the release has at that path, or
        created as an empty directory.
      - Only for O(strategy=releases); paths must not be nested in each other.
    type: list
    elements: str
    default: []
  keep_releases:
    description:
      - How many releases a switch keeps (O(strategy=releases)), counting the live one. Must be 1 or more.
      - The live release and the previous one (what C(current) pointed to before, and the release a revert would go
        to according to the history) are never deleted. Failed releases go first, whatever the count, then
        unfinished ones, then the oldest.
    type: int
    default: 5
  submodules:
    description:
      - Check out the submodules the commit pins (when its tree has a C(.gitmodules)), nested ones too, at their
        pinned commits, from the target's object store (the bundle brings them; the target never needs a
        submodule's URL). A pinned commit missing from the store fails, naming the path and commit.
      - V(false) leaves each submodule's directory empty, as C(git clone) without C(--recurse-submodules) does.
    type: bool
    default: true
"""
