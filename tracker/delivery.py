"""Digest delivery: each recipient gets a window's digest once, through reruns, refusals, kills and a full disk.

One delivery goes through these steps, in this order:

1. the papers the digest carries are written to `<db>.outbox/<key>.pending` (while the disk has room);
2. the (recipient, window) row in `digests` becomes `sending`, with the attempt counted and the
   Message-ID stored;
3. SMTP. The moment the server answers DATA with 250, the file is renamed `<key>.accepted` (a
   rename needs no free space, unlike a database write);
4. the row becomes `sent` with its papers (`digest_papers`), then the file is deleted. QUIT comes
   after that: a server that refuses QUIT or drops the line has already taken the message.

A run first settles what an earlier one left: an `.accepted` file whose row is still `sending` is
recorded as sent without mailing it again (the disk was full at step 4, or the process died between
3 and 4). A `sending` row with no such file was cut off before the server's 250 was read, so the
digest is sent again, with the same Message-ID, so that mail systems that match Message-IDs can
spot a second copy. What is left is one duplicate for a run killed after the server accepted the
message but before its 250 was read and the file renamed (one network reply and one system call).
Nothing is lost: every step before that leads to a resend. Files are not fsynced, so a power cut
can lose a rename and cause the same duplicate.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shlex
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlite_utils import Database

from tracker import digest, mail, recommend, store
from tracker.endpoints import abs_url
from tracker.errors import ConfigError, MailError, ModelError, TrackerError

log = logging.getLogger(__name__)

FOR_YOU = 10  # papers in a reader's "For you" section


def similar_link(datasette_url: str, db_path: str | Path) -> Callable[[str], str]:
    """A paper's similar papers in the Datasette of `tracker serve` at `datasette_url` (the `similar`
    canned query of a database named after the file's stem, as Datasette names it)."""
    base = f"{datasette_url.rstrip('/')}/{quote(Path(db_path).stem)}/similar?id="
    return lambda arxiv_id: base + quote(arxiv_id, safe="")


class DigestSource:
    """The window's rows and trend, read once and shared by every recipient's digest.

    :param db_path: the database path as the user wrote it, named in the footer's commands.
    :param datasette_url: where `tracker serve` runs, for each paper's "similar papers" link (None: no link).
    :param readers: give subscribers with a library their "For you" section.
    :param save_models: store the readers' ranking models fitted on the way (needs a writable database).
    """

    def __init__(
        self,
        db: Database,
        taxonomy: digest.DigestTaxonomy,
        window: digest.Window,
        now: datetime,
        max_per_tag: int,
        all_tasks: bool = False,
        db_path: str | None = None,
        datasette_url: str | None = None,
        readers: bool = False,
        save_models: bool = False,
    ) -> None:
        self.taxonomy, self.window, self.now, self.max_per_tag = taxonomy, window, now, max_per_tag
        self.all_tasks, self.db_path = all_tasks, shlex.quote(str(db_path)) if db_path else None
        self.db, self.save_models = db, save_models
        self.similar_url = similar_link(datasette_url, db_path) if datasette_url and db_path else None
        # Readers with a library get a "For you" section: the window's vectors are read once for all.
        self.ranking: tuple[recommend.Vocabulary, recommend.Window] | None = None
        if readers and db_path and store.readers_with_library(db):
            with contextlib.suppress(ModelError):  # no classifier yet: no vectors, no "For you"
                vocab = recommend.Vocabulary.of(db, db_path)
                since, until = window.since.isoformat(), window.until.isoformat()
                self.ranking = (vocab, recommend.Window.read(vocab, since, until))
        self.rows = store.tagged_papers_between(db, window.since.isoformat(), window.until.isoformat())
        first = digest.trend_mondays(window)[0]
        self.trend = store.tag_counts_by_week(db, first.isoformat(), window.until.isoformat())
        # the task sections list only MLLM work by default: their trend counts only that too
        self.mllm_trend = store.tag_counts_by_week(
            db, first.isoformat(), window.until.isoformat(), mllm_only=True
        )
        self.charts: dict[Any, bytes] = {}

    def build(
        self, tags: Sequence[str] = (), sent: dict[str, int] | None = None, reader: str | None = None
    ) -> digest.Digest:
        """The digest of `reader` (their "For you" section if they gave a library)."""
        return digest.build(
            self.rows,
            self.taxonomy,
            self.window,
            self.now,
            tags=tags,
            sent=sent,
            trend=self.trend,
            mllm_trend=self.mllm_trend,
            max_per_tag=self.max_per_tag,
            all_tasks=self.all_tasks,
            for_you=self.for_you(reader, sent or {}) if reader else [],
            similar_url=self.similar_url,
        )

    def for_you(self, reader: str, sent: dict[str, int], limit: int = FOR_YOU) -> list[digest.ForYou]:
        """The window's papers best for this reader by their library; none already sent to them."""
        if self.ranking is None:
            return []
        vocab, window = self.ranking
        try:
            # A stored model is refitted when the library or the vocabulary changed (saved when sending).
            model = vocab.reader(reader, save=self.save_models)
            if model is None:
                return []
            library = store.library_ids(self.db, reader)
            picks = recommend.rank(vocab, window, model, library, limit, frozenset(sent))
        except (TrackerError, ValueError, sqlite3.Error) as exc:
            # One reader's ranking must not stop everyone's digest: theirs goes out without the section.
            log.warning("For you for %s left out: %s", reader, exc)
            return []
        return [
            digest.ForYou(
                p.arxiv_id,
                p.version,
                p.title,
                abs_url(p.arxiv_id),
                p.score,
                p.like_title,
                self.similar_url(p.arxiv_id) if self.similar_url else None,
            )
            for p in picks
        ]

    def chart(self, d: digest.Digest) -> bytes | None:
        """The trend PNG for a digest's tags (None when there is nothing to draw), drawn once per tag set."""
        from tracker.chart import MAX_PANELS, render_trend_png

        series = sorted(((s.title, s.trend) for s in d.sections if any(s.trend)), key=lambda t: -t[1][-1])
        key = tuple((title, tuple(counts)) for title, counts in series[:MAX_PANELS])
        if key and key not in self.charts:
            self.charts[key] = render_trend_png(d.trend_mondays, series)
        return self.charts.get(key)

    def text(self, d: digest.Digest, recipient: str | None = None) -> str:
        return digest.render_text(d, db_path=self.db_path, recipient=recipient)

    def html(self, d: digest.Digest, chart_src: str | None, recipient: str | None = None) -> str:
        return digest.render_html(d, chart_src, db_path=self.db_path, recipient=recipient)

    def message(
        self, d: digest.Digest, sender: str, recipient: str | None, message_id: str | None = None
    ) -> EmailMessage:
        png = self.chart(d)
        html = self.html(d, f"cid:{mail.CHART_CID}" if png else None, recipient)
        return mail.build_message(
            sender=sender,
            recipient=recipient,
            subject=d.subject,
            text=self.text(d, recipient),
            html=html,
            chart_png=png,
            message_id=message_id,
        )


