"""Rollout tag names, ordering, revert markers and deploy files (pure logic)."""

from __future__ import annotations

import datetime
import sys

import pytest

try:
    from ansible_collections.gitdeploy.rollout.plugins.module_utils import tagging
except ImportError:  # plain pytest: put this checkout on the collections path
    from hosts import collections_path

    sys.path.insert(0, str(collections_path()))
    from ansible_collections.gitdeploy.rollout.plugins.module_utils import tagging
from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import InvalidName

WHEN = datetime.datetime(2026, 1, 21, 10, 15, 0, tzinfo=datetime.timezone.utc)


# -- naming ------------------------------------------------------------------

def test_format_tag_uses_prefix_and_default_date_format():
    assert tagging.format_tag("prod", WHEN) == "prod-20260121-101500"


def test_format_tag_custom_date_format_and_index():
    assert tagging.format_tag("prod", WHEN, "%Y%m%d-%H%M") == "prod-20260121-1015"
    assert tagging.format_tag("prod", WHEN, index=2) == "prod-20260121-101500_B"


@pytest.mark.parametrize("prefix", ["", "bad/prefix", "-lead", "a b", "x..y", "a;rm"])
def test_format_tag_rejects_bad_prefixes(prefix):
    with pytest.raises(InvalidName):
        tagging.format_tag(prefix, WHEN)


@pytest.mark.parametrize("fmt", ["", "%Y %m", "%Y/%m/%d", "%b%d", "nodirective", "%Y%", "%Y:%m"])
def test_unsupported_date_formats_are_refused(fmt):
    with pytest.raises(ValueError):
        tagging.check_date_format(fmt)


@pytest.mark.parametrize("index,suffix", [
    (0, ""), (1, "_A"), (2, "_B"), (26, "_Z"), (27, "_AA"), (28, "_AB"), (52, "_AZ"), (53, "_BA"),
    (702, "_ZZ"), (703, "_AAA"),
])
def test_collision_suffixes_are_bijective_base_26(index, suffix):
    assert tagging.collision_suffix(index) == suffix
    assert tagging.suffix_index(suffix) == index


def test_suffix_index_rejects_other_text():
    for bad in ("_a", "A", "_", "_A1", "_reverted"):
        with pytest.raises(ValueError):
            tagging.suffix_index(bad)
    with pytest.raises(ValueError):
        tagging.collision_suffix(-1)


def test_unique_tag_adds_the_first_free_suffix():
    base = "prod-20260121-101500"
    assert tagging.unique_tag("prod", WHEN, set()) == base
    assert tagging.unique_tag("prod", WHEN, {base}) == base + "_A"
    assert tagging.unique_tag("prod", WHEN, {base, base + "_A", base + "_B"}) == base + "_C"
    taken = {base} | {base + tagging.collision_suffix(i) for i in range(1, 27)}
    assert tagging.unique_tag("prod", WHEN, taken) == base + "_AA"
    # a marker of the base name does not take the name
    assert tagging.unique_tag("prod", WHEN, {base + "_reverted"}) == base


# -- parsing -----------------------------------------------------------------

def test_parse_simple_tag():
    parsed = tagging.parse_tag("prod-20260121-101500")
    assert parsed.prefix == "prod"
    assert parsed.date == datetime.datetime(2026, 1, 21, 10, 15, 0)
    assert (parsed.suffix, parsed.index, parsed.marker) == ("", 0, False)
    assert parsed.base == "prod-20260121-101500"


@pytest.mark.parametrize("name,prefix,suffix", [
    ("prod-eu-west-20260121-101500", "prod-eu-west", ""),
    ("eu-1-20260121-101500_B", "eu-1", "_B"),
    ("my.app_v2-20260121-101500_AA", "my.app_v2", "_AA"),
    ("x-20250101-000000-20260121-101500", "x-20250101-000000", ""),
])
def test_parse_prefixes_with_dashes_from_the_right(name, prefix, suffix):
    parsed = tagging.parse_tag(name)
    assert parsed is not None
    assert (parsed.prefix, parsed.suffix) == (prefix, suffix)
    assert tagging.format_tag(prefix, parsed.date, index=parsed.index) == name


def test_parse_marker():
    parsed = tagging.parse_tag("prod-eu-20260121-101500_A_reverted")
    assert parsed.marker is True
    assert parsed.prefix == "prod-eu"
    assert parsed.suffix == "_A"
    assert parsed.base == "prod-eu-20260121-101500_A"


@pytest.mark.parametrize("name", [
    "v1.0", "prod", "prod-2026-01-21", "prod-20261321-101500", "prod-20260121-256000",
    "-20260121-101500", "prod-20260121-101500_a", "prod-20260121-101500_A1", "prod-20260121-101500x",
    "prod/x-20260121-101500", None, "",
])
def test_parse_rejects_non_rollout_tags(name):
    assert tagging.parse_tag(name) is None


