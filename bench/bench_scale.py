"""Scale benchmark: N synthetic papers built from the bundled real records, through ingest (+ classify), then queries.

Prints wall time, papers/s, peak RSS and database size for each N, then FTS and "this week by tag" query
times on the largest database. Each N runs in its own child process, so peak RSS is that N's alone.

Papers are the real records of `tracker/data/corpus.jsonl.gz` (title, abstract, authors, categories)
cycled with unique new-style ids (YYMM.NNNNN) and `published` dates spread evenly over four years, like
a backfill of cs.CV/CL/AI/LG/MM: they go through `store.save_papers` in batches of 1000 (one OAI page
per transaction, as `tracker backfill` does), then through `tracker.classify.run_classify` when it
exists (otherwise a keyword tagger writes `paper_tags`, and the output says so).

    python bench/bench_scale.py                      # N = 100k and 1M (about 10 minutes on 2 cores)
    python bench/bench_scale.py --n 20000 --keep     # quick run, keep the database in --dir
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracker import store  # noqa: E402 (after the sys.path line, so the script runs from a checkout)
from tracker.config import DATA_DIR  # noqa: E402

START = datetime(2022, 1, 3, tzinfo=timezone.utc)  # a Monday
SPAN_DAYS = 4 * 364  # 208 whole weeks
MONTHS = 48
BATCH = 1000
FTS_TERMS = ("hallucination", "vision language model", "chain of thought", "diffusion segmentation", "llava")
KEYWORD_TAGS = (  # fallback tagger, only when tracker.classify.run_classify is not available
    ("hallucination", "topic", r"hallucinat"),
    ("benchmark", "topic", r"\bbenchmark"),
    ("MIT", "mllm", r"instruction[- ]tun"),
    ("M-CoT", "mllm", r"chain[- ]of[- ]thought"),
    ("contrastive", "paradigm", r"\bCLIP\b|contrastive"),
)


def corpus() -> list[dict[str, Any]]:
    with gzip.open(DATA_DIR / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def synthetic_rows(n: int, records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """N PaperRows: real text and authors, unique ids, `published` spread evenly over SPAN_DAYS."""
    month_first = [-(-m * n // MONTHS) for m in range(MONTHS + 1)]  # first index of each id month
    for i in range(n):
        rec = records[i % len(records)]
        month = i * MONTHS // n
        yy, mm = 22 + month // 12, 1 + month % 12
        arxiv_id = f"{yy:02d}{mm:02d}.{i - month_first[month] + 1:05d}"
        published = (START + timedelta(seconds=i * SPAN_DAYS * 86400 / n)).isoformat(timespec="seconds")
        cats = rec.get("categories") or [rec.get("primary_category") or "cs.CV"]
        yield {
            "arxiv_id": arxiv_id,
            "version": 1,
            "title": rec["title"],
            "abstract": rec.get("abstract") or "",
            "authors": rec.get("authors") or [],
            "primary_category": cats[0],
            "categories": cats,
            "published": published,
            "updated": published,
            "comment": None,
            "journal_ref": None,
            "doi": None,
            "abs_url": f"https://arxiv.org/abs/{arxiv_id}",
            "pdf_url": f"https://arxiv.org/pdf/{arxiv_id}",
            "needs_metadata": 0,
        }


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def keyword_tag(db: Any) -> int:
    """Tag every paper by regex (fallback when the classifier is not there), in batches."""
    rules = [(tag, facet, re.compile(p, re.IGNORECASE)) for tag, facet, p in KEYWORD_TAGS]
    total = 0
    last = ""
    while True:
        rows = db.conn.execute(
            "SELECT arxiv_id, title, abstract FROM papers WHERE arxiv_id > ? ORDER BY arxiv_id LIMIT 5000",
            (last,),
        ).fetchall()
        if not rows:
            return total
        last = rows[-1][0]
        tags = []
        for arxiv_id, title, abstract in rows:
            text = f"{title} {abstract}"
            for tag, facet, pattern in rules:
                if pattern.search(text):
                    tags.append((arxiv_id, tag, facet, 0.5 + (hash(arxiv_id) % 50) / 100, "rule", "bench"))
        with db.atomic():
            db.conn.executemany("INSERT OR REPLACE INTO paper_tags VALUES (?, ?, ?, ?, ?, ?)", tags)
        total += len(tags)


def one(n: int, db_path: Path, classify: bool) -> dict[str, Any]:
    """Child process: build the database of N papers and return its figures."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    db = store.open_db(db_path)
    records = corpus()
    t0 = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for row in synthetic_rows(n, records):
        batch.append(row)
        if len(batch) == BATCH:
            store.save_papers(db, batch)  # type: ignore[arg-type]
            batch = []
    if batch:
        store.save_papers(db, batch)  # type: ignore[arg-type]
    ingest = time.perf_counter() - t0
    ingest_rss = rss_mib()
    figures: dict[str, Any] = {"n": n, "ingest_s": ingest, "ingest_rss_mib": ingest_rss}
    if classify:
        t1 = time.perf_counter()
        try:
            from tracker.classify import run_classify  # type: ignore[attr-defined]
        except ImportError:
            figures["tagger"] = "keyword rules (tracker.classify.run_classify not available)"
            figures["tags"] = keyword_tag(db)
        else:
            report = run_classify(db, db_path, all_papers=True)
            figures["tagger"] = f"tracker.classify.run_classify ({report!r})"[:200]
            figures["tags"] = int(db.conn.execute("SELECT count(*) FROM paper_tags").fetchone()[0])
        figures["classify_s"] = time.perf_counter() - t1
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    figures["peak_rss_mib"] = rss_mib()
    figures["db_mib"] = (
        sum(os.path.getsize(f"{db_path}{s}") for s in ("", "-wal") if os.path.exists(f"{db_path}{s}")) / 2**20
    )
    figures["queries"] = time_queries(db)
    return figures


