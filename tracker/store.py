"""Every read and write of the tracker database, and the lock that keeps writers to one at a time.

Commands that write open the database in WAL mode (Datasette reads while the nightly job writes) with
a busy timeout, and apply pending migrations; commands that only read open it read-only and change
nothing, so they work on a database they cannot write. A database written by a newer tracker (a
migration this code does not know) is refused before anything touches it. Multi-row writes happen
inside one transaction each, so a run killed at any instant leaves either all of a batch or none of it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from tracker.config import lock_path
from tracker.errors import LockedError, TrackerError
from tracker.migrations import migrations
from tracker.parse import Announcement, PaperRow

BUSY_TIMEOUT_MS = 30_000
_NO_WAL_INDEX = (8, 14)  # SQLITE_READONLY, SQLITE_CANTOPEN (named in the sqlite3 module from Python 3.11)
PAPER_COLUMNS = (
    "arxiv_id", "version", "title", "abstract", "authors", "primary_category", "categories",
    "published", "updated", "comment", "journal_ref", "doi", "abs_url", "pdf_url",
    "announce_type", "announced", "needs_metadata",
)  # fmt: skip


def utcnow() -> str:
    """Now, as the ISO-8601 UTC text every timestamp column holds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def open_db(path: str | Path, *, migrate: bool = True) -> Database:
    """Open (creating if needed) the database in WAL mode and bring its schema up to date."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise TrackerError(f"{path}: folder {path.parent} does not exist")
    try:
        db = Database(path)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Checked before anything writes (WAL mode, migrations): never turn another program's database into
        # a tracker one by pointing a command at it by mistake.
        tables = db.table_names()
        if tables and "_sqlite_migrations" not in tables:
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise TrackerError(f"{path}: not a tracker database (it holds other tables: {shown}); left untouched")
        check_schema(db, path)
        db.enable_wal()
        # NORMAL is safe in WAL mode: a crash can lose the last commit, never corrupt the file.
        db.execute("PRAGMA synchronous = NORMAL")
        # A 64 MiB page cache (default 2 MiB) keeps the indexes' upper pages and FTS merges in memory:
        # bulk ingest about 15 % faster at 100k papers (bench/bench_scale.py); memory is only used as touched.
        db.execute("PRAGMA cache_size = -65536")
        if migrate and migrations.pending(db):
            migrations.apply(db)
    except Exception as exc:  # sqlite3.DatabaseError: "file is not a database", etc.
        if isinstance(exc, TrackerError):
            raise
        raise TrackerError(f"{path}: cannot open database: {exc}") from None
    return db


def check_schema(db: Database, path: str | Path) -> None:
    """Refuse a database a newer tracker has migrated: this code would misread its tables or break its rows."""
    if "_sqlite_migrations" not in db.table_names():
        return
    known = {m.name for m in migrations._migrations}
    unknown = [m.name for m in migrations.applied(db) if m.name not in known]
    if unknown:
        raise TrackerError(
            f"{path} was written by a newer tracker (migration {unknown[0]} unknown); upgrade tracker"
        )


def open_readonly(db_path: str | Path) -> Database:
    """Open an existing tracker database for reading only: no journal-mode switch, no migration, no write.

    For the commands that only read (status, export, explain, digest without --send, serve), so they work on
    a database the user cannot write (another user's 0644 file). A pending migration is applied first when
    the user can write the file; otherwise reading would misread the older schema, so it is refused.
    """
    path = require_database(db_path)
    db, pending = _inspect(path)
    if pending:
        db.close()
        if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            raise TrackerError(
                f"{path}: written by an older tracker (migration {pending[0]} pending) and not writable by you; "
                "its owner upgrades it by running any tracker command on it"
            )
        open_existing(path).close()
        db, _ = _inspect(path)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return db


def _inspect(path: Path) -> tuple[Database, list[str]]:
    """A read-only connection to `path` once it is known to be a tracker database this code can read, and the
    names of its pending migrations. A SQLite file of another program is refused rather than given our tables."""
    db = _connect_readonly(path)
    try:
        tables = set(db.table_names())
        if tables and not ({"papers", "_sqlite_migrations"} & tables):
            raise TrackerError(f"{path}: not a tracker database (it has no papers table)")
        check_schema(db, path)
        return db, [m.name for m in migrations.pending(db)]
    except sqlite3.DatabaseError as exc:  # "file is not a database", etc.
        db.close()
        raise TrackerError(f"{path}: cannot open database: {exc}") from None
    except TrackerError:
        db.close()
        raise


def _connect_readonly(path: Path) -> Database:
    """A `mode=ro` connection; `immutable=1` when SQLite cannot open the WAL index in a folder we cannot write.

    A WAL database closed cleanly has no -wal/-shm files, and a read-only reader may not create them: then no
    writer is active either (its -shm would exist), so reading the file as immutable sees all of it.
    """
    uri = path.resolve().as_uri()
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            conn.close()
            # Only when the WAL index cannot be opened or created: a busy or locked database is a writer at
            # work, and reading it as immutable could see half of its transaction.
            if getattr(exc, "sqlite_errorcode", None) not in _NO_WAL_INDEX and not str(exc).startswith(
                ("unable to open", "attempt to write a readonly")
            ):
                raise
            conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise TrackerError(f"{path}: cannot open database: {exc}") from None
    return Database(conn)


@contextlib.contextmanager
def writer_lock(db_path: str | Path, wait: float = 0.0) -> Iterator[None]:
    """Hold the single-writer lock of `db_path`, waiting up to `wait` seconds before giving up.

    An advisory `flock` on `<db>.lock`: the kernel drops it when the process dies, even on SIGKILL,
    so a killed run never leaves a stale lock behind.
    """
    path = lock_path(db_path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    raise LockedError(
                        # the CLI adds ", or pass --wait SECONDS" for the commands that have that option
                        f"{db_path} is being written by another tracker process (pid {holder}); "
                        "try again when it finishes"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@dataclass
class Counts:
    """What a write did: papers new to the database, updated to a newer version, or already current."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def __iadd__(self, other: Counts) -> Counts:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self

    @property
    def total(self) -> int:
        return self.new + self.updated + self.unchanged


_UPSERT_SQL = """
INSERT INTO papers ({cols}, first_seen) VALUES ({marks}, ?)
ON CONFLICT(arxiv_id) DO UPDATE SET
    version = excluded.version, title = excluded.title, abstract = excluded.abstract,
    authors = excluded.authors, primary_category = COALESCE(excluded.primary_category, papers.primary_category),
    categories = CASE WHEN excluded.categories = '[]' THEN papers.categories ELSE excluded.categories END,
    published = COALESCE(excluded.published, papers.published), updated = COALESCE(excluded.updated, papers.updated),
    comment = excluded.comment, journal_ref = excluded.journal_ref, doi = excluded.doi,
    abs_url = excluded.abs_url, pdf_url = excluded.pdf_url,
    announce_type = COALESCE(excluded.announce_type, papers.announce_type),
    announced = COALESCE(excluded.announced, papers.announced),
    needs_metadata = excluded.needs_metadata,
    tagged_by = CASE WHEN papers.title = excluded.title AND papers.abstract = excluded.abstract
                     THEN papers.tagged_by ELSE NULL END
""".format(cols=", ".join(PAPER_COLUMNS), marks=", ".join("?" for _ in PAPER_COLUMNS))
# Which rows reach _UPSERT_SQL is decided once, by _supersedes; its COALESCEs keep what a feed stub lacks, so
# these columns keep the stored value when the incoming row has none.
_KEPT_IF_MISSING = {"primary_category", "published", "updated", "announce_type", "announced"}


def _papers_by_id(db: Database, columns: str, ids: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """Rows (arxiv_id, *columns) of those `ids` that are stored, 500 ids per query (SQLite's variable limit)."""
    id_list = list(ids)
    for start in range(0, len(id_list), 500):
        chunk = id_list[start : start + 500]
        marks = ",".join("?" for _ in chunk)
        yield from db.conn.execute(
            f"SELECT arxiv_id, {columns} FROM papers WHERE arxiv_id IN ({marks})", chunk
        )


def _existing_versions(db: Database, ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    return {
        arxiv_id: (version, stub)
        for arxiv_id, version, stub in _papers_by_id(db, "version, needs_metadata", ids)
    }


def _supersedes(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """Whether storing `new` over `old` changes it (both as column -> stored value): the one precedence rule.

    A newer version always wins and an older one never does. At the same version a feed stub never replaces
    a full record, a full record completes a stub, and a full record with other metadata updates (arXiv
    adds a journal reference or DOI without a new version); an identical one leaves the row as it is.
    """
    if old is None or new["version"] != old["version"]:
        return old is None or new["version"] > old["version"]
    if new["needs_metadata"]:
        return False
    if old["needs_metadata"]:
        return True
    return any(
        new[col] != old[col]
        for col in PAPER_COLUMNS[2:]
        if not (new[col] is None and col in _KEPT_IF_MISSING) and not (col == "categories" and new[col] == "[]")
    )


def save_papers(db: Database, rows: Iterable[PaperRow], now: str | None = None) -> Counts:
    """Upsert paper rows in one transaction, by `_supersedes`: an older version never replaces a newer one.

    Each new version is also recorded in `paper_versions`, and authors are linked many-to-many.
    """
    now = now or utcnow()
    best: dict[str, PaperRow] = {}
    for row in rows:  # the row of each id that wins over the batch's others, later rows winning ties
        seen = best.get(row["arxiv_id"])
        if seen is None or _supersedes(_stored_form(row), _stored_form(seen)):
            best[row["arxiv_id"]] = row
    counts = Counts()
    with db.atomic():  # read and write in one transaction: what was compared is what gets replaced
        existing = {
            r[0]: dict(zip(PAPER_COLUMNS, r, strict=True))
            for r in _papers_by_id(db, ", ".join(PAPER_COLUMNS[1:]), list(best))
        }
        changed: list[PaperRow] = []
        for arxiv_id, row in best.items():
            old = existing.get(arxiv_id)
            if not _supersedes(_stored_form(row), old):
                counts.unchanged += 1
                continue
            if old is None:
                counts.new += 1
            else:
                counts.updated += 1
            changed.append(row)
        if not changed:
            return counts
        new_ids = json.dumps([row["arxiv_id"] for row in changed if row["arxiv_id"] not in existing])
        db.conn.execute("INSERT INTO fts_bulk (active) VALUES (1)")
        db.conn.executemany(_UPSERT_SQL, (_paper_values(row, now) for row in changed))
        db.conn.execute("DELETE FROM fts_bulk")
        db.conn.execute(
            "INSERT INTO papers_fts (rowid, title, abstract) SELECT rowid, title, abstract FROM papers "
            "WHERE arxiv_id IN (SELECT value FROM json_each(?))",
            (new_ids,),
        )
        db.conn.executemany(
            "INSERT OR IGNORE INTO paper_versions (arxiv_id, version, updated, first_seen) VALUES (?, ?, ?, ?)",
            (
                (r["arxiv_id"], r["version"], r.get("updated"), now)
                for r in changed
                if not r.get("needs_metadata")
            ),
        )
        _link_authors(db, changed, [row["arxiv_id"] for row in changed if row["arxiv_id"] in existing])
    return counts


def _stored_form(row: PaperRow) -> dict[str, Any]:
    """`row` as the papers table would hold it (lists as JSON text, needs_metadata as 0/1)."""
    return dict(zip(PAPER_COLUMNS, _paper_values(row, ""), strict=False))


def _paper_values(row: PaperRow, now: str) -> tuple[Any, ...]:
    values: list[Any] = []
    for col in PAPER_COLUMNS:
        value = row.get(col)
        if col in ("authors", "categories"):
            value = json.dumps(value or [], ensure_ascii=False)
        elif col == "needs_metadata":
            value = 1 if value else 0
        values.append(value)
    values.append(now)
    return tuple(values)


def _link_authors(db: Database, rows: Sequence[PaperRow], known_ids: Sequence[str]) -> None:
    names = {name for row in rows for name in row.get("authors") or [] if name}
    if not names:
        return
    conn = db.conn
    conn.executemany("INSERT OR IGNORE INTO authors (name) VALUES (?)", ((n,) for n in names))
    ids: dict[str, int] = {}
    name_list = list(names)
    for start in range(0, len(name_list), 500):
        chunk = name_list[start : start + 500]
        marks = ",".join("?" for _ in chunk)
        ids.update(conn.execute(f"SELECT name, id FROM authors WHERE name IN ({marks})", chunk).fetchall())
    # Only papers that were stored before can have old links; new ones skip the DELETE.
    conn.executemany("DELETE FROM paper_authors WHERE arxiv_id = ?", ((i,) for i in known_ids))
    conn.executemany(
        "INSERT OR IGNORE INTO paper_authors (arxiv_id, author_id, position) VALUES (?, ?, ?)",
        (
            (row["arxiv_id"], ids[name], position)
            for row in rows
            for position, name in enumerate(row.get("authors") or [])
            if name in ids
        ),
    )


def save_announcements(
    db: Database, items: Sequence[Announcement], feed: str, now: str | None = None
) -> Counts:
    """Record a feed's announcements and store a stub for each paper the database lacks (or has older).

    Stubs carry `needs_metadata = 1` until `papers_needing_metadata` is fetched from the API.
    Returns counts of stub papers new / updated / unchanged, all in one transaction.
    """
    now = now or utcnow()
    with db.atomic():
        db.conn.executemany(
            "INSERT OR REPLACE INTO announcements (arxiv_id, version, announce_type, announced, feed) "
            "VALUES (?, ?, ?, ?, ?)",
            ((a.arxiv_id, a.version, a.announce_type, a.announced, feed) for a in items),
        )
        counts = save_papers(db, [a.row for a in items], now)
        # A paper we already hold at this version still gets its latest announcement type and date.
        db.conn.executemany(
            "UPDATE papers SET announce_type = ?, announced = ? WHERE arxiv_id = ? AND version <= ? "
            "AND (announced IS NULL OR announced <= ?)",
            ((a.announce_type, a.announced, a.arxiv_id, a.version, a.announced) for a in items),
        )
    return counts


def papers_needing_metadata(db: Database) -> list[str]:
    """Ids seen only in a feed so far, whose full record must come from the API."""
    return [
        r[0]
        for r in db.conn.execute("SELECT arxiv_id FROM papers WHERE needs_metadata = 1 ORDER BY arxiv_id")
    ]


def known_versions(db: Database, ids: Sequence[str]) -> dict[str, int]:
    """{arxiv_id: stored version} for those of `ids` that are stored with full metadata."""
    return {k: v for k, (v, stub) in _existing_versions(db, ids).items() if not stub}


# -- sync runs and watermarks ------------------------------------------------------------------


def start_run(db: Database, source: str, query: str, since: str | None, until: str | None) -> int:
    """Open a sync_runs row in state 'running' and return its id."""
    with db.atomic():
        cursor = db.conn.execute(
            "INSERT INTO sync_runs (started, source, query, window_since, window_until, status) "
            "VALUES (?, ?, ?, ?, ?, 'running')",
            (utcnow(), source, query, since, until),
        )
    return int(cursor.lastrowid or 0)


def finish_run(
    db: Database, run_id: int, counts: Counts, requests: int, status: str, error: str | None = None
) -> None:
    """Close a sync_runs row: ok (papers seen), empty (nothing announced: still success) or failed."""
    with db.atomic():
        db.conn.execute(
            "UPDATE sync_runs SET finished = ?, new = ?, updated = ?, unchanged = ?, requests = ?, status = ?, "
            "error = ? WHERE id = ?",
            (utcnow(), counts.new, counts.updated, counts.unchanged, requests, status, error, run_id),
        )


def progress_run(db: Database, run_id: int, counts: Counts, requests: int) -> None:
    """Keep a running row's counts current (called inside the batch's transaction)."""
    db.conn.execute(
        "UPDATE sync_runs SET new = ?, updated = ?, unchanged = ?, requests = ? WHERE id = ?",
        (counts.new, counts.updated, counts.unchanged, requests, run_id),
    )


def mark_abandoned_runs(db: Database) -> int:
    """Runs left 'running' by a killed process become 'failed', so status and the run log tell the truth."""
    with db.atomic():
        cursor = db.conn.execute(
            "UPDATE sync_runs SET status = 'failed', finished = COALESCE(finished, ?), "
            "error = COALESCE(error, 'interrupted: the process ended before the run finished') "
            "WHERE status = 'running'",
            (utcnow(),),
        )
    return cursor.rowcount


@dataclass
class SyncState:
    """Where a query's incremental sync stands."""

    query_key: str
    watermark: str | None = None
    resume_since: str | None = None
    resume_until: str | None = None
    resume_offset: int | None = None


def get_state(db: Database, query_key: str) -> SyncState:
    row = db.conn.execute(
        "SELECT watermark, resume_since, resume_until, resume_offset FROM sync_state WHERE query_key = ?",
        (query_key,),
    ).fetchone()
    if row is None:
        return SyncState(query_key)
    return SyncState(query_key, *row)


def save_state(db: Database, state: SyncState) -> None:
    """Write a query's watermark / resume point (call inside the batch's transaction)."""
    db.conn.execute(
        "INSERT INTO sync_state (query_key, watermark, resume_since, resume_until, resume_offset, updated) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(query_key) DO UPDATE SET watermark = excluded.watermark, "
        "resume_since = excluded.resume_since, resume_until = excluded.resume_until, "
        "resume_offset = excluded.resume_offset, updated = excluded.updated",
        (
            state.query_key,
            state.watermark,
            state.resume_since,
            state.resume_until,
            state.resume_offset,
            utcnow(),
        ),
    )


def table_counts(db: Database) -> dict[str, int]:
    """Row counts of the main tables, for the end-of-run summary and `status`."""
    tables = ("papers", "paper_versions", "announcements", "authors", "paper_tags", "sync_runs")
    return {t: int(db.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}


# -- digest, subscriptions and status ----------------------------------------------------------

# The day a paper counts for in a digest or a trend: its announcement date (RSS), else the date of
# its current version (API records carry no announcement date).
EVENT_DATE_SQL = "COALESCE(p.announced, substr(p.updated, 1, 10), substr(p.published, 1, 10))"
# Spelled exactly as the expression index idx_papers_event_day (migration m007), so a window is an
# index range scan: keep the two in step (SQLite matches the expression, not its meaning).
IN_WINDOW_SQL = f"{EVENT_DATE_SQL} BETWEEN :since AND :until"


def tagged_papers_between(db: Database, since: str, until: str) -> list[dict[str, Any]]:
    """Papers whose event day lies in [since, until] (YYYY-MM-DD, inclusive), one row per tag they carry."""
    sql = f"""
        SELECT p.arxiv_id, p.version, p.title, p.abstract, p.authors, p.primary_category, p.published,
               p.updated, p.announced, p.announce_type, p.abs_url, p.mllm, p.relevance,
               t.tag, t.facet, t.score, t.source
        FROM papers p JOIN paper_tags t ON t.arxiv_id = p.arxiv_id
        WHERE {IN_WINDOW_SQL} AND p.needs_metadata = 0
    """
    return list(db.query(sql, {"since": since, "until": until}))


def papers_between_count(db: Database, since: str, until: str) -> int:
    """How many papers (tagged or not) have their event day in [since, until]."""
    sql = f"SELECT count(*) FROM papers p WHERE {IN_WINDOW_SQL}"
    return int(db.conn.execute(sql, {"since": since, "until": until}).fetchone()[0])


def tag_counts_by_week(
    db: Database, since: str, until: str, mllm_only: bool = False
) -> list[tuple[str, str, int]]:
    """(tag, Monday of the ISO week, papers) for every tag and week with papers in [since, until].

    :param mllm_only: count only papers the relevance score calls MLLM work (`mllm = 1`), as the
        digest's task sections list them
    """
    # date(d, 'weekday 0', '-6 days'): the Sunday on or after d, minus six days = that week's Monday.
    sql = f"""
        SELECT t.tag, date({EVENT_DATE_SQL}, 'weekday 0', '-6 days') AS monday, count(*)
        FROM papers p JOIN paper_tags t ON t.arxiv_id = p.arxiv_id
        WHERE {IN_WINDOW_SQL}{" AND p.mllm = 1" if mllm_only else ""}
        GROUP BY t.tag, monday
    """
    return [(r[0], r[1], int(r[2])) for r in db.conn.execute(sql, {"since": since, "until": until})]


def stored_tags(db: Database) -> list[tuple[str, str]]:
    """(tag, facet) pairs present in paper_tags, for when no taxonomy file is at hand."""
    return [
        (r[0], r[1])
        for r in db.conn.execute("SELECT DISTINCT tag, facet FROM paper_tags ORDER BY facet, tag")
    ]


def list_subscribers(db: Database) -> list[tuple[str, list[str]]]:
    """(email, tags) of every subscriber; an empty tag list means all tags."""
    return [
        (r[0], json.loads(r[1]))
        for r in db.conn.execute("SELECT email, tags FROM subscribers ORDER BY email")
    ]


def save_subscriber(db: Database, email: str, tags: Sequence[str]) -> bool:
    """Add a subscriber or replace their tag choice; True when the address is new."""
    with db.atomic():
        existed = db.conn.execute("SELECT 1 FROM subscribers WHERE email = ?", (email,)).fetchone()
        db.conn.execute(
            "INSERT INTO subscribers (email, tags, created) VALUES (?, ?, ?) "
            "ON CONFLICT(email) DO UPDATE SET tags = excluded.tags",
            (email, json.dumps(sorted(set(tags))), utcnow()),
        )
    return existed is None


def delete_subscriber(db: Database, email: str) -> bool:
    """Remove a subscriber (their digest history stays, so a re-subscribe does not resend); True if found."""
    with db.atomic():
        cursor = db.conn.execute("DELETE FROM subscribers WHERE email = ?", (email,))
    return cursor.rowcount > 0


def digest_record(db: Database, recipient: str, window: str) -> dict[str, Any] | None:
    """The digests row of (recipient, window), or None if it was never attempted."""
    rows = list(db.query("SELECT * FROM digests WHERE recipient = ? AND window = ?", [recipient, window]))
    return rows[0] if rows else None


def sent_versions(db: Database, recipient: str) -> dict[str, int]:
    """{arxiv_id: version} of every paper a recipient has already been sent."""
    return dict(
        db.conn.execute("SELECT arxiv_id, version FROM digest_papers WHERE recipient = ?", (recipient,))
    )


def begin_digest(db: Database, recipient: str, window: str, message_id: str | None = None) -> int:
    """Mark (recipient, window) as being sent, before the SMTP conversation; returns the attempt number.

    The Message-ID is stored now, so a run that finds the row still `sending` can resend under it.
    """
    with db.atomic():
        db.conn.execute(
            "INSERT INTO digests (recipient, window, state, attempts, message_id, updated) "
            "VALUES (?, ?, 'sending', 1, ?, ?) "
            "ON CONFLICT(recipient, window) DO UPDATE SET state = 'sending', attempts = attempts + 1, "
            "error = NULL, message_id = COALESCE(excluded.message_id, digests.message_id), "
            "updated = excluded.updated",
            (recipient, window, message_id, utcnow()),
        )
        row = db.conn.execute(
            "SELECT attempts FROM digests WHERE recipient = ? AND window = ?", (recipient, window)
        ).fetchone()
    return int(row[0])


def finish_digest(
    db: Database,
    recipient: str,
    window: str,
    state: str,
    papers: Sequence[tuple[str, int]] = (),
    message_id: str | None = None,
    error: str | None = None,
) -> None:
    """Record the outcome of (recipient, window): sent (with the papers it carried), failed or empty."""
    with db.atomic():
        db.conn.execute(
            "INSERT INTO digests (recipient, window, state, attempts, papers, error, message_id, updated) "
            "VALUES (?, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT(recipient, window) DO UPDATE SET state = excluded.state, "
            "papers = excluded.papers, error = excluded.error, "
            "message_id = COALESCE(excluded.message_id, digests.message_id), updated = excluded.updated",
            (recipient, window, state, len(papers), error, message_id, utcnow()),
        )
        db.conn.executemany(
            "INSERT OR REPLACE INTO digest_papers (recipient, arxiv_id, version, window) VALUES (?, ?, ?, ?)",
            ((recipient, arxiv_id, version, window) for arxiv_id, version in papers),
        )


def recent_digests(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    """The latest digests rows, newest first (for `status`)."""
    return list(db.query("SELECT * FROM digests ORDER BY updated DESC LIMIT ?", [limit]))


def papers_per_day(db: Database, since: str, until: str) -> dict[str, int]:
    """{YYYY-MM-DD: papers} by event day in [since, until]."""
    sql = f"SELECT {EVENT_DATE_SQL} AS day, count(*) FROM papers p WHERE {IN_WINDOW_SQL} GROUP BY day"
    return {r[0]: int(r[1]) for r in db.conn.execute(sql, {"since": since, "until": until})}


def newest_announced(db: Database) -> str | None:
    """The latest announcement date held (feeds), or None if only API records were ever stored."""
    row = db.conn.execute(
        "SELECT max(d) FROM (SELECT max(announced) AS d FROM papers UNION ALL SELECT max(announced) FROM announcements)"
    ).fetchone()
    return row[0] if row else None


def newest_updated(db: Database) -> str | None:
    """The latest version timestamp held (ISO UTC), or None for an empty database."""
    row = db.conn.execute("SELECT max(updated) FROM papers WHERE needs_metadata = 0").fetchone()
    return row[0] if row else None


def sync_run_summary(db: Database) -> dict[str, dict[str, Any] | None]:
    """The last sync run, the last successful one (ok or empty) and the last failed one."""

    def one(where: str) -> dict[str, Any] | None:
        rows = list(db.query(f"SELECT * FROM sync_runs {where} ORDER BY started DESC, id DESC LIMIT 1"))
        return rows[0] if rows else None

    return {
        "last": one("WHERE status != 'running'"),
        "last_ok": one(f"WHERE {_SUCCESS}"),
        "last_failed": one("WHERE status = 'failed'"),
        "running": one("WHERE status = 'running'"),
    }


# The follow-up that completes feed-only papers by id_list ends each sync, but "0 new, 617 updated" says
# nothing about what the night brought: the window and feed runs do.
_SUCCESS = "status IN ('ok', 'empty') AND query NOT LIKE 'id\\_list%' ESCAPE '\\'"


def last_ok_by_source(db: Database) -> list[dict[str, Any]]:
    """The newest successful run of each source (api window, rss feed, load, oai), oldest first.

    One sync writes an API window run and a feed run; the newest row alone would hide the other (and a
    feed that has failed for a week behind a working API)."""
    rows = db.query(
        f"SELECT * FROM sync_runs WHERE id IN (SELECT (SELECT id FROM sync_runs r WHERE r.source = s.source "
        f"AND {_SUCCESS} ORDER BY started DESC, id DESC LIMIT 1) FROM (SELECT DISTINCT source FROM sync_runs) s) "
        "ORDER BY started, id"
    )
    return list(rows)


# -- backfill ----------------------------------------------------------------------------------


@dataclass
class BackfillState:
    """Where an OAI-PMH harvest stands: its current window, the token inside it, records kept so far."""

    harvest_key: str
    window_from: str
    window_until: str
    token: str | None = None
    records: int = 0
    done: bool = False


def get_backfill_state(db: Database, harvest_key: str) -> BackfillState | None:
    """The saved progress of a harvest, or None if it never started."""
    row = db.conn.execute(
        "SELECT window_from, window_until, token, records, done FROM backfill_state WHERE harvest_key = ?",
        (harvest_key,),
    ).fetchone()
    if row is None:
        return None
    return BackfillState(harvest_key, row[0], row[1], row[2], int(row[3]), bool(row[4]))


def save_backfill_state(db: Database, state: BackfillState) -> None:
    """Write a harvest's progress (call inside the page's transaction, so data and progress commit together)."""
    db.conn.execute(
        "INSERT INTO backfill_state (harvest_key, window_from, window_until, token, records, done, updated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(harvest_key) DO UPDATE SET window_from = excluded.window_from, "
        "window_until = excluded.window_until, token = excluded.token, records = excluded.records, "
        "done = excluded.done, updated = excluded.updated",
        (state.harvest_key, state.window_from, state.window_until, state.token, state.records,
         int(state.done), utcnow()),
    )  # fmt: skip


def save_paper_versions(
    db: Database, versions: Iterable[tuple[str, int, str | None]], now: str | None = None
) -> int:
    """Record earlier versions (arXivRaw history) in `paper_versions`; known ones are left as they are."""
    now = now or utcnow()
    with db.atomic():
        cursor = db.conn.executemany(
            "INSERT OR IGNORE INTO paper_versions (arxiv_id, version, updated, first_seen) VALUES (?, ?, ?, ?)",
            ((arxiv_id, version, updated, now) for arxiv_id, version, updated in versions),
        )
    return max(cursor.rowcount, 0)


# -- datasette / export ------------------------------------------------------------------------


def require_database(db_path: str | Path) -> Path:
    """`db_path` if it is a file; else the one-line error that says how a database is created."""
    path = Path(db_path)
    if not path.is_file():
        raise TrackerError(
            f"{path}: no such database; create it with `tracker sync {path}` or `tracker demo {path}`"
        )
    return path


def open_existing(db_path: str | Path, wait: float = 60.0) -> Database:
    """Open a tracker database that must already exist, for reading and writing; a pending migration is applied.

    The writer lock is taken only when a migration is due, so opening never waits for a running sync.
    Commands that only read use `open_readonly` instead.
    """
    path = require_database(db_path)
    _inspect(path)[0].close()  # look before open_db, which would switch a foreign file to WAL
    db = open_db(path, migrate=False)
    if migrations.pending(db):
        with writer_lock(path, wait=wait):
            migrations.apply(db)
    return db


def papers_for_export(db: Database, tag: str | None = None, since: str | None = None) -> Iterator[dict[str, Any]]:
    """Full-metadata papers (newest first) with `tags` = [{tag, facet, score, source}], optionally one tag's only.

    A generator: rows are read as they are written out, so exporting a million papers does not hold them.

    :param since: YYYY-MM-DD; keeps papers whose event day (as in the digest) is on or after it.
    """
    where = ["p.needs_metadata = 0"]
    params: list[Any] = []
    if tag:
        where.append("EXISTS (SELECT 1 FROM paper_tags x WHERE x.arxiv_id = p.arxiv_id AND x.tag = ?)")
        params.append(tag)
    if since:
        where.append(f"{EVENT_DATE_SQL} >= ?")
        params.append(since)
    sql = f"""
        SELECT p.*, {EVENT_DATE_SQL} AS day,
               (SELECT json_group_array(json_object('tag', t.tag, 'facet', t.facet, 'score', t.score,
                                                    'source', t.source))
                FROM (SELECT * FROM paper_tags t WHERE t.arxiv_id = p.arxiv_id ORDER BY t.score DESC) t
               ) AS tag_list
        FROM papers p
        WHERE {" AND ".join(where)}
        ORDER BY day DESC, p.arxiv_id DESC
    """
    for row in db.query(sql, params):
        row = dict(row)
        for key in ("authors", "categories"):
            row[key] = json.loads(row[key] or "[]")
        row["tags"] = json.loads(row.pop("tag_list") or "[]")
        yield row


# -- classification ----------------------------------------------------------------------------------


def paper_texts(db: Database, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """{arxiv_id: (title, abstract)} for those of `ids` in the database."""
    return {
        arxiv_id: (title, abstract) for arxiv_id, title, abstract in _papers_by_id(db, "title, abstract", ids)
    }


def count_untagged(db: Database, model_id: str, all_papers: bool = False) -> int:
    """How many papers `iter_untagged` will yield."""
    if all_papers:
        return int(db.conn.execute("SELECT count(*) FROM papers").fetchone()[0])
    return int(
        db.conn.execute(
            "SELECT count(*) FROM papers WHERE tagged_by IS NULL OR tagged_by != ?", (model_id,)
        ).fetchone()[0]
    )


def iter_untagged(
    db: Database, model_id: str, all_papers: bool = False, chunk_size: int = 2000
) -> Iterator[list[tuple[str, str, str]]]:
    """Chunks of (arxiv_id, title, abstract) not yet tagged by `model_id` (or all papers), in id order.

    Keyset pagination (`arxiv_id > last`) rather than one open cursor, so the caller may write each chunk
    before reading the next, and memory stays flat whatever the size of the table.
    """
    last = ""
    where = "" if all_papers else "AND (tagged_by IS NULL OR tagged_by != ?)"
    while True:
        args: list[Any] = [last] + ([] if all_papers else [model_id]) + [chunk_size]
        rows = db.conn.execute(
            f"SELECT arxiv_id, title, abstract FROM papers WHERE arxiv_id > ? {where} ORDER BY arxiv_id LIMIT ?",
            args,
        ).fetchall()
        if not rows:
            return
        yield [(r[0], r[1] or "", r[2] or "") for r in rows]
        last = rows[-1][0]


def manual_labels(db: Database) -> list[tuple[str, str, str]]:
    """Every person's correction: (arxiv_id, tag, 'add' | 'remove')."""
    return [
        tuple(r)
        for r in db.conn.execute("SELECT arxiv_id, tag, action FROM manual_labels ORDER BY arxiv_id, tag")
    ]


def save_tagging(
    db: Database,
    tags: Sequence[tuple[str, str, str, float, str, str | None]],
    scores: Sequence[tuple[str, str, float, float, str]],
    papers: Sequence[tuple[str, str, str, float, int]],
) -> None:
    """Replace the tags and scores of a chunk of papers, in one transaction.

    :param tags: (arxiv_id, tag, facet, score, source, model_id) rows for `paper_tags`
    :param scores: (arxiv_id, tag, score, threshold, model_id) rows for `tag_scores`
    :param papers: (arxiv_id, tags JSON, tagged_by, relevance, mllm) for the papers of the chunk (all of
        them, tagged or not)
    """
    ids = [(p[0],) for p in papers]
    with db.atomic():
        db.conn.executemany("DELETE FROM paper_tags WHERE arxiv_id = ?", ids)
        db.conn.executemany("DELETE FROM tag_scores WHERE arxiv_id = ?", ids)
        db.conn.executemany(
            "INSERT INTO paper_tags (arxiv_id, tag, facet, score, source, model_id) VALUES (?, ?, ?, ?, ?, ?)",
            tags,
        )
        db.conn.executemany(
            "INSERT INTO tag_scores (arxiv_id, tag, score, threshold, model_id) VALUES (?, ?, ?, ?, ?)",
            scores,
        )
        db.conn.executemany(
            "UPDATE papers SET tags = ?, tagged_by = ?, relevance = ?, mllm = ? WHERE arxiv_id = ?",
            ((p[1], p[2], p[3], p[4], p[0]) for p in papers),
        )


def paper_exists(db: Database, arxiv_id: str) -> bool:
    return db.conn.execute("SELECT 1 FROM papers WHERE arxiv_id = ?", (arxiv_id,)).fetchone() is not None


def save_manual_label(db: Database, arxiv_id: str, tag: str, facet: str, action: str) -> None:
    """Record a person's correction and apply it to the paper's tags at once (one transaction)."""
    with db.atomic():
        db.conn.execute(
            "INSERT INTO manual_labels (arxiv_id, tag, action, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(arxiv_id, tag) DO UPDATE SET action = excluded.action, created = excluded.created",
            (arxiv_id, tag, action, utcnow()),
        )
        if action == "add":
            db.conn.execute(
                "INSERT OR REPLACE INTO paper_tags (arxiv_id, tag, facet, score, source, model_id) "
                "VALUES (?, ?, ?, 1.0, 'manual', NULL)",
                (arxiv_id, tag, facet),
            )
        else:
            db.conn.execute("DELETE FROM paper_tags WHERE arxiv_id = ? AND tag = ?", (arxiv_id, tag))
        tags = [
            r[0]
            for r in db.conn.execute(
                "SELECT tag FROM paper_tags WHERE arxiv_id = ? ORDER BY tag", (arxiv_id,)
            )
        ]
        db.conn.execute("UPDATE papers SET tags = ? WHERE arxiv_id = ?", (json.dumps(tags), arxiv_id))


def paper_tag_rows(db: Database, arxiv_id: str) -> list[dict[str, Any]]:
    """The tags a paper carries, with score and source."""
    cursor = db.conn.execute(
        "SELECT tag, facet, score, source, model_id FROM paper_tags WHERE arxiv_id = ? ORDER BY tag",
        (arxiv_id,),
    )
    return [dict(zip(("tag", "facet", "score", "source", "model_id"), r, strict=True)) for r in cursor]


# -- review --

# How far a score is from its threshold, as a ratio: exp(|ln(score / threshold)|) without needing SQLite's
# optional math functions. A ratio rather than a difference, so tags with low and high thresholds interleave fairly.
REVIEW_DISTANCE_SQL = "max(s.score / s.threshold, s.threshold / s.score)"


@dataclass(frozen=True)
class ReviewCandidate:
    """A paper and a tag whose model score lies near the tag's threshold, with the paper's current tags."""

    arxiv_id: str
    title: str
    abstract: str
    tags: tuple[str, ...]
    tag: str
    score: float
    threshold: float


def review_candidates(db: Database, tags: Sequence[str], limit: int) -> list[ReviewCandidate]:
    """Up to `limit` (paper, tag) pairs of `tags` nearest their threshold first, leaving out any a person labelled.

    Only scores of the model that last tagged the paper count (`papers.tagged_by`).
    """
    if not tags:
        return []
    sql = f"""
        SELECT s.arxiv_id, p.title, p.abstract, p.tags, s.tag, s.score, s.threshold
        FROM tag_scores s JOIN papers p ON p.arxiv_id = s.arxiv_id AND p.tagged_by = s.model_id
        WHERE s.tag IN ({", ".join("?" * len(tags))}) AND s.score > 0 AND s.threshold > 0
          AND NOT EXISTS (SELECT 1 FROM manual_labels m WHERE m.arxiv_id = s.arxiv_id AND m.tag = s.tag)
        ORDER BY {REVIEW_DISTANCE_SQL}, s.tag, s.arxiv_id
        LIMIT ?
    """
    return [
        ReviewCandidate(r[0], r[1] or "", r[2] or "", tuple(json.loads(r[3] or "[]")), r[4], r[5], r[6])
        for r in db.conn.execute(sql, [*tags, limit])
    ]


def scored_tags(db: Database) -> list[str]:
    """The tags `tag_scores` holds any score for (the model's tags that `classify` has run on)."""
    return [r[0] for r in db.conn.execute("SELECT DISTINCT tag FROM tag_scores ORDER BY tag")]


# -- demo --


def strongest_tagged(db: Database, limit: int = 5) -> list[dict[str, Any]]:
    """The papers with the highest model scores and their tags, for the demo's closing summary."""
    sql = """
        SELECT p.arxiv_id, p.title, p.tags, max(t.score) AS score
        FROM paper_tags t JOIN papers p ON p.arxiv_id = t.arxiv_id
        WHERE t.source = 'model' GROUP BY p.arxiv_id ORDER BY score DESC, p.arxiv_id LIMIT ?
    """
    return [
        {"arxiv_id": r[0], "title": r[1], "tags": json.loads(r[2] or "[]"), "score": r[3]}
        for r in db.conn.execute(sql, (limit,))
    ]
