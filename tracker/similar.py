"""Similar papers: the k nearest papers of each paper by cosine of TF-IDF vectors, kept up to date incrementally.

A batch of pending papers (new vectors, or vectors of a new model) is scored against every stored vector,
streamed from SQLite in chunks so memory stays flat. Each batch paper gets its top k from scratch; every
other paper whose score with a batch paper reaches its `floor` (its k-th score) gets that paper merged
into its list. The batch's lists, the lists it changed and their floors are written in one transaction.

Exact, not approximate: the work is a sparse product of the batch with everything stored, about 6
multiply-adds per (batch paper, stored paper) pair with this vocabulary, and bounds that skip pairs do
not help (the 10th neighbour's cosine is about 0.1, below what the common terms alone can add up to). So
the product is split by how common a term is in the batch: common terms multiply a dense block (a BLAS-like
axpy per stored term), rare ones go through scipy's sparse product, whose output they keep sparse; two
threads share the chunks (scipy releases the GIL). bench/bench_similar.py measures it: 1,500 new papers
against 1M stored in 46 s at 411 MiB peak RSS on 2 cores (100k: 6.5 s).
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sqlite_utils import Database

from tracker.progress import Progress
from tracker.store import vectors
from tracker.store.vectors import Lists

K = 10
BATCH = 2000
CHUNK_ROWS = 5000
WORKERS = 2  # the machine's cores; each worker holds one chunk's scores (CHUNK_ROWS x batch float32)
# A term in at least this share of the batch's papers is multiplied densely: a dense row costs about
# 0.2 ns per batch paper, a sparse product about 5 ns per pair of nonzeros, so dense wins above ~4 %
# (measured with bench/bench_similar.py: 2 % and 4 % within noise, 1 % and 8 % slower).
DENSE_SHARE = 0.02
# float32 sums taken in another order (another batch's dense/sparse split) differ by ~1e-7: stored
# scores are compared with this much slack, so a paper exactly at a floor is never lost to rounding.
MARGIN = 1e-5
MIN_SCORE = 1e-6  # no shared term: not similar at all


@dataclass(frozen=True)
class NeighbourReport:
    """What `update_neighbours` did: papers whose list it computed, other lists it changed, and time."""

    papers: int
    lists_updated: int
    reopened: int
    seconds: float


def exact_neighbours(X: sp.csr_matrix, ids: Sequence[str], k: int = K) -> Lists:
    """Brute-force reference: each row's k nearest other rows by dot product (score desc, then id)."""
    S = np.asarray((sp.csr_matrix(X, dtype=np.float32) @ sp.csr_matrix(X, dtype=np.float32).T).todense())
    np.fill_diagonal(S, 0)
    lists: Lists = {}
    for i, a in enumerate(ids):
        found = [(ids[j], float(S[i, j])) for j in np.flatnonzero(S[i] > 0).tolist()]
        lists[a] = sorted(found, key=lambda e: (-e[1], e[0]))[:k]
    return lists


class _BatchProduct:
    """The batch's vectors split by term frequency, ready to score a chunk of stored vectors against."""

    def __init__(self, B: sp.csr_matrix) -> None:
        n_batch, n_features = B.shape
        df = np.bincount(B.indices, minlength=n_features)
        dense_terms = np.flatnonzero(df >= max(DENSE_SHARE * n_batch, 2))
        self.n_batch = n_batch
        self.is_dense = np.zeros(n_features, dtype=bool)
        self.is_dense[dense_terms] = True
        self.column = np.full(n_features, -1, dtype=np.int32)
        self.column[dense_terms] = np.arange(len(dense_terms), dtype=np.int32)
        self.dense = np.ascontiguousarray(B[:, dense_terms].T.toarray(), dtype=np.float32)
        self.sparse_t = _columns(B, ~self.is_dense[B.indices]).T.tocsr()

    def scores(self, C: sp.csr_matrix) -> np.ndarray:
        """Dot products of each chunk row with each batch row: a dense (chunk rows x batch) float32 array."""
        n = C.shape[0]
        dense = self.is_dense[C.indices]
        common = _columns(C, dense, self.column, self.dense.shape[0])
        S = common @ self.dense if self.dense.shape[0] else np.zeros((n, self.n_batch), dtype=np.float32)
        rare = _columns(C, ~dense) @ self.sparse_t
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(rare.indptr))
        S.reshape(-1)[rows * self.n_batch + rare.indices] += rare.data  # (row, col) pairs are unique
        return np.asarray(S, dtype=np.float32)


