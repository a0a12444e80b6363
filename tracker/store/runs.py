"""Runs: the `sync_runs` log that every sync, load and backfill writes, and where each left off
(`sync_state` watermarks and resume points, `backfill_state` harvest progress).

A run is opened as 'running' before its first request and closed as ok, empty or failed, always through
`recorded_run`; a process killed outright leaves it 'running' until `mark_abandoned_runs` (the next
writer, holding the lock) calls it failed, so `status` and the run log tell the truth.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from tracker.errors import TrackerError
from tracker.store.core import utcnow
from tracker.store.papers import Counts

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"  # the error of a run stopped by Ctrl-C (or another BaseException)

# The follow-up that completes feed-only papers by id_list ends each sync, but "0 new, 617 updated" says
# nothing about what the night brought: the window and feed runs do.
_SUCCESS = "status IN ('ok', 'empty') AND query NOT LIKE 'id\\_list%' ESCAPE '\\'"


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


class Run:
    """An open `sync_runs` row: the caller keeps `counts` current and may set the closing `status`."""

    def __init__(self, run_id: int, requests_made: Callable[[], int]) -> None:
        self.id = run_id
        self.counts = Counts()
        self.status: str | None = None  # None: 'ok' when counts.total, else 'empty'
        self._requests_made = requests_made
        self._first_request = requests_made()

    @property
    def requests(self) -> int:
        """Requests made since the run started."""
        return self._requests_made() - self._first_request


@contextlib.contextmanager
def recorded_run(
    db: Database,
    source: str,
    query: str,
    since: str | None,
    until: str | None,
    *,
    requests: Callable[[], int] | None = None,
) -> Iterator[Run]:
    """Open a `sync_runs` row for the block and close it: ok/empty when the block ends, failed when it raises.

    A TrackerError is recorded with its message, Ctrl-C as 'interrupted', any other exception by its type;
    then the exception goes on. The counts recorded are those in `run.counts` at that moment (a caller whose
    transaction rolled back leaves them at zero).

    :param requests: reads the caller's request counter; the run records how far it moved
    """
    run = Run(start_run(db, source, query, since, until), requests or (lambda: 0))
    try:
        yield run
    except BaseException as exc:
        if isinstance(exc, TrackerError):
            error = str(exc)
        elif isinstance(exc, Exception):
            error = f"{type(exc).__name__}: {exc}"
        else:
            error = INTERRUPTED
        try:
            finish_run(db, run.id, run.counts, run.requests, "failed", error)
        except sqlite3.Error as db_exc:
            # The run's own error is what the user must see; mark_abandoned_runs closes the row later.
            log.warning("could not record run %d as failed: %s", run.id, db_exc)
        raise
    finish_run(db, run.id, run.counts, run.requests, run.status or ("ok" if run.counts.total else "empty"))


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


def sync_run_summary(db: Database) -> dict[str, dict[str, Any] | None]:
    """The last sync run, the last successful one (ok or empty) and the last failed one."""
    runs = db.table("sync_runs")

    def one(where: str) -> dict[str, Any] | None:
        return next(runs.rows_where(where, order_by="started DESC, id DESC", limit=1), None)

    return {
        "last": one("status != 'running'"),
        "last_ok": one(_SUCCESS),
        "last_failed": one("status = 'failed'"),
        "running": one("status = 'running'"),
    }


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


# -- where a sync left off -----------------------------------------------------------------------


@dataclass
class SyncState:
    """Where a query's incremental sync stands."""

    query_key: str
    watermark: str | None = None
    resume_since: str | None = None
    resume_until: str | None = None
    resume_offset: int | None = None


def get_state(db: Database, query_key: str) -> SyncState:
    """The saved state of a query's sync, or a fresh one if it never ran."""
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


# -- where a backfill left off -------------------------------------------------------------------


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
        (
            state.harvest_key,
            state.window_from,
            state.window_until,
            state.token,
            state.records,
            int(state.done),
            utcnow(),
        ),
    )
