"""tracker.classify: train / save / load / classify / label / explain / evaluate on real abstracts from the fixtures.

Models here are trained on the fixture subset (about 120 papers) so the tests stay fast; one test trains
on the full bundled data through the CLI.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from click.testing import CliRunner
from helpers import terminal_output

from tracker import classify, store
from tracker.classify import fitting, modelfile, pipeline
from tracker.cli import cli
from tracker.config import DEFAULT_RULES_DIR, model_paths
from tracker.errors import ModelError
from tracker.rules import load_labels, load_taxonomy

FIXTURES = Path(__file__).parent / "fixtures" / "classify"


@pytest.fixture(scope="module")
def records():
    return [json.loads(line) for line in (FIXTURES / "papers.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(DEFAULT_RULES_DIR / "taxonomy.yml")


@pytest.fixture(scope="module")
def labels(taxonomy):
    return load_labels(FIXTURES / "labels.csv", taxonomy)


@pytest.fixture
def db_path(tmp_path, records, monkeypatch):
    monkeypatch.setenv("TRACKER_RULES", str(DEFAULT_RULES_DIR))
    path = tmp_path / "papers.db"
    db = store.open_db(path)
    rows = [
        {"arxiv_id": r["id"], "version": 1, "title": r["title"], "abstract": r["abstract"]} for r in records
    ]
    store.save_papers(db, rows)  # type: ignore[arg-type]
    return path


def _train(db_path, taxonomy, labels, records):
    db = store.open_db(db_path)
    return classify.train_from_db(
        db,
        db_path,
        taxonomy,
        labels,
        labelled=[r for r in records if r["kind"] != "corpus"],
        corpus=[r for r in records if r["kind"] == "corpus"],
    )


def _scores(model, papers):
    """The model's calibrated scores (tags, then relevance) for (title, abstract) pairs or records."""
    pairs = [(r["title"], r["abstract"]) if isinstance(r, dict) else r for r in papers]
    fired = [model.rules.match(t, a).fired for t, a in pairs]
    return model.scores([classify.paper_text(t, a) for t, a in pairs], fired)


def _fixture_training_set(labels, records, taxonomy=None):
    return classify.training_set(
        labels,
        [],
        lambda ids: {},
        gated={t.slug for t in taxonomy.tags if t.requires_mllm} if taxonomy else (),
        labelled=[r for r in records if r["kind"] != "corpus"],
        corpus=[r for r in records if r["kind"] == "corpus"],
    )


def _tags(db_path):
    db = store.open_db(db_path)
    rows = db.conn.execute(
        "SELECT arxiv_id, tag, source, score FROM paper_tags ORDER BY arxiv_id, tag"
    ).fetchall()
    papers = db.conn.execute("SELECT arxiv_id, tags, tagged_by FROM papers ORDER BY arxiv_id").fetchall()
    scores = db.conn.execute("SELECT * FROM tag_scores ORDER BY arxiv_id, tag").fetchall()
    return rows, papers, scores


def test_save_load_round_trip_gives_identical_scores(db_path, taxonomy, labels, records):
    report = _train(db_path, taxonomy, labels, records)
    model_path, meta_path = model_paths(db_path)
    loaded, meta = classify.load_model(model_path, meta_path)
    np.testing.assert_array_equal(_scores(report.model, records), _scores(loaded, records))
    assert set(sio.get_untrusted_types(file=model_path)) <= set(classify.TRUSTED_TYPES)
    assert meta["model_id"] == report.model_id and meta["label_hash"].startswith(labels.content_hash)
    assert set(meta["cv"]) == {*loaded.model_tags, "relevance"} and {"M-ICL", "M-CoT", "LAVR"} <= set(
        loaded.model_tags
    )