def write_digest_file(
    source: DigestSource, d: digest.Digest, out: str, sender: str | None, recipient: str | None
) -> None:
    """--out: the whole message (.eml) or a self-contained HTML page with the chart inlined (.html)."""
    import base64

    path = Path(out)
    if path.suffix == ".eml":
        path.write_bytes(bytes(source.message(d, sender or "tracker@localhost.localdomain", recipient)))
    elif path.suffix in (".html", ".htm"):
        png = source.chart(d)
        src = f"data:image/png;base64,{base64.b64encode(png).decode()}" if png else None
        path.write_text(source.html(d, src, recipient), encoding="utf-8")
    else:
        raise ConfigError(f"--out {out}: expected a file name ending in .eml or .html")


# -- the outbox: what the server accepted, kept where a full disk cannot stop us recording it -----


@dataclass(frozen=True)
class OutboxEntry:
    pending: Path
    accepted: Path


def outbox_entry(outbox: Path, recipient: str, window: str) -> OutboxEntry:
    key = hashlib.sha256(f"{recipient}\0{window}".encode()).hexdigest()[:24]
    return OutboxEntry(outbox / f"{key}.pending", outbox / f"{key}.accepted")


def save_pending(
    entry: OutboxEntry, recipient: str, window: str, message_id: str, papers: Sequence[tuple[str, int]]
) -> None:
    entry.pending.parent.mkdir(exist_ok=True)
    data = {"recipient": recipient, "window": window, "message_id": message_id, "papers": list(papers)}
    entry.pending.write_text(json.dumps(data), encoding="utf-8")


