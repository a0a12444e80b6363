"""Scale benchmark: N synthetic papers built from the bundled real records, through ingest + classify, then queries.

For each N (default 100k and 1M), in a child process of its own (so peak RSS is that N's alone), prints:
wall time and papers/s of ingest (`store.save_papers`, 1000 papers per transaction, as `tracker backfill`
stores one OAI page), of training (`classify.train_from_db`, once per model, independent of N) and of
tagging (`classify.run_classify`, the step `sync` and `backfill` run), peak RSS, database size; then query
times: full-text search for common and rare terms (the canned `search_with_tags` query, which this
project recommends, next to the plain variants), the canned "papers this week by tag" query and the
other canned queries of db/metadata.yml, and the digest's window query. Last, it runs FTS5 'optimize'
and times the searches again, to show what compacting the index after a backfill buys.

Papers are the real records of `tracker/data/corpus.jsonl.gz` (title, abstract, authors, categories)
cycled with unique new-style ids (YYMM.NNNNN) and `published` dates spread evenly over four years, in
date order, like a backfill. The corpus repeats about 9,500 abstracts, so term frequencies are those of
a multimodal-heavy cs corpus; the match count of each searched term is printed with its timings.

    python bench/bench_scale.py                       # N = 100k and 1M
    python bench/bench_scale.py --n 20000 --keep      # a quick run; keep the database in --dir
    python bench/bench_scale.py --n 1000000 --no-classify --fts-automerge 4 --cache-mib 2  # SQLite defaults
    python bench/bench_scale.py --queries DIR/bench_1000000.db   # time the queries again on a kept database
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracker import store  # noqa: E402 (after the sys.path line, so the script runs from a checkout)
from tracker.config import DATA_DIR, model_paths  # noqa: E402

START = datetime(2022, 1, 3, tzinfo=timezone.utc)  # a Monday
SPAN_DAYS = 4 * 364  # 208 whole weeks
MONTHS = 48
BATCH = 1000
# From very common to rare: share of papers matching at 100k is 79 %, 5.6 %, 2.4 %, 2.3 %, 0.5 %, 0.1 %.
# Then searches of common words that rarely meet in a title (slow for an FTS title filter), and a quoted
# phrase of common words that never occurs (FTS5 reads the words' whole index entries to find that out).
FTS_TERMS = (
    "model",
    "vision language model",
    "hallucination",
    "chain of thought",
    "llava",
    "sarcasm",
    "state of the art",
    "reinforcement learning from human feedback",
    "in this paper we",
    '"we we"',
)
SEARCH_SQL = {  # {fts} is replaced by the MATCH argument
    "rank top 20": "SELECT rowid FROM papers_fts WHERE papers_fts MATCH {fts} ORDER BY rank LIMIT 20",
    "newest stored 20": "SELECT rowid FROM papers_fts WHERE papers_fts MATCH {fts} ORDER BY rowid DESC LIMIT 20",
    # What Datasette's table page runs for ?_search= (sort_desc: published), then its count; the
    # tracker_search plugin now sends a plain table search to the canned query instead.
    "datasette page": "SELECT arxiv_id, title FROM papers WHERE rowid IN (SELECT rowid FROM papers_fts "
    "WHERE papers_fts MATCH {fts}) ORDER BY published DESC, arxiv_id LIMIT 51",
    "datasette count": "SELECT count(*) FROM papers WHERE rowid IN (SELECT rowid FROM papers_fts "
    "WHERE papers_fts MATCH {fts})",
}


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


class TreeMemory(threading.Thread):
    """Peak memory of this process plus its children (classify's forked workers), sampled every 0.2 s.

    ru_maxrss counts one process only. Summed RSS counts the model pages the workers share with the
    parent (copy-on-write) once per process, so it overstates; summed PSS splits shared pages fairly.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_rss = self.peak_pss = 0.0
        self.halt = threading.Event()

    @staticmethod
    def tree(pid: int) -> list[int]:
        pids = [pid]
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                for child in children.read_text().split():
                    pids += TreeMemory.tree(int(child))
        return pids

    def run(self) -> None:
        while not self.halt.wait(0.2):
            rss = pss = 0
            for pid in self.tree(os.getpid()):
                with contextlib.suppress(OSError):
                    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Rss:"):
                            rss += int(line.split()[1])
                        elif line.startswith("Pss:"):
                            pss += int(line.split()[1])
            self.peak_rss = max(self.peak_rss, rss / 1024)
            self.peak_pss = max(self.peak_pss, pss / 1024)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def ticker(label: str, every: int) -> Callable[[int, int], None]:
    """A progress callback (items done, items in all) reporting every `every` items, with the rate so far."""
    started, done, shown = time.perf_counter(), [0], [0]

    def tick(so_far: int, total: int) -> None:
        done[0] = so_far
        if done[0] - shown[0] >= every:
            shown[0] = done[0]
            rate = done[0] / (time.perf_counter() - started)
            say(f"  {label}: {done[0]:,} ({rate:,.0f}/s, load {os.getloadavg()[0]:.1f})")

    return tick


class TickerProgress:
    """A ticker as the tracker.progress.Progress that run_classify updates."""

    def __init__(self, tick: Callable[[int, int], None]) -> None:
        self.tick = tick

    def update(self, fraction: float, count: int, note: str = "", *, force: bool = False) -> None:
        self.tick(count, 0)


def ingest(db: Any, n: int) -> None:
    records = corpus()
    tick = ticker("ingested", 100_000)
    batch: list[dict[str, Any]] = []
    stored = 0
    for row in synthetic_rows(n, records):
        batch.append(row)
        if len(batch) == BATCH:
            store.save_papers(db, batch)  # type: ignore[arg-type]
            stored += len(batch)
            tick(stored, n)
            batch = []
    if batch:
        store.save_papers(db, batch)  # type: ignore[arg-type]


def classify_all(db: Any, db_path: Path, figures: dict[str, Any]) -> None:
    """Train once (timed apart: it does not depend on N), then tag every paper as `backfill` does."""
    from tracker import classify
    from tracker.config import rules_dir
    from tracker.rules import load_rules

    t = time.perf_counter()
    taxonomy, labels = load_rules(rules_dir())
    classify.train_from_db(db, db_path, taxonomy, labels)
    figures["train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    report = classify.run_classify(db, db_path, progress=TickerProgress(ticker("classified", 100_000)))
    figures["classify_s"] = time.perf_counter() - t
    figures["classified"] = report.papers
    figures["tagged"] = report.tagged
    figures["tag_rows"] = int(db.conn.execute("SELECT count(*) FROM paper_tags").fetchone()[0])


def one(
    n: int, db_path: Path, classify: bool, automerge: int | None, cache_mib: int | None
) -> dict[str, Any]:
    """Child process: build the database of N papers and return its figures."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    db = store.open_db(db_path)
    if cache_mib is not None:
        db.conn.execute(f"PRAGMA cache_size = -{cache_mib * 1024}")
    if automerge is not None:
        with db.atomic():
            db.conn.execute("INSERT INTO papers_fts (papers_fts, rank) VALUES ('automerge', ?)", (automerge,))
    figures: dict[str, Any] = {"n": n, "load_start": os.getloadavg()[0]}
    memory = TreeMemory()
    memory.start()
    figures["automerge"] = dict(db.conn.execute("SELECT k, v FROM papers_fts_config")).get("automerge", 4)
    figures["cache_mib"] = -int(db.conn.execute("PRAGMA cache_size").fetchone()[0]) // 1024
    t = time.perf_counter()
    ingest(db, n)
    figures["ingest_s"] = time.perf_counter() - t
    figures["ingest_rss_mib"] = rss_mib()
    if classify:
        classify_all(db, db_path, figures)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    figures["peak_rss_mib"] = rss_mib()  # before the query phase, which imports Datasette's escape_fts
    figures["tree_rss_mib"], figures["tree_pss_mib"] = memory.peak_rss, memory.peak_pss
    figures["worker_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures["load_end"] = os.getloadavg()[0]
    figures["db_mib"] = (
        sum(os.path.getsize(f"{db_path}{s}") for s in ("", "-wal") if os.path.exists(f"{db_path}{s}")) / 2**20
    )
    figures["fts_segments"] = fts_segments(db)
    figures["queries"] = time_queries(db)
    t = time.perf_counter()
    with db.atomic():
        db.conn.execute("INSERT INTO papers_fts (papers_fts) VALUES ('optimize')")
    figures["optimize_s"] = time.perf_counter() - t
    figures["queries_optimized"] = time_searches(db)
    figures["final_rss_mib"] = rss_mib()  # including the query phase and the optimize
    return figures


def fts_segments(db: Any) -> int:
    return int(db.conn.execute("SELECT count(DISTINCT segid) FROM papers_fts_idx").fetchone()[0])


def timed(db: Any, sql: str, params: dict[str, Any] | tuple[Any, ...], repeat: int = 5) -> tuple[float, int]:
    """Median milliseconds of warm runs (after one cold run; one warm run if the query takes seconds)."""
    t = time.perf_counter()
    rows = db.conn.execute(sql, params).fetchall()
    if time.perf_counter() - t > 1.0:
        repeat = 1
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        rows = db.conn.execute(sql, params).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), len(rows)


def canned(name: str) -> str:
    """A canned query's SQL from db/metadata.yml: exactly what Datasette users run."""
    import yaml

    meta = yaml.safe_load((ROOT / "db" / "metadata.yml").read_text())
    return str(meta["databases"]["tracker"]["queries"][name]["sql"])


def time_searches(db: Any) -> dict[str, Any]:
    from datasette.utils import escape_fts  # the function Datasette registers for canned queries

    db.conn.create_function("escape_fts", 1, escape_fts)
    out: dict[str, Any] = {}
    for term in FTS_TERMS:
        matches = db.conn.execute(
            "SELECT count(*) FROM papers_fts WHERE papers_fts MATCH escape_fts(?)", (term,)
        ).fetchone()[0]
        label = f"'{term}' ({matches:,} matches)"
        out[f"{label}: canned search_with_tags (recommended)"] = timed(
            db, canned("search_with_tags"), {"q": term}
        )
        for name, sql in SEARCH_SQL.items():
            out[f"{label}: {name}"] = timed(db, sql.format(fts="escape_fts(?)"), (term,))
    return out


def time_queries(db: Any) -> dict[str, Any]:
    out = time_searches(db)
    top = db.conn.execute("SELECT tag FROM paper_tags GROUP BY tag ORDER BY count(*) DESC LIMIT 1").fetchone()
    tag = top[0] if top else "hallucination"
    week = canned("papers_this_week")
    out["canned papers_this_week (all tags)"] = timed(db, week, {"week_of": "", "tag": ""})
    out[f"canned papers_this_week (tag={tag})"] = timed(db, week, {"week_of": "", "tag": tag})
    out["canned papers_this_week (week_of=2024-06-12)"] = timed(
        db, week, {"week_of": "2024-06-12", "tag": ""}
    )
    newest = db.conn.execute(f"SELECT max({store.EVENT_DATE_SQL}) FROM papers p").fetchone()[0]
    if newest:
        monday = (
            datetime.fromisoformat(newest) - timedelta(days=datetime.fromisoformat(newest).weekday())
        ).date()
        since, until = monday.isoformat(), (monday + timedelta(days=6)).isoformat()
        t = time.perf_counter()
        rows = store.tagged_papers_between(db, since, until)
        out["digest store.tagged_papers_between (newest week)"] = (
            (time.perf_counter() - t) * 1000,
            len(rows),
        )
    out["canned tag_feed (all tags)"] = timed(db, canned("tag_feed"), {"tag": ""})
    out[f"canned tag_feed (tag={tag})"] = timed(db, canned("tag_feed"), {"tag": tag})
    out[f"canned tag_above_score (tag={tag}, min 0.9)"] = timed(
        db, canned("tag_above_score"), {"tag": tag, "min_score": "0.9"}, repeat=3
    )
    out[f"canned tag_trend (tag={tag})"] = timed(db, canned("tag_trend"), {"tag": tag}, repeat=3)
    out["canned tag_trend (all tags)"] = timed(db, canned("tag_trend"), {"tag": ""}, repeat=1)
    # The facets Datasette computes on the papers table page (it gives up on each after 500 ms).
    out["datasette facet tags (array)"] = timed(
        db,
        "SELECT j.value, count(*) AS n FROM papers JOIN json_each(papers.tags) j GROUP BY j.value "
        "ORDER BY n DESC LIMIT 11",
        {},
        repeat=1,
    )
    out["datasette facet primary_category"] = timed(
        db,
        "SELECT primary_category, count(*) AS n FROM papers WHERE primary_category IS NOT NULL "
        "GROUP BY primary_category ORDER BY n DESC LIMIT 11",
        {},
        repeat=1,
    )
    out["canned revisions_this_week"] = timed(db, canned("revisions_this_week"), {"week_of": ""}, repeat=1)
    return out


def fmt_row(f: dict[str, Any]) -> str:
    classify_s = f.get("classify_s", 0.0)
    total = f["ingest_s"] + classify_s
    with_train = total + f.get("train_s", 0.0)
    per_s = f"{f['n'] / classify_s:,.0f}" if classify_s else "-"
    return (
        f"| {f['n']:,} | {f['ingest_s']:.0f} s | {f['n'] / f['ingest_s']:,.0f} | {f.get('train_s', 0):.0f} s | "
        f"{classify_s:.0f} s | {per_s} | {total:.0f} s ({f['n'] / total:,.0f}/s) | {classify_s / total:.0%} | "
        f"{with_train:.0f} s | {f['ingest_rss_mib']:.0f} / {f['peak_rss_mib']:.0f} MiB | "
        f"{f['tree_rss_mib']:.0f} / {f['tree_pss_mib']:.0f} MiB | {f['db_mib']:,.0f} MiB | "
        f"{f['load_start']:.1f} / {f['load_end']:.1f} |"
    )


HEADER = (
    "| N | ingest | papers/s | train | classify | papers/s | ingest + classify | classify share | + train "
    "| max RSS, main process: ingest / all | peak of process tree: RSS / PSS | DB size | load avg start / end |\n"
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def print_report(results: list[dict[str, Any]]) -> None:
    import sqlite3

    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
    )
    print(f"FTS5 automerge: {results[-1]['automerge']}, writer page cache: {results[-1]['cache_mib']} MiB")
    print()
    print(HEADER)
    for f in results:
        print(fmt_row(f))
    print()

    # Search labels carry each N's match count ("'model' (79,257 matches): ..."): align rows without it.
    def by_query(timings: dict[str, Any]) -> dict[str, Any]:
        return {re.sub(r" \([\d,]+ matches\)", "", name): value for name, value in timings.items()}

    def matches(f: dict[str, Any]) -> dict[str, str]:
        return {m[1]: m[2] for m in (re.match(r"'(.*)' \(([\d,]+) matches\)", k) for k in f["queries"]) if m}

    queries = [by_query(f["queries"]) for f in results]
    optimized = [by_query(f["queries_optimized"]) for f in results]
    print(
        "searched terms, papers matching: "
        + "; ".join(
            f"'{term}' " + " / ".join(matches(f).get(term, "?") for f in results) for term in FTS_TERMS
        )
        + " (at N = "
        + " / ".join(f"{f['n']:,}" for f in results)
        + ")"
    )
    print()
    print("query times, median of warm runs (ms; rows):")
    print()
    print("| query | " + " | ".join(f"N={f['n']:,}" for f in results) + " |")
    print("|---|" + "---:|" * len(results))
    for name in queries[-1]:
        cells = [f"{q[name][0]:.1f} ({q[name][1]})" if name in q else "" for q in queries]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    print(
        "peak RSS including queries and optimize: "
        + ", ".join(f"N={f['n']:,}: {f['final_rss_mib']:.0f} MiB" for f in results)
    )
    print()
    print(
        "after FTS5 'optimize' (one segment): "
        + ", ".join(
            f"N={f['n']:,}: {f['optimize_s']:.1f} s, {f['fts_segments']} segments before" for f in results
        )
    )
    print()
    print("| search | " + " | ".join(f"N={f['n']:,} before / after" for f in results) + " |")
    print("|---|" + "---:|" * len(results))
    for name in optimized[-1]:
        cells = [
            f"{q[name][0]:.1f} / {o[name][0]:.1f}" if name in o else ""
            for q, o in zip(queries, optimized, strict=True)
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, action="append", help="papers (repeatable); default 100000 and 1000000"
    )
    parser.add_argument("--dir", type=Path, help="where the databases go (default: a temporary folder)")
    parser.add_argument("--no-classify", action="store_true", help="ingest only")
    parser.add_argument(
        "--fts-automerge", type=int, help="set FTS5 automerge before ingest (default: the schema's)"
    )
    parser.add_argument("--cache-mib", type=int, help="writer page cache (default: store.open_db's)")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--report", type=Path, help="print the tables of a saved results.json and exit")
    parser.add_argument("--queries", type=Path, help="time the queries on a kept database and exit")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        print_report(json.loads(args.report.read_text()))
        return
    if args.queries:
        if not args.queries.exists():
            parser.error(f"{args.queries}: no such database")
        db = store.open_db(args.queries)
        print(f"{db['papers'].count:,} papers in {args.queries}; median of warm runs (ms; rows):\n")
        print("| query | ms | rows |\n|---|---:|---:|")
        for name, (ms, rows) in time_queries(db).items():
            print(f"| {name} | {ms:.1f} | {rows} |")
        return
    if args.one:
        print(json.dumps(one(args.one, args.db, not args.no_classify, args.fts_automerge, args.cache_mib)))
        return
    folder = args.dir or Path(tempfile.mkdtemp(prefix="tracker-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for n in args.n or [100_000, 1_000_000]:
        db_path = folder / f"bench_{n}.db"
        cmd = [sys.executable, __file__, "--one", str(n), "--db", str(db_path)]
        cmd += ["--no-classify"] if args.no_classify else []
        cmd += ["--fts-automerge", str(args.fts_automerge)] if args.fts_automerge is not None else []
        cmd += ["--cache-mib", str(args.cache_mib)] if args.cache_mib is not None else []
        say(f"N={n:,}: building {db_path} ...")
        # stdout carries the figures; the child's stderr (progress, a traceback) goes straight to ours.
        child = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True)
        if child.returncode != 0:
            say(f"N={n:,}: the child failed (exit {child.returncode}); see its stderr above")
            break
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        (folder / "results.json").write_text(json.dumps(results, indent=1))  # re-render with --report
        say(HEADER + "\n" + fmt_row(results[-1]))  # partial results, in case a later N fails
        if not args.keep:
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(f"{db_path}{suffix}").unlink(missing_ok=True)
            for model_file in model_paths(db_path):
                model_file.unlink(missing_ok=True)
    if not results:
        sys.exit(1)
    print_report(results)


if __name__ == "__main__":
    main()
