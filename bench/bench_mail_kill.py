"""Kill loop for `tracker digest --send`: SIGKILL the sending process at random moments and count what arrives.

A loopback SMTP server (aiosmtpd, 127.0.0.1 only) waits 50-200 ms before each reply, so a kill can land
anywhere in the conversation. Each round sends one ISO week to every subscriber: the command is started,
killed after a random delay drawn over a whole run's length, and started again until a run ends by itself
with every (recipient, week) recorded as sent. After each kill the server's inbox, the `digests` table
and the outbox folder tell whether it landed in the window the docs describe (the server stored the
message but the run died before reading its 250 and renaming the outbox file). Such a kill may cost one
duplicate, and no other kill may.

Prints: kills, deliveries per recipient, lost digests, duplicates, kills in the window, and kills the
outbox recovered (died after the 250 but before the database write). Exit status 1 when a digest was
lost or there were more duplicates than kills in the window. Bounded: --kills kills, --budget seconds.

    python bench/bench_mail_kill.py                 # 20 kills, 4 subscribers, replies delayed 50-200 ms
    python bench/bench_mail_kill.py --kills 50 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from tracker import store
from tracker.config import REPO_DIR, outbox_dir
from tracker.delivery import outbox_entry
from tracker.parse import PaperRow

CORPUS = REPO_DIR / "tracker" / "data" / "corpus.jsonl.gz"
TAGS = [("conversational", "paradigm"), ("MIT", "mllm"), ("hallucination", "topic"), ("evaluation", "topic")]
SENDER = "tracker@example.org"


@dataclass
class Figures:
    kills: int = 0
    runs: int = 0
    rounds: int = 0
    in_window: int = 0
    recovered: int = 0
    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)  # (recipient, week) -> messages
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        return sum(1 for n in self.deliveries.values() if n == 0)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.deliveries.values() if n > 1)

    def per_recipient(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for (recipient, _), n in self.deliveries.items():
            found[recipient] = found.get(recipient, 0) + n
        return found


class Inbox:
    """Messages the server accepted, as (recipient, week label) in arrival order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        week = str(message["Subject"]).split()[2].rstrip(":")  # "arXiv digest 2026-W47: ..."
        with self.lock:
            self.accepted.extend((rcpt, week) for rcpt in envelope.rcpt_tos)
        return "250 OK"  # stored: from here until the client reads this reply is the window

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def since(self, start: int) -> list[tuple[str, str]]:
        with self.lock:
            return self.accepted[start:]


