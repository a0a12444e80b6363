"""What of a tracker database may be shown to others, and a publishable copy holding only that.

The rule is an allow-list: the papers, their authors, versions, announcements, tags, scores and similar
papers, the search index, and the sync log without its queries and errors. Everything else (subscribers,
digests and the papers mailed to each address, readers' libraries and models, the sync and backfill
state, and any table a later migration adds) is private until it is listed here. `tracker serve`
enforces this with an SQLite authorizer (tracker/defaults/db/plugins/tracker_readonly.py calls
`read_verdict` for every column a statement reads), and `tracker public-copy` writes a copy of the file
that holds nothing else.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tracker.errors import InputError, TrackerError

# Tables of paper data: what the Datasette pages, canned queries, feeds and plugins read.
PAPER_TABLES = frozenset(
    {
        "papers",
        "authors",
        "paper_authors",
        "paper_versions",
        "announcements",
        "paper_tags",
        "tag_scores",
        "manual_labels",
        "similar_papers",  # each paper's nearest papers (issue 15): computed from the papers alone
        # the full-text index (content in `papers`) and its shadow tables
        "papers_fts",
        "papers_fts_data",
        "papers_fts_idx",
        "papers_fts_docsize",
        "papers_fts_config",
    }
)
# Not listed, so private (issue 15): `library` (the papers a subscriber gave as their own, which say
# what that person reads: private like `subscribers`), `reader_models` (a model fitted on that library,
# as telling) and `paper_vectors` (machinery, not paper data: large blobs that no page or query reads).
# Machinery that holds nothing about anyone: the migration log (so tracker commands can open a copy),
# the flag a bulk writer sets inside its own transaction (the FTS insert trigger reads it).
MACHINERY_TABLES = frozenset({"_sqlite_migrations", "fts_bulk"})
# The sync log is public for its counts and status; the query (a local file for `--load`) and the
# error text (paths, server answers) are withheld: a served statement reads them as NULL.
WITHHELD_COLUMNS = {"sync_runs": frozenset({"query", "error"})}
PUBLIC_TABLES = PAPER_TABLES | MACHINERY_TABLES | frozenset(WITHHELD_COLUMNS)
# SQLite's own tables (the schema, which is in the repository anyway, and planner statistics) and the
# table-valued functions the queries and Datasette use. Not `dbstat` (page-level sizes of every
# table) nor `sqlite_stmt` (the SQL of other statements on the connection).
SQLITE_PUBLIC = frozenset(
    {
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
        "sqlite_sequence",
        "sqlite_stat1",
        "sqlite_stat4",
        "json_each",
        "json_tree",
    }
)
SCHEMA_FUNCTION_PREFIX = "pragma_"  # pragma_table_info(...) and friends describe the schema, never rows


def read_verdict(table: str | None, column: str | None) -> int:
    """The authorizer answer for a statement reading `table`.`column`: SQLITE_OK, SQLITE_IGNORE or SQLITE_DENY.

    IGNORE makes SQLite read the column as NULL, wherever the statement uses it (a WHERE clause too,
    so it cannot be probed); DENY makes preparing the statement fail.
    """
    name = (table or "").lower()
    if name in PUBLIC_TABLES:
        withheld = WITHHELD_COLUMNS.get(name)
        return sqlite3.SQLITE_IGNORE if withheld and (column or "").lower() in withheld else sqlite3.SQLITE_OK
    if name in SQLITE_PUBLIC or name.startswith(SCHEMA_FUNCTION_PREFIX):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def is_public_table(table: str) -> bool:
    return table.lower() in PUBLIC_TABLES


@dataclass(frozen=True)
class CopyReport:
    papers: int
    left_out: list[str]
    size: int


def public_copy(source: Path, out: Path) -> CopyReport:
    """Write `out`: a copy of the database at `source` with only the public tables and columns.

    The copy is a consistent snapshot (SQLite's backup API, safe while a sync writes), is vacuumed so
    no deleted page keeps private bytes, and is checked before it is renamed over `out`; an earlier
    copy at `out` stays whole until then. The source is only read.
    """
    if out.exists() and (out.resolve() == source.resolve() or os.path.samefile(out, source)):
        raise InputError(f"{out}: that is the source database; name another file for the public copy")
    if out.resolve().parent == source.resolve().parent and out.name in (
        source.name + "-wal",
        source.name + "-shm",
    ):
        raise InputError(f"{out}: that is a file of the source database; name another file")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such directory")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        report = _write_copy(source, tmp)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return CopyReport(report.papers, report.left_out, out.stat().st_size)


def _write_copy(source: Path, tmp: Path) -> CopyReport:
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(tmp, isolation_level=None)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, as `datasette publish` wants
        objects = dst.execute(
            "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        left_out = sorted(name for kind, name in objects if not is_public_table(name))
        dst.execute("BEGIN")
        for kind, name in objects:
            if not is_public_table(name):
                dst.execute(f"DROP {'VIEW' if kind == 'view' else 'TABLE'} [{name}]")
        for table, columns in WITHHELD_COLUMNS.items():
            info = {row[1]: row[3] for row in dst.execute(f"PRAGMA table_info([{table}])")}
            for column in sorted(columns & set(info)):
                blank = "''" if info[column] else "NULL"  # a NOT NULL column gets an empty string
                dst.execute(f"UPDATE [{table}] SET [{column}] = {blank}")
        dst.execute("COMMIT")
        dst.execute("VACUUM")  # rewrites the file: freed pages with private rows are gone
        check_public(dst)
        papers = dst.execute("SELECT count(*) FROM papers").fetchone()[0]
    except sqlite3.Error as exc:
        raise TrackerError(f"{source}: cannot write the public copy: {exc}") from None
    finally:
        dst.close()
        src.close()
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    return CopyReport(papers, left_out, tmp.stat().st_size)


def check_public(conn: sqlite3.Connection) -> None:
    """Raise unless `conn` holds only public tables, withheld columns blank, no free pages and sound pages."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
    private = [n for n in names if not is_public_table(n) and n.lower() not in SQLITE_PUBLIC]
    if private:
        raise TrackerError(f"the public copy still holds private tables: {', '.join(private)}")
    for table, columns in WITHHELD_COLUMNS.items():
        if table in names:
            for column in columns:
                kept = conn.execute(f"SELECT count(*) FROM [{table}] WHERE coalesce([{column}], '') != ''")
                if kept.fetchone()[0]:
                    raise TrackerError(f"the public copy still holds {table}.{column}")
    if conn.execute("PRAGMA freelist_count").fetchone()[0]:
        raise TrackerError("the public copy still has free pages after VACUUM")
    verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        raise TrackerError(f"the public copy failed SQLite's integrity check: {verdict}")
