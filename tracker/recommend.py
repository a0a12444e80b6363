"""Ranking papers for one reader by their own library: a per-reader model over the tracker's TF-IDF
vectors (`paper_vectors`), fitted on the library's papers against a sample of the rest of the database,
and, for each paper ranked, the library paper it is most like.

The model is a class-balanced logistic regression, as arxiv-sanity-lite's per-user SVM is a linear model
on TF-IDF: same idea, measured better on the reviewed labels (bench/bench_recommend.py: half of a topic's
papers as the library, recall@50 of the other half; logistic regression C=1 was at or above LinearSVC at
C=0.01/0.1/1, a centroid and nearest-neighbour scores on every topic). It is stored per subscriber with
the vocabulary and library it was fitted on, and refitted only when either changes, so a weekly digest
scores 100 readers with one matrix product.
"""

from __future__ import annotations

import hashlib
import shlex
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sqlite_utils import Database

from tracker import store
from tracker.errors import InputError

# Negatives: the rest of the database, or this many of its papers drawn at random (fitting on a million
# papers per reader would take minutes; 20,000 cost recall@50 nothing measurable at 10,000 papers).
NEGATIVES = 20_000
C = 1.0


@dataclass
class ReaderModel:
    """One reader's fitted ranking: score = sigmoid(x . weights + bias) for a paper vector x."""

    model_id: str  # the classifier vocabulary the weights are over
    library_hash: str  # the library papers it was fitted on
    weights: np.ndarray  # (n_terms,) float32
    bias: float

    def scores(self, X: sp.csr_matrix) -> np.ndarray:
        if X.shape[0] == 0:
            return np.zeros(0)
        return 1.0 / (1.0 + np.exp(-(np.asarray(X @ self.weights).ravel() + self.bias)))


@dataclass
class Pick:
    """A paper ranked for a reader, and the library paper it is most like."""

    arxiv_id: str
    version: int
    title: str
    score: float
    like_id: str
    like_title: str

    def as_json(self) -> dict[str, object]:
        return {
            "arxiv_id": self.arxiv_id,
            "title": self.title,
            "score": round(self.score, 4),
            "like": self.like_title,
            "like_id": self.like_id,
        }


def library_hash(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(set(ids))).encode()).hexdigest()[:16]


def fit_reader(X_lib: sp.csr_matrix, X_rest: sp.csr_matrix) -> tuple[np.ndarray, float]:
    """Weights and bias separating the library's vectors from the rest's (classes weighted equally)."""
    X = sp.vstack([X_lib, X_rest], format="csr")
    y = np.r_[np.ones(X_lib.shape[0]), np.zeros(X_rest.shape[0])]
    if X_rest.shape[0] == 0:  # nothing to tell the library from: every paper scores alike
        return np.zeros(X.shape[1], dtype=np.float32), 0.0
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=1000).fit(X, y)
    return clf.coef_.ravel().astype(np.float32), float(clf.intercept_[0])


def closest(X: sp.csr_matrix, X_lib: sp.csr_matrix) -> np.ndarray:
    """For each row of X, the index of the library row with the highest cosine (rows are L2-normalised)."""
    if X.shape[0] == 0 or X_lib.shape[0] == 0:
        return np.zeros(X.shape[0], dtype=np.int64)
    return np.asarray((X @ X_lib.T).toarray().argmax(axis=1)).ravel()


