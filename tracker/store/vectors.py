"""Paper vectors and neighbours: each paper's TF-IDF vector under a model's vocabulary (`paper_vectors`),
and the nearest papers of each paper (`similar_papers`).

A vector is stored as two blobs, its sorted term ids (little-endian int32) and their weights (float32,
the row L2-normalised), so cosine similarity is a dot product and a million papers load as one CSR matrix
without tokenising an abstract again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from sqlite_utils import Database

TERM_DTYPE = np.dtype("<i4")
WEIGHT_DTYPE = np.dtype("<f4")
# A list is pending when it was not computed under the vectors' current model (or never).
_PENDING_SQL = "(neighbours_by IS NULL OR neighbours_by != ?)"


def pack_rows(X: sp.csr_matrix) -> list[tuple[bytes, bytes]]:
    """(terms, weights) blobs for each row of a CSR matrix (rows as stored: sorted indices expected)."""
    X = sp.csr_matrix(X)
    X.sort_indices()
    indices = X.indices.astype(TERM_DTYPE, copy=False)
    data = X.data.astype(WEIGHT_DTYPE, copy=False)
    ptr = X.indptr
    return [
        (indices[ptr[i] : ptr[i + 1]].tobytes(), data[ptr[i] : ptr[i + 1]].tobytes())
        for i in range(X.shape[0])
    ]


def unpack_rows(blobs: Sequence[tuple[bytes, bytes]], n_features: int) -> sp.csr_matrix:
    """The CSR matrix (float32) of stored (terms, weights) blobs, one row each, in order."""
    lengths = np.fromiter((len(t) // TERM_DTYPE.itemsize for t, _ in blobs), dtype=np.int64, count=len(blobs))
    indptr = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.frombuffer(b"".join(t for t, _ in blobs), dtype=TERM_DTYPE)
    data = np.frombuffer(b"".join(w for _, w in blobs), dtype=WEIGHT_DTYPE)
    if len(indices) != len(data) or (len(indices) and int(indices.max()) >= n_features):
        raise ValueError("stored paper vectors do not match the model's vocabulary")
    return sp.csr_matrix((data, indices, indptr), shape=(len(blobs), n_features))


class VectorChunk(NamedTuple):
    """A run of stored vectors in arxiv_id order: ids, their rows, each one's floor, and whether its list is done."""

    ids: list[str]
    vectors: sp.csr_matrix
    floors: np.ndarray  # float32: the score of the paper's k-th neighbour (0 while it has fewer)
    done: np.ndarray  # bool: its neighbour list was computed under this model (else pending)


def save_vectors(db: Database, model_id: str, ids: Sequence[str], X: sp.csr_matrix) -> None:
    """Store papers' vectors under `model_id`, in one transaction; each one's neighbour list becomes pending.

    The classify pipeline stores vectors through `save_tagging`; this is the plain write for the rest.
    """
    rows = [(a, model_id, t, w) for a, (t, w) in zip(ids, pack_rows(X), strict=True)]
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO paper_vectors (arxiv_id, model_id, terms, weights) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(arxiv_id) DO UPDATE SET model_id = excluded.model_id, terms = excluded.terms, "
            "weights = excluded.weights, neighbours_by = NULL, floor = 0",
            rows,
        )


def count_pending(db: Database, model_id: str) -> int:
    """How many papers with a vector under `model_id` have no neighbour list computed under it."""
    return int(
        db.conn.execute(
            f"SELECT count(*) FROM paper_vectors WHERE model_id = ? AND {_PENDING_SQL}", (model_id, model_id)
        ).fetchone()[0]
    )


def pending_ids(db: Database, model_id: str, limit: int) -> list[str]:
    """Up to `limit` ids of papers whose neighbour list is still to compute under `model_id`, in id order."""
    sql = (
        f"SELECT arxiv_id FROM paper_vectors WHERE model_id = ? AND {_PENDING_SQL} ORDER BY arxiv_id LIMIT ?"
    )
    return [r[0] for r in db.conn.execute(sql, (model_id, model_id, limit))]


def vector_blobs(db: Database, model_id: str, ids: Sequence[str]) -> dict[str, tuple[bytes, bytes]]:
    """{arxiv_id: (terms, weights)} of those papers that have a vector under `model_id`."""
    found: dict[str, tuple[bytes, bytes]] = {}
    for part in in_parts(ids):
        sql = (
            "SELECT arxiv_id, terms, weights FROM paper_vectors "
            f"WHERE +model_id = ? AND arxiv_id IN ({', '.join('?' * len(part))})"
        )
        found.update((r[0], (r[1], r[2])) for r in db.conn.execute(sql, [model_id, *part]))
    return found


def vectors_of(db: Database, model_id: str, ids: Sequence[str], n_features: int) -> sp.csr_matrix:
    """The vectors of these papers under `model_id`, one row each in the order given (empty if missing)."""
    found = vector_blobs(db, model_id, ids)
    return unpack_rows([found.get(i, (b"", b"")) for i in ids], n_features)


