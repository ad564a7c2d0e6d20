import datetime
import json
import os
import stat

import pytest

from ansible_collections.gitdeploy.rollout.plugins.module_utils import journal

WHEN = datetime.datetime(2026, 11, 21, 10, 15, 0, tzinfo=datetime.timezone.utc)


def test_line_has_timestamp_fields_in_order_and_one_line():
    line = journal.format_line("hook said\nhello", when=WHEN, phase="pre-sync", env="prod", id="42", tag="prod-1")
    assert line == "2026-11-21T10:15:00Z id=42 env=prod tag=prod-1 phase=pre-sync hook said hello\n"


def test_empty_fields_are_left_out():
    assert journal.format_line("x", when=WHEN, user="", env=None) == "2026-11-21T10:15:00Z x\n"


def test_append_creates_files_not_world_writable(tmp_path):
    path = tmp_path / "logs" / "a.log"
    old = os.umask(0)
    try:
        journal.log(str(path), "one", env="prod")
        journal.log(str(path), "two", env="prod")
    finally:
        os.umask(old)
    assert path.read_text().count("\n") == 2
    assert not stat.S_IMODE(path.stat().st_mode) & stat.S_IWOTH
    assert not stat.S_IMODE(path.parent.stat().st_mode) & stat.S_IWOTH


def test_history_round_trip_survives_corrupt_lines(tmp_path):
    path = tmp_path / "history.jsonl"
    journal.append_history(str(path), {"tag": "a", "result": "success"})
    with open(path, "a") as handle:
        handle.write("{not json\n[1, 2]\n\n")
    journal.append_history(str(path), {"tag": "b", "result": "failed"})
    records, corrupt = journal.read_history(str(path))
    assert [r["tag"] for r in records] == ["a", "b"]
    assert corrupt == 2


