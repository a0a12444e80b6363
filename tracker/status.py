"""Health of a tracker database against arXiv's announcement calendar, for `tracker status` and monitors.

arXiv announces new submissions at 20:00 US/Eastern, Sunday to Thursday, none on Friday or
Saturday (reference/arxiv-docs/availability.md, "Announcement Schedule"); the feeds date each
mailing the following day (Monday to Friday). From that calendar and "now" this module says which
announcement the database should already hold, so a stalled nightly job is noticed. Everything but
`collect_status` (which reads the store's figures) is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from sqlite_utils import Database

ARXIV_TZ = ZoneInfo("America/New_York")
MAILING_TIME = time(20, 0)
MAILING_WEEKDAYS = (6, 0, 1, 2, 3)  # date.weekday(): Sunday, Monday .. Thursday
# Deferred mailings arXiv lists for 2026 (availability.md, "On Deferred Mailings"). Whether a date
# means "no mailing that evening" or "no feed dated that day" is not spelled out, so both are skipped:
# a monitor should rather miss a day than page someone on a holiday.
HOLIDAYS = frozenset(
    date.fromisoformat(d)
    for d in (
        "2026-01-01",
        "2026-01-19",
        "2026-06-19",
        "2026-07-03",
        "2026-09-07",
        "2026-11-26",
        "2026-12-25",
        "2026-12-29",
        "2026-12-31",
    )
)
# The nightly job needs time to run after the 20:00 mailing before its absence means anything.
SYNC_GRACE = timedelta(hours=4)
DIGEST_WEEKDAY = 0  # Monday: the weekly job sends the week that ended on Sunday
DIGEST_TIME = time(6, 0)  # US/Eastern, as in cron/crontab.example


def mailings_before(now: datetime, count: int) -> list[tuple[datetime, date]]:
    """The last `count` mailings at or before `now`: (mailing time in US/Eastern, feed date), newest first."""
    local = now.astimezone(ARXIV_TZ)
    day = local.date()
    found: list[tuple[datetime, date]] = []
    while len(found) < count:
        at = datetime.combine(day, MAILING_TIME, ARXIV_TZ)
        feed_day = day + timedelta(days=1)
        if (
            day.weekday() in MAILING_WEEKDAYS
            and at <= local
            and day not in HOLIDAYS
            and feed_day not in HOLIDAYS
        ):
            found.append((at, feed_day))
        day -= timedelta(days=1)
    return found


def expected_announcement(now: datetime, max_missed: int = 1) -> date:
    """The oldest feed date the database may hold without being stale.

    :param max_missed: mailings that may be missing before it counts as stale (1 by default, for a
        holiday arXiv did not list or a nightly run that failed and reported it already).
    """
    mailings = mailings_before(now - SYNC_GRACE, max_missed + 1)
    return mailings[-1][1]


def next_digest_due(now: datetime) -> datetime:
    """The next Monday 06:00 US/Eastern after `now`, when cron/weekly.sh sends last week's digest."""
    local = now.astimezone(ARXIV_TZ)
    day = local.date() + timedelta(days=(DIGEST_WEEKDAY - local.weekday()) % 7)
    due = datetime.combine(day, DIGEST_TIME, ARXIV_TZ)
    if due <= local:
        due += timedelta(days=7)
    return due


@dataclass
class Status:
    now: datetime
    last_run: dict[str, Any] | None
    last_ok: dict[str, Any] | None
    last_failed: dict[str, Any] | None
    running: dict[str, Any] | None
    per_day: list[tuple[date, int]]
    newest: date | None  # newest feed date held (or derived from the newest version's date)
    newest_source: str
    expected: date
    next_digest: datetime
    next_window: str
    last_week: str
    last_week_pending: list[str]  # subscribers who have not had the last complete week yet
    digest_failures: list[dict[str, Any]] = field(default_factory=list)
    last_ok_sources: list[dict[str, Any]] = field(default_factory=list)  # newest success of each source

    @property
    def problems(self) -> list[str]:
        """What makes `status` exit non-zero: a failed last sync, or data older than the calendar allows."""
        found = []
        if self.last_run and self.last_run["status"] == "failed":
            found.append(f"the last sync failed: {self.last_run.get('error') or 'no error recorded'}")
        if self.last_run is None:
            found.append("no sync has run yet")
        if self.newest is None:
            found.append("the database holds no papers")
        elif self.newest < self.expected:
            found.append(
                f"newest paper is from {self.newest} but arXiv's calendar says {self.expected} should be in "
                "by now: is the nightly job running?"
            )
        return found