def test_parse_with_custom_date_format():
    parsed = tagging.parse_tag("app-20260121-1015_A", "%Y%m%d-%H%M")
    assert parsed.prefix == "app" and parsed.index == 1
    assert tagging.parse_tag("app-20260121-101500", "%Y%m%d-%H%M") is None


def test_roundtrip_every_supported_directive():
    fmt = "%y.%j-%H%M%S"
    name = tagging.format_tag("a-b", WHEN, fmt, 3)
    assert name == "a-b-26.021-101500_C"
    parsed = tagging.parse_tag(name, fmt)
    assert parsed.prefix == "a-b" and parsed.index == 3


# -- markers -----------------------------------------------------------------

def test_marker_names():
    assert tagging.marker_for("prod-20260121-101500") == "prod-20260121-101500_reverted"
    assert tagging.is_marker("prod-20260121-101500_reverted")
    assert not tagging.is_marker("prod-20260121-101500")
    assert not tagging.is_marker("_reverted")
    assert tagging.marked_tag("prod-20260121-101500_reverted") == "prod-20260121-101500"
    with pytest.raises(ValueError):
        tagging.marked_tag("prod-20260121-101500")


def test_marker_name_must_stay_a_plain_name():
    with pytest.raises(InvalidName):
        tagging.marker_for("a" * 125)


# -- ordering ----------------------------------------------------------------

NAMES = {
    "prod-20260101-090000",
    "prod-20260102-090000",
    "prod-20260102-090000_A",
    "prod-20260102-090000_B",
    "prod-20260102-090000_B_reverted",
    "prod-20260103-120000",
    "prod-20260103-120000_reverted",
    "prod-eu-20260110-000000",
    "staging-20260120-000000",
    "v1.0",
}


def test_rollouts_newest_first_with_reverted_flags():
    listed = [(p.name, reverted) for p, reverted in tagging.rollouts(NAMES, "prod")]
    assert listed == [
        ("prod-20260103-120000", True),
        ("prod-20260102-090000_B", True),
        ("prod-20260102-090000_A", False),
        ("prod-20260102-090000", False),
        ("prod-20260101-090000", False),
    ]


def test_rollouts_of_every_prefix():
    listed = [p.name for p, _r in tagging.rollouts(NAMES)]
    assert listed[:3] == ["staging-20260120-000000", "prod-eu-20260110-000000", "prod-20260103-120000"]
    assert "v1.0" not in listed
    assert not any(name.endswith("_reverted") for name in listed)


def test_suffix_ordering_beyond_z():
    names = {"p-20260101-000000" + tagging.collision_suffix(i) for i in range(0, 30)}
    listed = [p.index for p, _r in tagging.rollouts(names, "p")]
    assert listed == list(range(29, -1, -1))


def test_last_rollout_skips_reverted_tags():
    assert tagging.last_rollout(NAMES, "prod") == "prod-20260102-090000_A"
    assert tagging.last_rollout(NAMES, "prod-eu") == "prod-eu-20260110-000000"
    assert tagging.last_rollout(NAMES, "qa") is None
    assert tagging.live_rollouts(NAMES, "prod") == [
        "prod-20260102-090000_A", "prod-20260102-090000", "prod-20260101-090000"]


def test_rollout_before():
    assert tagging.rollout_before(NAMES, "prod", "prod-20260102-090000_A") == "prod-20260102-090000"
    assert tagging.rollout_before(NAMES, "prod", "prod-20260103-120000") == "prod-20260102-090000_A"
    assert tagging.rollout_before(NAMES, "prod", "prod-20260101-090000") is None
    assert tagging.rollout_before(NAMES, "prod", "v1.0") is None


# -- deploy files ------------------------------------------------------------

def test_render_deploy_file_fields_blank_line_message():
    text = tagging.render_deploy_file(
        tagging.deploy_fields("7e25a770901c9b1eb75ad1511580a98acff4ad60", "sheep-20080827-141958",
                              datetime.datetime(2008, 8, 27, 14, 19, 58), "bountiful.farm.com", "rafael",
                              "sheep", "d-42"),
        tagging.expand_message("rollout of %TAG", "sheep-20080827-141958"),
    )
    assert text == (
        "commit: 7e25a770901c9b1eb75ad1511580a98acff4ad60\n"
        "tag: sheep-20080827-141958\n"
        "deploy-date: 2008-08-27 14:19:58\n"
        "deployed-from: bountiful.farm.com\n"
        "deployed-by: rafael\n"
        "environment: sheep\n"
        "deploy-id: d-42\n"
        "\n"
        "rollout of sheep-20080827-141958\n"
    )


