"""tracker.store on real database files: version precedence, a schema newer than the code, read-only opening."""

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

import pytest
from digest_support import corpus_records, make_week_db
from helpers import run

from tracker import store


def paper(version: int, **extra: object) -> dict:
    row = {"arxiv_id": "2506.04039", "version": version, "title": f"Title v{version}", "abstract": "An abstract.",
           "authors": ["A. Author"], "categories": ["cs.CV"], "updated": f"2025-06-0{version}T00:00:00+00:00"}  # fmt: skip
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
    ],
)
def test_read_commands_never_switch_the_journal_mode(
    delete_mode_db: Path, tmp_path: Path, args: list[str]
) -> None:
    before = delete_mode_db.read_bytes()
    result = run(args[0], delete_mode_db, *[str(tmp_path / a) if a == "OUT.html" else a for a in args[1:]])
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
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m", "tracker", *args],
        capture_output=True, text=True, timeout=120, cwd="/", env={**os.environ, "TRACKER_AUTH": "/nonexistent/auth.json"},
    )  # fmt: skip


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
