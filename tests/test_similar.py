"""Similar papers: neighbour lists kept by `similar.update_neighbours` equal brute force over everything
stored, night after night, on a real database file with TF-IDF vectors of real abstracts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sample_db import paper_row
from sklearn.feature_extraction.text import TfidfVectorizer
from sqlite_utils import Database

from tracker import similar, store
from tracker.config import DATA_DIR
from tracker.store import vectors

MODEL = "model-1"
PAPERS = 60


@pytest.fixture(scope="module")
def corpus() -> tuple[list[dict], sp.csr_matrix]:
    """PAPERS real records with distinct abstracts, and their TF-IDF rows (L2-normalised float32)."""
    records: list[dict] = []
    seen: set[str] = set()
    with gzip.open(DATA_DIR / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec.get("abstract") and rec["abstract"] not in seen and len(records) < PAPERS:
                seen.add(rec["abstract"])
                records.append(rec)
    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True, dtype=np.float32)
    X = vec.fit_transform([f"{r['title']} {r['abstract']}" for r in records])
    return records, sp.csr_matrix(X)


@pytest.fixture
def tracker_db(tmp_path: Path, corpus: tuple[list[dict], sp.csr_matrix]) -> Database:
    records, _ = corpus
    db = store.open_db(tmp_path / "t.db")
    store.save_papers(db, [paper_row(r) for r in records])
    return db


def stored_lists(db: Database, ids: list[str]) -> similar.Lists:
    return {a: [(r["arxiv_id"], r["score"]) for r in vectors.similar_to(db, a, 100)] for a in ids}


def table(db: Database, name: str) -> list[tuple]:
    return db.execute(f"SELECT * FROM {name} ORDER BY 1, 2").fetchall()


def assert_lists_equal(got: similar.Lists, expected: similar.Lists) -> None:
    assert got.keys() == expected.keys()
    for a in expected:
        assert [s for s, _ in got[a]] == [s for s, _ in expected[a]], a
        assert [score for _, score in got[a]] == pytest.approx([score for _, score in expected[a]], abs=1e-6)


def test_lists_equal_brute_force_after_three_nights(
    tracker_db: Database, corpus: tuple[list[dict], sp.csr_matrix]
) -> None:
    records, X = corpus
    ids = [r["id"] for r in records]
    for night in range(3):  # a third of the papers arrive each night, a few batches each
        part = slice(night * PAPERS // 3, (night + 1) * PAPERS // 3)
        vectors.save_vectors(tracker_db, MODEL, ids[part], X[part])
        report = similar.update_neighbours(tracker_db, MODEL, X.shape[1], batch=7, chunk_rows=11)
        assert report.papers == PAPERS // 3
        if night:
            assert report.lists_updated > 0  # new papers entered older papers' lists
    assert_lists_equal(stored_lists(tracker_db, ids), similar.exact_neighbours(X, ids, 10))
    assert vectors.count_pending(tracker_db, MODEL) == 0
    assert (
        tracker_db.execute("SELECT count(*) FROM similar_papers WHERE arxiv_id = similar_id").fetchone()[0]
        == 0
    )
    # each floor is the 10th score
    for a, floor in tracker_db.execute("SELECT arxiv_id, floor FROM paper_vectors"):
        assert floor == pytest.approx(stored_lists(tracker_db, [a])[a][9][1])


def test_a_closer_newcomer_enters_a_list_and_pushes_the_last_out(
    tracker_db: Database, corpus: tuple[list[dict], sp.csr_matrix]
) -> None:
    records, X = corpus
    ids = [r["id"] for r in records]
    old, newcomer = ids[:-1], ids[-1]
    vectors.save_vectors(tracker_db, MODEL, old, X[:-1])
    similar.update_neighbours(tracker_db, MODEL, X.shape[1])
    # the newcomer is a near copy of paper 0: closer to it than anything stored
    near = X[0].toarray() * 0.9 + X[-1].toarray() * 0.1
    near /= np.linalg.norm(near)
    before = stored_lists(tracker_db, [old[0]])[old[0]]
    vectors.save_vectors(tracker_db, MODEL, [newcomer], sp.csr_matrix(near, dtype=np.float32))
    report = similar.update_neighbours(tracker_db, MODEL, X.shape[1])
    after = stored_lists(tracker_db, [old[0]])[old[0]]
    assert after[0][0] == newcomer and after[0][1] > before[0][1]
    assert [s for s, _ in after[1:]] == [s for s, _ in before[:-1]]  # the old 10th is out
    assert report.papers == 1 and report.lists_updated >= 1
    floor = tracker_db.execute("SELECT floor FROM paper_vectors WHERE arxiv_id = ?", [old[0]]).fetchone()[0]
    assert floor == pytest.approx(before[-2][1])
    expected = similar.exact_neighbours(sp.vstack([X[:-1], sp.csr_matrix(near)], format="csr"), ids, 10)
    assert_lists_equal(stored_lists(tracker_db, ids), expected)


def test_a_changed_vector_updates_the_lists_that_hold_it(
    tracker_db: Database, corpus: tuple[list[dict], sp.csr_matrix]
) -> None:
    """A revised abstract gets a new vector: lists holding the paper get its new score, or lose it and are
    completed again."""
    records, X = corpus
    ids = [r["id"] for r in records]
    vectors.save_vectors(tracker_db, MODEL, ids, X)
    similar.update_neighbours(tracker_db, MODEL, X.shape[1], batch=25)
    Y = sp.lil_matrix(X)
    for i in range(5):  # five papers now read like five others: they leave every list they were in
        Y[i] = X[PAPERS - 10 + i] * 0.7 + X[PAPERS - 20 + i] * 0.3
        Y[i] = Y[i] / np.sqrt(Y[i].multiply(Y[i]).sum())
    Y = sp.csr_matrix(Y, dtype=np.float32)
    vectors.save_vectors(tracker_db, MODEL, ids[:5], Y[:5])
    report = similar.update_neighbours(tracker_db, MODEL, X.shape[1], batch=3)
    assert report.reopened > 0
    assert_lists_equal(stored_lists(tracker_db, ids), similar.exact_neighbours(Y, ids, 10))


def test_a_paper_without_known_terms_gets_an_empty_list_and_is_done(
    tracker_db: Database, corpus: tuple[list[dict], sp.csr_matrix]
) -> None:
    records, X = corpus
    ids = [r["id"] for r in records]
    empty = sp.csr_matrix((1, X.shape[1]), dtype=np.float32)
    vectors.save_vectors(tracker_db, MODEL, ids[:10], X[:10])
    vectors.save_vectors(tracker_db, MODEL, [ids[10]], empty)
    similar.update_neighbours(tracker_db, MODEL, X.shape[1])
    assert vectors.similar_to(tracker_db, ids[10]) == []
    assert vectors.count_pending(tracker_db, MODEL) == 0
    assert ids[10] not in {s for s, _ in sum(stored_lists(tracker_db, ids[:10]).values(), [])}


def test_a_rerun_with_nothing_pending_changes_nothing(
    tracker_db: Database, corpus: tuple[list[dict], sp.csr_matrix]
) -> None:
    records, X = corpus
    ids = [r["id"] for r in records]
    vectors.save_vectors(tracker_db, MODEL, ids, X)
    similar.update_neighbours(tracker_db, MODEL, X.shape[1], batch=20)
    before = (table(tracker_db, "similar_papers"), table(tracker_db, "paper_vectors"))
    report = similar.update_neighbours(tracker_db, MODEL, X.shape[1])
    assert (report.papers, report.lists_updated) == (0, 0)
    assert (table(tracker_db, "similar_papers"), table(tracker_db, "paper_vectors")) == before
    # a new model makes every list pending; the lists come out the same
    vectors.save_vectors(tracker_db, "model-2", ids, X)
    assert similar.update_neighbours(tracker_db, "model-2", X.shape[1]).papers == PAPERS
    assert_lists_equal(stored_lists(tracker_db, ids), similar.exact_neighbours(X, ids, 10))


def test_a_failure_mid_run_keeps_earlier_batches_and_leaves_the_rest_pending(
    tracker_db: Database, corpus: tuple[list[dict], sp.csr_matrix], monkeypatch: pytest.MonkeyPatch
) -> None:
    records, X = corpus
    ids = [r["id"] for r in records]
    vectors.save_vectors(tracker_db, MODEL, ids[:30], X[:30])
    similar.update_neighbours(tracker_db, MODEL, X.shape[1])
    vectors.save_vectors(tracker_db, MODEL, ids[30:], X[30:])
    before = table(tracker_db, "similar_papers")
    real = vectors._save_floors
    calls: list[int] = []

    def failing(db: Database, rows: list) -> None:
        calls.append(1)
        if len(calls) > 2:  # the second batch's first write of floors, after its lists were written
            raise RuntimeError("disk full")
        real(db, rows)

    monkeypatch.setattr(vectors, "_save_floors", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        similar.update_neighbours(tracker_db, MODEL, X.shape[1], batch=10)
    monkeypatch.undo()
    done = [
        r[0] for r in tracker_db.execute("SELECT arxiv_id FROM paper_vectors WHERE neighbours_by IS NOT NULL")
    ]
    assert sorted(done) == sorted(ids[:40])  # the first batch of 10 is in, the second is not
    listed = {r[0] for r in tracker_db.execute("SELECT DISTINCT arxiv_id FROM similar_papers")}
    assert listed == set(ids[:40])
    assert table(tracker_db, "similar_papers") != before
    assert similar.update_neighbours(tracker_db, MODEL, X.shape[1], batch=10).papers == 20
    assert_lists_equal(stored_lists(tracker_db, ids), similar.exact_neighbours(X, ids, 10))


def test_exact_neighbours_breaks_ties_by_id_and_never_lists_a_paper_itself() -> None:
    X = sp.csr_matrix(np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32))
    lists = similar.exact_neighbours(X, ["c", "b", "a", "d"], 2)
    assert lists == {
        "c": [("a", 1.0), ("b", 1.0)],
        "b": [("a", 1.0), ("c", 1.0)],
        "a": [("b", 1.0), ("c", 1.0)],
        "d": [],
    }
