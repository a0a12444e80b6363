"""Training and tagging against the database: the only module of the classifier (with `explain`) that
uses `store`. `run_classify` streams chunks of papers through forked worker processes, stores each
paper's TF-IDF vector with its tags, then brings the similar papers up to date (`tracker.similar`).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from tracker import store
from tracker.classify.data import TrainingSet, training_set
from tracker.classify.modelfile import Model, TrainReport, load_model, train
from tracker.classify.predict import ChunkRows, chunk_rows
from tracker.config import model_paths, rules_dir
from tracker.progress import Progress
from tracker.rules import Labels, Taxonomy, load_rules
from tracker.similar import update_neighbours

CHUNK_SIZE = 2000
MAX_WORKERS = 4


@dataclass
class ClassifyReport:
    papers: int
    tagged: int
    model_id: str
    trained: bool = False
    seconds: float = 0.0
    neighbours: int = 0  # papers whose similar papers were (re)computed


def training_data(
    db: Database | None, taxonomy: Taxonomy, labels: Labels, **records: Sequence[dict[str, Any]]
) -> TrainingSet:
    """The training set of `labels` with the database's manual labels (and texts of papers not bundled);
    without a database, the labels and bundled texts alone."""
    return training_set(
        labels,
        store.manual_labels(db) if db is not None else [],
        lambda ids: store.paper_texts(db, ids) if db is not None else {},
        gated={t.slug for t in taxonomy.tags if t.requires_mllm},
        **records,  # type: ignore[arg-type]
    )


def train_from_db(
    db: Database,
    db_path: str | Path,
    taxonomy: Taxonomy,
    labels: Labels,
    params: dict[str, Any] | None = None,
    **records: Sequence[dict[str, Any]],
) -> TrainReport:
    """Train from the bundled labels plus the database's manual labels; save beside the database.

    `records` may pass `labelled=` / `corpus=` record lists instead of the bundled data (tests, small runs).
    """
    data = training_data(db, taxonomy, labels, **records)
    manual_hash = hashlib.sha256(json.dumps(store.manual_labels(db)).encode()).hexdigest()[:8]
    model_path, meta_path = model_paths(db_path)
    return train(taxonomy, data, model_path, meta_path, f"{labels.content_hash}+{manual_hash}", params)


def _manual_map(db: Database) -> dict[str, dict[str, str]]:
    manual: dict[str, dict[str, str]] = {}
    for arxiv_id, tag, action in store.manual_labels(db):
        manual.setdefault(arxiv_id, {})[tag] = action
    return manual


# The model a classify worker process uses: set in the parent just before the pool forks, so each worker
# inherits it instead of unpickling a copy per chunk.
_WORKER_STATE: tuple[Model, str, dict[str, dict[str, str]]] | None = None


def _worker_chunk_rows(chunk: Sequence[tuple[str, str, str]]) -> ChunkRows:
    assert _WORKER_STATE is not None
    model, model_id, manual = _WORKER_STATE
    return chunk_rows(model, model_id, chunk, manual)


def _tagged_chunks(
    db: Database, model: Model, model_id: str, manual: dict[str, dict[str, str]], all_papers: bool, total: int
) -> Iterator[ChunkRows]:
    """ChunkRows for every paper to (re)tag, in order; on several cores, tagged by worker processes.

    TF-IDF and rules are pure Python per paper, so one process tops out near 2,000 papers/s; forked
    workers use every core while this process reads chunks and writes results. At most two chunks per
    worker are in flight, so memory stays flat however many papers there are.

    :param total: how many papers there are to tag (`store.count_untagged`)
    """
    global _WORKER_STATE
    chunks = store.iter_untagged(db, model_id, all_papers, CHUNK_SIZE)
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if workers < 2 or total <= CHUNK_SIZE:
        for chunk in chunks:
            yield chunk_rows(model, model_id, chunk, manual)
        return
    _WORKER_STATE = (model, model_id, manual)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pending: deque[Any] = deque()
            for chunk in chunks:
                pending.append(pool.apply_async(_worker_chunk_rows, (chunk,)))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
    finally:
        _WORKER_STATE = None


def run_classify(
    db: Database,
    db_path: str | Path,
    *,
    all_papers: bool = False,
    progress: Progress | None = None,
    similar_progress: Progress | None = None,
) -> ClassifyReport:
    """Tag papers not yet tagged by the current model (or all), training first if there is no model.

    Streams CHUNK_SIZE papers at a time, each chunk written in one transaction, so memory stays flat and
    an interrupted run keeps every finished chunk.

    :param progress: updated after each chunk with the papers done so far
    :param similar_progress: updated while the similar papers of new and changed vectors are computed
    """
    started = time.monotonic()
    model_path, meta_path = model_paths(db_path)
    trained = False
    if not model_path.exists():
        taxonomy, labels = load_rules(rules_dir())
        train_from_db(db, db_path, taxonomy, labels)
        trained = True
    model, meta = load_model(model_path, meta_path, db_path)
    model_id = meta["model_id"]
    manual = _manual_map(db)
    papers = tagged = 0
    # Counted once: it decides whether to start workers and is the progress bar's 100 %.
    total = store.count_untagged(db, model_id, all_papers)
    for rows in _tagged_chunks(db, model, model_id, manual, all_papers, total):
        vectors = []
        if rows.tfidf is not None:
            blobs = store.pack_rows(rows.tfidf)
            vectors = [(p[0], model_id, t, w) for p, (t, w) in zip(rows.papers, blobs, strict=True)]
        store.save_tagging(db, rows.tags, rows.scores, rows.papers, vectors)
        papers += len(rows.papers)
        tagged += rows.tagged
        if progress:
            progress.update(papers / max(total, papers), papers, force=papers >= total)
    close = getattr(progress, "close", None)
    if callable(close):  # a terminal bar: end its line before the next step draws its own
        close()
    # New and changed vectors against all: their similar papers, and their place in the others' lists.
    near = update_neighbours(db, model_id, model.n_terms, progress=similar_progress)
    return ClassifyReport(papers, tagged, model_id, trained, time.monotonic() - started, near.papers)
