"""The nightly sync: plan the windows, page through the API, read the announcement feed, store.

Incremental by a watermark per query (the end of the last complete window), kept in `sync_state`.
Each page is stored in one transaction together with the resume point of its window, so a run killed
at any moment leaves a consistent database and the next run resumes the interrupted window where it
stopped, then catches up to now. Pages come newest first; a full page of papers already stored at the
same version ends a window early (everything older was stored by an earlier complete run).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import arxiv
from sqlite_utils import Database

from tracker import store
from tracker.endpoints import DEFAULT_API_URL, DEFAULT_RSS_URL
from tracker.errors import FetchError, InputError
from tracker.fetch import PoliteSession, fetch_feed, fetch_results, make_client
from tracker.parse import PaperRow, announcements_from_rss, page_from_root, paper_from_result
from tracker.progress import Progress
from tracker.xmlsafe import check_xml

log = logging.getLogger(__name__)
ID_BATCH = 100  # ids per id_list request: keeps the URL short, as arXiv's manual suggests


@dataclass
class SyncOptions:
    categories: tuple[str, ...]
    since: date | None = None
    until: date | None = None
    api_url: str = DEFAULT_API_URL
    rss_url: str | None = DEFAULT_RSS_URL
    page_size: int = 100
    overlap_days: float = 2.0
    initial_days: float = 3.0
    all_papers: bool = False  # --all: read whole windows, never stopping early on known papers


@dataclass
class SyncReport:
    counts: store.Counts = field(default_factory=store.Counts)
    requests: int = 0
    seconds: float = 0.0
    status: str = "ok"  # ok / empty
    feed_items: int = 0
    windows: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # announced ids the API did not return

    def summary(self) -> str:
        c = self.counts
        return (
            f"{c.new} new, {c.updated} updated, {c.unchanged} unchanged; "
            f"{self.requests} requests; {self.seconds:.1f} s"
        )


def category_query(categories: Sequence[str]) -> str:
    """`cat:cs.CV OR cat:cs.CL ...` (parenthesised when there are several)."""
    terms = " OR ".join(f"cat:{c}" for c in categories)
    return f"({terms})" if len(categories) > 1 else terms


def _stamp(value: datetime) -> str:
    return value.strftime("%Y%m%d%H%M")


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(timezone.utc)


def plan_windows(
    state: store.SyncState, opts: SyncOptions, now: datetime
) -> list[tuple[datetime, datetime, int]]:
    """(since, until, start offset) windows this run reads, oldest obligation first."""
    if opts.since or opts.until:
        since = datetime.combine(
            opts.since or (now - timedelta(days=opts.initial_days)).date(), datetime.min.time(), timezone.utc
        )
        until = datetime.combine(
            opts.until or now.date(), datetime.max.time().replace(microsecond=0), timezone.utc
        )
        until = min(until, now) if opts.until is None else until
        offset = 0
        if state.resume_since == since.isoformat() and state.resume_until == until.isoformat():
            offset = state.resume_offset or 0
        return [(since, until, offset)]
    windows: list[tuple[datetime, datetime, int]] = []
    watermark = _parse_iso(state.watermark) if state.watermark else None
    if state.resume_since and state.resume_until:
        resume_until = _parse_iso(state.resume_until)
        windows.append((_parse_iso(state.resume_since), resume_until, state.resume_offset or 0))
        watermark = max(watermark, resume_until) if watermark else resume_until
    since = (
        watermark - timedelta(days=opts.overlap_days)
        if watermark
        else now - timedelta(days=opts.initial_days)
    )
    windows.append((since, now, 0))
    return windows


class Syncer:
    """One `tracker sync` run over one database."""

    def __init__(
        self, db: Database, session: PoliteSession, opts: SyncOptions, progress: Progress | None = None
    ):
        self.db = db
        self.session = session
        self.opts = opts
        self.progress = progress
        self.client = make_client(session, opts.api_url, opts.page_size)
        self.report = SyncReport()
        self.query = category_query(opts.categories)
        self.key = f"api:{self.query}"

    def _requests(self) -> int:
        return self.session.requests_made

    def _report(self, note: str, fraction: float = 0.0, count: int = 0) -> None:
        if self.progress:
            self.progress.update(fraction, count, note)

    def run(self, now: datetime | None = None) -> SyncReport:
        started = time.monotonic()
        now = now or datetime.now(timezone.utc)
        store.mark_abandoned_runs(self.db)
        try:
            for since, until, offset in plan_windows(store.get_state(self.db, self.key), self.opts, now):
                self.sync_window(since, until, offset)
            if self.opts.rss_url:
                self.sync_feed()
            self.complete_stubs()
        finally:
            self.report.requests = self.session.requests_made
            self.report.seconds = time.monotonic() - started
        if self.report.counts.new + self.report.counts.updated == 0 and not self.report.feed_items:
            self.report.status = "empty"
        return self.report

    def sync_window(self, since: datetime, until: datetime, offset: int) -> None:
        """Read one submittedDate window newest first, storing page by page with the resume point."""
        self.report.windows.append((since.isoformat(), until.isoformat()))
        search = arxiv.Search(
            query=f"{self.query} AND submittedDate:[{_stamp(since)} TO {_stamp(until)}]",
            max_results=None,  # every result of the window; the client pages through them
            sort_by=arxiv.SortCriterion.SubmittedDate,
            sort_order=arxiv.SortOrder.Descending,
        )
        with store.recorded_run(
            self.db, "api", self.query, since.isoformat(), until.isoformat(), requests=self._requests
        ) as run:
            try:
                self._read_window(run, search, since, until, offset)
            finally:
                self.report.counts += run.counts

    def _read_window(
        self, run: store.Run, search: arxiv.Search, since: datetime, until: datetime, offset: int
    ) -> None:
        resuming = offset > 0
        position = offset
        batch: list[PaperRow] = []
        state = store.get_state(self.db, self.key)

        def commit() -> store.Counts:
            nonlocal position
            with self.db.atomic():
                page_counts = store.save_papers(self.db, batch)
                position += len(batch)
                state.resume_since, state.resume_until, state.resume_offset = (
                    since.isoformat(),
                    until.isoformat(),
                    position,
                )
                store.save_state(self.db, state)
                run.counts += page_counts
                store.progress_run(self.db, run.id, run.counts, run.requests)
            self._report(f"{since:%Y-%m-%d}..{until:%Y-%m-%d}: {position} papers read", count=position)
            batch.clear()
            return page_counts

        for result in fetch_results(self.client, search, offset):
            batch.append(paper_from_result(result))
            if len(batch) >= self.opts.page_size:
                page = commit()
                if not self.opts.all_papers and not resuming and page.new == 0 and page.updated == 0:
                    log.info("a full page of papers already stored: the rest of the window is known")
                    break
        if batch:
            commit()
        with self.db.atomic():
            # An explicit --since/--until window (a gap filled by hand, say in 2020) must not move the
            # nightly watermark, or the next night would read everything from then on.
            explicit = bool(self.opts.since or self.opts.until)
            if not explicit and (state.watermark is None or until.isoformat() > state.watermark):
                state.watermark = until.isoformat()
            state.resume_since = state.resume_until = None
            state.resume_offset = None
            store.save_state(self.db, state)

    def sync_feed(self) -> None:
        """Read today's announcement feed: record new / cross / replace / replace-cross, stub unknown papers."""
        assert self.opts.rss_url
        feed_query = "+".join(self.opts.categories)
        with store.recorded_run(self.db, "rss", feed_query, None, None, requests=self._requests) as run:
            url, body = fetch_feed(self.session, self.opts.rss_url, list(self.opts.categories))
            day, items = announcements_from_rss(body, url)
            run.counts = store.save_announcements(self.db, items, feed_query)
            # Weekends and holidays: arXiv publishes an empty feed. That is a successful, empty run.
            run.status = "ok" if items else "empty"
        self.report.feed_items += len(items)
        self.report.counts.new += run.counts.new
        self._report(f"feed {day or '?'}: {len(items)} announcements", count=len(items))

    def complete_stubs(self) -> None:
        """Fetch full records (id_list, in batches) for papers seen only in a feed so far."""
        ids = store.papers_needing_metadata(self.db)
        if not ids:
            return
        query = f"id_list ({len(ids)} ids)"
        with store.recorded_run(self.db, "api", query, None, None, requests=self._requests) as run:
            for done, rows in records_by_id(self.client, ids):
                with self.db.atomic():
                    run.counts += store.save_papers(self.db, rows)
                self._report(f"full records: {done}/{len(ids)}", done / len(ids), done)
            self.report.missing = store.papers_needing_metadata(self.db)
            # Not added to the report: each of these papers was counted when its announcement was stored.
            run.status = "ok"
        if self.report.missing:
            log.warning(
                "%d announced papers are not (yet) in the API: %s",
                len(self.report.missing),
                ", ".join(self.report.missing[:5]),
            )