def test_fast_tfidf_transform_equals_scikit_learns(db_path, taxonomy, labels, records):
    model = _train(db_path, taxonomy, labels, records).model
    texts = [classify.paper_text(r["title"], r["abstract"]) for r in records]
    texts += [
        "",
        "zzqx unknownword",
        "Vision vision VISION-language model model. Model",
    ]  # empty, no vocabulary, repeats
    ours, theirs = classify.tfidf_transform(model.tfidf, texts), model.tfidf.transform(texts)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert (ours != theirs).nnz == 0 and np.array_equal(ours.indptr, theirs.indptr)
    assert classify.tfidf_transform(model.tfidf, []).shape == (0, theirs.shape[1])
    model.tfidf.fit(texts[::-1][:40])  # refitted: a new vocabulary, and the cached lookup must follow it
    assert (classify.tfidf_transform(model.tfidf, texts) != model.tfidf.transform(texts)).nnz == 0
    # Models saved before `tokenize` used scikit-learn's regex and stop-word filter: still reproduced exactly.
    old = classify.build_vectorizer({**classify.DEFAULT_PARAMS, "tokenizer": "regex", "tfidf__min_df": 1})
    old.fit(texts)
    assert old.tokenizer is None and old.token_pattern == classify.TOKEN_PATTERN
    assert (classify.tfidf_transform(old, texts) != old.transform(texts)).nnz == 0


def test_tokenize_keeps_hyphenated_terms_and_drops_stop_words_and_numbers():
    text = "a chain-of-thought (cot) for gpt-4v: -based multi- and cross-modal, 3d 2024 ‘vqa’ αβ"
    assert classify.tokenize(text) == [
        "chain-of-thought",
        "cot",
        "gpt-4v",
        "based",
        "multi",
        "cross-modal",
        "vqa",
        "αβ",
    ]


def test_a_model_saved_before_the_tokenizer_setting_loads_with_the_regex(db_path, taxonomy, labels, records):
    _train(db_path, taxonomy, labels, records)
    model_path, _meta = model_paths(db_path)
    obj = sio.load(model_path, trusted=classify.TRUSTED_TYPES)
    assert modelfile._model_from_obj(obj).tfidf.tokenizer is classify.tokenize
    del obj["params"]["tokenizer"]
    legacy = modelfile._model_from_obj(obj)
    assert legacy.tfidf.tokenizer is None and legacy.tfidf.token_pattern == classify.TOKEN_PATTERN


def test_explain_finds_the_phrase_the_rules_matched_across_any_separator(taxonomy):
    rules = classify.RuleSet.from_taxonomy(taxonomy)
    for title in ("Visual Chain‐of‐Thought Prompting", "Visual chain_of_thought prompting"):  # U+2010, "_"
        assert "M-CoT" in rules.fired_all(title)
        assert rules.matched("M-CoT", title)[0].replace("‐", "-").replace("_", "-") == "chain-of-thought"


def test_retraining_on_the_same_labels_keeps_the_model_id(db_path, taxonomy, labels, records):
    first = _train(db_path, taxonomy, labels, records)
    classify.run_classify(store.open_db(db_path), db_path)
    again = _train(db_path, taxonomy, labels, records)
    assert again.model_id == first.model_id
    # Same id, so nothing needs re-tagging: a retrain with unchanged labels costs no classify time.
    assert classify.run_classify(store.open_db(db_path), db_path).papers == 0


def test_model_file_changed_after_training_is_refused(db_path, taxonomy, labels, records):
    _train(db_path, taxonomy, labels, records)
    model_path, meta_path = model_paths(db_path)
    raw = bytearray(model_path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    model_path.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="does not match its sidecar"):
        classify.load_model(model_path, meta_path)


def test_sidecar_from_before_file_sha256_still_loads_and_still_checks(db_path, taxonomy, labels, records):
    _train(db_path, taxonomy, labels, records)
    model_path, meta_path = model_paths(db_path)
    meta = json.loads(meta_path.read_text())
    # What train wrote before the id became a content hash: no file_sha256, the id = the file hash's head.
    meta.pop("file_sha256")
    meta["model_id"] = hashlib.sha256(model_path.read_bytes()).hexdigest()[:12]
    meta_path.write_text(json.dumps(meta))
    classify.load_model(model_path, meta_path)
    model_path.write_bytes(model_path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="does not match its sidecar"):
        classify.load_model(model_path, meta_path)


