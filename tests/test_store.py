"""tracker.store on real database files, layer by layer: version precedence, paper texts, tagging and review,
digest bookkeeping, recorded runs, the tracker-database check, a schema newer than the code, read-only
opening and the writer lock."""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from digest_support import corpus_records, make_week_db
from helpers import run
from sqlite_utils import Database

from tracker import store
from tracker.errors import FetchError, TrackerError
from tracker.parse import Announcement


def paper(version: int, **extra: object) -> dict:
    row = {
        "arxiv_id": "2506.04039",
        "version": version,
        "title": f"Title v{version}",
        "abstract": "An abstract.",
        "authors": ["A. Author"],
        "categories": ["cs.CV"],
        "updated": f"2025-06-0{version}T00:00:00+00:00",
    }
    return {**row, **extra}


def stored(db_path: Path, columns: str = "version, title, journal_ref") -> tuple:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(f"SELECT {columns} FROM papers WHERE arxiv_id = '2506.04039'").fetchone()
    finally:
        conn.close()


# -- version precedence -----------------------------------------------------------------------


def test_an_older_version_arriving_after_a_newer_one_never_overwrites_it(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    db = store.open_db(db_path)
    assert store.save_papers(db, [paper(2)]).new == 1
    counts = store.save_papers(db, [paper(1, journal_ref="J. Old 1 (2025)")])
    assert (counts.updated, counts.unchanged) == (0, 1)
    assert stored(db_path) == (2, "Title v2", None)
    # nor in the same batch, whatever the order
    assert store.save_papers(db, [paper(3), paper(1)]).updated == 1
    assert stored(db_path)[0] == 3


def test_the_same_version_with_new_metadata_updates_and_an_identical_one_does_not(tmp_path: Path) -> None:
    """arXiv adds a journal reference or DOI without a new version: a re-read record must bring it in."""
    db_path = tmp_path / "t.db"
    db = store.open_db(db_path)
    store.save_papers(db, [paper(2)])
    counts = store.save_papers(db, [paper(2, journal_ref="CVPR 2025", doi="10.1/x")])
    assert (counts.updated, counts.unchanged) == (1, 0)
    assert stored(db_path, "version, journal_ref, doi") == (2, "CVPR 2025", "10.1/x")
    assert store.save_papers(db, [paper(2, journal_ref="CVPR 2025", doi="10.1/x")]).unchanged == 1


def test_a_feed_stub_never_replaces_a_full_record_and_a_full_record_completes_a_stub(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    db = store.open_db(db_path)
    store.save_papers(db, [paper(2, needs_metadata=1, title="Stub", abstract="")])
    assert store.save_papers(db, [paper(2)]).updated == 1
    assert stored(db_path, "title, needs_metadata") == ("Title v2", 0)
    assert store.save_papers(db, [paper(2, needs_metadata=1, title="Stub", abstract="")]).unchanged == 1
    assert stored(db_path, "title, needs_metadata") == ("Title v2", 0)
    assert store.save_papers(db, [paper(3, needs_metadata=1, title="Stub 3", abstract="")]).updated == 1
    assert stored(db_path, "version, needs_metadata") == (3, 1)


def test_a_re_read_record_keeps_the_tags_and_a_changed_abstract_clears_tagged_by(db: Database) -> None:
    """An upsert leaves other stages' columns alone; a new text must be classified again."""
    store.save_papers(db, [paper(1)])
    db.execute("UPDATE papers SET tags = '[\"MIT\"]', tagged_by = 'model-1' WHERE arxiv_id = '2506.04039'")
    store.save_papers(db, [paper(1, doi="10.1/x")])
    assert db.execute("SELECT tags, tagged_by, doi FROM papers").fetchone() == (
        '["MIT"]',
        "model-1",
        "10.1/x",
    )
    store.save_papers(db, [paper(2)])
    assert db.execute("SELECT tags, tagged_by, version FROM papers").fetchone() == ('["MIT"]', None, 2)


def test_a_feed_announcement_stores_a_stub_and_dates_a_paper_already_held(db: Database) -> None:
    stub = {
        "arxiv_id": "2506.09999",
        "version": 1,
        "title": "Feed title",
        "abstract": "",
        "needs_metadata": 1,
    }
    items = [
        Announcement("2506.04039", 1, "replace", "2025-06-10", paper(1, needs_metadata=1)),
        Announcement("2506.09999", 1, "new", "2025-06-10", stub),  # type: ignore[arg-type]
    ]
    store.save_papers(db, [paper(1)])
    counts = store.save_announcements(db, items, "cs.CV")
    assert (counts.new, counts.unchanged) == (1, 1)
    assert store.papers_needing_metadata(db) == ["2506.09999"]
    rows = db.execute(
        "SELECT arxiv_id, announce_type, announced, needs_metadata FROM papers ORDER BY 1"
    ).fetchall()
    assert rows == [("2506.04039", "replace", "2025-06-10", 0), ("2506.09999", "new", "2025-06-10", 1)]
    assert db.table("announcements").count == 2


def test_paper_texts_returns_the_stored_ids_only_across_the_variable_limit(db: Database) -> None:
    rows = [paper(1, arxiv_id=f"2506.{n:05d}", title=f"T{n}", abstract=f"A{n}") for n in range(1, 602)]
    store.save_papers(db, rows)
    ids = [f"2506.{n:05d}" for n in range(1, 700)]  # 601 stored, 98 unknown, more than one 500-id chunk
    texts = store.paper_texts(db, ids)
    assert len(texts) == 601
    assert texts["2506.00001"] == ("T1", "A1") and texts["2506.00601"] == ("T601", "A601")
    assert "2506.00650" not in texts
    assert store.paper_exists(db, "2506.00601") and not store.paper_exists(db, "2506.00650")


# -- tagging and review ------------------------------------------------------------------------


def three_papers(db: Database) -> None:
    store.save_papers(db, [paper(1, arxiv_id=f"2506.0000{n}", title=f"Paper {n}") for n in (1, 2, 3)])


def test_tagging_round_trip_replaces_a_chunks_tags_and_marks_the_model(db: Database) -> None:
    three_papers(db)
    assert store.count_untagged(db, "m1") == 3
    chunks = list(store.iter_untagged(db, "m1", chunk_size=2))
    assert [[r[0] for r in c] for c in chunks] == [["2506.00001", "2506.00002"], ["2506.00003"]]
    store.save_tagging(
        db,
        tags=[
            ("2506.00001", "MIT", "task", 0.9, "model", "m1"),
            ("2506.00001", "VQA", "task", 0.6, "model", "m1"),
        ],
        scores=[("2506.00001", "MIT", 0.9, 0.5, "m1"), ("2506.00002", "MIT", 0.2, 0.5, "m1")],
        papers=[("2506.00001", '["MIT", "VQA"]', "m1", 0.8, 1), ("2506.00002", "[]", "m1", 0.1, 0)],
        vectors=[("2506.00001", "m1", b"\x01\0\0\0", b"\0\0\x80?"), ("2506.00002", "m1", b"", b"")],
    )
    assert [r["tag"] for r in store.paper_tag_rows(db, "2506.00001")] == ["MIT", "VQA"]
    first = {"tag": "MIT", "facet": "task", "score": 0.9, "source": "model", "model_id": "m1"}
    assert store.paper_tag_rows(db, "2506.00001")[0] == first
    assert store.count_untagged(db, "m1") == 1 and store.count_untagged(db, "m1", all_papers=True) == 3
    assert [r[0] for c in store.iter_untagged(db, "m1") for r in c] == ["2506.00003"]
    assert store.scored_tags(db) == ["MIT"] and store.stored_tags(db) == [("MIT", "task"), ("VQA", "task")]
    # a second pass over the same paper replaces, never adds
    again = [("2506.00001", "VQA", "task", 0.7, "model", "m2")]
    store.save_tagging(db, again, [], [("2506.00001", '["VQA"]', "m2", 0.8, 1)])
    assert [(r["tag"], r["model_id"]) for r in store.paper_tag_rows(db, "2506.00001")] == [("VQA", "m2")]
    marked = db.execute("SELECT tags, tagged_by FROM papers WHERE arxiv_id = '2506.00001'").fetchone()
    assert marked == ('["VQA"]', "m2")


def test_a_paper_tagged_before_vectors_were_kept_is_tagged_again_to_get_one(db: Database) -> None:
    """A database from before issue 15 has tags but no paper vectors: the next classify must visit
    those papers, or they never get neighbours nor count for readers' libraries."""
    three_papers(db)
    store.save_tagging(db, [], [], [(f"2506.0000{n}", "[]", "m1", 0.1, 0) for n in (1, 2, 3)])
    assert store.count_untagged(db, "m1") == 3
    vector = ("m1", b"\x01\0\0\0", b"\0\0\x80?")
    store.save_tagging(db, [], [], [("2506.00002", "[]", "m1", 0.1, 0)], [("2506.00002", *vector)])
    assert [r[0] for c in store.iter_untagged(db, "m1") for r in c] == ["2506.00001", "2506.00003"]


def test_a_changed_vector_needs_new_neighbours_and_an_unchanged_one_keeps_them(db: Database) -> None:
    three_papers(db)
    row = ("2506.00001", "[]", "m1", 0.1, 0)
    store.save_tagging(db, [], [], [row], [("2506.00001", "m1", b"\x01\0\0\0", b"\0\0\x80?")])
    db.execute("UPDATE paper_vectors SET neighbours_by = 'm1'")
    store.save_tagging(db, [], [], [row], [("2506.00001", "m1", b"\x01\0\0\0", b"\0\0\x80?")])
    assert db.execute("SELECT neighbours_by FROM paper_vectors").fetchall() == [("m1",)]
    store.save_tagging(db, [], [], [row], [("2506.00001", "m1", b"\x02\0\0\0", b"\0\0\x80?")])
    assert db.execute("SELECT neighbours_by FROM paper_vectors").fetchall() == [(None,)]


def test_a_manual_label_applies_at_once_and_a_removal_takes_the_tag_away(db: Database) -> None:
    three_papers(db)
    store.save_manual_label(db, "2506.00001", "MIT", "task", "add")
    assert store.paper_tag_rows(db, "2506.00001")[0]["source"] == "manual"
    assert db.execute("SELECT tags FROM papers WHERE arxiv_id = '2506.00001'").fetchone() == ('["MIT"]',)
    store.save_manual_label(db, "2506.00001", "MIT", "task", "remove")
    assert store.paper_tag_rows(db, "2506.00001") == []
    # one row per (paper, tag): the last word counts
    assert store.manual_labels(db) == [("2506.00001", "MIT", "remove")]


def test_review_candidates_nearest_the_threshold_first_without_labelled_or_stale_scores(db: Database) -> None:
    three_papers(db)
    store.save_tagging(
        db,
        tags=[],
        scores=[
            ("2506.00001", "MIT", 0.45, 0.5, "m1"),
            ("2506.00002", "MIT", 0.1, 0.5, "m1"),
            ("2506.00003", "MIT", 0.5, 0.5, "m0"),
        ],
        papers=[("2506.00001", "[]", "m1", 0.5, 0), ("2506.00002", "[]", "m1", 0.5, 0)],
    )
    found = store.review_candidates(db, ["MIT"], limit=10)
    # 2506.00003's score is from a model that did not tag it last, so it does not count
    assert [(c.arxiv_id, c.score) for c in found] == [("2506.00001", 0.45), ("2506.00002", 0.1)]
    store.save_manual_label(db, "2506.00001", "MIT", "task", "add")
    assert [c.arxiv_id for c in store.review_candidates(db, ["MIT"], limit=10)] == ["2506.00002"]
    assert store.review_candidates(db, [], limit=10) == []


# -- digests -----------------------------------------------------------------------------------


def test_digest_bookkeeping_counts_attempts_and_remembers_what_was_sent(db: Database) -> None:
    assert store.save_subscriber(db, "a@example.org", ["MIT", "MIT", "VQA"]) is True
    assert store.save_subscriber(db, "a@example.org", []) is False
    assert store.list_subscribers(db) == [("a@example.org", [])]
    assert store.digest_record(db, "a@example.org", "2026-W47") is None
    assert store.begin_digest(db, "a@example.org", "2026-W47", "<m1@x>") == 1
    assert store.begin_digest(db, "a@example.org", "2026-W47", None) == 2  # a retry keeps the Message-ID
    record = store.digest_record(db, "a@example.org", "2026-W47")
    assert record is not None and (record["state"], record["message_id"]) == ("sending", "<m1@x>")
    store.finish_digest(db, "a@example.org", "2026-W47", "sent", [("2506.00001", 2), ("2506.00002", 1)])
    record = store.digest_record(db, "a@example.org", "2026-W47")
    assert record is not None and (record["state"], record["papers"], record["attempts"]) == ("sent", 2, 2)
    assert store.sent_versions(db, "a@example.org") == {"2506.00001": 2, "2506.00002": 1}
    assert [r["window"] for r in store.recent_digests(db)] == ["2026-W47"]
    assert store.delete_subscriber(db, "a@example.org") and not store.delete_subscriber(db, "a@example.org")
    assert store.sent_versions(db, "a@example.org")  # history stays, so a re-subscribe does not resend


# -- recorded runs -----------------------------------------------------------------------------


def runs(db: Database) -> list[tuple]:
    return db.execute(
        "SELECT status, new, updated, requests, error, finished IS NOT NULL FROM sync_runs"
    ).fetchall()


def test_a_recorded_run_closes_ok_or_empty_with_its_counts_and_requests(db: Database) -> None:
    made = [3]
    with store.recorded_run(
        db, "api", "cat:cs.CV", "2026-11-17", "2026-11-18", requests=lambda: made[0]
    ) as run:
        assert runs(db) == [("running", 0, 0, 0, None, 0)]
        run.counts += store.Counts(new=2, updated=1)
        made[0] += 4
    with store.recorded_run(db, "rss", "cs.CV", None, None):
        pass
    assert runs(db) == [("ok", 2, 1, 4, None, 1), ("empty", 0, 0, 0, None, 1)]


@pytest.mark.parametrize(
    ("error", "recorded"),
    [
        (FetchError("export.arxiv.org: HTTP 503"), "export.arxiv.org: HTTP 503"),
        (KeyboardInterrupt(), "interrupted"),
        (ValueError("bad"), "ValueError: bad"),
    ],
)
def test_a_recorded_run_is_marked_failed_and_the_exception_goes_on(
    db: Database, error: BaseException, recorded: str
) -> None:
    with pytest.raises(type(error)), store.recorded_run(db, "oai", "key", None, None) as run:
        run.counts += store.Counts(new=5)
        raise error
    assert runs(db) == [("failed", 5, 0, 0, recorded, 1)]
    assert store.sync_run_summary(db)["last_failed"]["error"] == recorded  # type: ignore[index]
    assert store.mark_abandoned_runs(db) == 0  # nothing left 'running'


# -- the tracker-database check ----------------------------------------------------------------


def foreign_database(path: Path) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("opener", [store.open_db, store.open_existing, store.open_readonly])
def test_another_programs_sqlite_file_is_refused_by_every_opener_and_left_untouched(
    db_path: Path, opener: Any
) -> None:
    before = foreign_database(db_path)
    with pytest.raises(
        TrackerError, match=r"tracker\.db: not a tracker database \(it holds other tables: notes\)"
    ):
        opener(db_path)
    assert db_path.read_bytes() == before and not Path(f"{db_path}-wal").exists()


def test_an_empty_file_becomes_a_tracker_database_and_is_accepted_again(db_path: Path) -> None:
    db_path.touch()
    store.open_db(db_path).close()
    store.open_readonly(db_path).close()
    db = store.open_existing(db_path)
    store.check_tracker_database(db, db_path)
    assert "papers" in db.table_names()


# -- a schema newer than the code -------------------------------------------------------------


def dump(db_path: Path) -> list[str]:
    conn = sqlite3.connect(db_path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def add_future_migration(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('tracker', 'm099_future', 'x')"
        )
    conn.close()


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "--no-feed", "--load", "PAGE"],
        ["status"],
        ["export"],
        ["digest", "--week", "2026-W47"],
        ["classify"],
        ["label", "2506.04039", "MIT"],
        ["subscribe", "me@example.org"],
    ],
)
def test_a_database_from_a_newer_tracker_is_refused_in_one_line_before_anything_is_written(
    tmp_path: Path, args: list[str]
) -> None:
    db_path = tmp_path / "t.db"
    store.save_papers(store.open_db(db_path), [paper(1)])
    add_future_migration(db_path)
    before = dump(db_path)
    page = Path(__file__).parent / "fixtures" / "api"
    args = [str(next(page.glob("*.xml"))) if a == "PAGE" else a for a in args]
    result = run(args[0], db_path, *args[1:])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {db_path} was written by a newer tracker (migration m099_future unknown); upgrade tracker\n"
    )
    assert dump(db_path) == before


