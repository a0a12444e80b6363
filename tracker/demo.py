"""`tracker demo`: the nightly pipeline, offline, on the bundled snapshot of real arXiv data.

A loopback `ArxivMirror` serves the bundled real records as API pages and the real announcement feed of
2025-08-07, and the ordinary `Syncer` reads them over HTTP exactly as a real night reads arXiv.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

from sqlite_utils import Database

from tracker.fetch import PoliteSession
from tracker.mirror import ArxivMirror, demo_snapshot
from tracker.sync import Progress, Syncer, SyncOptions, SyncReport

DEMO_SINCE = date(2025, 6, 1)
DEMO_UNTIL = date(2025, 8, 7)
DEMO_CATEGORIES = ("cs.CV", "cs.CL", "cs.AI", "cs.LG", "cs.MM")


@dataclass
class DemoResult:
    report: SyncReport
    api_url: str
    requests: int


def run_demo_sync(db: Database, progress: Progress | None = None) -> DemoResult:
    """Sync a two-month window and the day's feed from the loopback mirror into `db`."""
    records, announcements = demo_snapshot()
    with ArxivMirror(records, announcements) as mirror:
        opts = SyncOptions(
            categories=DEMO_CATEGORIES, since=DEMO_SINCE, until=DEMO_UNTIL,
            api_url=mirror.api_url, rss_url=mirror.rss_url, page_size=100,
        )  # fmt: skip
        # No delay: the mirror is on loopback and belongs to us; against arXiv the default is 3 s.
        session = PoliteSession(delay=0.0, retries=2, backoff=0.1)
        report = Syncer(db, session, opts, progress).run(now=datetime(2025, 8, 8, tzinfo=timezone.utc))
        return DemoResult(report, mirror.api_url, len(mirror.requests))
