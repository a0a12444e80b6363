"""`tracker demo`: the nightly pipeline, offline, on the bundled snapshot of real arXiv data.

A loopback `ArxivMirror` (tracker/demo/mirror.py, also the tests' fake arXiv with fault injection) serves
the bundled real records as API pages and the real announcement feed of 2025-08-07, and the ordinary
`Syncer` reads them over HTTP exactly as a real night reads arXiv. Nothing in production imports this
package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from sqlite_utils import Database

from tracker.demo.mirror import ArxivMirror, demo_snapshot
from tracker.fetch import PoliteSession
from tracker.progress import Progress
from tracker.sync import Syncer, SyncOptions, SyncReport

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
            categories=DEMO_CATEGORIES,
            since=DEMO_SINCE,
            until=DEMO_UNTIL,
            api_url=mirror.api_url,
            rss_url=mirror.rss_url,
            page_size=100,
        )
        # No delay: the mirror is on loopback and belongs to us; against arXiv the default is 3 s.
        session = PoliteSession(delay=0.0, retries=2, backoff=0.1)
        report = Syncer(db, session, opts, progress).run(now=datetime(2025, 8, 8, tzinfo=timezone.utc))
        return DemoResult(report, mirror.api_url, len(mirror.requests))


def render_tour(db_path: str, counts: Mapping[str, int], strongest: Sequence[Mapping[str, Any]]) -> str:
    """What the demo leaves behind: table sizes, the strongest tags, and the commands to try next."""
    lines = [f"\n{db_path} now holds:"]
    lines += [f"  {table:16} {n:>7,}" for table, n in counts.items()]
    if strongest:
        lines.append("\nStrongest tags tonight:")
        lines += [f"  {p['arxiv_id']:12} {', '.join(p['tags']):28.28} {p['title'][:70]}" for p in strongest]
    example = strongest[0]["arxiv_id"] if strongest else "ARXIV_ID"
    lines += [
        "\nNext, try:",
        f"  sqlite-utils search {db_path} papers 'visual instruction tuning' -c title --limit 5",
        f"  tracker explain {db_path} {example}",
        f"  tracker similar {db_path} {example}",
        f"  echo {example} > my-papers.txt    # or your BibTeX, Zotero CSV or RIS export",
        f"  tracker recommend {db_path} --library my-papers.txt --since 2025-08-01 --until 2025-08-07",
        f"  tracker digest {db_path} --since 2025-08-01 --until 2025-08-07",
        f"  tracker serve {db_path}",
        f"  tracker status {db_path}    # flags the snapshot as stale: its newest paper is from 2025",
    ]
    return "\n".join(lines) + "\n"