class Vocabulary:
    """The classifier vocabulary paper vectors are stored under, and reads of those vectors."""

    def __init__(self, db: Database, model_id: str, n_terms: int, db_path: str | Path = "DB_PATH") -> None:
        self.db, self.model_id, self.n_terms, self.db_path = db, model_id, n_terms, db_path

    @classmethod
    def of(cls, db: Database, db_path: str | Path) -> Vocabulary:
        """The vocabulary of the database's classifier model (ModelError if it has none yet)."""
        from tracker.classify import load_model
        from tracker.config import model_paths

        model, meta = load_model(*model_paths(db_path), db_path)
        return cls(db, str(meta["model_id"]), model.n_terms, db_path)

    def matrix(self, blobs: Sequence[tuple[bytes, bytes]]) -> sp.csr_matrix:
        return store.unpack_rows(list(blobs), self.n_terms)

    def library(self, ids: Sequence[str]) -> tuple[list[str], sp.csr_matrix]:
        """The library papers that have a vector, and their vectors."""
        found = store.vector_blobs(self.db, self.model_id, ids)
        kept = [i for i in ids if i in found]
        return kept, self.matrix([found[i] for i in kept])

    def fit(self, ids: Sequence[str], seed_text: str = "") -> ReaderModel:
        """A model for a library of these paper ids (InputError if none of them has a vector yet)."""
        kept, X_lib = self.library(ids)
        if not kept:
            raise InputError(self.why_nothing(ids))
        return self._fit(kept, X_lib, seed_text)

    def _fit(self, kept: Sequence[str], X_lib: sp.csr_matrix, seed_text: str) -> ReaderModel:
        seed = zlib.crc32(f"{seed_text}|{self.model_id}".encode())
        mine = set(kept)
        rest = [
            (t, w)
            for a, t, w in store.sample_vectors(self.db, self.model_id, NEGATIVES, seed)
            if a not in mine
        ]
        weights, bias = fit_reader(X_lib, self.matrix(rest))
        return ReaderModel(self.model_id, library_hash(kept), weights, bias)

    def why_nothing(self, ids: Sequence[str]) -> str:
        """Why a library of these ids gives nothing to rank by, and what to do about it."""
        if not ids:
            return "none of the library's entries names a paper in the database; nothing to rank by"
        return (
            f"the library's {len(ids)} papers in the database have no TF-IDF vectors under the current "
            f"model yet; run: tracker classify {shlex.quote(str(self.db_path))}"
        )

    def reader(self, email: str, *, save: bool) -> ReaderModel | None:
        """The subscriber's stored model, refitted first if their library or the vocabulary changed since;
        None for a subscriber without library papers in the database."""
        ids = store.library_ids(self.db, email)
        if not ids:
            return None
        kept, X_lib = self.library(ids)
        if not kept:
            return None
        stored = store.reader_model(self.db, email)
        if stored and stored["model_id"] == self.model_id and stored["library_hash"] == library_hash(kept):
            weights = np.frombuffer(stored["weights"], dtype="<f4")
            if len(weights) == self.n_terms:
                return ReaderModel(self.model_id, stored["library_hash"], weights, float(stored["bias"]))
        model = self._fit(kept, X_lib, email)
        if save:
            store.save_reader_model(
                self.db, email, self.model_id, model.library_hash, model.weights, model.bias
            )
        return model


@dataclass
class Window:
    """A window's papers with vectors: ids, versions, titles and the matrix, read once for many readers."""

    ids: list[str]
    versions: list[int]
    titles: list[str]
    X: sp.csr_matrix

    @classmethod
    def read(cls, vocab: Vocabulary, since: str, until: str) -> Window:
        rows = store.window_vectors(vocab.db, vocab.model_id, since, until)
        return cls(
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            vocab.matrix([(r[3], r[4]) for r in rows]),
        )


def rank(
    vocab: Vocabulary,
    window: Window,
    model: ReaderModel,
    library: Sequence[str],
    limit: int,
    skip: frozenset[str] = frozenset(),
) -> list[Pick]:
    """The window's papers best for this reader, best first (library papers and `skip` left out)."""
    scores = model.scores(window.X)
    mine = set(library) | skip
    order = sorted(
        (i for i in range(len(window.ids)) if window.ids[i] not in mine),
        key=lambda i: (-scores[i], window.ids[i]),
    )[:limit]
    if not order:
        return []
    lib_ids, X_lib = vocab.library(library)
    like = closest(window.X[order], X_lib)
    titles = {i: title for i, (title, _) in store.paper_texts(vocab.db, lib_ids).items()}
    return [
        Pick(
            window.ids[i],
            window.versions[i],
            window.titles[i],
            float(scores[i]),
            lib_ids[j] if lib_ids else "",
            titles.get(lib_ids[j], "") if lib_ids else "",
        )
        for i, j in zip(order, like.tolist(), strict=True)
    ]