def _columns(
    A: sp.csr_matrix, mask: np.ndarray, renumber: np.ndarray | None = None, width: int | None = None
) -> sp.csr_matrix:
    """The stored entries of A that `mask` (one bool per entry) keeps, columns optionally renumbered."""
    indptr = np.zeros(len(mask) + 1, dtype=np.int64)
    np.cumsum(mask, out=indptr[1:])
    indptr = indptr[A.indptr]  # kept entries before each row's start
    indices = A.indices[mask]
    if renumber is not None:
        indices = renumber[indices]
    shape = (A.shape[0], width if width is not None else A.shape[1])
    return sp.csr_matrix((A.data[mask], indices.astype(np.int32), indptr), shape=shape)


class _TopK:
    """Each batch paper's best k so far, as positions in the stream (arxiv_id order, so ties go to the
    smaller id), and the score a newcomer must reach."""

    def __init__(self, n: int, k: int, theta: np.ndarray) -> None:
        self.n, self.k = n, k
        self.theta = theta
        self.rows = np.zeros(0, dtype=np.int64)
        self.scores = np.zeros(0, dtype=np.float32)
        self.pos = np.zeros(0, dtype=np.int64)

    def offer(self, rows: np.ndarray, scores: np.ndarray, pos: np.ndarray) -> None:
        if not len(rows):
            return
        rows = np.concatenate([self.rows, rows])
        scores = np.concatenate([self.scores, scores])
        pos = np.concatenate([self.pos, pos])
        order = np.lexsort((pos, -scores, rows))
        rows, scores, pos = rows[order], scores[order], pos[order]
        starts = np.searchsorted(rows, np.arange(self.n))
        rank = np.arange(len(rows)) - starts[rows]
        keep = rank < self.k
        self.rows, self.scores, self.pos = rows[keep], scores[keep], pos[keep]
        full = rank == self.k - 1
        theta = self.theta.copy()
        theta[rows[full]] = np.maximum(theta[rows[full]], scores[full])
        self.theta = theta  # replaced, not changed in place: workers may be reading the old one


def _initial_floors(B: sp.csr_matrix, k: int) -> np.ndarray:
    """A lower bound of each batch paper's k-th score: its k-th among the batch itself (all stored too)."""
    S = np.asarray((B @ B.T).todense(), dtype=np.float32)
    np.fill_diagonal(S, 0)
    kth = -np.partition(-S, k - 1, axis=1)[:, k - 1] if S.shape[1] >= k else np.zeros(S.shape[0], np.float32)
    return np.maximum(kth - MARGIN, MIN_SCORE).astype(np.float32)


