"""Datasette plugin: make every connection to the tracker database refuse writes and reads of private data.

Datasette 0.65 already opens its read connections with `mode=ro`, but its write connection (used by
canned queries marked `write: true` and by plugins calling `execute_write`) is read-write. Here each
connection to a user database gets `PRAGMA query_only` plus an authorizer that denies every write
and any attempt to switch query_only off, so nothing reached through the web can change the file.
The database stays a normal (not immutable) one, so Datasette keeps seeing what the nightly sync
writes through WAL.

The same authorizer refuses reading any table `tracker.public` does not list as public (subscribers,
digests, sync state, ...) and reads the withheld columns of the sync log as NULL. SQLite asks it for
every column any statement touches, whatever the spelling (`[subscribers]`, `main.SUBSCRIBERS`), and
through joins, subqueries, CTEs and views, so no SQL typed into Datasette can see those rows.
Datasette's own permission check (`tracker_private`) only keeps the tables off the pages.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from datasette import hookimpl

# Fails closed: without the tracker installed, this plugin and so Datasette do not start.
from tracker.public import read_verdict

# Authorizer action codes that change the database (sqlite3.h "Authorizer Action Codes").
WRITE_ACTIONS = {
    sqlite3.SQLITE_INSERT,
    sqlite3.SQLITE_UPDATE,
    sqlite3.SQLITE_DELETE,
    sqlite3.SQLITE_ALTER_TABLE,
    sqlite3.SQLITE_CREATE_INDEX,
    sqlite3.SQLITE_CREATE_TABLE,
    sqlite3.SQLITE_CREATE_TRIGGER,
    sqlite3.SQLITE_CREATE_VIEW,
    sqlite3.SQLITE_CREATE_VTABLE,
    sqlite3.SQLITE_DROP_INDEX,
    sqlite3.SQLITE_DROP_TABLE,
    sqlite3.SQLITE_DROP_TRIGGER,
    sqlite3.SQLITE_DROP_VIEW,
    sqlite3.SQLITE_DROP_VTABLE,
    sqlite3.SQLITE_ATTACH,
    sqlite3.SQLITE_DETACH,
    sqlite3.SQLITE_REINDEX,
    sqlite3.SQLITE_ANALYZE,
}
SCHEMA_TABLES = {"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"}
# Pragmas that could undo the protection or change the file when given a value.
GUARDED_PRAGMAS = {"query_only", "journal_mode", "writable_schema", "wal_checkpoint", "optimize"}


def _authorize(action: int, arg1: Any, arg2: Any, dbname: Any, source: Any) -> int:
    if action in WRITE_ACTIONS:
        # Opening an FTS5 table declares its schema, which SQLite reports as an UPDATE of
        # sqlite_master; real schema writes need writable_schema (guarded below) and query_only.
        if action == sqlite3.SQLITE_UPDATE and arg1 in SCHEMA_TABLES:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_READ:
        return read_verdict(arg1, arg2)
    if action == sqlite3.SQLITE_PRAGMA and str(arg1).lower() in GUARDED_PRAGMAS and arg2 is not None:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


@hookimpl
def prepare_connection(conn: sqlite3.Connection, database: str) -> None:
    # Datasette's own catalogue (`_internal`) and scratch in-memory database (`_memory`, also used
    # to probe SQLite's features) must stay writable; they are not files. Every other one is read-only.
    if database in ("_internal", "_memory"):
        return
    conn.execute("PRAGMA query_only = 1")
    conn.set_authorizer(_authorize)
