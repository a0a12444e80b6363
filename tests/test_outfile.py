"""`--out FILE` is written whole through a temporary file and a rename, and never replaces a database."""

from __future__ import annotations

import gc
import os
import sqlite3
from pathlib import Path

import pytest
from digest_support import corpus_records, make_week_db
from helpers import run

NOW = "2026-11-23T11:00:00+00:00"


def digest_to(db_path: Path, out: Path):
    return run("digest", db_path, "--week", "2026-W47", "--out", out, "--now", NOW)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = make_week_db(tmp_path / "t.db", corpus_records(5))
    gc.collect()  # close the builder's connections, so the file holds everything
    return path


def other_database(path: Path) -> Path:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.close()
    return path


@pytest.mark.parametrize("name", ["d.html", "d.eml"])
def test_digest_out_through_a_symlink_to_the_database_is_refused(
    db_path: Path, tmp_path: Path, name: str
) -> None:
    link = tmp_path / name
    link.symlink_to(db_path)
    before = db_path.read_bytes()
    result = digest_to(db_path, link)
    assert result.exit_code == 2  # a usage mistake (ConfigError)
    assert result.stderr.startswith("Error: --out ") and result.stderr.count("\n") == 1
    assert db_path.read_bytes() == before and link.is_symlink()


def test_digest_out_never_replaces_another_sqlite_file_even_through_a_symlink(
    db_path: Path, tmp_path: Path
) -> None:
    other = other_database(tmp_path / "notes.db")
    before = other.read_bytes()
    link = tmp_path / "d.html"
    link.symlink_to(other)
    for out in (link, other.rename(tmp_path / "notes.html")):
        if out == link:  # the link now dangles: point it at the renamed file
            link.unlink()
            link.symlink_to(tmp_path / "notes.html")
        result = digest_to(db_path, out)
        assert result.exit_code == 2  # a usage mistake (ConfigError)
        assert "is a SQLite database; refusing to replace it" in result.stderr
        assert result.stderr.count("\n") == 1
        assert (tmp_path / "notes.html").read_bytes() == before


def test_digest_out_replaces_the_file_a_symlink_points_to_and_leaves_no_temporary_file(
    db_path: Path, tmp_path: Path
) -> None:
    real = tmp_path / "pages" / "week.html"
    real.parent.mkdir()
    real.write_text("last week")
    real.chmod(0o640)
    link = tmp_path / "d.html"
    link.symlink_to(real)
    assert digest_to(db_path, link).exit_code == 0
    assert link.is_symlink() and "<html" in real.read_text()
    assert oct(real.stat().st_mode & 0o777) == oct(0o640)  # replacing a file keeps its mode
    assert sorted(os.listdir(real.parent)) == ["week.html"]


def test_a_failed_digest_out_keeps_the_old_file(db_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.txt"
    out.write_text("old")
    result = digest_to(db_path, out)
    assert result.exit_code == 2 and "expected a file name ending in .eml or .html" in result.stderr
    assert out.read_text() == "old" and sorted(os.listdir(tmp_path)) == sorted(
        ["d.txt", *_db_files(tmp_path)]
    )


def _db_files(folder: Path) -> list[str]:
    return [n for n in os.listdir(folder) if n.startswith("t.db")]