def records_by_id(client: arxiv.Client, ids: Sequence[str]) -> Iterator[tuple[int, list[PaperRow]]]:
    """The API's full records of these ids, ID_BATCH at a time (`id_list`): (ids asked so far, records)."""
    for start in range(0, len(ids), ID_BATCH):
        chunk = list(ids[start : start + ID_BATCH])
        search = arxiv.Search(id_list=chunk, max_results=len(chunk))
        yield min(start + ID_BATCH, len(ids)), [paper_from_result(r) for r in fetch_results(client, search)]


def load_files(db: Database, paths: Sequence[Path], progress: Progress | None = None) -> SyncReport:
    """Ingest saved API pages and/or announcement feeds, all files in ONE transaction.

    Any bad file (truncated, not XML, an entity bomb, an API error feed) rolls everything back, so the
    database keeps exactly what it had. Pages are parsed one at a time: memory does not grow with files.
    """
    started = time.monotonic()
    report = SyncReport()
    with store.recorded_run(db, "load", f"{len(paths)} file(s)", None, None) as run:
        with db.atomic():
            for n, path in enumerate(paths, 1):
                try:
                    content = path.read_bytes()
                except OSError as exc:
                    raise InputError(f"{path}: cannot read: {exc.strerror}") from None
                root = check_xml(content, str(path))
                if (
                    root.tag == "{http://www.w3.org/2005/Atom}feed"
                    and root.find("{http://a9.com/-/spec/opensearch/1.1/}totalResults") is not None
                ):
                    report.counts += store.save_papers(db, page_from_root(root, str(path)).rows)
                elif root.tag in ("rss", "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}RDF"):
                    _, items = announcements_from_rss(content, str(path))
                    report.counts += store.save_announcements(db, items, f"load:{path.name}")
                    report.feed_items += len(items)
                else:
                    raise InputError(f"{path}: neither an arXiv API page nor an announcement feed")
                if progress and (n % 20 == 0 or n == len(paths)):
                    note = f"{n}/{len(paths)} files, {report.counts.total} papers"
                    progress.update(n / len(paths), report.counts.total, note)
        # Only now, after the commit: a bad file rolls every file back, and the run records zero papers.
        run.counts = report.counts
        report.status = run.status = "ok" if report.counts.total or report.feed_items else "empty"
    report.seconds = time.monotonic() - started
    return report


__all__ = ["FetchError", "SyncOptions", "SyncReport", "Syncer", "load_files", "plan_windows"]