def test_a_record_after_a_line_cut_short_starts_on_its_own_line(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text('{"tag": "a", "result": "success"}\n{"tag": "cut", "resu')
    journal.append_history(str(path), {"tag": "b", "result": "success"})
    records, corrupt = journal.read_history(str(path))
    assert [r["tag"] for r in records] == ["a", "b"]
    assert corrupt == 1
    assert path.read_text().startswith('{"tag": "a", "result": "success"}\n{"tag": "cut", "resu\n')


def test_an_empty_history_gets_no_leading_blank_line(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text("")
    journal.append_history(str(path), {"tag": "a"})
    assert path.read_text() == '{"tag": "a"}\n'


def test_missing_history_is_empty(tmp_path):
    assert journal.read_history(str(tmp_path / "none")) == ([], 0)


def _rec(tag, action="deploy", result="success", previous=None):
    return {"tag": tag, "action": action, "result": result, "previous_tag": previous}


def test_previous_is_newest_other_success():
    records = [_rec("a"), _rec("b"), _rec("c", result="rolled_back"), _rec("d")]
    assert journal.previous_live_tag(records, "d") == "b"


def test_revert_twice_goes_further_back_not_back_to_the_bad_one():
    records = [_rec("z"), _rec("a"), _rec("b"), _rec("a", action="revert", previous="b")]
    assert journal.previous_live_tag(records, "a") == "z"


def test_bad_releases_are_those_whose_newest_rollout_failed_or_was_rolled_back():
    records = [_rec("a"), _rec("b"), _rec("c", result="rolled_back"), _rec("d", result="failed"),
               _rec("e", result="rolled_back"), _rec("e"), _rec("x", action="abort", result="aborted")]
    bad = journal.bad_tags(records)
    assert sorted(bad) == ["c", "d"] and bad["c"]["result"] == "rolled_back"
    # A release that succeeded once and failed later is bad: previous skips it.
    records = [_rec("a"), _rec("b"), _rec("c"), _rec("b", result="rolled_back"), _rec("d", result="failed")]
    assert journal.previous_live_tag(records, "c") == "a"
    assert journal.bad_since(records, "a") == ["d", "b"]
    assert journal.bad_since([_rec("a"), _rec("b")], "a") == []


def test_no_previous():
    assert journal.previous_live_tag([_rec("a")], "a") is None
    assert json.dumps(journal.previous_live_tag([], None)) == "null"


def _done(tag, result="success", previous=None, action="deploy"):
    return {"tag": tag, "result": result, "previous_tag": previous, "action": action}


@pytest.mark.parametrize("records, settled", [
    ([], None),
    ([_done("a")], "a"),
    ([_done("a"), _done("b", result="rolled_back", previous="a")], "a"),
    # A crash then `unlock force` (aborted) or a failure without rollback settle nothing.
    ([_done("a"), _done("b", result="aborted")], "a"),
    ([_done("a"), _done("b", result="failed", previous="a")], "a"),
    ([_done("a"), _done("b"), _done("a", action="revert")], "a"),
    ([_done("b", result="aborted")], None),
    # A rollback from nothing (first rollout) says nothing either.
    ([_done("a"), _done("b", result="rolled_back", previous="")], "a"),
])
def test_settled_tag_is_what_the_newest_finished_rollout_left_live(records, settled):
    assert journal.settled_tag(records) == settled


# -- archiving the active log ---------------------------------------------------------

def test_archive_appends_the_active_log_then_removes_it(tmp_path):
    active, archive = tmp_path / "logs" / "active.log", tmp_path / "logs" / "archive.log"
    active.parent.mkdir()
    archive.write_text("older rollout\n")
    active.write_bytes(b"line %d\n" * 1 + b"x" * (3 * 1024 * 1024 + 7))
    content = active.read_bytes()
    assert journal.archive(str(active), str(archive), chunk=1024 * 1024) is True
    assert archive.read_bytes() == b"older rollout\n" + content
    assert not active.exists()
    assert journal.archive(str(active), str(archive)) is False  # nothing to archive


def test_short_writes_are_written_out(tmp_path, monkeypatch):
    active, archive = tmp_path / "active.log", tmp_path / "archive.log"
    active.write_bytes(b"0123456789" * 1000)
    real_write = os.write

    def dribble(fd, data):  # a full pipe or a signal: a few bytes at a time
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(journal.os, "write", dribble)
    assert journal.archive(str(active), str(archive), chunk=4096)
    assert archive.read_bytes() == b"0123456789" * 1000


def test_a_failed_archive_keeps_the_active_log(tmp_path, monkeypatch):
    active, archive = tmp_path / "active.log", tmp_path / "archive.log"
    active.write_bytes(b"every line matters\n" * 100)
    written = []
    real_write = os.write

    def full_disk(fd, data):
        if written:
            raise OSError(28, "No space left on device")
        written.append(len(data))
        return real_write(fd, bytes(data[:10]))

    monkeypatch.setattr(journal.os, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        journal.archive(str(active), str(archive), chunk=64)
    assert active.read_bytes() == b"every line matters\n" * 100  # nothing lost
    # A directory where the archive should be: the same, nothing is removed.
    monkeypatch.undo()
    other = tmp_path / "dir.log"
    other.mkdir()
    with pytest.raises(OSError):
        journal.archive(str(active), str(other))
    assert active.exists()


def test_a_field_is_one_word_so_no_log_line_can_be_forged():
    line = journal.format_line("hello", when=WHEN, user="mallory\n2026-11-21T10:15:00Z id=x phase=switch done",
                               tag="prod 1")
    assert line.count("\n") == 1 and line.endswith("hello\n")
    assert "user=mallory_2026-11-21T10:15:00Z_id=x_phase=switch_done tag=prod_1 hello" in line


def test_history_and_archive_reach_the_disk(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real_fsync(fd)

    monkeypatch.setattr(journal.os, "fsync", fsync)
    history = tmp_path / "state" / "history.jsonl"
    journal.append_history(str(history), {"id": "1"})
    assert synced == [False, True]  # the record, then the new file's directory entry
    del synced[:]
    journal.append_history(str(history), {"id": "2"})
    assert synced == [False]
    del synced[:]
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "active.log").write_text("line\n")
    journal.archive(str(tmp_path / "logs" / "active.log"), str(tmp_path / "logs" / "archive.log"))
    assert synced == [False, True]  # the archive, then the directory (the active log is gone)