def settle_outbox(db: Database, outbox: Path, report: Callable[[str], None]) -> int:
    """Record as sent what an earlier run saw accepted but could not write down; returns how many."""
    if not outbox.is_dir():
        return 0
    settled = 0
    for path in sorted(outbox.glob("*.accepted")):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            recipient, window, message_id = entry["recipient"], entry["window"], entry["message_id"]
            papers = [(str(a), int(v)) for a, v in entry["papers"]]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            report(
                f"outbox {path.name}: unreadable ({exc.__class__.__name__}); ignored, its digest may be sent again"
            )
            path.unlink()
            continue
        row = store.digest_record(db, recipient, window)
        if row and row["state"] == "sending" and row["message_id"] == message_id:
            store.finish_digest(db, recipient, window, "sent", papers, message_id)
            report(f"{window} to {recipient}: the server had accepted it; recorded as sent, not sent again")
            settled += 1
        path.unlink()
    for path in outbox.glob("*.pending"):  # never accepted as far as we know: the `sending` row resends
        path.unlink()
    with contextlib.suppress(OSError):  # something else lives there: not ours to remove
        outbox.rmdir()
    return settled


def record_accepted(
    db: Database,
    entry: OutboxEntry,
    recipient: str,
    window: str,
    papers: Sequence[tuple[str, int]],
    message_id: str,
) -> None:
    """The server answered 250: rename the outbox file first (needs no free space), then write `sent`."""
    try:
        entry.pending.rename(entry.accepted)
    except OSError as exc:  # then only the database write below can prevent a resend
        log.warning("outbox: %s", exc)
    store.finish_digest(db, recipient, window, "sent", papers, message_id)
    entry.accepted.unlink(missing_ok=True)


# -- delivery ------------------------------------------------------------------------------------


def deliver_digests(
    db: Database,
    outbox: Path,
    source: DigestSource,
    recipients: Sequence[tuple[str, Sequence[str]]],
    smtp: mail.SmtpSettings,
    *,
    resend: bool = False,
    skip_empty: bool = False,
    report: Callable[[str], None] = log.info,
) -> list[str]:
    """Send each recipient's digest of the window exactly once; returns the addresses that failed.

    A failure for one recipient (bad stored address, refusal, timeout) is recorded as `failed` and the
    next recipient goes ahead; only a database that cannot record an accepted message stops the run.
    """
    label, failed = source.window.label, []
    settle_outbox(db, outbox, report)
    for done, (email, tags) in enumerate(recipients):
        record = store.digest_record(db, email, label)
        if record and record["state"] == "sent" and not resend:
            report(
                f"{label} already sent to {email} ({record['updated']}); nothing sent (--resend to repeat)"
            )
            continue
        try:
            mail.check_address(email, "stored address")
        except ConfigError as exc:
            store.finish_digest(db, email, label, "failed", error=str(exc))
            report(f"{label} to {email!r} failed: {exc}")
            failed.append(email)
            continue
        if record and record["state"] == "sending":
            report(f"{label} to {email}: an earlier attempt was interrupted mid-send; sending again")
        d = source.build(tags, None if resend else store.sent_versions(db, email), reader=email)
        if d.empty and skip_empty:
            store.finish_digest(db, email, label, "empty")
            report(f"{label} to {email}: nothing new in their tags; skipped (--skip-empty)")
            continue
        # A retry reuses the Message-ID: if the first copy did arrive, the second one says it is the same.
        stored_id = record["message_id"] if record and not resend else None
        message_id = str(stored_id) if stored_id else mail.new_message_id(smtp.sender)
        papers = d.paper_versions()
        try:
            message = source.message(d, smtp.sender, email, message_id)
        except MailError as exc:
            store.finish_digest(db, email, label, "failed", error=str(exc))
            report(f"{label} to {email!r} failed: {exc}")
            failed.append(email)
            continue
        entry = outbox_entry(outbox, email, label)
        save_pending(entry, email, label, message_id, papers)
        attempt = store.begin_digest(db, email, label, message_id)
        try:
            mail.send(
                message,
                smtp,
                on_accepted=partial(record_accepted, db, entry, email, label, papers, message_id),
            )
        except MailError as exc:
            entry.pending.unlink(missing_ok=True)
            store.finish_digest(db, email, label, "failed", error=str(exc))
            report(f"{label} to {email} failed (attempt {attempt}): {exc}")
            failed.append(email)
            continue
        except sqlite3.Error as exc:
            kept = entry.accepted.exists()
            left = len(recipients) - done - 1
            raise TrackerError(
                f"the server accepted {label} for {email}, but the database could not record it ({exc}); "
                + (
                    f"kept in {outbox}, the next run records it without sending it again"
                    if kept
                    else "the next run sends it again (same Message-ID)"
                )
                + (f"; stopped before the {left} remaining recipients" if left else "")
            ) from None
        report(f"sent {label} to {email}: {d.listed_count} papers listed")
    settle_outbox(db, outbox, report)  # removes the emptied folder
    return failed
