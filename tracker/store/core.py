"""The database core: opening a tracker database (read-write or read-only), the one check that a file is a
tracker database this code can read, pending migrations, and the lock that keeps writers to one at a time.

Commands that write open the database in WAL mode (Datasette reads while the nightly job writes) with
a busy timeout, and apply pending migrations; commands that only read open it read-only and change
nothing, so they work on a database they cannot write. Another program's SQLite file, or a database
written by a newer tracker (a migration this code does not know), is refused before anything touches it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from sqlite_utils import Database

from tracker.config import lock_path
from tracker.errors import LockedError, TrackerError
from tracker.migrations import migrations

BUSY_TIMEOUT_MS = 30_000
_NO_WAL_INDEX = (8, 14)  # SQLITE_READONLY, SQLITE_CANTOPEN (named in the sqlite3 module from Python 3.11)
MAIN_TABLES = ("papers", "paper_versions", "announcements", "authors", "paper_tags", "sync_runs")


def utcnow() -> str:
    """Now, as the ISO-8601 UTC text every timestamp column holds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_tracker_database(db: Database, path: str | Path) -> None:
    """Refuse a file that is not a tracker database this code can read, before anything writes to it.

    An empty file is one still to be created. A file holding tables but no applied tracker migration is
    another program's database: never turn it into a tracker one by pointing a command at it by mistake.
    A database a newer tracker has migrated is refused too: this code would misread its tables or break
    its rows.
    """
    tables = db.table_names()
    applied = migrations.applied(db)
    others = sorted(set(tables) - {migrations.migrations_table})
    if others and not applied:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise TrackerError(f"{path}: not a tracker database (it holds other tables: {shown}); left untouched")
    known = {m.name for m in migrations._migrations}
    unknown = [m.name for m in applied if m.name not in known]
    if unknown:
        raise TrackerError(
            f"{path} was written by a newer tracker (migration {unknown[0]} unknown); upgrade tracker"
        )


def open_db(path: str | Path, *, migrate: bool = True) -> Database:
    """Open (creating if needed) the database in WAL mode and bring its schema up to date."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise TrackerError(f"{path}: folder {path.parent} does not exist")
    try:
        db = Database(path)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        check_tracker_database(db, path)  # before WAL mode and migrations write anything
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
    """A read-only connection to `path` once `check_tracker_database` accepts it, and the names of its
    pending migrations."""
    db = _connect_readonly(path)
    try:
        check_tracker_database(db, path)
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


def table_counts(db: Database) -> dict[str, int]:
    """Row counts of the main tables, for the end-of-run summary and `status`."""
    return {name: db.table(name).count for name in MAIN_TABLES}