def iter_vector_chunks(
    db: Database, model_id: str, n_features: int, chunk_size: int = 5000
) -> Iterator[VectorChunk]:
    """Every vector stored under `model_id`, in chunks in arxiv_id order (keyset pagination: memory stays
    flat whatever the size of the table, one query per chunk)."""
    last = ""
    sql = (
        "SELECT arxiv_id, terms, weights, floor, neighbours_by IS ? FROM paper_vectors "
        "WHERE arxiv_id > ? AND +model_id = ? ORDER BY arxiv_id LIMIT ?"
    )  # `+`: walk the primary key, not the model's index (which would sort every row for each chunk)
    while True:
        rows = db.conn.execute(sql, (model_id, last, model_id, chunk_size)).fetchall()
        if not rows:
            return
        yield VectorChunk(
            [r[0] for r in rows],
            unpack_rows([(r[1], r[2]) for r in rows], n_features),
            np.fromiter((r[3] for r in rows), dtype=np.float32, count=len(rows)),
            np.fromiter((r[4] for r in rows), dtype=bool, count=len(rows)),
        )
        last = rows[-1][0]


def papers_listing(db: Database, similar_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(arxiv_id, similar_id) of every neighbour list that holds one of these papers.

    One scan of similar_papers (it has no index on similar_id), the ids passed as one JSON array.
    """
    if not similar_ids:
        return []
    sql = (
        "SELECT arxiv_id, similar_id FROM similar_papers WHERE similar_id IN (SELECT value FROM json_each(?))"
    )
    return [(r[0], r[1]) for r in db.conn.execute(sql, (json.dumps(list(similar_ids)),))]


Lists = dict[str, list[tuple[str, float]]]


def save_neighbours(
    db: Database,
    model_id: str,
    fresh: Lists,
    touched: Collection[str],
    merge: Callable[[Lists], tuple[Lists, set[str]]],
    k: int,
) -> tuple[int, int]:
    """Write a batch of neighbour lists in one transaction: read and replace alike, so a failure leaves none.

    :param fresh: the lists computed from scratch (the batch's papers): they are marked done under `model_id`
    :param touched: other papers whose lists the batch may change; their stored lists go to `merge`, which
        returns the new lists and the ids to mark pending again (lists it could not complete)
    :param k: list length: a paper's floor is its k-th score, 0 while it has fewer
    :return: how many other papers' lists changed, and how many of them were marked pending again
    """
    with db.atomic():
        merged, reopened = merge(neighbour_lists(db, touched))
        lists = {**merged, **fresh}
        ids = [(a,) for a in lists]
        db.conn.executemany("DELETE FROM similar_papers WHERE arxiv_id = ?", ids)
        db.conn.executemany(
            "INSERT INTO similar_papers (arxiv_id, rank, similar_id, score) VALUES (?, ?, ?, ?)",
            ((a, rank, s, score) for a, items in lists.items() for rank, (s, score) in enumerate(items, 1)),
        )
        _save_floors(db, [(_floor(items, k), model_id, a) for a, items in fresh.items()])
        # Another paper's list stays done, or pending if it was: only a list the merge could not complete
        # becomes pending.
        _save_floors(db, [(_floor(items, k), None, a) for a, items in merged.items() if a in reopened])
        db.conn.executemany(
            "UPDATE paper_vectors SET floor = ? WHERE arxiv_id = ?",
            [(_floor(items, k), a) for a, items in merged.items() if a not in reopened and a not in fresh],
        )
    return len(merged), len(reopened)


def _floor(items: Sequence[tuple[str, float]], k: int) -> float:
    return items[k - 1][1] if len(items) >= k else 0.0


def _save_floors(db: Database, rows: Sequence[tuple[float, str | None, str]]) -> None:
    db.conn.executemany("UPDATE paper_vectors SET floor = ?, neighbours_by = ? WHERE arxiv_id = ?", rows)


def neighbour_lists(db: Database, ids: Collection[str]) -> Lists:
    """The stored neighbour lists of these papers, closest first: {arxiv_id: [(similar_id, score), ...]}."""
    lists: Lists = {a: [] for a in ids}
    for part in in_parts(list(ids)):
        sql = (
            "SELECT arxiv_id, similar_id, score FROM similar_papers "
            f"WHERE arxiv_id IN ({', '.join('?' * len(part))}) ORDER BY arxiv_id, rank"
        )
        for a, s, score in db.conn.execute(sql, part):
            lists[a].append((s, score))
    return lists


def similar_to(db: Database, arxiv_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """The papers nearest to one paper, closest first: arxiv_id, title and score (cosine of TF-IDF vectors)."""
    sql = (
        "SELECT s.similar_id AS arxiv_id, p.title, s.score FROM similar_papers s "
        "JOIN papers p ON p.arxiv_id = s.similar_id WHERE s.arxiv_id = ? ORDER BY s.rank LIMIT ?"
    )
    return [dict(r) for r in db.query(sql, [arxiv_id, limit])]


def in_parts(ids: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """Ids in runs short enough for one `IN (...)` (SQLite's default limit is 32,766 parameters)."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
