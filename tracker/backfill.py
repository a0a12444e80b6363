"""Backfill: harvest a date range from OAI-PMH into the database, one window at a time, resumably.

The range is cut into calendar-month windows (OAI `from`/`until` are inclusive datestamps). Each page is
stored in ONE transaction together with the harvest's progress row (`backfill_state`: current window
and resumption token), so a run killed at any instant resumes at the first page not yet stored. A
token the server no longer knows (arXiv's expire daily) restarts only the current window; the upsert
makes re-stored records harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import requests
from sqlite_utils import Database

from tracker import store
from tracker.endpoints import DEFAULT_OAI_URL
from tracker.errors import ConfigError, FetchError
from tracker.oai import METADATA_PREFIXES, BadResumptionToken, OaiClient, parse_list_records
from tracker.progress import Progress

log = logging.getLogger(__name__)

MAX_WINDOW_RESTARTS = 3  # badResumptionToken answers in one window before the harvest gives up


@dataclass(frozen=True)
class BackfillOptions:
    """What to harvest: the endpoint, set, format, inclusive date range and the categories to keep."""

    from_date: date
    until_date: date | None = None  # None: up to today, and a rerun picks up what arrived since
    set_spec: str | None = "cs"
    prefix: str = "arXiv"
    categories: tuple[str, ...] = ()
    oai_url: str = DEFAULT_OAI_URL

    def harvest_key(self) -> str:
        """Identifies one harvest in `backfill_state`; a rerun with the same options continues it."""
        cats = ",".join(sorted(self.categories)) or "*"
        until = self.until_date.isoformat() if self.until_date else "open"
        return (
            f"{self.oai_url} set={self.set_spec or '*'} prefix={self.prefix} "
            f"from={self.from_date.isoformat()} until={until} categories={cats}"
        )


@dataclass
class BackfillReport:
    """What a backfill run did."""

    counts: store.Counts = field(default_factory=store.Counts)
    records: int = 0  # records the server sent (before the category filter)
    kept: int = 0  # records in the wanted categories
    deleted: int = 0
    windows: int = 0  # windows finished in this run
    requests: int = 0
    restarts: int = 0  # windows restarted after badResumptionToken
    resumed_from: str | None = None  # window (and token) a previous run had reached
    already_done: bool = False

    def summary(self) -> str:
        """One line for stdout: what the harvest stored."""
        if self.already_done:
            return "backfill: this range was already harvested completely; nothing to do"
        c = self.counts
        resumed = f", resumed at {self.resumed_from}" if self.resumed_from else ""
        restarts = f", {self.restarts} window restart(s) after an expired token" if self.restarts else ""
        return (
            f"backfill ok: {self.records} records in {self.windows} window(s), {self.kept} in the wanted "
            f"categories: {c.new} new, {c.updated} updated, {c.unchanged} unchanged; {self.requests} requests"
            f"{resumed}{restarts}"
        )


def month_windows(start: date, end: date) -> list[tuple[date, date]]:
    """Inclusive windows from `start` to `end`, cut at calendar-month ends."""
    windows: list[tuple[date, date]] = []
    current = start
    while current <= end:
        next_month = (current.replace(day=1) + timedelta(days=32)).replace(day=1)
        last = min(next_month - timedelta(days=1), end)
        windows.append((current, last))
        current = last + timedelta(days=1)
    return windows


def check_options(opts: BackfillOptions, today: date) -> None:
    """Refuse option combinations that cannot harvest anything, with a one-line reason."""
    if opts.prefix not in METADATA_PREFIXES:
        raise ConfigError(f"--metadata-prefix {opts.prefix!r}: use one of {', '.join(METADATA_PREFIXES)}")
    end = opts.until_date or today
    if opts.from_date > end:
        raise ConfigError(f"--from {opts.from_date} is after --until {end}")


def _plan(
    opts: BackfillOptions, state: store.BackfillState | None, today: date
) -> list[tuple[date, date]] | None:
    """The windows still to harvest, or None when a fixed-range harvest is already complete."""
    end = opts.until_date or today
    if state is None:
        return month_windows(opts.from_date, end)
    window_from, window_until = date.fromisoformat(state.window_from), date.fromisoformat(state.window_until)
    if state.done:
        if opts.until_date is not None:
            return None
        # Open-ended: harvest the last window again up to today, for records stamped since.
        return month_windows(window_from, max(end, window_from))
    if state.token:
        # The token belongs to the request with the saved bounds: finish that window as it was.
        return [(window_from, window_until)] + month_windows(window_until + timedelta(days=1), end)
    return month_windows(window_from, max(end, window_from))


def run_backfill(
    db: Database,
    opts: BackfillOptions,
    session: requests.Session,
    *,
    progress: Progress | None = None,
    today: date | None = None,
) -> BackfillReport:
    """Harvest `opts` into `db`, continuing a previous run of the same harvest. The caller holds the writer lock."""
    today = today or datetime.now(timezone.utc).date()
    check_options(opts, today)
    key = opts.harvest_key()
    report = BackfillReport()
    store.mark_abandoned_runs(db)  # we hold the lock: any 'running' row belongs to a killed process
    state = store.get_backfill_state(db, key)
    windows = _plan(opts, state, today)
    if windows is None:
        report.already_done = True
        return report
    token = state.token if state and not state.done else None
    if state and not state.done:
        report.resumed_from = f"{state.window_from}..{state.window_until}" + (
            " (mid-window)" if token else ""
        )
    kept_before = state.records if state else 0
    client = OaiClient(session, opts.oai_url)
    since, until = windows[0][0].isoformat(), (opts.until_date or today).isoformat()
    with store.recorded_run(db, "oai", key, since, until, requests=lambda: client.requests) as run:
        run.counts = report.counts  # one object: the run records what the harvest has stored so far
        try:
            for index in range(len(windows)):
                _harvest_window(
                    db, client, opts, key, windows, index, token, report, kept_before, run.id, progress
                )
                token = None  # only the first window can continue a saved token
                report.windows += 1
        finally:
            report.requests = client.requests
    if progress:
        progress.update(1.0, report.records, "done", force=True)
    return report


def _harvest_window(
    db: Database,
    client: OaiClient,
    opts: BackfillOptions,
    key: str,
    windows: list[tuple[date, date]],
    index: int,
    token: str | None,
    report: BackfillReport,
    kept_before: int,
    run_id: int,
    progress: Progress | None,
) -> None:
    """Fetch and store every page of window `index`; the last page's transaction moves state to the next window."""
    window_from, window_until = windows[index]
    label = f"{window_from}..{window_until}"
    restarts = 0
    seen: set[str] = set()  # tokens this window already followed
    while True:
        source = f"{opts.oai_url} window {label}" + (" (resumed page)" if token else "")
        try:
            body = client.list_records(
                opts.prefix, opts.set_spec, window_from.isoformat(), window_until.isoformat(), token
            )
            page = parse_list_records(body, source, opts.categories)
        except BadResumptionToken as exc:
            restarts += 1
            token = None
            seen.clear()  # the window starts again: its tokens may legitimately come round once more
            with (
                db.atomic()
            ):  # forget the dead token: the next attempt, or the next run, starts the window afresh
                state = store.BackfillState(
                    key, window_from.isoformat(), window_until.isoformat(), None, kept_before + report.kept
                )
                store.save_backfill_state(db, state)
            if restarts > MAX_WINDOW_RESTARTS:
                raise FetchError(
                    f"{exc} (window {label} restarted {MAX_WINDOW_RESTARTS} times; giving up)"
                ) from None
            report.restarts += 1
            log.warning("%s; restarting window %s", exc, label)
            continue
        if page.token and page.token in seen:
            # A server that hands back a token it gave before would have us loop for ever.
            raise FetchError(
                f"{source}: the server returned resumptionToken {page.token!r} a second time; stopping "
                "(what was stored is kept; rerun to continue from the saved page)"
            )
        if page.token:
            seen.add(page.token)
        report.records += page.records
        report.deleted += page.deleted
        report.kept += len(page.rows)
        if page.token:
            state = store.BackfillState(
                key, window_from.isoformat(), window_until.isoformat(), page.token, kept_before + report.kept
            )
        elif index + 1 < len(windows):
            following = windows[index + 1]
            state = store.BackfillState(
                key, following[0].isoformat(), following[1].isoformat(), None, kept_before + report.kept
            )
        else:
            state = store.BackfillState(
                key,
                window_from.isoformat(),
                window_until.isoformat(),
                None,
                kept_before + report.kept,
                done=True,
            )
        with db.atomic():
            report.counts += store.save_papers(db, page.rows)
            store.save_paper_versions(db, page.versions)
            store.save_backfill_state(db, state)
            store.progress_run(db, run_id, report.counts, client.requests)
        if progress:
            within = page.cursor / page.complete_size if page.cursor and page.complete_size else 0.0
            note = f"window {label}, kept {report.kept:,}"
            progress.update((index + min(within, 1.0)) / len(windows), report.records, note)
        if not page.token:
            return
        token = page.token
