"""Similar-papers benchmark: a night's new papers' neighbours against 100k and 1M stored paper vectors.

For each N (default 100k and 1M) it builds, once, a database of N papers with vectors and neighbour lists,
cached under --cache (reruns reuse it), then times `similar.update_neighbours` for the night's pending
papers (default 1,500) in a fresh child process on a copy of it, and prints wall time, peak RSS, lists
changed and the time of one bare read of every stored vector (SQLite and unpacking only).

Vectors are realistic without a million abstracts: the vectorizer the tracker trains (default parameters,
`words` tokenizer) is fitted on the bundled ~9,500 real abstracts, and each synthetic paper is a real row
with a fifth of its terms dropped and about as many taken from another random row, re-normalised, so the
term distribution and ~110 terms per paper are real. Papers already processed get a neighbour list and a
floor (the 10th score) drawn from exact floors measured on a sample of 300 of them; the pending papers
are the newest ids, as after a nightly sync.

    python bench/bench_similar.py                              # N = 100k and 1M, cache in $TMPDIR
    python bench/bench_similar.py --n 20000 --cache /tmp/simbench
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracker import store  # noqa: E402 (after the sys.path line, so the script runs from a checkout)
from tracker.config import DATA_DIR  # noqa: E402
from tracker.store import vectors  # noqa: E402

MODEL = "bench-model"
K = 10
BLOCK = 50_000
SWAP = 0.2  # share of a real row's terms dropped, and about as many taken from another row
FLOOR_SAMPLE = 300
SEED = 15


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def base_matrix() -> tuple[sp.csr_matrix, list[str]]:
    """The real corpus's TF-IDF rows under the tracker's default vectorizer, and the records' titles."""
    from tracker.classify.features import build_vectorizer
    from tracker.classify.fitting import DEFAULT_PARAMS

    with gzip.open(DATA_DIR / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    vec = build_vectorizer(DEFAULT_PARAMS | {"tokenizer": "words"})
    X = vec.fit_transform([f"{r['title']}\n{r.get('abstract') or ''}" for r in records])
    return sp.csr_matrix(X, dtype=np.float32), [r["title"] for r in records]


def spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ranges [start, start + length) as one index array."""
    ends = np.cumsum(lengths)
    return np.repeat(starts - (ends - lengths), lengths) + np.arange(int(ends[-1]) if len(ends) else 0)


def synthetic(
    X: sp.csr_matrix, base: np.ndarray, other: np.ndarray, rng: np.random.Generator
) -> sp.csr_matrix:
    """Rows of real row `base` with SWAP of their terms dropped and about as many from row `other`."""
    len_a = np.diff(X.indptr)[base]
    len_o = np.maximum(np.diff(X.indptr)[other], 1)
    ia = spans(X.indptr[base], len_a)
    ra = np.repeat(np.arange(len(base)), len_a)
    keep = rng.random(len(ia)) >= SWAP
    io = spans(X.indptr[other], np.diff(X.indptr)[other])
    ro = np.repeat(np.arange(len(base)), np.diff(X.indptr)[other])
    take = rng.random(len(io)) < (SWAP * len_a / len_o)[ro]
    rows = np.concatenate([ra[keep], ro[take]])
    cols = np.concatenate([X.indices[ia[keep]], X.indices[io[take]]])
    data = np.concatenate([X.data[ia[keep]], X.data[io[take]]])
    Y = sp.csr_matrix((data, (rows, cols)), shape=(len(base), X.shape[1]), dtype=np.float32)
    Y.sum_duplicates()
    norms = np.sqrt(np.asarray(Y.multiply(Y).sum(axis=1)).ravel())
    Y.data /= np.repeat(np.maximum(norms, 1e-12), np.diff(Y.indptr)).astype(np.float32)
    return Y


def paper_id(i: int) -> str:
    month = i // 20_000
    return f"{22 + month // 12:02d}{month % 12 + 1:02d}.{i % 20_000:05d}"


def measured_floors(Y: sp.csr_matrix, rng: np.random.Generator) -> np.ndarray:
    """The exact k-th neighbour score of FLOOR_SAMPLE random papers against all N."""
    sample = rng.choice(Y.shape[0], FLOOR_SAMPLE, replace=False)
    St = Y[sample].T.tocsr()
    best = np.zeros((FLOOR_SAMPLE, 0), dtype=np.float32)
    for start in range(0, Y.shape[0], BLOCK):
        S = (Y[start : start + BLOCK] @ St).toarray().T
        inside = (sample >= start) & (sample < start + BLOCK)
        S[np.flatnonzero(inside), sample[inside] - start] = 0
        both = np.concatenate([best, S], axis=1)
        best = -np.partition(-both, K - 1, axis=1)[:, :K]
    return np.sort(best, axis=1)[:, 0]


def build(n: int, pending: int, path: Path) -> dict[str, Any]:
    """Write the database of N papers (PENDING of them without neighbours yet) at `path`."""
    t = time.perf_counter()
    X, titles = base_matrix()
    rng = np.random.default_rng(SEED)
    base = rng.integers(0, X.shape[0], n)
    Y = sp.vstack(
        [
            synthetic(X, base[s : s + BLOCK], rng.integers(0, X.shape[0], len(base[s : s + BLOCK])), rng)
            for s in range(0, n, BLOCK)
        ],
        format="csr",
    )
    floors = measured_floors(Y, rng)
    say(
        f"  {n:,}: vectors made, {Y.nnz / n:.0f} terms per paper, sample floors median {np.median(floors):.3f}"
    )
    tmp = path.with_suffix(".building")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    db = store.open_db(tmp)
    done = n - pending
    now = "2026-01-01T00:00:00+00:00"
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        ids = [paper_id(i) for i in range(start, stop)]
        blobs = vectors.pack_rows(Y[start:stop])
        fl = rng.choice(floors, stop - start)
        with db.atomic():
            db.conn.executemany(
                "INSERT INTO papers (arxiv_id, version, title, first_seen) VALUES (?, 1, ?, ?)",
                ((a, titles[base[i]], now) for a, i in zip(ids, range(start, stop), strict=True)),
            )
            db.conn.executemany(
                "INSERT INTO paper_vectors (arxiv_id, model_id, terms, weights, neighbours_by, floor) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (a, MODEL, t, w, MODEL if i < done else None, float(f) if i < done else 0.0)
                    for a, i, (t, w), f in zip(ids, range(start, stop), blobs, fl, strict=True)
                ),
            )
            # A plausible list for each processed paper: 10 other papers, scores falling to its floor.
            db.conn.executemany(
                "INSERT INTO similar_papers (arxiv_id, rank, similar_id, score) VALUES (?, ?, ?, ?)",
                (
                    (a, rank, paper_id(int(j)), float(f) * (1 + (K - rank) / 20))
                    for a, i, f in zip(ids, range(start, stop), fl, strict=True)
                    if i < done
                    for rank, j in enumerate(rng.integers(0, done, K), 1)
                ),
            )
        say(f"  {n:,}: {stop:,} papers written ({time.perf_counter() - t:.0f} s)")
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    tmp.rename(path)
    meta = {
        "n": n,
        "pending": pending,
        "n_features": X.shape[1],
        "nnz_per_paper": Y.nnz / n,
        "floor_median": float(np.median(floors)),
        "build_s": time.perf_counter() - t,
    }
    path.with_suffix(".json").write_text(json.dumps(meta))
    return meta


def run(db_path: Path, n_features: int, batch: int, chunk_rows: int) -> dict[str, Any]:
    """Child process: time update_neighbours, then one bare read of every vector; print the figures."""
    from tracker import similar

    db = store.open_db(db_path)
    t = time.perf_counter()
    report = similar.update_neighbours(db, MODEL, n_features, batch=batch, chunk_rows=chunk_rows)
    seconds = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    rows = sum(len(c.ids) for c in vectors.iter_vector_chunks(db, MODEL, n_features, chunk_rows))
    read_s = time.perf_counter() - t
    return {
        "seconds": seconds,
        "papers": report.papers,
        "lists_updated": report.lists_updated,
        "reopened": report.reopened,
        "peak_rss_mib": rss,
        "read_s": read_s,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--pending", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--chunk-rows", type=int, default=5000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tracker-bench-similar")
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--n-features", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run(args.run, args.n_features, args.batch, args.chunk_rows)))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    results = []
    for n in args.n:
        cached = args.cache / f"similar_{n}_{args.pending}.db"
        if cached.exists():
            meta = json.loads(cached.with_suffix(".json").read_text())
            say(f"{n:,}: cached {cached}")
        else:
            say(f"{n:,}: building {cached}")
            meta = build(n, args.pending, cached)
        work = args.cache / f"run_{n}.db"
        shutil.copyfile(cached, work)
        say(f"{n:,}: timing update_neighbours for {args.pending:,} pending papers")
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--run",
                str(work),
                "--n-features",
                str(meta["n_features"]),
                "--batch",
                str(args.batch),
                "--chunk-rows",
                str(args.chunk_rows),
            ],
            stdout=subprocess.PIPE,
            check=True,
            text=True,
        )
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        figures["child_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)
        results.append(meta | figures | {"db_mib": cached.stat().st_size / 2**20})
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}; "
        f"batch {args.batch}, chunk {args.chunk_rows} rows, k = {K}"
    )
    print()
    print(
        "| N stored | pending | terms/paper | floor (median) | update_neighbours | peak RSS | other lists changed "
        "| bare read of all vectors | DB size |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in results:
        print(
            f"| {f['n']:,} | {f['papers']:,} | {f['nnz_per_paper']:.0f} | {f['floor_median']:.3f} | "
            f"{f['seconds']:.1f} s | {f['peak_rss_mib']:,.0f} MiB | {f['lists_updated']:,} "
            f"({f['reopened']} reopened) | {f['read_s']:.1f} s | {f['db_mib']:,.0f} MiB |"
        )


if __name__ == "__main__":
    main()
