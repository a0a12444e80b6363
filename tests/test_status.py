"""`tracker status`: the report, and the exit code a monitor relies on (failed sync, stale data for
arXiv's Sunday-Thursday 20:00 US/Eastern calendar). A fixed clock throughout."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from digest_support import corpus_records, make_week_db

from tracker import status, store
from tracker.cli import cli


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "now, max_missed, expected",
    [
        # Wednesday 10:00 ET: Tuesday 20:00's mailing (feed dated Wednesday) is in; one may be missing.
        ("2026-11-18T15:00:00", 0, "2026-11-18"),
        ("2026-11-18T15:00:00", 1, "2026-11-17"),
        # Tuesday 21:00 ET: the 20:00 mailing is under an hour old, within the nightly job's grace.
        ("2026-11-18T02:00:00", 0, "2026-11-17"),
        # Saturday: no mailings Friday or Saturday, so Thursday's (feed Friday) is still the newest.
        ("2026-11-21T15:00:00", 0, "2026-11-20"),
        # Monday morning: Sunday 20:00's mailing is dated Monday.
        ("2026-11-23T12:00:00", 0, "2026-11-23"),
        # Friday after Thanksgiving (listed arXiv holiday 2026-11-26): Tuesday's mailing is the newest due.
        ("2026-11-27T15:00:00", 0, "2026-11-25"),
    ],
)
def test_expected_announcement_follows_the_calendar(now, max_missed, expected):
    assert status.expected_announcement(utc(now), max_missed) == date.fromisoformat(expected)


def test_next_digest_due_is_monday_morning_eastern():
    due = status.next_digest_due(utc("2026-11-18T15:00:00"))
    assert due.isoformat() == "2026-11-23T06:00:00-05:00"
    assert status.next_digest_due(utc("2026-11-23T12:00:00")).date() == date(2026, 11, 30)


def add_run(db_path, state: str, error: str | None = None) -> None:
    db = store.open_db(db_path)
    run_id = store.start_run(db, "api", "cat:cs.CV", "2026-11-17", "2026-11-18")
    store.finish_run(db, run_id, store.Counts(new=3), 2, state, error)


def run_status(db_path, now, *extra):
    return CliRunner().invoke(cli, ["status", str(db_path), "--now", now, *extra], catch_exceptions=False)


def test_last_success_is_shown_per_source_so_a_stale_feed_is_visible(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(5), day="2026-11-18")
    db = store.open_db(db_path)
    feed = store.start_run(db, "rss", "cs.CV", None, None)
    store.finish_run(db, feed, store.Counts(new=40, unchanged=7), 1, "ok")
    add_run(db_path, "ok")  # later nights: the API window works ...
    failed = store.start_run(db, "rss", "cs.CV", None, None)  # ... while the feed fails
    store.finish_run(db, failed, store.Counts(), 1, "failed", "feed: HTTP 503")
    followup = store.start_run(db, "api", "id_list (7 ids)", None, None)
    store.finish_run(db, followup, store.Counts(updated=7), 1, "ok")
    out = run_status(db_path, "2026-11-18T15:00:00+00:00").output
    lines = out.splitlines()
    start = lines.index("last successful sync, by source:")
    assert lines[start + 1].startswith("  rss: ") and lines[start + 1].endswith(
        "(ok; 40 new, 0 updated, 7 unchanged)"
    )
    assert lines[start + 2].startswith("  api: ") and lines[start + 2].endswith(
        "(ok; 3 new, 0 updated, 0 unchanged)"
    )
    assert not lines[start + 3].startswith("  ")  # the id_list follow-up is not a source of its own
    assert "last failure: " in out and "feed: HTTP 503" in out


def test_healthy_database_exits_zero_and_reports(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(5), day="2026-11-18")
    add_run(db_path, "ok")
    store.save_subscriber(store.open_db(db_path), "a@example.org", [])
    result = run_status(db_path, "2026-11-18T15:00:00+00:00")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "last successful sync: " in out and "(api, ok; 3 new, 0 updated, 0 unchanged)" in out
    assert "last failure: none" in out
    # The id_list follow-up that completes feed-only papers is not what a reader means by the last sync.
    db = store.open_db(db_path)
    store.finish_run(
        db, store.start_run(db, "api", "id_list (7 ids)", None, None), store.Counts(updated=7), 1, "ok"
    )
    assert (
        "(api, ok; 3 new, 0 updated, 0 unchanged)" in run_status(db_path, "2026-11-18T15:00:00+00:00").output
    )
    assert "newest paper: 2026-11-18 (from announcement); expected at least 2026-11-17" in out
    assert "  Wed 2026-11-18      5 #" in out
    assert out.count("  Wed 2026-11-") == 2  # fourteen days, two Wednesdays
    assert "next digest: 2026-W47, due Mon 2026-11-23 06:00 EST" in out
    assert "not yet sent 2026-W46: a@example.org" in out
    assert "problems: none" in out


def test_failed_last_sync_exits_non_zero_with_its_error(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(5), day="2026-11-18")
    add_run(db_path, "ok")
    add_run(db_path, "failed", "https://export.arxiv.org/api/query: 503 after 4 retries")
    result = run_status(db_path, "2026-11-18T15:00:00+00:00")
    assert result.exit_code == 1
    assert "last failure: " in result.output and "503 after 4 retries" in result.output
    assert (
        "problems: the last sync failed: https://export.arxiv.org/api/query: 503 after 4 retries"
        in result.output
    )
    # A later successful run clears the alarm; the failure stays in the report.
    add_run(db_path, "ok")
    again = run_status(db_path, "2026-11-18T15:00:00+00:00")
    assert again.exit_code == 0 and "503 after 4 retries" in again.output


def test_stale_data_exits_non_zero(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(5), day="2026-11-16")
    add_run(db_path, "ok")
    stale = run_status(db_path, "2026-11-18T15:00:00+00:00")
    assert stale.exit_code == 1
    assert "newest paper is from 2026-11-16 but arXiv's calendar says 2026-11-17 should be in" in stale.output
    # The same data on the Monday it was announced is current.
    assert run_status(db_path, "2026-11-16T15:00:00+00:00").exit_code == 0
    # Over a weekend nothing new is due: Friday's feed is still fine on Sunday afternoon.
    friday = make_week_db(tmp_path / "f.db", corpus_records(2), day="2026-11-20")
    add_run(friday, "ok")
    assert run_status(friday, "2026-11-22T18:00:00+00:00", "--max-missed", "0").exit_code == 0


def test_empty_database_is_a_problem(tmp_path):
    db_path = tmp_path / "empty.db"
    store.open_db(db_path)
    result = run_status(db_path, "2026-11-18T15:00:00+00:00")
    assert result.exit_code == 1
    assert "no sync has run yet" in result.output and "the database holds no papers" in result.output


def test_another_programs_database_is_refused_and_left_untouched(tmp_path):
    other = tmp_path / "notes.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    for args in (["status", str(other)], ["export", str(other)], ["label", str(other), "2401.00001", "MIT"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code != 0 and "notes.db: not a tracker database" in result.output
    assert other.read_bytes() == before  # no tracker tables, no WAL switch
    assert not Path(f"{other}-wal").exists()


def test_a_file_that_cannot_be_written_is_a_one_line_error(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(5), day="2026-11-18")
    result = CliRunner().invoke(
        cli,
        ["digest", str(db_path), "--week", "2026-W47", "--out", str(tmp_path / "no-such-folder" / "d.html")],
    )
    # refused before anything is written, as export refuses it (tracker/outfile.py): a usage error
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0 and "no-such-folder does not exist" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["train"],
        ["classify"],
        ["label", "2401.00001", "MIT"],
        ["explain", "2401.00001"],
        ["digest", "--week", "2026-W47"],
        ["subscribe", "a@example.org"],
        ["unsubscribe", "a@example.org"],
    ],
)
def test_a_mistyped_database_path_is_not_created(tmp_path, args):
    missing = tmp_path / "typo.db"
    result = CliRunner().invoke(cli, [args[0], str(missing), *args[1:]])
    assert (
        result.exit_code == 1 and "typo.db: no such database; create it with `tracker sync" in result.output
    )
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no database, no model, no lock file


def test_collect_status_works_without_click(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(5), day="2026-11-18")
    add_run(db_path, "failed", "HTTP 503")
    report = status.collect_status(store.open_readonly(str(db_path)), utc("2026-11-19T15:00:00"), 1)
    assert report.last_run is not None and report.last_run["status"] == "failed"
    assert len(report.per_day) == 14 and report.per_day[-1][0] == date(2026, 11, 19)
    assert report.problems[0] == "the last sync failed: HTTP 503"