def newest_from(newest_announced: str | None, newest_updated: str | None) -> tuple[date | None, str]:
    """The newest feed date held; API-only databases use the newest version's day + 1 (its earliest feed)."""
    if newest_announced:
        return date.fromisoformat(newest_announced[:10]), "announcement"
    if newest_updated:
        return date.fromisoformat(newest_updated[:10]) + timedelta(days=1), "version date"
    return None, "none"


def collect_status(db: Database, now: datetime, max_missed: int) -> Status:
    """Gather the store's figures and judge them against arXiv's calendar."""
    from tracker import digest, store

    runs = store.sync_run_summary(db)
    today = now.astimezone(ARXIV_TZ).date()
    first = today - timedelta(days=13)
    counts = store.papers_per_day(db, first.isoformat(), today.isoformat())
    days = [first + timedelta(days=n) for n in range(14)]
    newest, newest_source = newest_from(store.newest_announced(db), store.newest_updated(db))
    due = next_digest_due(now)
    last_week = digest.last_complete_week(today).label
    return Status(
        now=now,
        last_run=runs["last"],
        last_ok=runs["last_ok"],
        last_failed=runs["last_failed"],
        running=runs["running"],
        per_day=[(day, counts.get(day.isoformat(), 0)) for day in days],
        newest=newest,
        newest_source=newest_source,
        expected=expected_announcement(now, max_missed),
        next_digest=due,
        next_window=digest.last_complete_week(due.date()).label,
        last_week=last_week,
        last_week_pending=[
            email
            for email, _ in store.list_subscribers(db)
            if (store.digest_record(db, email, last_week) or {}).get("state") != "sent"
        ],
        digest_failures=[r for r in store.recent_digests(db) if r["state"] == "failed"],
        last_ok_sources=store.last_ok_by_source(db),
    )


def render_status(status: Status) -> str:
    """The human report `tracker status` prints."""
    lines = [f"tracker status at {status.now.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"]

    def run_line(label: str, run: dict[str, Any] | None, named: bool = True) -> None:
        if run is None:
            lines.append(f"{label}: never")
            return
        counts = f"{run['new']} new, {run['updated']} updated, {run['unchanged']} unchanged"
        source = f"{run['source']}, " if named else ""
        lines.append(f"{label}: {run['finished'] or run['started']} ({source}{run['status']}; {counts})")

    if len(status.last_ok_sources) > 1:  # api window and feed: each may have its own story
        lines.append("last successful sync, by source:")
        for run in status.last_ok_sources:
            run_line(f"  {run['source']}", run, named=False)
    else:
        run_line("last successful sync", status.last_ok)
    if status.last_failed:
        lines.append(
            f"last failure: {status.last_failed['finished'] or status.last_failed['started']}: "
            f"{status.last_failed.get('error') or 'no error recorded'}"
        )
    else:
        lines.append("last failure: none")
    if status.running:
        lines.append(f"running now: sync started {status.running['started']}")
    newest = f"{status.newest} (from {status.newest_source})" if status.newest else "none"
    lines.append(f"newest paper: {newest}; expected at least {status.expected}")
    lines.append("papers per day (last two weeks):")
    top = max((n for _, n in status.per_day), default=0)
    for day, count in status.per_day:
        bar = "#" * (round(count / top * 40) if top else 0)
        lines.append(f"  {day:%a %Y-%m-%d} {count:6d} {bar}".rstrip())
    lines.append(
        f"next digest: {status.next_window}, due {status.next_digest:%a %Y-%m-%d %H:%M %Z} (cron/weekly.sh)"
    )
    if status.last_week_pending:
        lines.append(f"not yet sent {status.last_week}: {', '.join(status.last_week_pending)}")
    for failure in status.digest_failures:
        lines.append(
            f"digest failed: {failure['window']} to {failure['recipient']} "
            f"(attempt {failure['attempts']}): {failure.get('error') or '?'}"
        )
    problems = status.problems
    lines.append("problems: " + ("; ".join(problems) if problems else "none"))
    return "\n".join(lines) + "\n"
