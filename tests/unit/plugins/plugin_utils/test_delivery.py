"""The controller's delivery decisions (plugin_utils/delivery.py): which host needs a bundle,
and the size limit."""

from __future__ import annotations

import sys

import pytest

try:
    from ansible_collections.gitdeploy.rollout.plugins.plugin_utils import delivery
except ImportError:  # plain pytest: put this checkout on the collections path
    from hosts import collections_path

    sys.path.insert(0, str(collections_path()))
    from ansible_collections.gitdeploy.rollout.plugins.plugin_utils import delivery


def test_a_host_needs_a_bundle_unless_its_store_has_the_tag_on_the_commit():
    assert delivery.needed({}, "c" * 40)
    assert delivery.needed(None, "c" * 40)
    assert delivery.needed({"commit_present": True, "tag_commit": None}, "c" * 40)
    assert not delivery.needed({"tag_commit": "c" * 40}, "c" * 40)


def test_a_bundle_above_the_limit_is_refused_naming_host_size_and_fix():
    delivery.check_size(10 * 1024 * 1024, 0, "web1")  # 0: no limit
    delivery.check_size(1000, 1000, "web1")  # at the limit: allowed
    with pytest.raises(delivery.TooBig) as raised:
        delivery.check_size(5 * 1024 * 1024 + 1, 1024 * 1024, "web2")
    msg = str(raised.value)
    assert "web2" in msg and "5.0 MiB (5242881 bytes)" in msg and "git_deploy_max_bundle_bytes=1048576" in msg
    assert "-e git_deploy_max_bundle_bytes=5242881" in msg
    assert isinstance(raised.value, delivery.DeliveryFailed)


@pytest.mark.parametrize("size, shown", [
    (0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KiB"), (3 * 1024 ** 3, "3.0 GiB"), (5000 * 1024 ** 3, "5000.0 GiB"),
])
def test_human_sizes(size, shown):
    assert delivery.human(size) == shown


def test_submodules_travel_unless_the_host_turned_them_off():
    assert delivery.submodules_of({"submodules": True}) and delivery.submodules_of({}) and delivery.submodules_of(None)
    assert not delivery.submodules_of({"submodules": False})
