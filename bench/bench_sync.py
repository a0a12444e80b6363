"""Benchmark the sync's two speed claims, printing figures (no pass/fail):

1. requests: a window holding N matching papers costs about N / page-size API requests plus one
   per feed, and a rerun right after costs one page (served by the loopback mirror);
2. `sync --load` of 50,000 records from saved Atom pages, against a bare lxml parse plus sqlite3
   executemany of the same pages, measured in the same run; peak RSS for 10k vs 50k records.

    python bench/bench_sync.py [--records 50000]
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from lxml import etree

from tracker import store
from tracker.demo.mirror import ArxivMirror, feed_xml, load_corpus
from tracker.fetch import PoliteSession
from tracker.sync import Syncer, SyncOptions

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"


def bench_requests() -> None:
    corpus = [r for r in load_corpus() if r.get("published") and r.get("categories")]
    window = [r for r in corpus if r["published"][:7] in ("2024-03", "2024-04", "2024-05")]
    with tempfile.TemporaryDirectory() as tmp, ArxivMirror(window, {"2024-05-31": []}) as mirror:
        db = store.open_db(Path(tmp) / "b.db")
        for page_size in (100, 500):
            db.execute("DELETE FROM sync_state")
            opts = SyncOptions(
                categories=("cs.CV", "cs.CL", "cs.AI", "cs.LG"),
                api_url=mirror.api_url,
                rss_url=mirror.rss_url,
                page_size=page_size,
                all_papers=True,
            )
            mirror.requests.clear()
            session = PoliteSession(delay=0)
            opts.since, opts.until = datetime(2024, 3, 1).date(), datetime(2024, 5, 31).date()
            Syncer(db, session, opts).run()
            api = len(mirror.api_requests())
            print(
                f"requests: window of {len(window)} papers (92 days), page size {page_size}: "
                f"{api} API + {len(mirror.requests) - api} feed requests "
                f"(N/page-size = {len(window) / page_size:.1f})"
            )
        opts = SyncOptions(
            categories=("cs.CV", "cs.CL", "cs.AI", "cs.LG"),
            api_url=mirror.api_url,
            rss_url=mirror.rss_url,
            page_size=100,
        )
        opts.since, opts.until = datetime(2024, 3, 1).date(), datetime(2024, 5, 31).date()
        mirror.requests.clear()
        report = Syncer(db, PoliteSession(delay=0), opts).run()
        api = len(mirror.api_requests())
        print(
            f"requests: rerun right after a complete run: {api} API + {len(mirror.requests) - api} feed "
            f"requests, {report.counts.new} new, {report.counts.updated} updated"
        )


def write_pages(folder: Path, n: int, per_page: int = 1000) -> list[Path]:
    corpus = [r for r in load_corpus() if r.get("published")]
    paths = []
    for page in range(0, n, per_page):
        recs = []
        for i in range(page, min(n, page + per_page)):
            rec = dict(corpus[i % len(corpus)])
            rec["id"] = f"{2401 + (i // 99999) % 99:04d}.{i % 99999:05d}"  # unique ids, real text
            recs.append(rec)
        path = folder / f"page_{page // per_page:04d}.xml"
        path.write_bytes(feed_xml(recs, n, page, per_page, "bench"))
        paths.append(path)
    return paths


def baseline(paths: list[Path], db_path: Path) -> float:
    """Bare lxml parse of each page + sqlite3 executemany of the same fields into one table."""
    start = time.perf_counter()
    conn = sqlite3.connect(db_path)
    conn.execute(
        "CREATE TABLE papers (id TEXT PRIMARY KEY, title TEXT, abstract TEXT, authors TEXT, "
        "categories TEXT, published TEXT, updated TEXT)"
    )
    for path in paths:
        root = etree.fromstring(path.read_bytes())
        rows = [
            (
                e.findtext(f"{ATOM}id"),
                e.findtext(f"{ATOM}title"),
                e.findtext(f"{ATOM}summary"),
                ",".join(a.findtext(f"{ATOM}name") or "" for a in e.iterfind(f"{ATOM}author")),
                ",".join(c.get("term") or "" for c in e.iterfind(f"{ATOM}category")),
                e.findtext(f"{ATOM}published"),
                e.findtext(f"{ATOM}updated"),
            )
            for e in root.iterfind(f"{ATOM}entry")
        ]
        conn.executemany("INSERT OR REPLACE INTO papers VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return time.perf_counter() - start


def tracker_load(paths: list[Path], db_path: Path) -> tuple[float, int]:
    """`tracker sync DB --load ...` in a fresh process: wall time and peak RSS (KiB)."""
    listing = db_path.with_suffix(".args")
    args = [
        sys.executable,
        "-c",
        (
            "import sys; from tracker.cli import cli; "
            "sys.argv=['tracker','sync',sys.argv[1],'--no-classify'] + "
            "[x for p in open(sys.argv[2]).read().split() for x in ('--load', p)]; cli()"
        ),
        str(db_path),
        str(listing),
    ]
    listing.write_text("\n".join(map(str, paths)))
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def bench_load(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for count in (n // 5, n):
            (folder / str(count)).mkdir()
            paths = write_pages(folder / str(count), count)
            base = baseline(paths, folder / f"base{count}.db")
            took, rss = tracker_load(paths, folder / f"tracker{count}.db")
            print(
                f"load: {count:,} records in {len(paths)} pages: tracker {took:.2f} s "
                f"({count / took:,.0f} records/s), bare lxml+executemany {base:.2f} s, "
                f"ratio {took / base:.2f}x; peak RSS of the largest run so far {rss / 1024:.0f} MiB"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    args = parser.parse_args()
    bench_requests()
    bench_load(args.records)


if __name__ == "__main__":
    main()
