"""Digests: subscribers, and the exactly-once bookkeeping of what was mailed to whom.

`digests` holds one row per (recipient, window) and `digest_papers` the version of each paper a recipient
was sent. A row is marked 'sending' (with its Message-ID) before the SMTP conversation and 'sent' after
it, so a retried cron job neither sends a window twice nor resends a paper a later digest already carried.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

from tracker.store.core import utcnow


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
    """Remove a subscriber and their library (their digest history stays, so a re-subscribe does not
    resend); True if found."""
    with db.atomic():
        db.conn.execute("DELETE FROM library WHERE email = ?", (email,))
        db.conn.execute("DELETE FROM reader_models WHERE email = ?", (email,))
        cursor = db.conn.execute("DELETE FROM subscribers WHERE email = ?", (email,))
    return cursor.rowcount > 0


def digest_record(db: Database, recipient: str, window: str) -> dict[str, Any] | None:
    """The digests row of (recipient, window), or None if it was never attempted."""
    rows = db.table("digests").rows_where("recipient = ? AND window = ?", [recipient, window], limit=1)
    return next(rows, None)


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
    return list(db.table("digests").rows_where(order_by="updated DESC", limit=limit))