# -- read commands on a database they cannot write ---------------------------------------------


def journal_mode(db_path: Path) -> str:
    conn = sqlite3.connect(db_path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def delete_mode_db(tmp_path: Path) -> Path:
    db_path = make_week_db(tmp_path / "t.db", corpus_records(5), day="2026-11-18")
    gc.collect()  # close the builder's connections
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    assert journal_mode(db_path) == "delete"
    return db_path


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--now", "2026-11-19T12:00:00+00:00"],
        ["export", "--format", "csv"],
        ["digest", "--week", "2026-W47"],
        ["digest", "--week", "2026-W47", "--out", "OUT.html"],
        ["explain", "2506.04039"],
        ["public-copy", "OUT.db"],  # a cold review found it (and serve) switching the source to WAL
        ["similar", "2506.04039"],
        ["library", "me@example.org"],
        ["recommend", "--for", "me@example.org", "--week", "2026-W47"],
    ],
)
def test_read_commands_never_switch_the_journal_mode(
    delete_mode_db: Path, tmp_path: Path, args: list[str]
) -> None:
    before = delete_mode_db.read_bytes()
    result = run(
        args[0], delete_mode_db, *[str(tmp_path / a) if a.startswith("OUT.") else a for a in args[1:]]
    )
    assert "Traceback" not in result.stderr
    assert "cannot open" not in result.stderr and "readonly" not in result.stderr
    assert journal_mode(delete_mode_db) == "delete"
    assert delete_mode_db.read_bytes() == before


