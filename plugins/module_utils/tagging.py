# -*- coding: utf-8 -*-
# Copyright: contributors to gitdeploy.rollout
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rollout tag names and deploy files: pure logic, no I/O.

A rollout tag is ``<prefix>-<date>[<suffix>]``:

* ``<prefix>`` is the environment (or ``git_deploy_tag``'s ``prefix``); it may
  itself contain ``-``, so a name is parsed from the right, using the date format;
* ``<date>`` is the rollout time in ``date_format`` (default ``%Y%m%d-%H%M%S``);
* ``<suffix>`` is empty, or ``_A`` … ``_Z``, ``_AA`` … when a name is taken
  (git-deploy's collision rule).

A tag that was reverted away from gets a marker tag ``<tag>_reverted``; a
reverted tag is never "the last rollout" of its environment.

The deploy file (``.deploy`` on the targets, and the message of the annotated
tag) is ``key: value`` lines, a blank line, then the free message::

    commit: 7e25a770901c9b1eb75ad1511580a98acff4ad60
    tag: sheep-20080827-141958
    deploy-date: 2008-08-27 14:19:58
    deployed-from: bountiful.farm.com
    deployed-by: rafael
    environment: sheep

    rollout of sheep-20080827-141958 to sheep by rafael
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import datetime
import functools
import re

from ansible_collections.gitdeploy.rollout.plugins.module_utils.layout import check_name

DEFAULT_DATE_FORMAT = "%Y%m%d-%H%M%S"
# The Perl git-deploy's tags (prod-20081224-1530): recognised whatever date_format is, so a
# fleet moved from it keeps its rollouts (revert, status, retention order).
PERL_DATE_FORMAT = "%Y%m%d-%H%M"
DEPLOY_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
MARKER_SUFFIX = "_reverted"
TAG_PLACEHOLDER = "%TAG"
DEFAULT_MESSAGE = "rollout of %TAG to {env} by {user}"

# strftime directives a rollout tag date may use: all fixed-width digits, so a
# name can be split from the right without guessing.
_DIRECTIVES = {
    "Y": r"\d{4}",
    "y": r"\d{2}",
    "m": r"\d{2}",
    "d": r"\d{2}",
    "H": r"\d{2}",
    "M": r"\d{2}",
    "S": r"\d{2}",
    "j": r"\d{3}",
}
_LITERAL_RE = re.compile(r"^[A-Za-z0-9._-]$")
_SUFFIX_RE = re.compile(r"^_([A-Z]+)$")
_FIELD_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*): ?(.*)$")

ParsedTag = collections.namedtuple("ParsedTag", "name prefix date suffix index marker base")
ParsedTag.__doc__ = """A rollout tag name split into its parts.

name: the whole name; prefix: environment/prefix; date: naive datetime of the
name's date; suffix: '' or '_A'...; index: 0 for no suffix, 1 for _A, ...;
marker: True for a '<tag>_reverted' marker; base: the name without the marker.
"""


def _date_regex(date_format):
    """Regex source for ``date_format``; ValueError for anything unsupported."""
    if not isinstance(date_format, str) or not date_format:
        raise ValueError("date_format must be a non-empty strftime format such as %r" % DEFAULT_DATE_FORMAT)
    parts = []
    directives = 0
    i = 0
    while i < len(date_format):
        char = date_format[i]
        if char == "%":
            if i + 1 >= len(date_format):
                raise ValueError("date_format %r ends with a lone '%%'" % (date_format,))
            code = date_format[i + 1]
            if code not in _DIRECTIVES:
                raise ValueError(
                    "date_format %r uses %%%s: only %s are supported (fixed-width numbers keep tag "
                    "names sortable and parseable)"
                    % (date_format, code, ", ".join("%" + k for k in sorted(_DIRECTIVES)))
                )
            parts.append(_DIRECTIVES[code])
            directives += 1
            i += 2
            continue
        if not _LITERAL_RE.match(char):
            raise ValueError(
                "date_format %r contains %r: a tag name may only use letters, digits, '.', '_' and '-'"
                % (date_format, char)
            )
        parts.append(re.escape(char))
        i += 1
    if not directives:
        raise ValueError("date_format %r has no date directive (such as %%Y)" % (date_format,))
    return "".join(parts)


def check_date_format(date_format):
    """Return ``date_format`` if tag names can be made and parsed with it, else raise ValueError."""
    _date_regex(date_format)
    return date_format


@functools.lru_cache(maxsize=16)
def _tag_regex(date_format):
    return re.compile(
        r"^(?P<prefix>.+)-(?P<date>%s)(?P<suffix>(?:_[A-Z]+)?)(?P<marker>%s)?$"
        % (_date_regex(date_format), re.escape(MARKER_SUFFIX))
    )


def collision_suffix(index):
    """'' for 0, then '_A' … '_Z' for 1 … 26, '_AA' for 27 and so on."""
    if index < 0:
        raise ValueError("suffix index must be >= 0")
    letters = ""
    while index > 0:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return "_" + letters if letters else ""


def suffix_index(suffix):
    """Inverse of :func:`collision_suffix`; ValueError for anything else."""
    if suffix == "":
        return 0
    match = _SUFFIX_RE.match(suffix or "")
    if not match:
        raise ValueError("%r is not a collision suffix (_A, _B, ... _Z, _AA, ...)" % (suffix,))
    index = 0
    for letter in match.group(1):
        index = index * 26 + (ord(letter) - ord("A") + 1)
    return index


def format_tag(prefix, moment, date_format=DEFAULT_DATE_FORMAT, index=0):
    """The rollout tag name for ``prefix`` at ``moment`` (a datetime), with collision ``index``."""
    check_name(prefix, "tag prefix")
    check_date_format(date_format)
    name = "%s-%s%s" % (prefix, moment.strftime(date_format), collision_suffix(index))
    return check_name(name, "tag")


def unique_tag(prefix, moment, existing, date_format=DEFAULT_DATE_FORMAT):
    """The first of ``<prefix>-<date>``, ``…_A``, ``…_B`` … not in ``existing`` (a set of names)."""
    index = 0
    while True:
        name = format_tag(prefix, moment, date_format, index)
        if name not in existing:
            return name
        index += 1


def parse_tag(name, date_format=DEFAULT_DATE_FORMAT):
    """A :class:`ParsedTag` for a rollout tag or marker name, or None if ``name`` is not one.

    A name is read with ``date_format``, else as a Perl git-deploy tag (:data:`PERL_DATE_FORMAT`)."""
    if not isinstance(name, str):
        return None
    for fmt in (date_format, PERL_DATE_FORMAT) if date_format != PERL_DATE_FORMAT else (date_format,):
        parsed = _parse(name, fmt)
        if parsed is not None:
            return parsed
    return None


def _parse(name, date_format):
    match = _tag_regex(date_format).match(name)
    if not match:
        return None
    try:
        date = datetime.datetime.strptime(match.group("date"), date_format)
    except ValueError:
        return None
    prefix = match.group("prefix")
    try:
        check_name(prefix, "tag prefix")
    except ValueError:
        return None
    suffix = match.group("suffix")
    marker = bool(match.group("marker"))
    base = name[: -len(MARKER_SUFFIX)] if marker else name
    return ParsedTag(name, prefix, date, suffix, suffix_index(suffix), marker, base)


def is_marker(name):
    """True if ``name`` is a revert marker ``<tag>_reverted``."""
    return isinstance(name, str) and name.endswith(MARKER_SUFFIX) and len(name) > len(MARKER_SUFFIX)


def marker_for(tag):
    """The revert marker name of ``tag``."""
    return check_name(tag + MARKER_SUFFIX, "revert marker tag")


def marked_tag(marker):
    """The tag a marker marks (``prod-…_reverted`` -> ``prod-…``)."""
    if not is_marker(marker):
        raise ValueError("%r is not a revert marker (it does not end in %s)" % (marker, MARKER_SUFFIX))
    return marker[: -len(MARKER_SUFFIX)]


def sort_key(parsed):
    """Sort key of a :class:`ParsedTag`: date in the name, then collision suffix, then name."""
    return (parsed.date, parsed.index, parsed.name)


def rollouts(names, prefix=None, date_format=DEFAULT_DATE_FORMAT):
    """Rollout tags among ``names``, newest first, as ``(ParsedTag, reverted)`` pairs.

    Markers are not listed; they set ``reverted`` on the tag they mark.
    ``prefix`` limits the list to one environment (None: every prefix).
    """
    names = set(names)
    found = []
    for name in names:
        parsed = parse_tag(name, date_format)
        if parsed is None or parsed.marker:
            continue
        if prefix is not None and parsed.prefix != prefix:
            continue
        found.append(parsed)
    found.sort(key=sort_key, reverse=True)
    return [(p, p.name + MARKER_SUFFIX in names) for p in found]


def live_rollouts(names, prefix, date_format=DEFAULT_DATE_FORMAT):
    """Names of the rollout tags of ``prefix`` that were not reverted, newest first."""
    return [p.name for p, reverted in rollouts(names, prefix, date_format) if not reverted]


def last_rollout(names, prefix, date_format=DEFAULT_DATE_FORMAT):
    """The newest rollout tag of ``prefix`` without a revert marker, or None."""
    live = live_rollouts(names, prefix, date_format)
    return live[0] if live else None


def rollout_before(names, prefix, tag, date_format=DEFAULT_DATE_FORMAT):
    """The newest non-reverted rollout tag of ``prefix`` older than ``tag``, or None."""
    target = parse_tag(tag, date_format)
    if target is None:
        return None
    for parsed, reverted in rollouts(names, prefix, date_format):
        if not reverted and sort_key(parsed) < sort_key(target):
            return parsed.name
    return None


def tags_to_prune(names, prefix, keep, protected=(), date_format=DEFAULT_DATE_FORMAT):
    """git_deploy_keep_tags: the rollout tags of ``prefix`` among ``names`` beyond the ``keep``
    newest (by the date in their name), except the ``protected`` ones, oldest last, each followed
    by its revert marker when it has one. ``keep`` 0 keeps every tag."""
    if not keep or int(keep) <= 0:
        return []
    names = set(names)
    protected = set(protected)
    found = []
    for parsed, reverted in rollouts(names, prefix, date_format)[int(keep):]:
        if parsed.name in protected:
            continue
        found.append(parsed.name)
        if reverted:
            found.append(parsed.name + MARKER_SUFFIX)
    return found


def check_field(value, what):
    """Return ``value`` as str if it fits on one deploy-file line, else raise ValueError."""
    text = "" if value is None else str(value)
    if "\n" in text or "\r" in text or any(ord(c) < 32 and c != "\t" for c in text):
        raise ValueError("%s %r must be a single line of printable text" % (what, text))
    return text.strip()


def expand_message(template, tag):
    """The free message with ``%TAG`` replaced by the tag name."""
    return (template or "").replace(TAG_PLACEHOLDER, tag)


def default_message(env, user):
    """The default free message: who rolled what out where."""
    return DEFAULT_MESSAGE.format(env=env, user=user)


def format_deploy_date(moment):
    return moment.strftime(DEPLOY_DATE_FORMAT)


def deploy_fields(commit, tag, moment, deployed_from, deployed_by, environment, deploy_id=None):
    """The ordered ``(key, value)`` fields of a rollout's deploy file."""
    return [
        ("commit", commit),
        ("tag", tag),
        ("deploy-date", format_deploy_date(moment)),
        ("deployed-from", deployed_from),
        ("deployed-by", deployed_by),
        ("environment", environment),
        ("deploy-id", deploy_id),
    ]


def revert_fields(commit, tag, reverted_to, reverted_to_commit, moment, reverted_from,
                  reverted_by, environment, deploy_id=None):
    """The ordered fields of a revert marker tag's message."""
    return [
        ("commit", commit),
        ("tag", tag),
        ("reverted-to", reverted_to),
        ("reverted-to-commit", reverted_to_commit),
        ("revert-date", format_deploy_date(moment)),
        ("reverted-from", reverted_from),
        ("reverted-by", reverted_by),
        ("environment", environment),
        ("deploy-id", deploy_id),
    ]


def render_deploy_file(fields, message):
    """Deploy file text: ``key: value`` lines (empty values left out), a blank line, the message."""
    lines = []
    for key, value in fields:
        text = check_field(value, key)
        if text:
            lines.append("%s: %s" % (key, text))
    body = (message or "").strip("\n")
    return "\n".join(lines) + "\n\n" + body + "\n"


def parse_deploy_file(text):
    """``(fields, message)`` of a deploy file; ``({}, text)`` if ``text`` is not one."""
    text = text or ""
    head, sep, message = text.partition("\n\n")
    fields = collections.OrderedDict()
    for line in head.split("\n"):
        match = _FIELD_RE.match(line)
        if not match:
            return collections.OrderedDict(), text
        fields[match.group(1)] = match.group(2)
    if not sep or "commit" not in fields:
        return collections.OrderedDict(), text
    return fields, message


def subject(text):
    """One-line summary of a tag message: the free message's first line for deploy files."""
    fields, message = parse_deploy_file(text)
    for line in (message if fields else (text or "")).splitlines():
        if line.strip():
            return line.strip()
    return ""