class SlowController(Controller):
    """aiosmtpd whose every reply (greeting included) waits a random delay."""

    def __init__(self, handler: Inbox, delay: tuple[float, float], seed: int, **kwargs: Any) -> None:
        self.delay, self.rng = delay, random.Random(seed)
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        delay, rng = self.delay, self.rng

        class SlowSMTP(SMTP):
            async def push(self, status: Any) -> None:
                await asyncio.sleep(rng.uniform(*delay))
                await super().push(status)

        return SlowSMTP(self.handler, **self.SMTP_kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_db(path: Path, subscribers: list[str], per_week: int = 6) -> None:
    """Real corpus records, `per_week` announced on the Wednesday of every 2026 week, tagged round-robin.

    With none, every digest is the short "nothing new" note: no chart to draw, so runs are quicker.
    """
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        records = [json.loads(line) for _, line in zip(range(per_week * 52), fh, strict=False)]
    rows, tags = [], []
    for i, r in enumerate(records):
        day = date.fromisocalendar(2026, i // per_week + 1, 3).isoformat()
        arxiv_id = f"2601.{i:05d}"
        rows.append(
            {
                "arxiv_id": arxiv_id,
                "version": 1,
                "title": r["title"],
                "abstract": r["abstract"],
                "authors": r.get("authors") or ["A. Author"],
                "primary_category": r.get("primary_category"),
                "categories": r.get("categories") or ["cs.CV"],
                "published": f"{day}T01:00:00+00:00",
                "updated": f"{day}T01:00:00+00:00",
                "announced": day,
                "announce_type": "new",
                "abs_url": f"https://arxiv.org/abs/{arxiv_id}",
            }
        )
        tags.append((arxiv_id, *TAGS[i % len(TAGS)], 0.9))
    db = store.open_db(path)
    store.save_papers(db, cast(list[PaperRow], rows))
    with db.atomic():
        db.conn.executemany(
            "INSERT OR REPLACE INTO paper_tags (arxiv_id, tag, facet, score, source) VALUES (?, ?, ?, ?, 'model')",
            tags,
        )
    for email in subscribers:
        store.save_subscriber(db, email, [])
    db.close()


def states(db_path: Path, week: str) -> dict[str, str]:
    with sqlite3.connect(db_path) as conn:
        return dict(conn.execute("SELECT recipient, state FROM digests WHERE window = ?", (week,)))


def run_kill_loop(
    kills: int = 20,
    subscribers: int = 4,
    delay: tuple[float, float] = (0.05, 0.2),
    seed: int = 13,
    budget: float = 600.0,
    per_week: int = 6,
    kill_share: float = 0.7,
    workdir: Path | None = None,
) -> Figures:
    """Kill `tracker digest --send` `kills` times (or until `budget` seconds pass) and count deliveries."""
    rng = random.Random(seed)
    figures = Figures()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        db_path = Path(tmp) / "kill.db"
        recipients = [f"reader{i}@example.org" for i in range(subscribers)]
        build_db(db_path, recipients, per_week)
        inbox = Inbox()
        port = free_port()
        controller = SlowController(inbox, delay, seed, hostname="127.0.0.1", port=port)
        controller.start()
        env = {**os.environ, "TRACKER_AUTH": str(Path(tmp) / "auth.json"), "TRACKER_SMTP_TIMEOUT": "10"}
        env.pop("TRACKER_SMTP_PASSWORD", None)
        full_run = None  # seconds one uninterrupted run takes: the range kill moments are drawn from
        try:
            week_no = 0
            while figures.kills < kills and time.monotonic() - started < budget:
                week_no += 1
                week = f"2026-W{week_no:02d}"
                figures.rounds += 1
                command = [
                    sys.executable,
                    "-m",
                    "tracker",
                    "digest",
                    str(db_path),
                    "--week",
                    week,
                    "--send",
                    "--smtp-host",
                    "127.0.0.1",
                    "--smtp-port",
                    str(port),
                    "--plain",
                    "--from",
                    SENDER,
                ]
                for _attempt in range(kills + 50):
                    before = inbox.count()
                    t0 = time.monotonic()
                    proc = subprocess.Popen(
                        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                    )
                    figures.runs += 1
                    # Not every run is killed, or a round whose fixed start-up (imports, the chart) eats most
                    # of a run would rarely finish; a killed run dies at a uniform moment of a whole run.
                    kill = full_run is not None and rng.random() < kill_share
                    moment = rng.uniform(0, full_run) if kill and full_run else None
                    try:
                        _, err = proc.communicate(timeout=moment if moment is not None else 120)
                    except subprocess.TimeoutExpired:
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                        figures.kills += 1
                        time.sleep(delay[1] + 0.2)  # let the server finish what was in flight
                        judge_kill(figures, db_path, week, inbox.since(before))
                        continue
                    if proc.returncode != 0:
                        raise RuntimeError(f"{week}: run failed: {err.decode(errors='replace').strip()}")
                    if full_run is None:  # the first run of all is the calibration: never killed
                        full_run = time.monotonic() - t0
                    done = states(db_path, week)
                    if all(done.get(r) == "sent" for r in recipients):
                        break
                else:
                    raise RuntimeError(f"{week}: not every digest was sent after {kills + 50} runs")
                for r in recipients:
                    figures.deliveries[(r, week)] = 0
                for key in inbox.since(0):
                    if key[1] == week:
                        figures.deliveries[key] += 1
        finally:
            controller.stop()
    figures.seconds = time.monotonic() - started
    return figures


def judge_kill(figures: Figures, db_path: Path, week: str, accepted: list[tuple[str, str]]) -> None:
    """Did this kill land after the server stored a message, before the run recorded it anywhere?"""
    done = states(db_path, week)
    for recipient, label in accepted:
        if done.get(recipient) == "sent":
            continue
        if outbox_entry(outbox_dir(db_path), recipient, label).accepted.exists():
            figures.recovered += 1  # the next run records it without sending again
        else:
            figures.in_window += 1


def report(figures: Figures) -> str:
    lines = [
        f"kills: {figures.kills} (in {figures.runs} runs over {figures.rounds} weeks, {figures.seconds:.0f} s)",
        "deliveries per recipient: "
        + ", ".join(f"{r} {n}/{figures.rounds}" for r, n in sorted(figures.per_recipient().items())),
        f"lost: {figures.lost}",
        f"duplicates: {figures.duplicates}",
        f"kills in the window (server stored it, 250 not yet read): {figures.in_window}",
        f"kills after the 250, before the database write (outbox recovered, no duplicate): {figures.recovered}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs to deliver (default 20)")
    parser.add_argument("--subscribers", type=int, default=4)
    parser.add_argument("--min-delay", type=float, default=0.05, help="shortest reply delay, seconds")
    parser.add_argument("--max-delay", type=float, default=0.2, help="longest reply delay, seconds")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--budget", type=float, default=600.0, help="stop after this many seconds")
    parser.add_argument(
        "--per-week", type=int, default=6, help="papers in each week's digest (0: short notes)"
    )
    parser.add_argument("--kill-share", type=float, default=0.7, help="share of runs that are killed")
    args = parser.parse_args()
    figures = run_kill_loop(
        args.kills,
        args.subscribers,
        (args.min_delay, args.max_delay),
        args.seed,
        args.budget,
        args.per_week,
        args.kill_share,
    )
    print(report(figures))
    ok = figures.lost == 0 and figures.duplicates <= figures.in_window
    print("ok" if ok else "FAILED: lost digests or more duplicates than kills in the window")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