@pytest.fixture
def unwritable_db() -> Iterator[Path]:
    """A database (WAL, as the nightly job leaves it) in a folder the test's unprivileged user cannot write."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run a command as another user")
    folder = Path(tempfile.mkdtemp(dir="/tmp", prefix="tracker-ro-"))
    try:
        db_path = make_week_db(folder / "t.db", corpus_records(5), day="2026-11-18")
        gc.collect()  # close the builder's connections: the last one checkpoints and removes the -wal file
        assert journal_mode(db_path) == "wal" and not Path(f"{db_path}-wal").exists()
        db_path.chmod(0o444)
        folder.chmod(0o555)
        yield db_path
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            sys.executable,
            "-m",
            "tracker",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={**os.environ, "TRACKER_AUTH": "/nonexistent/auth.json"},
    )


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--now", "2026-11-19T12:00:00+00:00"],
        ["export", "--format", "jsonl"],
        ["digest", "--week", "2026-W47"],
    ],
)
def test_read_commands_work_on_a_database_the_user_cannot_write(unwritable_db: Path, args: list[str]) -> None:
    before = unwritable_db.read_bytes()
    result = as_nobody(args[0], str(unwritable_db), *args[1:])
    assert "Traceback" not in result.stderr
    assert "database" not in result.stderr.lower(), result.stderr
    assert result.stdout.strip()
    assert unwritable_db.read_bytes() == before


def test_a_write_command_on_a_database_the_user_cannot_write_fails_in_one_line(unwritable_db: Path) -> None:
    result = as_nobody("label", str(unwritable_db), "2506.04039", "MIT")
    assert result.returncode != 0
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr


# -- the writer lock's advice ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "advice"),
    [
        (["label", "DB", "2506.04039", "MIT"], False),
        (["classify", "DB"], False),
        (["subscribe", "DB", "me@example.org"], True),
        (["sync", "DB", "--no-feed", "--load", "PAGE"], True),
    ],
)
def test_only_commands_with_wait_suggest_it_when_the_database_is_locked(
    tmp_path: Path, args: list[str], advice: bool
) -> None:
    db_path = tmp_path / "t.db"
    store.save_papers(store.open_db(db_path), [paper(1)])
    page = str(next((Path(__file__).parent / "fixtures" / "api").glob("*.xml")))
    with store.writer_lock(db_path):
        result = run(*[str(db_path) if a == "DB" else page if a == "PAGE" else a for a in args])
    assert result.exit_code == 75
    assert "is being written by another tracker process" in result.stderr and result.stderr.count("\n") == 1
    assert ("--wait SECONDS" in result.stderr) == advice