def _score_batch(
    db: Database, model_id: str, n_features: int, ids: list[str], k: int, chunk_rows: int
) -> tuple[Lists, dict[str, dict[str, float]]]:
    """The batch's own lists, and for other papers the batch papers that may enter theirs, with scores."""
    B = vectors.vectors_of(db, model_id, ids, n_features)
    product = _BatchProduct(B)
    top = _TopK(len(ids), k, _initial_floors(B, k))
    in_batch = {a: i for i, a in enumerate(ids)}
    stale: dict[str, list[int]] = defaultdict(list)  # lists that hold a batch paper, with an older score
    for j, b in vectors.papers_listing(db, ids):
        if j not in in_batch:
            stale[j].append(in_batch[b])
    names: dict[int, str] = {}
    offers: dict[str, dict[str, float]] = defaultdict(dict)

    def work(chunk: vectors.VectorChunk, offset: int, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        S = product.scores(chunk.vectors)
        selves = [(r, in_batch[a]) for r, a in enumerate(chunk.ids) if a in in_batch]
        if selves:
            r, c = np.array(selves).T
            S[r, c] = 0
        qr, qc = np.nonzero(theta <= S)
        floors = np.where(chunk.done, np.maximum(chunk.floors - MARGIN, MIN_SCORE), np.inf).astype(np.float32)
        jr, jc = np.nonzero(floors[:, None] <= S)
        return qc, S[qr, qc], qr + offset, jr, jc, S[jr, jc], S if stale else S[:0]

    def collect(chunk: vectors.VectorChunk, offset: int, result: tuple[np.ndarray, ...]) -> None:
        qc, qs, qpos, jr, jc, js, S = result
        top.offer(qc, qs, qpos)
        names.update((int(p), chunk.ids[int(p) - offset]) for p in np.unique(qpos))
        for r, c, s in zip(jr.tolist(), jc.tolist(), js.tolist(), strict=True):
            offers[chunk.ids[r]][ids[c]] = s
        if stale:
            for r, a in enumerate(chunk.ids):
                if a in stale and chunk.done[r]:  # a pending list is computed afresh later
                    offer = offers[a]  # touched even if every score dropped to 0
                    for c in stale[a]:
                        offer[ids[c]] = float(S[r, c])

    offset = 0
    pending: list[tuple[vectors.VectorChunk, int, Future[tuple[np.ndarray, ...]]]] = []
    with ThreadPoolExecutor(WORKERS) as pool:
        for chunk in vectors.iter_vector_chunks(db, model_id, n_features, chunk_rows):
            pending.append((chunk, offset, pool.submit(work, chunk, offset, top.theta)))
            offset += len(chunk.ids)
            while len(pending) > WORKERS:
                done_chunk, done_offset, future = pending.pop(0)
                collect(done_chunk, done_offset, future.result())
        for done_chunk, done_offset, future in pending:
            collect(done_chunk, done_offset, future.result())
    fresh: Lists = {a: [] for a in ids}
    for r, s, p in zip(top.rows.tolist(), top.scores.tolist(), top.pos.tolist(), strict=True):
        fresh[ids[r]].append((names[p], s))
    return fresh, {j: {b: s for b, s in o.items() if s >= MIN_SCORE} for j, o in offers.items()}


def merge_lists(
    old: Lists, offers: dict[str, dict[str, float]], batch: set[str], k: int
) -> tuple[Lists, set[str]]:
    """Other papers' lists with the batch's papers merged in; and those that cannot be completed.

    A batch paper's old entry is replaced by its new score. When one falls out of a full list, the list
    would need its (k+1)-th paper, which was never kept: such papers are returned to be computed again.
    """
    merged: Lists = {}
    reopened: set[str] = set()
    for j, items in old.items():
        kept = [e for e in items if e[0] not in batch]
        new = sorted(kept + list(offers.get(j, {}).items()), key=lambda e: (-e[1], e[0]))[:k]
        if (
            len(kept) < len(items)
            and len(items) >= k
            and (len(new) < k or new[-1][1] < items[k - 1][1] - MARGIN)
        ):
            reopened.add(j)
        if new != items or j in reopened:
            merged[j] = new
    return merged, reopened


def update_neighbours(
    db: Database,
    model_id: str,
    n_features: int,
    *,
    k: int = K,
    batch: int = BATCH,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> NeighbourReport:
    """Compute the neighbour lists of every pending paper under `model_id` and fold them into the others'.

    :param n_features: the model's vocabulary size (the length of a stored vector)
    :param batch: pending papers per pass over the stored vectors; each batch is one transaction
    """
    started = time.monotonic()
    total = vectors.count_pending(db, model_id)
    papers = updated = reopened = 0
    while ids := vectors.pending_ids(db, model_id, batch):
        if progress:
            progress.update(papers / max(total, 1), papers, f"scoring {len(ids):,} against all", force=True)
        fresh, offers = _score_batch(db, model_id, n_features, ids, k, chunk_rows)
        merge = functools.partial(merge_lists, offers=offers, batch=set(ids), k=k)
        changed, again = vectors.save_neighbours(db, model_id, fresh, list(offers), merge, k)
        papers += len(ids)
        updated += changed
        reopened += again
        total += again
        if progress:
            progress.update(papers / max(total, 1), papers, f"{updated:,} other lists updated", force=True)
    return NeighbourReport(papers, updated, reopened, time.monotonic() - started)
