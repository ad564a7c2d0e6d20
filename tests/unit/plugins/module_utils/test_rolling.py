import pytest

from ansible_collections.gitdeploy.rollout.plugins.module_utils.rolling import batches

HOSTS = ["p1", "p2", "p3", "p4", "p5"]


def test_no_serial_is_one_batch():
    assert batches(HOSTS, []) == [HOSTS]
    assert batches(HOSTS, None) == [HOSTS]
    assert batches([], []) == []


def test_canary_then_percentages_last_size_repeats():
    assert batches(HOSTS, [1, "50%"]) == [["p1"], ["p2", "p3"], ["p4", "p5"]]
    assert batches(HOSTS, [1, "100%"]) == [["p1"], ["p2", "p3", "p4", "p5"]]


def test_scalar_and_small_percentages_round_to_at_least_one():
    assert batches(HOSTS, 2) == [["p1", "p2"], ["p3", "p4"], ["p5"]]
    assert batches(HOSTS, ["10%"]) == [[h] for h in HOSTS]


def test_every_host_exactly_once_in_order():
    result = batches(HOSTS, [2, "30%", 1])
    assert [h for b in result for h in b] == HOSTS


@pytest.mark.parametrize("bad", [["x"], [0], [-1], ["-10%"]])
def test_bad_sizes(bad):
    with pytest.raises(ValueError, match="git_deploy_serial"):
        batches(HOSTS, bad)
