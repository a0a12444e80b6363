"""Digest benchmark: generate the weekly digest of a week holding 10,000 papers (target: under 2 s).

The papers are the real records of `tracker/data/corpus.jsonl.gz`, cycled with unique new-style ids,
announced over one ISO week (2026-W47), plus 11 earlier weeks of 1,000 papers each so the 12-week
trend has data. Each paper carries one to three tags of rules/taxonomy.yml with random scores
(written with SQL, as the classifier would). Prints the time of each stage (read rows, build,
render text, render HTML, draw chart, assemble the MIME message) and of the whole
`tracker digest --out FILE.eml` command in a fresh process (imports included).

    python bench/bench_digest.py               # 10,000 papers
    python bench/bench_digest.py --n 50000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import cast

from tracker import digest, mail, store
from tracker.chart import MAX_PANELS, render_trend_png
from tracker.config import REPO_DIR
from tracker.parse import PaperRow

CORPUS = REPO_DIR / "tracker" / "data" / "corpus.jsonl.gz"
WEEK = digest.parse_week("2026-W47")
TAGS = [
    ("conversational", "paradigm"),
    ("contrastive", "paradigm"),
    ("MIT", "mllm"),
    ("M-CoT", "mllm"),
    ("clip-vit", "architecture"),
    ("q-former", "architecture"),
    ("hallucination", "topic"),
    ("evaluation", "topic"),
    ("dataset", "topic"),
    ("detection", "task"),
    ("segmentation", "task"),
]


def build_db(path: Path, n: int) -> None:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    rng = random.Random(47)
    db = store.open_db(path)
    plan = [(WEEK.since, n)] + [(WEEK.since - timedelta(weeks=w), 1000) for w in range(1, 12)]
    serial = 0
    for monday, count in plan:
        rows, tags = [], []
        for _ in range(count):
            record = records[serial % len(records)]
            serial += 1
            arxiv_id = f"26{serial // 99999 + 1:02d}.{serial % 99999:05d}"
            day = (monday + timedelta(days=rng.randrange(5))).isoformat()
            rows.append(
                {
                    "arxiv_id": arxiv_id,
                    "version": 1,
                    "title": record["title"],
                    "abstract": record["abstract"],
                    "authors": record.get("authors") or ["A. Author"],
                    "primary_category": record.get("primary_category"),
                    "categories": record.get("categories") or [],
                    "published": f"{day}T01:00:00+00:00",
                    "updated": f"{day}T01:00:00+00:00",
                    "announced": day,
                    "announce_type": "new",
                    "abs_url": f"https://arxiv.org/abs/{arxiv_id}",
                }
            )
            for tag, facet in rng.sample(TAGS, rng.randint(1, 3)):
                tags.append((arxiv_id, tag, facet, round(rng.uniform(0.3, 1.0), 3), "model"))
        store.save_papers(db, cast(list[PaperRow], rows))  # plain dicts with PaperRow's keys
        with db.atomic():
            db.conn.executemany(
                "INSERT OR REPLACE INTO paper_tags (arxiv_id, tag, facet, score, source) VALUES (?, ?, ?, ?, ?)",
                tags,
            )


def timed(label: str, figures: dict[str, float], func, *args, **kwargs):
    start = time.perf_counter()
    value = func(*args, **kwargs)
    figures[label] = time.perf_counter() - start
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="papers in the digest's week")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        start = time.perf_counter()
        build_db(db_path, args.n)
        print(
            f"setup: {args.n:,} papers in {WEEK.label} + 11,000 in the 11 weeks before ({time.perf_counter() - start:.1f} s)"
        )

        figures: dict[str, float] = {}
        db = store.open_db(db_path)
        from tracker.cli import load_digest_taxonomy

        taxonomy = load_digest_taxonomy(db)
        first = digest.trend_mondays(WEEK)[0].isoformat()
        rows = timed(
            "read rows",
            figures,
            store.tagged_papers_between,
            db,
            WEEK.since.isoformat(),
            WEEK.until.isoformat(),
        )
        trend = timed("read trend", figures, store.tag_counts_by_week, db, first, WEEK.until.isoformat())
        now = datetime(2026, 11, 23, 11, tzinfo=timezone.utc)
        d = timed("build", figures, digest.build, rows, taxonomy, WEEK, now, trend=trend)
        text = timed("render text", figures, digest.render_text, d)
        html = timed("render html", figures, digest.render_html, d, "cid:trend-chart")
        series = sorted(((s.title, s.trend) for s in d.sections), key=lambda t: -t[1][-1])[:MAX_PANELS]
        png = timed("draw chart", figures, render_trend_png, d.trend_mondays, series)
        warm: dict[str, float] = {}
        timed("chart again", warm, render_trend_png, d.trend_mondays, series)
        message = timed(
            "assemble MIME",
            figures,
            mail.build_message,
            sender="t@example.org",
            recipient="r@example.org",
            subject=d.subject,
            text=text,
            html=html,
            chart_png=png,
        )
        total = sum(figures.values())
        print(
            f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n"
            f"rows read: {len(rows):,} (paper, tag) pairs; {len(d.sections)} tags; message {len(bytes(message)) / 1024:.0f} KiB"
        )
        for label, seconds in figures.items():
            print(f"  {label:<14} {seconds * 1000:8.1f} ms")
        print(f"  {'in-process':<14} {total * 1000:8.1f} ms  (target < 2000 ms)")
        print(
            f"  (draw chart includes the first matplotlib import and font load; a second draw takes "
            f"{warm['chart again'] * 1000:.0f} ms)"
        )

        out = Path(tmp) / "digest.eml"
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tracker",
                "digest",
                str(db_path),
                "--week",
                WEEK.label,
                "--out",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        print(
            f"  {'CLI --out .eml':<14} {(time.perf_counter() - start) * 1000:8.1f} ms  (fresh process, imports included)"
        )


if __name__ == "__main__":
    main()
