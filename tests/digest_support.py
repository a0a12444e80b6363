"""Helpers shared by the digest, mail, status and cron tests: real corpus papers in a temp database,
and a real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tracker import store
from tracker.parse import PaperRow

CORPUS = Path(__file__).resolve().parent.parent / "tracker" / "data" / "corpus.jsonl.gz"

# Week 2026-W47 is Mon 2026-11-16 .. Sun 2026-11-22; W46 is the week before.
W47 = ("2026-11-16", "2026-11-22")
TAGS = [  # (tag, facet) as the classifier would write them; tests must not depend on its output
    ("conversational", "paradigm"),
    ("MIT", "mllm"),
    ("hallucination", "topic"),
    ("evaluation", "topic"),
]


def corpus_records(n: int, with_authors: bool = True) -> list[dict[str, Any]]:
    """The first `n` real records of the bundled corpus (with authors, if asked)."""
    found = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if with_authors and not record.get("authors"):
                continue
            found.append(record)
            if len(found) == n:
                break
    return found


def paper_row(
    record: dict[str, Any], announced: str, version: int = 1, published: str | None = None
) -> PaperRow:
    """A corpus record as a PaperRow, announced on `announced` (YYYY-MM-DD) at `version`."""
    published = published or f"{announced}T01:00:00+00:00"
    return {
        "arxiv_id": record["id"],
        "version": version,
        "title": record["title"],
        "abstract": record["abstract"],
        "authors": record.get("authors") or [],
        "primary_category": record.get("primary_category"),
        "categories": record.get("categories") or [record.get("primary_category") or "cs.CV"],
        "published": published,
        "updated": f"{announced}T01:00:00+00:00",
        "abs_url": f"https://arxiv.org/abs/{record['id']}",
        "announce_type": "new" if version == 1 else "replace",
        "announced": announced,
    }


def add_tags(db_path: Path | str, items: list[tuple[str, str, str, float]], source: str = "model") -> None:
    """Insert paper_tags rows (arxiv_id, tag, facet, score) with SQL, as the classifier would."""
    db = store.open_db(db_path)
    with db.atomic():
        db.conn.executemany(
            "INSERT OR REPLACE INTO paper_tags (arxiv_id, tag, facet, score, source) VALUES (?, ?, ?, ?, ?)",
            [(a, t, f, s, source) for a, t, f, s in items],
        )


def make_week_db(path: Path, records: list[dict[str, Any]], day: str = "2026-11-18") -> Path:
    """A database holding `records` announced on `day`, each tagged round-robin with TAGS (scores falling)."""
    db = store.open_db(path)
    store.save_papers(db, [paper_row(r, day) for r in records])
    tags = []
    for i, record in enumerate(records):
        tag, facet = TAGS[i % len(TAGS)]
        tags.append((record["id"], tag, facet, round(0.95 - i * 0.01, 3)))
    add_tags(path, tags)
    return path


# -- SMTP ---------------------------------------------------------------------------------------


@dataclass
class Inbox:
    """What the loopback SMTP server accepted, and how it should answer the next messages."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse_next: int = 0  # answer this many DATA commands with 550
    refuse_rcpt: set[str] = field(default_factory=set)  # answer RCPT TO for these addresses with 550
    quit_reply: str | None = None  # e.g. "421 ...": how a server going down answers QUIT after accepting
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_recipient(self) -> dict[str, list[EmailMessage]]:
        found: dict[str, list[EmailMessage]] = {}
        for message in self.messages:
            found.setdefault(str(message["To"]), []).append(message)
        return found


class InboxHandler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.inbox.refuse_rcpt:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> Any:
        from aiosmtpd.smtp import MISSING

        return self.inbox.quit_reply or MISSING

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.inbox.lock:
            if self.inbox.refuse_next > 0:
                self.inbox.refuse_next -= 1
                return "550 5.7.1 Message refused by policy"
            message = message_from_bytes(envelope.original_content, policy=policy.default)
            self.inbox.messages.append(message)  # type: ignore[arg-type]
            self.inbox.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            self.user,
            self.password,
        )
        return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def send_args(port: int, sender: str = "tracker@example.org") -> list[str]:
    """`tracker digest` options that mail through the loopback SMTP server on `port`, without TLS."""
    return ["--send", "--smtp-host", "127.0.0.1", "--smtp-port", str(port), "--plain", "--from", sender]


def smtp_server(inbox: Inbox, auth: tuple[str, str] | None = None) -> Controller:
    """A started aiosmtpd Controller on 127.0.0.1 (stop() it when done)."""
    kwargs: dict[str, Any] = {}
    if auth:
        kwargs = {"authenticator": Authenticator(*auth), "auth_required": True, "auth_require_tls": False}
    controller = Controller(InboxHandler(inbox), hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


@contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never says a word: an SMTP server that times out."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)  # the kernel completes the handshakes; nobody ever reads or writes
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


# -- what readers see first (issue 12) ----------------------------------------------------------

READER_RULES = Path(__file__).resolve().parent / "fixtures" / "reader_order"
# (tag, facet, score, mllm, relevance) per paper: MLLM and non-MLLM papers under paradigm and task tags.
READER_PAPERS = [
    ("MIT", "mllm", 0.9, 1, 0.95),
    ("hallucination", "topic", 0.8, 1, 0.9),
    ("contrastive", "paradigm", 0.9, 0, 0.1),  # the stronger tag, but plain vision work
    ("contrastive", "paradigm", 0.6, 1, 0.8),  # weaker tag, MLLM work: listed first
    ("clip-vit", "architecture", 0.7, 1, 0.85),
    ("detection", "task", 0.9, 0, 0.2),  # a detection paper that is not MLLM work: left out by default
    ("detection", "task", 0.7, 1, 0.7),  # an MLLM paper doing detection: listed
    ("detection", "task", 0.8, None, None),  # classified before the relevance score: counts as not MLLM
]


def make_reader_db(path: Path, records: list[dict[str, Any]], day: str = "2026-11-18") -> Path:
    """A database of `records` (one per READER_PAPERS entry) announced on `day`, tagged and with
    papers.mllm / papers.relevance set with SQL, as the classifier will set them."""
    db = store.open_db(path)
    store.save_papers(db, [paper_row(r, day) for r in records])
    add_tags(
        path,
        [
            (r["id"], tag, facet, score)
            for r, (tag, facet, score, _, _) in zip(records, READER_PAPERS, strict=True)
        ],
    )
    with db.atomic():
        db.conn.executemany(
            "UPDATE papers SET mllm = ?, relevance = ? WHERE arxiv_id = ?",
            [(mllm, rel, r["id"]) for r, (_, _, _, mllm, rel) in zip(records, READER_PAPERS, strict=True)],
        )
    return path