def test_render_leaves_out_empty_fields_and_parse_reads_it_back():
    text = tagging.render_deploy_file(
        tagging.deploy_fields("abc", "prod-20260121-101500", WHEN, "ctl", "alice", "prod", None),
        "line one\n\nline three\n",
    )
    assert "deploy-id" not in text
    fields, message = tagging.parse_deploy_file(text)
    assert list(fields) == ["commit", "tag", "deploy-date", "deployed-from", "deployed-by", "environment"]
    assert fields["deploy-date"] == "2026-01-21 10:15:00"
    assert message == "line one\n\nline three\n"
    assert tagging.subject(text) == "line one"


def test_render_refuses_multi_line_values():
    with pytest.raises(ValueError):
        tagging.render_deploy_file([("deployed-by", "alice\ncommit: evil")], "m")
    with pytest.raises(ValueError):
        tagging.check_field("a\rb", "deploy_id")


def test_parse_deploy_file_of_other_messages():
    assert tagging.parse_deploy_file("Release 1.0\n\nnotes") == ({}, "Release 1.0\n\nnotes")
    assert tagging.parse_deploy_file("tag: x\n\nno commit field")[0] == {}
    assert tagging.subject("Release 1.0\nmore") == "Release 1.0"
    assert tagging.subject("") == ""


def test_revert_fields_and_default_message():
    fields = dict(tagging.revert_fields("c1", "prod-2", "prod-1", "c0", WHEN, "ctl", "bob", "prod", None))
    assert fields["reverted-to"] == "prod-1"
    assert fields["revert-date"] == "2026-01-21 10:15:00"
    message = tagging.expand_message(tagging.default_message("prod", "bob"), "prod-20260121-101500")
    assert message == "rollout of prod-20260121-101500 to prod by bob"


def test_tags_to_prune_keeps_the_newest_and_the_protected_and_takes_markers_along():
    names = ["prod-20261201-100000", "prod-20261202-100000", "prod-20261202-100000_reverted", "prod-20261203-100000",
             "prod-20261204-100000", "prod-20261204-100000_A", "staging-20261101-100000", "v1.0"]
    assert tagging.tags_to_prune(names, "prod", 2) == [
        "prod-20261203-100000", "prod-20261202-100000", "prod-20261202-100000_reverted", "prod-20261201-100000"]
    assert tagging.tags_to_prune(names, "prod", 2, protected={"prod-20261202-100000"}) == [
        "prod-20261203-100000", "prod-20261201-100000"]
    assert tagging.tags_to_prune(names, "prod", 0) == [] and tagging.tags_to_prune(names, "prod", 9) == []
    assert tagging.tags_to_prune(["p-2026-12-01", "p-2026-12-02"], "p", 1, date_format="%Y-%m-%d") == ["p-2026-12-01"]


# -- Perl git-deploy's tags ----------------------------------------------------

def test_perl_tags_are_rollouts_whatever_the_date_format():
    for fmt in (tagging.DEFAULT_DATE_FORMAT, "%Y.%m.%d-%H%M%S", tagging.PERL_DATE_FORMAT):
        parsed = tagging.parse_tag("sheep-20081224-1530_B", fmt)
        assert (parsed.prefix, parsed.date, parsed.index) == ("sheep", datetime.datetime(2008, 12, 24, 15, 30), 2)
    assert tagging.parse_tag("sheep-20081224-1530_reverted").marker is True


def test_perl_and_new_tags_sort_by_their_dates():
    names = {"prod-20081224-1530", "prod-20261121-101500", "prod-20261121-1014", "prod-20081224-1530_reverted",
             "prod-20081223-0900"}
    assert tagging.live_rollouts(names, "prod") == ["prod-20261121-101500", "prod-20261121-1014",
                                                    "prod-20081223-0900"]
    assert tagging.rollout_before(names, "prod", "prod-20261121-101500") == "prod-20261121-1014"
    assert tagging.tags_to_prune(names, "prod", 1, protected={"prod-20081223-0900"}) == [
        "prod-20261121-1014", "prod-20081224-1530", "prod-20081224-1530_reverted"]


def test_a_custom_date_format_orders_its_own_tags():
    fmt = "%Y.%m.%d-%H%M%S"
    names = {"prod-2026.11.21-101500", "prod-2026.11.22-090000", "prod-20261123-101500"}
    assert tagging.last_rollout(names, "prod", fmt) == "prod-2026.11.22-090000"
    assert tagging.rollout_before(names, "prod", "prod-2026.11.22-090000", fmt) == "prod-2026.11.21-101500"
