"""tracker review: the labelling loop, driven through the CLI with piped answers on a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tracker import store
from tracker.cli import cli
from tracker.config import DEFAULT_RULES_DIR

FIXTURES = Path(__file__).parent / "fixtures" / "classify"

# (arxiv_id, tag, score, threshold, model_id); the current model is "m2". Nearest the threshold by ratio:
# P1 (1.02), P4 (1.05, hallucination), P2 (1.2), P3 (1.67), P5 (1.92); P6 keeps a score of an older model
# (every paper was last tagged by m2).
SCORES = [
    ("2401.00001", "MIT", 0.49, 0.5, "m2"),
    ("2401.00002", "MIT", 0.60, 0.5, "m2"),
    ("2401.00003", "MIT", 0.30, 0.5, "m2"),
    ("2401.00004", "hallucination", 0.42, 0.4, "m2"),
    ("2401.00005", "MIT", 0.26, 0.5, "m2"),
    ("2401.00006", "MIT", 0.50, 0.5, "m1"),
]
CARRIED = {"2401.00002": ["MIT"], "2401.00004": ["hallucination"]}  # score at or above the threshold


@pytest.fixture(autouse=True)
def repo_rules(monkeypatch):
    monkeypatch.setenv("TRACKER_RULES", str(DEFAULT_RULES_DIR))


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "papers.db"
    db = store.open_db(path)
    rows = [
        {
            "arxiv_id": arxiv_id,
            "version": 1,
            "title": f"Paper {arxiv_id[-1]}",
            "abstract": "An abstract. " * 20,
        }
        for arxiv_id, *_ in SCORES
    ]
    store.save_papers(db, rows)  # type: ignore[arg-type]
    db.conn.executemany("INSERT INTO tag_scores VALUES (?, ?, ?, ?, ?)", SCORES)
    for arxiv_id, tags in CARRIED.items():
        db.conn.executemany(
            "INSERT INTO paper_tags (arxiv_id, tag, facet, score, source, model_id) VALUES (?, ?, 'f', 0.5, 'model', 'm2')",
            [(arxiv_id, t) for t in tags],
        )
    db.conn.executemany(
        "UPDATE papers SET tagged_by = ?, tags = ? WHERE arxiv_id = ?",
        [("m2", json.dumps(CARRIED.get(arxiv_id, [])), arxiv_id) for arxiv_id, *_ in SCORES],
    )
    db.conn.commit()
    db.close()
    return path


def review(db_path, answers, *args):
    return CliRunner().invoke(cli, ["review", str(db_path), *args], input=answers, catch_exceptions=False)


def offered(output):
    """The arXiv ids in the order the review showed them."""
    return [line.split()[1] for line in output.splitlines() if line.startswith("[")]


def manual(db_path):
    return store.manual_labels(store.open_db(db_path))


def test_nearest_threshold_first_and_answers_stored_as_manual_labels(db_path):
    result = review(db_path, "y\nn\ns\nq\n", "--tag", "mit")
    assert result.exit_code == 0, result.output
    assert offered(result.output) == ["2401.00001", "2401.00002", "2401.00003", "2401.00005"]
    assert "[1/4] 2401.00001  MIT: score 0.490 vs threshold 0.500 (not tagged)" in result.output
    assert "current tags: MIT" in result.output  # 2401.00002's tags, shown before the answer
    assert manual(db_path) == [("2401.00001", "MIT", "add"), ("2401.00002", "MIT", "remove")]
    db = store.open_db(db_path)
    assert [(r["tag"], r["source"]) for r in store.paper_tag_rows(db, "2401.00001")] == [("MIT", "manual")]
    assert store.paper_tag_rows(db, "2401.00002") == []
    assert result.output.strip().splitlines()[-1] == (
        f"review: 2 labelled (1 yes, 1 no), 1 skipped; run tracker train {db_path} to learn from them"
    )
    left = store.review_candidates(db, ["MIT", "hallucination"], 10)
    assert [(c.arxiv_id, c.tag) for c in left] == [
        ("2401.00004", "hallucination"),
        ("2401.00003", "MIT"),
        ("2401.00005", "MIT"),
    ]


def test_without_a_tag_all_tags_interleave_by_closeness_and_older_models_scores_are_left_out():
    db = store.open_db(":memory:")
    rows = [{"arxiv_id": a, "version": 1, "title": "t", "abstract": "a"} for a, *_ in SCORES]
    store.save_papers(db, rows)  # type: ignore[arg-type]
    db.conn.executemany("INSERT INTO tag_scores VALUES (?, ?, ?, ?, ?)", SCORES)
    db.conn.execute("UPDATE papers SET tagged_by = 'm2'")
    ranked = [(c.arxiv_id, c.tag) for c in store.review_candidates(db, ["MIT", "hallucination"], 20)]
    assert ranked == [
        ("2401.00001", "MIT"),
        ("2401.00004", "hallucination"),
        ("2401.00002", "MIT"),
        ("2401.00003", "MIT"),
        ("2401.00005", "MIT"),
    ]
    assert len(store.review_candidates(db, ["MIT", "hallucination"], 2)) == 2


def test_answered_papers_are_not_offered_again(db_path):
    assert review(db_path, "y\nn\ns\nq\n", "--tag", "MIT").exit_code == 0
    runner = CliRunner()
    assert runner.invoke(cli, ["label", str(db_path), "2401.00005", "MIT", "--remove"]).exit_code == 0
    again = review(db_path, "s\n", "--tag", "MIT", "--limit", "5")
    assert offered(again.output) == ["2401.00003"]  # skipped: offered again; answered or labelled: never
    assert again.output.strip().splitlines()[-1] == "review: 0 labelled (0 yes, 0 no), 1 skipped"
    done = review(db_path, "y\n", "--tag", "MIT")
    assert manual(db_path)[-2:] == [("2401.00003", "MIT", "add"), ("2401.00005", "MIT", "remove")]
    finished = review(db_path, "", "--tag", "MIT")
    assert done.exit_code == finished.exit_code == 0
    assert (
        finished.output
        == "nothing to review for MIT: every paper near the threshold is already labelled by hand\n"
    )


def test_an_unknown_answer_is_asked_again_and_the_end_of_input_quits(db_path):
    result = review(db_path, "maybe\nYes\n", "--limit", "3")
    assert result.exit_code == 0
    assert "'maybe' is not an answer: type y, n, s or q" in result.output
    assert offered(result.output) == ["2401.00001", "2401.00004"]  # the input ended at the second paper
    assert manual(db_path) == [("2401.00001", "MIT", "add")]
    assert result.output.strip().splitlines()[-1].startswith("review: 1 labelled (1 yes, 0 no), 0 skipped;")


def test_errors_and_empty_reviews_are_one_line(db_path, tmp_path):
    unknown = review(db_path, "", "--tag", "nope")
    assert unknown.exit_code == 2 and len(unknown.output.strip().splitlines()) == 1
    assert unknown.output.startswith("Error: unknown tag 'nope'; known tags: ") and "MIT" in unknown.output
    missing = review(tmp_path / "none.db", "")
    assert missing.exit_code == 1 and len(missing.output.strip().splitlines()) == 1
    assert "none.db: no such database; create it with `tracker sync" in missing.output
    rule_tag = review(db_path, "", "--tag", "contrastive")
    assert rule_tag.exit_code == 0
    assert rule_tag.output == (
        "nothing to review for contrastive: the model does not score it (its rules decide it); "
        "scored tags: MIT, hallucination\n"
    )
    empty = tmp_path / "empty.db"
    store.open_db(empty).close()
    for args, what in ((["--tag", "MIT"], "nothing to review for MIT"), ([], "nothing to review")):
        result = review(empty, "", *args)
        assert result.exit_code == 0
        assert result.output == f"{what}: no model scores yet; run tracker classify {empty} first\n"


def test_the_next_train_learns_the_answers_and_they_change_the_tags(tmp_path):
    from tracker import classify
    from tracker.rules import load_labels, load_taxonomy

    records = [json.loads(line) for line in (FIXTURES / "papers.jsonl").read_text().splitlines()]
    taxonomy = load_taxonomy(DEFAULT_RULES_DIR / "taxonomy.yml")
    labels = load_labels(FIXTURES / "labels.csv", taxonomy)
    path = tmp_path / "papers.db"
    db = store.open_db(path)
    rows = [
        {"arxiv_id": r["id"], "version": 1, "title": r["title"], "abstract": r["abstract"]} for r in records
    ]
    store.save_papers(db, rows)  # type: ignore[arg-type]

    def train():
        return classify.train_from_db(
            db,
            path,
            taxonomy,
            labels,
            labelled=[r for r in records if r["kind"] != "corpus"],
            corpus=[r for r in records if r["kind"] == "corpus"],
        )

    first = train()
    classify.run_classify(db, path)
    nearest = store.review_candidates(db, taxonomy.slugs, 1)
    assert nearest, "the classifier kept no score near a threshold"
    c = nearest[0]
    carried = c.tag in c.tags
    answer = "n" if carried else "y"  # contradict the model: the tag must flip whatever it learns
    result = review(path, f"{answer}\nq\n")
    assert result.exit_code == 0 and offered(result.output)[0] == c.arxiv_id
    assert manual(path) == [(c.arxiv_id, c.tag, "remove" if carried else "add")]

    second = train()
    assert second.model_id != first.model_id  # the manual label is training data
    classify.run_classify(db, path)
    tags = json.loads(
        db.conn.execute("SELECT tags FROM papers WHERE arxiv_id = ?", (c.arxiv_id,)).fetchone()[0]
    )
    assert (c.tag in tags) is not carried
    rows = {r["tag"]: r["source"] for r in store.paper_tag_rows(db, c.arxiv_id)}
    assert rows.get(c.tag) == (None if carried else "manual")
    assert (c.arxiv_id, c.tag) not in [
        (x.arxiv_id, x.tag) for x in store.review_candidates(db, taxonomy.slugs, 1000)
    ]
