"""Per-reader ranking (issue 15): how well a library finds the rest of its subject, and how fast a week is
ranked for many readers. Prints figures; asserts nothing about time.

Quality: for each topic of the reviewed labels (rules/reviewed.csv), half of the topic's papers (drawn at
random, three draws) are the library and the other half must come back: recall@50 of the ranking over the
whole bundled corpus (9,940 real papers, the library left out), for the tracker's model
(`tracker.recommend.fit_reader` over the tracker's TF-IDF features) and for arxiv-sanity-lite's (its own
TF-IDF settings, LinearSVC C=0.01 balanced) on the same libraries in the same run. recall@50 can reach 1
only when the held-out half has at most 50 papers; the larger topics also show hits / min(50, held out).

Speed: a real SQLite file with the corpus as one week (9,940 papers) and 100 subscribers with libraries
of 20-60 papers: fitting their models (once per library or vocabulary change), then the weekly ranking
with stored models (`Vocabulary.reader` + `rank`, as the digest does it).

    python bench/bench_recommend.py [--draws 3] [--readers 100]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from tracker import recommend, store
from tracker.classify.features import build_vectorizer
from tracker.classify.fitting import DEFAULT_PARAMS
from tracker.classify.text import paper_text

ROOT = Path(__file__).resolve().parent.parent
K = 50


def corpus() -> list[dict]:
    seen: dict[str, dict] = {}
    for name in ("corpus", "labelled"):
        with gzip.open(ROOT / "tracker" / "data" / f"{name}.jsonl.gz", "rt", encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                seen.setdefault(r["id"], r)
    return list(seen.values())


def topics(ids: list[str]) -> dict[str, np.ndarray]:
    row = {a: i for i, a in enumerate(ids)}
    out: dict[str, set[int]] = {}
    with open(ROOT / "rules" / "reviewed.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            for tag in filter(None, r["tags"].split("|")):
                if r["arxiv_id"] in row:
                    out.setdefault(tag, set()).add(row[r["arxiv_id"]])
    return {t: np.array(sorted(v)) for t, v in sorted(out.items())}


def sanity_scores(XS: sp.csr_matrix, lib: np.ndarray) -> np.ndarray:
    """arxiv-sanity-lite's serve.py: LinearSVC(class_weight='balanced', C=0.01) on all papers, library = 1."""
    y = np.zeros(XS.shape[0])
    y[lib] = 1
    clf = LinearSVC(class_weight="balanced", verbose=False, max_iter=10000, tol=1e-6, C=0.01)
    return clf.fit(XS, y).decision_function(XS)