def test_model_from_another_sklearn_version_is_refused(db_path, taxonomy, labels, records):
    _train(db_path, taxonomy, labels, records)
    model_path, meta_path = model_paths(db_path)
    meta = json.loads(meta_path.read_text())
    meta["sklearn"] = "0.24.2"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="scikit-learn 0.24.2.*run: tracker train"):
        classify.load_model(model_path, meta_path)
    result = CliRunner().invoke(cli, ["classify", str(db_path)])
    # The advice names the user's database, ready to paste, not a placeholder.
    assert result.exit_code == 1 and f"run: tracker train {db_path}" in result.output


def test_model_of_another_format_is_refused_with_the_retrain_advice(db_path, taxonomy, labels, records):
    _train(db_path, taxonomy, labels, records)
    model_path, meta_path = model_paths(db_path)
    meta = json.loads(meta_path.read_text())
    assert meta["format"] == modelfile.MODEL_FORMAT == 3
    expected = f"{model_path} is a model of format 1; this tracker reads format 3; run: tracker train DB_PATH"
    for old in ({"format": 1}, {}):  # a sidecar written before the format number existed says nothing
        meta.pop("format", None)
        meta_path.write_text(json.dumps(meta | old))
        with pytest.raises(ModelError) as refused:
            classify.load_model(model_path, meta_path)
        assert str(refused.value) == expected
    # The model object carries the format too, and is checked as well.
    obj = sio.load(model_path, trusted=classify.TRUSTED_TYPES)
    obj["format"] = 1
    sio.dump(obj, model_path)
    meta |= {"format": 3, "file_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest()}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=re.escape(expected)):
        classify.load_model(model_path, meta_path)
    result = CliRunner().invoke(cli, ["classify", str(db_path)])
    assert result.exit_code == 1 and result.output.strip().endswith(f"run: tracker train {db_path}")


def test_classify_tags_and_is_idempotent(db_path, taxonomy, labels, records):
    report = _train(db_path, taxonomy, labels, records)
    db = store.open_db(db_path)
    first = classify.run_classify(db, db_path)
    assert (
        first.papers == len({r["id"] for r in records})
        and first.model_id == report.model_id
        and not first.trained
    )
    before = _tags(db_path)
    again = classify.run_classify(db, db_path)
    assert again.papers == 0 and _tags(db_path) == before
    everything = classify.run_classify(db, db_path, all_papers=True)
    assert everything.papers == first.papers and _tags(db_path) == before
    rows, papers, scores = before
    assert all(p[2] == report.model_id for p in papers)
    # papers.tags mirrors paper_tags
    mirror = {p[0]: json.loads(p[1]) for p in papers}
    for arxiv_id, tags in mirror.items():
        assert sorted(tags) == sorted(r[1] for r in rows if r[0] == arxiv_id)
    # the survey's named systems carry their facts, by rule
    by_id = {(r[0], r[1]): r[2] for r in rows}
    assert by_id[("2103.00020", "contrastive")] == "rule"  # CLIP's abstract never says "contrastive"
    assert by_id[("2304.02643", "visually-prompted")] == "rule"  # SAM
    assert by_id[("2301.12597", "q-former")] == "rule"  # BLIP-2
    # most corpus papers get no core tag; scores are kept where a tag is carried or nearly so
    corpus_ids = {r["id"] for r in records if r["kind"] == "corpus"}
    core_hits = {r[0] for r in rows if r[0] in corpus_ids and r[1] in classify.CORE_TAGS}
    assert len(core_hits) <= len(corpus_ids) // 4
    assert scores and all(score >= threshold / 2 for _, _, score, threshold, _ in scores)
    scored = {(s[0], s[1]) for s in scores}
    assert {(r[0], r[1]) for r in rows if r[2] == "model"} <= scored
    assert len(scores) < first.papers * len(report.model.model_tags)  # not a row per paper and tag


def test_manual_label_wins_survives_retrain_and_changes_the_model(db_path, taxonomy, labels, records):
    _train(db_path, taxonomy, labels, records)
    db = store.open_db(db_path)
    classify.run_classify(db, db_path)
    negative = next(r for r in records if r["kind"] == "corpus")
    model, _ = classify.load_model(*model_paths(db_path))
    col = model.model_tags.index("LAVR")
    before = _scores(model, [negative])[0, col]
    runner = CliRunner()
    result = runner.invoke(cli, ["label", str(db_path), negative["id"], "lavr"], catch_exceptions=False)
    assert result.exit_code == 0
    assert ("LAVR", "manual") in [(r["tag"], r["source"]) for r in store.paper_tag_rows(db, negative["id"])]
    report = _train(db_path, taxonomy, labels, records)  # the retrain learns from the correction
    after = _scores(report.model, [negative])[0, col]
    assert after > before
    classify.run_classify(db, db_path)  # the new model re-tags everything; the person's label stays
    assert ("LAVR", "manual") in [(r["tag"], r["source"]) for r in store.paper_tag_rows(db, negative["id"])]
    # --remove: a tag the model or a rule gives is taken away, also after reclassifying
    clip = "2103.00020"
    assert runner.invoke(cli, ["label", str(db_path), clip, "contrastive", "--remove"]).exit_code == 0
    classify.run_classify(db, db_path, all_papers=True)
    assert "contrastive" not in json.loads(
        db.conn.execute("SELECT tags FROM papers WHERE arxiv_id = ?", (clip,)).fetchone()[0]
    )


def test_explain_names_terms_of_the_paper_and_the_rules(db_path, taxonomy, labels, records):
    _train(db_path, taxonomy, labels, records)
    db = store.open_db(db_path)
    classify.run_classify(db, db_path)
    tagged = db.conn.execute(
        "SELECT arxiv_id FROM paper_tags WHERE source = 'model' AND tag = 'hallucination' LIMIT 1"
    ).fetchone()[0]
    expl = classify.explain(db, db_path, tagged)
    hall = next(x for x in expl.model if x.tag == "hallucination")
    assert hall.carried and hall.score >= hall.threshold and hall.up
    title, abstract = store.paper_texts(db, [tagged])[tagged]
    words = set(re.findall(r"[\w-]+", f"{title} {abstract}".lower()))
    for term, _weight in hall.up + hall.down:
        if not term.startswith("rule:"):
            assert set(term.split()) <= words, term
    result = CliRunner().invoke(cli, ["explain", str(db_path), "2304.10592"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "named-system:MiniGPT-4" in result.output and "q-former" in result.output
    assert "threshold" in result.output
    # A person's removal wins over the model, and explain says so instead of "TAGGED".
    runner = CliRunner()
    assert runner.invoke(cli, ["label", str(db_path), tagged, "hallucination", "--remove"]).exit_code == 0
    out = runner.invoke(cli, ["explain", str(db_path), tagged], catch_exceptions=False).output
    line = next(x for x in out.splitlines() if x.startswith("hallucination: score"))
    assert line.endswith("(model: above; a person removed this tag: NOT TAGGED)"), line


def test_cli_errors_are_one_line_and_non_zero(db_path, taxonomy, labels, records):
    runner = CliRunner()
    bad_tag = runner.invoke(cli, ["label", str(db_path), "2103.00020", "not-a-tag"])
    assert bad_tag.exit_code == 2 and "unknown tag 'not-a-tag'" in bad_tag.output
    assert len(bad_tag.output.strip().splitlines()) == 1
    no_paper = runner.invoke(cli, ["label", str(db_path), "2999.00001", "MIT"])
    assert no_paper.exit_code != 0 and "2999.00001" in no_paper.output and "Traceback" not in no_paper.output
    no_model = runner.invoke(cli, ["explain", str(db_path), "2103.00020"])
    assert no_model.exit_code == 1 and "tracker train" in no_model.output
    _train(db_path, taxonomy, labels, records)
    unknown = runner.invoke(cli, ["explain", str(db_path), "2999.00001"])
    assert unknown.exit_code == 1 and "not in the database" in unknown.output
    db = store.open_db(db_path)
    assert db.conn.execute("SELECT count(*) FROM manual_labels").fetchone()[0] == 0
    tiny = db_path.parent / "tiny.csv"  # one label: no tag has enough papers to cross-validate
    tiny.write_text("arxiv_id,tags\n2103.00020,contrastive\n")
    few = runner.invoke(cli, ["evaluate", str(db_path), "--labels", str(tiny)])
    assert few.exit_code == 1 and "nothing to evaluate: no tag has" in few.output
    assert len(few.output.strip().splitlines()) == 1


def test_evaluate_reports_product_and_baselines(taxonomy, labels, records):
    data = _fixture_training_set(labels, records, taxonomy)
    report = classify.evaluate(taxonomy, data)
    assert set(report["systems"]) == {"product", "keyword", "tfidf_svc"}
    for system in report["systems"].values():
        assert set(system["per_tag"]) == set(report["tags"])
        assert 0 <= system["macro_f1"] <= 1 and 0 <= system["stream_tagged"] <= 1
    # The keyword baseline is exactly the taxonomy's rules: recompute its figures from the rules directly.
    rules = classify.RuleSet.from_taxonomy(taxonomy)
    fired = [rules.fired_all(t, a) for t, a in zip(data.titles, data.abstracts, strict=True)]
    for tag in report["tags"]:
        truth = np.array([tag in tags for tags in data.tags])
        pred = np.array([tag in f for f in fired])
        expected = fitting._prf(truth, pred)
        assert report["systems"]["keyword"]["per_tag"][tag] == expected
    core = [t for t in report["tags"] if t in classify.CORE_TAGS]
    given = sum(tag in f for f in fired for tag in core)
    right = sum(tag in f and tag in tags for f, tags in zip(fired, data.tags, strict=True) for tag in core)
    assert report["systems"]["keyword"]["micro_precision"] == round(right / given, 4)
    text = classify.render_evaluation(report)
    assert "macro-F1" in text and "keyword OR-query" in text and "micro-precision" in text
    assert "MLLM relevance score: precision" in text and 0 < report["relevance"]["recall"] <= 1


def test_full_training_and_classify_through_the_cli(tmp_path, records, monkeypatch):
    """The one test on the full bundled data: `train` then `classify`, as a user runs them."""
    monkeypatch.setenv("TRACKER_RULES", str(DEFAULT_RULES_DIR))
    path = tmp_path / "full.db"
    db = store.open_db(path)
    store.save_papers(
        db,
        [
            {"arxiv_id": r["id"], "version": 1, "title": r["title"], "abstract": r["abstract"]}
            for r in records
        ],
    )  # type: ignore[misc]
    runner = CliRunner()
    result = runner.invoke(cli, ["train", str(path)], catch_exceptions=False)
    assert result.exit_code == 0 and "trained model" in result.output
    meta = json.loads(model_paths(path)[1].read_text())
    assert set(classify.CORE_TAGS) <= set(meta["model_tags"])
    result = runner.invoke(cli, ["classify", str(path)], catch_exceptions=False)
    assert result.exit_code == 0 and f"classify: {len({r['id'] for r in records})} papers" in result.output
    tags = dict(db.conn.execute("SELECT arxiv_id, tags FROM papers").fetchall())
    assert "MIT" in json.loads(tags["2304.10592"])  # MiniGPT-4


def test_classify_shows_a_progress_bar_on_a_terminal_and_nothing_under_cron(
    db_path, taxonomy, labels, records, monkeypatch
):
    _train(db_path, taxonomy, labels, records)
    papers = len({r["id"] for r in records})
    status, stdout, shown = terminal_output("classify", db_path, "--all")
    lines = [line.strip() for line in shown.replace("\r", "\n").splitlines() if line.strip()]
    assert status == 0, shown
    # the tagging bar ends at 100 %, then the similar-papers step draws its own on the next line
    tagging = [line for line in lines if line.startswith("classify ")]
    assert re.fullmatch(rf"classify 100\.0% {papers:,} papers [\d,]+/s ETA --", tagging[-1]), lines
    assert re.fullmatch(rf"similar 100\.0% {papers:,} papers [\d,]+/s ETA -- .*lists updated", lines[-1]), (
        lines
    )
    assert f"classify: {papers} papers".encode() in stdout
    # Under cron (stderr not a terminal) only the one summary line on stdout.
    piped = CliRunner().invoke(cli, ["classify", str(db_path), "--all"], catch_exceptions=False)
    assert piped.exit_code == 0 and piped.stderr == "" and piped.stdout.count("\n") == 1


def test_worker_processes_tag_exactly_like_one_process(db_path, taxonomy, labels, records, monkeypatch):
    _train(db_path, taxonomy, labels, records)
    db = store.open_db(db_path)
    monkeypatch.setattr(pipeline, "CHUNK_SIZE", 16)  # several chunks, so the worker pool is used
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 2)
    report = classify.run_classify(db, db_path, all_papers=True)
    parallel = _tags(db_path)
    monkeypatch.setattr(pipeline, "MAX_WORKERS", 1)
    assert classify.run_classify(db, db_path, all_papers=True).papers == report.papers
    assert _tags(db_path) == parallel
    assert report.papers == len({r["id"] for r in records})


def test_papers_the_model_never_saw_get_the_tags_a_reader_gives(tmp_path, taxonomy, monkeypatch):
    """Real abstracts (tests/fixtures/classify/unseen.jsonl, each with why), held out of the training data:
    "visual prompts" in audio work is not visually-prompted, MLLM hallucination benchmarks get evaluation
    and (most of them: the hallucination tag's recall is about 0.8) hallucination, a text-only LLM paper
    gets no MLLM tag and is not MLLM work."""
    monkeypatch.setenv("TRACKER_RULES", str(DEFAULT_RULES_DIR))
    unseen = [json.loads(line) for line in (FIXTURES / "unseen.jsonl").read_text().splitlines()]
    held = {r["id"] for r in unseen}
    all_labels = load_labels(DEFAULT_RULES_DIR / "labels.csv", taxonomy)
    kept = tuple(label for label in all_labels.labels if label.arxiv_id not in held)
    labels = type(all_labels)(kept, all_labels.path, "held-out", {lab.arxiv_id: lab for lab in kept})
    path = tmp_path / "unseen.db"
    db = store.open_db(path)
    store.save_papers(
        db,
        [{"arxiv_id": r["id"], "version": 1, "title": r["title"], "abstract": r["abstract"]} for r in unseen],
    )  # type: ignore[misc]
    classify.train_from_db(
        db,
        path,
        taxonomy,
        labels,
        labelled=[r for r in classify.load_bundled("labelled") if r["id"] not in held],
        corpus=[r for r in classify.load_bundled("corpus") if r["id"] not in held],
    )
    classify.run_classify(db, path)
    facets = {t.slug: t.facet for t in taxonomy.tags}
    mostly: dict[str, list[bool]] = {}
    for r in unseen:
        tags, mllm = db.conn.execute(
            "SELECT tags, mllm FROM papers WHERE arxiv_id = ?", (r["id"],)
        ).fetchone()
        tags = set(json.loads(tags))
        expect, why = r["expect"], f"{r['id']} ({r['why']}): {sorted(tags)}"
        assert set(expect.get("has", [])) <= tags, why
        assert not set(expect.get("not", [])) & tags, why
        assert not {t for t in tags if facets[t] in expect.get("none_of_facets", [])}, why
        if "mllm" in expect:
            assert bool(mllm) is expect["mllm"], why
        if "mostly" in expect:
            mostly.setdefault(expect["mostly"], []).append(expect["mostly"] in tags)
    for tag, given in mostly.items():  # the seven hallucination benchmarks: at least five get the tag
        assert sum(given) >= len(given) - 2, (tag, given)


def test_a_model_file_of_the_right_types_but_the_wrong_shape_is_one_line(db_path, taxonomy, labels, records):
    _train(db_path, taxonomy, labels, records)
    model_path, meta_path = model_paths(db_path)
    for obj in ({"format": modelfile.MODEL_FORMAT, "terms": [1, 2]}, [1, 2, 3]):
        sio.dump(obj, model_path)
        meta = json.loads(meta_path.read_text())
        meta["file_sha256"] = hashlib.sha256(model_path.read_bytes()).hexdigest()
        meta_path.write_text(json.dumps(meta))
        result = CliRunner().invoke(cli, ["classify", str(db_path)])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "not a tracker model" in result.output and f"run: tracker train {db_path}" in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_a_removed_tag_does_not_teach_the_relevance_score_that_a_paper_is_not_mllm_work(
    taxonomy, labels, records
):
    """`tracker review` answers "n" mostly for MLLM papers near a gated tag's threshold: the answer says the
    paper lacks that tag, not that it is no MLLM work."""
    curated = next(lab for lab in labels.labels if "MIT" in lab.tags)
    unlabelled = next(r["id"] for r in records if r["kind"] == "corpus")
    gated = {t.slug for t in taxonomy.tags if t.requires_mllm}
    manual = [(curated.arxiv_id, "MIT", "remove"), (unlabelled, "MIT", "remove")]
    data = classify.training_set(
        labels,
        manual,
        lambda ids: {i: (r["title"], r["abstract"]) for r in records for i in ids if r["id"] == i},
        gated=gated,
        labelled=[r for r in records if r["kind"] != "corpus"],
        corpus=[],
    )
    row = {i: k for k, i in enumerate(data.ids)}
    assert data.mllm[row[curated.arxiv_id]] and data.known[row[curated.arxiv_id]]  # its labels say MIT
    assert not data.known[row[unlabelled]] and "MIT" not in data.tags[row[unlabelled]]
    # Unknown rows stay out of the relevance head's training and in the gated tags' (as negatives).
    tags = classify.model_tags_for(taxonomy, data)
    vec = classify.build_vectorizer({**classify.DEFAULT_PARAMS, "tfidf__min_df": 1})
    X = vec.fit_transform(data.texts)
    hits = classify.RuleSet.hits([set() for _ in data.ids], tags)
    gated_cols = np.array([t in gated for t in tags])
    fitted = classify.fit(
        X, hits, data.matrix(tags), data.mllm, gated_cols, classify.DEFAULT_PARAMS, data.known
    )
    i = row[unlabelled]
    assert np.isnan(fitted.oof[i, -1]) and not np.isnan(fitted.oof[i, tags.index("MIT")])


def test_evaluate_reads_a_database_and_never_creates_one(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_RULES", str(FIXTURES.parent.parent.parent / "tracker" / "defaults" / "rules"))
    tiny = tmp_path / "tiny.csv"  # fails fast, after the database is opened
    tiny.write_text("arxiv_id,tags\n2103.00020,contrastive\n")
    missing = tmp_path / "nope.db"
    result = CliRunner().invoke(cli, ["evaluate", str(missing), "--labels", str(tiny)])
    assert result.exit_code == 1 and "nothing to evaluate" in result.output
    assert not missing.exists()