def timed(db: Any, sql: str, params: dict[str, Any], repeat: int = 5) -> tuple[float, int]:
    """Median milliseconds of `repeat` warm runs (one cold run first), and the row count."""
    rows = db.conn.execute(sql, params).fetchall()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        rows = db.conn.execute(sql, params).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), len(rows)


def canned_sql(name: str) -> str | None:
    """A canned query's SQL from db/metadata.yml, to time exactly what Datasette users run."""
    try:
        import yaml

        meta = yaml.safe_load((ROOT / "db" / "metadata.yml").read_text())
        return meta["databases"]["tracker"]["queries"][name]["sql"]
    except (OSError, KeyError, TypeError, ImportError):
        return None


def time_queries(db: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for term in FTS_TERMS:
        # Datasette's search: matching rows, newest first, one page.
        out[f"fts '{term}' (datasette page)"] = timed(
            db,
            "SELECT p.arxiv_id, p.title FROM papers p WHERE p.rowid IN "
            "(SELECT rowid FROM papers_fts WHERE papers_fts MATCH :q) ORDER BY p.published DESC LIMIT 101",
            {"q": term},
        )
        out[f"fts '{term}' (bm25 top 20)"] = timed(
            db,
            "SELECT p.arxiv_id, p.title FROM papers_fts JOIN papers p ON p.rowid = papers_fts.rowid "
            "WHERE papers_fts MATCH :q ORDER BY rank LIMIT 20",
            {"q": term},
        )
    week_end = (START + timedelta(days=SPAN_DAYS)).date()
    week_start = week_end - timedelta(days=7)
    sql = canned_sql("papers_this_week")
    if sql:
        out["canned papers_this_week (tag='')"] = timed(db, sql, {"week_of": "", "tag": ""}, repeat=3)
        out["canned papers_this_week (tag=hallucination)"] = timed(
            db, sql, {"week_of": "", "tag": "hallucination"}, repeat=3
        )
    out["this week by tag, on idx_papers_published"] = timed(
        db,
        "SELECT t.tag, t.facet, round(t.score, 3) AS score, p.arxiv_id, p.title FROM papers p "
        "JOIN paper_tags t ON t.arxiv_id = p.arxiv_id WHERE p.published >= :a AND p.published < :b "
        "ORDER BY t.facet, t.tag, t.score DESC",
        {"a": week_start.isoformat(), "b": week_end.isoformat()},
    )
    return out


def fmt_row(f: dict[str, Any]) -> str:
    total = f["ingest_s"] + f.get("classify_s", 0.0)
    return (
        f"| {f['n']:>9,} | {f['ingest_s']:7.1f} s | {f['n'] / f['ingest_s']:8,.0f} | "
        f"{f.get('classify_s', float('nan')):7.1f} s | {total:7.1f} s | {f['n'] / total:8,.0f} | "
        f"{f['peak_rss_mib']:7.0f} MiB | {f['db_mib']:7.0f} MiB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, action="append", help="papers (repeatable); default 100000 and 1000000"
    )
    parser.add_argument("--dir", type=Path, help="where the databases go (default: a temporary folder)")
    parser.add_argument("--no-classify", action="store_true", help="ingest only")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.db, not args.no_classify)))
        return
    sizes = args.n or [100_000, 1_000_000]
    folder = args.dir or Path(tempfile.mkdtemp(prefix="tracker-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for n in sizes:
        db_path = folder / f"bench_{n}.db"
        cmd = [sys.executable, __file__, "--one", str(n), "--db", str(db_path)]
        cmd += ["--no-classify"] if args.no_classify else []
        print(f"N={n:,}: building {db_path} ...", file=sys.stderr, flush=True)
        # stdout carries the figures; the child's stderr (warnings, a traceback) goes straight to ours.
        child = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True)
        if child.returncode != 0:
            print(
                f"N={n:,}: the child failed (exit {child.returncode}); see its stderr above", file=sys.stderr
            )
            break
        out = child.stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(fmt_row(results[-1]), file=sys.stderr, flush=True)  # partial results, in case a later N fails
        if not args.keep:
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite {__import__('sqlite3').sqlite_version}"
    )
    print(f"tagger: {results[-1].get('tagger', 'none (--no-classify)')}")
    print()
    print(
        "|         N |  ingest   | papers/s | classify  |  total    | papers/s | peak RSS    | DB size     |"
    )
    print(
        "|----------:|----------:|---------:|----------:|----------:|---------:|------------:|------------:|"
    )
    for f in results:
        print(fmt_row(f))
    print()
    if not results:
        sys.exit(1)
    largest = results[-1]
    print(f"queries on N={largest['n']:,} (median of warm runs):")
    print()
    print("| query | ms | rows |")
    print("|---|---:|---:|")
    for name, (ms, rows) in largest["queries"].items():
        print(f"| {name} | {ms:.1f} | {rows} |")


if __name__ == "__main__":
    main()