def tracker_scores(X: sp.csr_matrix, lib: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The tracker's reader model, its negatives drawn from the rest as `Vocabulary.fit` draws them."""
    rest = np.setdiff1d(np.arange(X.shape[0]), lib)
    neg = rng.choice(rest, size=min(recommend.NEGATIVES, len(rest)), replace=False)
    weights, bias = recommend.fit_reader(X[lib], X[neg])
    return np.asarray(X @ weights).ravel() + bias


def quality(draws: int) -> None:
    records = corpus()
    ids = [r["id"] for r in records]
    vec = build_vectorizer({**DEFAULT_PARAMS, "tokenizer": "words"})
    X = vec.fit_transform([paper_text(r["title"], r["abstract"]) for r in records]).tocsr()
    # arxiv-sanity-lite's compute.py settings (its text also has author names; the corpus has none)
    sanity = TfidfVectorizer(
        input="content",
        encoding="utf-8",
        decode_error="replace",
        strip_accents="unicode",
        lowercase=True,
        analyzer="word",
        stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b",
        ngram_range=(1, 2),
        max_features=20000,
        norm="l2",
        use_idf=True,
        smooth_idf=True,
        sublinear_tf=True,
        max_df=0.1,
        min_df=5,
    )
    XS = sanity.fit_transform([f"{r['title']} {r['abstract']}" for r in records]).tocsr()
    print(
        f"corpus: {len(ids)} real papers; tracker TF-IDF {X.shape[1]} terms, arxiv-sanity-lite {XS.shape[1]}"
    )
    print(
        f"{'topic':<14}{'papers':>7}{'held':>6}  {'tracker r@50':>13}{'sanity r@50':>12}  {'tracker hits/min(50,held)':>26}{'sanity':>8}"
    )
    wins = 0
    for tag, members in topics(ids).items():
        got: dict[str, list[tuple[float, float]]] = {"tracker": [], "sanity": []}
        for draw in range(draws):
            rng = np.random.default_rng(draw)
            perm = rng.permutation(members)
            half = len(perm) // 2
            lib, held = perm[:half], set(perm[half:].tolist())
            for name, scores in (
                ("tracker", tracker_scores(X, lib, rng)),
                ("sanity", sanity_scores(XS, lib)),
            ):
                scores = scores.astype(float)
                scores[lib] = -np.inf  # the library itself is not recommended
                top = np.argsort(-scores, kind="stable")[:K]
                hits = sum(int(i) in held for i in top)
                got[name].append((hits / len(held), hits / min(K, len(held))))
        t, s = (np.mean(got[n], axis=0) for n in ("tracker", "sanity"))
        wins += t[0] >= s[0]
        held_n = len(members) - len(members) // 2
        print(f"{tag:<14}{len(members):>7}{held_n:>6}  {t[0]:>13.3f}{s[0]:>12.3f}  {t[1]:>26.3f}{s[1]:>8.3f}")
    print(f"tracker >= arxiv-sanity-lite on {wins} of {len(topics(ids))} topics (mean of {draws} draws)")


def speed(readers: int) -> None:
    records = corpus()
    vec = build_vectorizer({**DEFAULT_PARAMS, "tokenizer": "words"})
    X = vec.fit_transform([paper_text(r["title"], r["abstract"]) for r in records]).tocsr()
    with tempfile.TemporaryDirectory() as tmp:
        db = store.open_db(Path(tmp) / "bench.db")
        day = "2026-11-18"
        rows = [
            {
                "arxiv_id": r["id"],
                "version": 1,
                "title": r["title"],
                "abstract": r["abstract"],
                "published": f"{day}T01:00:00+00:00",
                "updated": f"{day}T01:00:00+00:00",
                "announced": day,
            }
            for r in records
        ]
        with db.atomic():
            store.save_papers(db, rows)
            db.conn.executemany(
                "INSERT INTO paper_vectors (arxiv_id, model_id, terms, weights) VALUES (?, 'bench', ?, ?)",
                [(r["id"], t, w) for r, (t, w) in zip(records, store.pack_rows(X), strict=True)],
            )
        vocab = recommend.Vocabulary(db, "bench", X.shape[1])
        rnd = random.Random(0)
        ids = [r["id"] for r in records]
        emails = [f"reader{i}@example.org" for i in range(readers)]
        for email in emails:
            store.save_subscriber(db, email, [])
            lib = rnd.sample(ids, rnd.randint(20, 60))
            store.save_library(db, email, [(n + 1, a, a, "matched") for n, a in enumerate(lib)])
        started = time.perf_counter()
        for email in emails:
            vocab.reader(email, save=True)
        fit = time.perf_counter() - started
        started = time.perf_counter()
        window = recommend.Window.read(vocab, "2026-11-16", "2026-11-22")
        read = time.perf_counter() - started
        for email in emails:
            model = vocab.reader(email, save=False)
            assert model is not None
            recommend.rank(vocab, window, model, store.library_ids(db, email), 10)
        total = time.perf_counter() - started
        print(
            f"speed: {len(window.ids)} papers in the week, {readers} readers: ranking with stored models "
            f"{total:.2f} s (reading the week's vectors {read:.2f} s); fitting all {readers} models "
            f"{fit:.1f} s ({fit / readers:.2f} s each, only when a library or the vocabulary changes)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--draws", type=int, default=3, help="random library halves per topic")
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    if not args.skip_quality:
        quality(args.draws)
    speed(args.readers)


if __name__ == "__main__":
    main()
