"""The digest's content: windows, grouping by facet and tag, order, revisions, thresholds, escaping,
the printed and file outputs, and one-line errors for bad input. Real corpus papers, a fixed clock."""

from __future__ import annotations

import email
import os
import re
from datetime import date, datetime, timezone
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from digest_support import READER_RULES, add_tags, corpus_records, make_reader_db, make_week_db, paper_row
from helpers import run

from tracker import digest, reading_order, store
from tracker.cli import cli
from tracker.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "digest"
NOW = "2026-11-23T11:00:00+00:00"


@pytest.fixture(autouse=True)
def digest_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_RULES", str(FIXTURES / "rules"))
    monkeypatch.setenv("TRACKER_AUTH", str(tmp_path / "auth.json"))


def test_iso_weeks_and_windows():
    w47 = digest.parse_week("2026-W47")
    assert (w47.since, w47.until) == (date(2026, 11, 16), date(2026, 11, 22))
    # On Monday the week that ended yesterday is complete; on Sunday it is not yet.
    assert digest.last_complete_week(date(2026, 11, 23)).label == "2026-W47"
    assert digest.last_complete_week(date(2026, 11, 22)).label == "2026-W46"
    assert digest.last_complete_week(date(2026, 1, 2)).label == "2025-W52"  # across a year end
    # A --since/--until range that is exactly an ISO week is that week (one digests row, not two).
    assert digest.window_between("2026-11-16", "2026-11-22").label == "2026-W47"
    assert digest.window_between("2026-11-16", "2026-11-19").label == "2026-11-16..2026-11-19"
    for bad in ("2026-W54", "2026-47", "W47"):
        with pytest.raises(ConfigError):
            digest.parse_week(bad)
    with pytest.raises(ConfigError, match="before"):
        digest.window_between("2026-11-20", "2026-11-16")


def test_papers_grouped_by_facet_and_tag_strongest_first(tmp_path):
    records = corpus_records(8)
    db_path = make_week_db(tmp_path / "t.db", records)
    # The first paper also carries a second tag, in another facet: it must show under both.
    add_tags(db_path, [(records[0]["id"], "hallucination", "topic", 0.4)])
    result = run("digest", str(db_path), "--week", "2026-W47", "--now", NOW)
    assert result.exit_code == 0, result.output
    text = result.output
    # Facets in reader order (MLLM kind, topic, then paradigm), each tag heading with its count.
    positions = [
        text.index(h)
        for h in (
            "== Kind of multimodal-LLM work ==",
            "== Research topic ==",
            "== Vision foundation-model paradigm ==",
        )
    ]
    assert positions == sorted(positions)
    assert "-- Conversational (2) --" in text
    assert "-- Hallucination (3) --" in text
    assert text.count(records[0]["title"]) == 2
    # Strongest first: under hallucination the 0.93 and 0.89 papers precede the 0.40 one.
    section = text.split("-- Hallucination (3) --")[1]
    order = [section.index(records[i]["title"]) for i in (2, 6, 0)]
    assert order == sorted(order)
    assert f"https://arxiv.org/abs/{records[0]['id']}" in text
    assert "tracker label" in text  # the footer says how to correct a tag


def test_threshold_new_and_revision(tmp_path):
    records = corpus_records(6)
    db_path = tmp_path / "t.db"
    db = store.open_db(db_path)
    rows = [paper_row(r, "2026-11-18") for r in records[:4]]
    # A revision: version 2 this week of a paper first published months earlier.
    rows.append(paper_row(records[4], "2026-11-19", version=2, published="2026-05-01T10:00:00+00:00"))
    store.save_papers(db, rows)
    add_tags(
        db_path, [(records[i]["id"], "evaluation", "topic", s) for i, s in ((0, 0.9), (1, 0.3), (4, 0.7))]
    )
    add_tags(db_path, [(records[2]["id"], "evaluation", "topic", 0.1)], source="manual")
    text = run("digest", str(db_path), "--week", "2026-W47", "--now", NOW).output
    assert "-- Evaluation and benchmarks (3) --" in text  # 0.3 is under the tag's 0.5 threshold
    assert records[1]["title"] not in text
    assert records[2]["title"] in text  # a person's tag passes whatever its score
    assert f"{records[4]['title']} [revised, v2]" in text
    assert f"{records[0]['title']} [new]" in text


def test_html_escapes_every_piece_of_paper_text(tmp_path):
    records = corpus_records(3)
    records[0]["title"] = '<script>alert("x")</script> Vision & <b>Language</b>'
    records[0]["abstract"] = "An abstract with <img src=x onerror=alert(1)> inside. " + records[0]["abstract"]
    records[0]["authors"] = ["Eve <eve@evil.example>", "Bob"]
    db_path = make_week_db(tmp_path / "t.db", records)
    out = tmp_path / "d.html"
    result = run("digest", str(db_path), "--week", "2026-W47", "--out", str(out), "--now", NOW)
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<script>" not in html and "<b>Language</b>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Vision &amp; &lt;b&gt;Language&lt;/b&gt;" in html
    assert "Eve &lt;eve@evil.example&gt;" in html
    assert 'src="data:image/png;base64,' in html  # a self-contained page: the chart is inlined
    # The text part is not HTML: it keeps the characters as they are.
    assert (
        '<script>alert("x")</script> Vision & <b>Language</b>'
        in run("digest", str(db_path), "--week", "2026-W47", "--now", NOW).output
    )


def test_eml_output_is_a_complete_message(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(5))
    out = tmp_path / "d.eml"
    result = run(
        "digest", str(db_path), "--week", "2026-W47", "--out", str(out), "--to", "reader@example.org"
    )
    assert result.exit_code == 0, result.output
    message = email.message_from_bytes(out.read_bytes(), policy=policy.default)
    assert message["To"] == "reader@example.org"
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None
    assert [p.get_content_type() for p in message.walk()].count("image/png") == 1


def test_empty_week(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(3))
    result = run("digest", str(db_path), "--week", "2026-W30", "--now", NOW)
    assert result.exit_code == 0
    assert "Nothing new in your tags this week." in result.output
    skipped = run("digest", str(db_path), "--week", "2026-W30", "--skip-empty")
    assert skipped.exit_code == 0 and skipped.stdout == ""


def test_default_window_is_last_complete_week(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(3))
    text = run("digest", str(db_path), "--now", "2026-11-24T09:00:00+00:00").output
    assert text.startswith("arXiv digest 2026-W47")


def test_per_tag_cap_keeps_counts(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(12))
    text = run("digest", str(db_path), "--week", "2026-W47", "--max-per-tag", "1").output
    assert "-- Conversational (3) --" in text
    assert "… and 2 more under conversational." in text
    assert (
        "12 papers, multimodal-LLM work first, then strongest first, under each tag; the top 4 are listed."
        in text
    )


def test_golden_text_under_fixed_clock(tmp_path, monkeypatch):
    """The whole text part, byte for byte (set TRACKER_UPDATE_GOLDEN=1 to rewrite after a deliberate change)."""
    monkeypatch.chdir(tmp_path)  # the footer names the database as given: a relative path keeps it fixed
    records = corpus_records(6)
    db_path = make_week_db(tmp_path / "t.db", records)
    # Earlier weeks for the trend line.
    old = [
        paper_row(r, day)
        for r, day in zip(
            corpus_records(12)[6:],
            ["2026-10-07", "2026-10-28", "2026-11-04", "2026-11-05", "2026-11-11", "2026-11-12"],
            strict=True,
        )
    ]
    store.save_papers(store.open_db(db_path), old)
    add_tags(db_path, [(r["arxiv_id"], "hallucination", "topic", 0.8) for r in old])
    text = run("digest", "t.db", "--week", "2026-W47", "--now", NOW).output
    golden = FIXTURES / "golden_w47.txt"
    if os.environ.get("TRACKER_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--week", "2026-W60"], "has no week 60"),
        (["--week", "next"], "expected an ISO week"),
        (["--week", "0001-W01"], "outside arXiv's years"),
        (["--since", "0001-01-01", "--until", "0001-02-01"], "outside arXiv's years"),
        (
            ["--since", "2026-11-31", "--until", "2026-12-02"],
            "--since '2026-11-31' is not a valid date (expected YYYY-MM-DD)",
        ),
        (["--until", "2026-11-16"], "--until needs --since"),
        (["--since", "2026-02-30"], "--since '2026-02-30' is not a valid date (expected YYYY-MM-DD)"),
        (["--week", "2026-W47", "--since", "2026-11-16", "--until", "2026-11-17"], "not both"),
        (["--to", "not-an-address"], "is not a valid email address"),
        (["--out", "digest.pdf"], "expected a file name ending in .eml or .html"),
    ],
)
def test_bad_input_is_one_line_error(tmp_path, args, message):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(2))
    result = CliRunner().invoke(cli, ["digest", str(db_path), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_subscribe_validates_and_records(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(2))
    assert run("subscribe", str(db_path), "a@example.org", "--tag", "hallucination").exit_code == 0
    assert store.list_subscribers(store.open_db(db_path)) == [("a@example.org", ["hallucination"])]
    bad_tag = CliRunner().invoke(cli, ["subscribe", str(db_path), "a@example.org", "--tag", "halucination"])
    assert bad_tag.exit_code != 0 and "unknown tag 'halucination'" in bad_tag.output
    bad_mail = CliRunner().invoke(cli, ["subscribe", str(db_path), "a@example", "--tag", "MIT"])
    assert bad_mail.exit_code != 0 and "not a valid email address" in bad_mail.output
    # The failed attempts changed nothing; a second subscribe replaces the tag choice.
    assert store.list_subscribers(store.open_db(db_path)) == [("a@example.org", ["hallucination"])]
    assert run("subscribe", str(db_path), "a@example.org", "--tag", "HALLUCINATION").exit_code == 0
    assert store.list_subscribers(store.open_db(db_path)) == [
        ("a@example.org", ["hallucination"])
    ]  # as `label`
    run("subscribe", str(db_path), "a@example.org")
    assert store.list_subscribers(store.open_db(db_path)) == [("a@example.org", [])]
    assert run("unsubscribe", str(db_path), "a@example.org").exit_code == 0
    assert store.list_subscribers(store.open_db(db_path)) == []
    again = CliRunner().invoke(cli, ["unsubscribe", str(db_path), "a@example.org"])
    assert again.exit_code != 0 and "is not subscribed" in again.output


def test_build_is_pure_and_uses_the_callers_clock():
    window = digest.parse_week("2026-W47")
    rows = [
        {
            "arxiv_id": "2611.00001",
            "version": 1,
            "title": "T",
            "abstract": "A " * 300,
            "authors": '["X"]',
            "primary_category": "cs.CV",
            "published": "2026-11-17T00:00:00+00:00",
            "announce_type": "new",
            "abs_url": None,
            "tag": "MIT",
            "facet": "mllm",
            "score": 0.7,
            "source": "model",
        }
    ]
    taxonomy = digest.taxonomy_from_pairs([("MIT", "mllm")])
    now = datetime(2026, 11, 23, 6, tzinfo=timezone.utc)
    d = digest.build(rows, taxonomy, window, now, trend=[("MIT", "2026-11-16", 1), ("MIT", "2026-11-09", 4)])
    assert d.generated == now and d.paper_versions() == [("2611.00001", 1)]
    assert d.sections[0].trend[-2:] == [4, 1]
    assert len(d.sections[0].entries[0].snippet) <= digest.SNIPPET_CHARS + 2
    # Already sent at this version: left out; sent at an older version: back, marked as a revision.
    assert digest.build(rows, taxonomy, window, now, sent={"2611.00001": 1}).empty
    again = digest.build(rows, taxonomy, window, now, sent={"2611.00001": 0})
    assert again.sections[0].entries[0].revision


# -- what readers see first (issue 12) ----------------------------------------------------------


def task_section(text: str) -> str:
    return text.split("== Classic vision task ==")[1]


def test_mllm_and_topic_sections_come_first_and_task_sections_list_mllm_work(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_RULES", str(READER_RULES))
    records = corpus_records(8)
    db_path = make_reader_db(tmp_path / "t.db", records)
    text = run("digest", str(db_path), "--week", "2026-W47", "--now", NOW).output
    # Reader order, whatever the taxonomy file's order (paradigm first there).
    headings = [
        "== Kind of multimodal-LLM work ==",
        "== Research topic ==",
        "== Vision foundation-model paradigm ==",
        "== MM-LLM building block ==",
        "== Classic vision task ==",
    ]
    positions = [text.index(h) for h in headings]
    assert positions == sorted(positions)
    assert text.index("-- Multimodal instruction tuning (1) --") < text.index("-- Hallucination (1) --")
    assert text.index("-- Hallucination (1) --") < text.index("-- Contrastive (2) --")
    # The summary table follows the same order.
    table = text.split("Papers per tag")[1].split("==")[0]
    assert [line.split()[0] for line in table.strip().splitlines()[1:]] == [
        "Multimodal",
        "Hallucination",
        "Contrastive",
        "CLIP",
        "Object",
    ]
    # Task section: the mllm = 1 paper only; mllm = 0 and mllm NULL are left out, and the digest says so.
    tasks = task_section(text)
    assert "-- Object detection (1) --" in tasks
    assert records[6]["title"] in tasks
    assert records[5]["title"] not in text and records[7]["title"] not in text
    assert "2 papers with classic vision task tags but not about multimodal LLMs are not listed" in text
    # The trend of a task tag counts what its section lists.
    assert re.search(r"Object detection\s+1 ", table)
    # Within a section MLLM work comes first, even under a stronger non-MLLM tag score.
    contrastive = text.split("-- Contrastive (2) --")[1]
    assert contrastive.index(records[3]["title"]) < contrastive.index(records[2]["title"])


def test_all_tasks_and_a_chosen_task_tag_list_every_task_paper(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_RULES", str(READER_RULES))
    records = corpus_records(8)
    db_path = make_reader_db(tmp_path / "t.db", records)
    everything = run("digest", str(db_path), "--week", "2026-W47", "--now", NOW, "--all-tasks").output
    tasks = task_section(everything)
    assert "-- Object detection (3) --" in tasks
    # MLLM work first, then by score: the 0.7 MLLM paper before the 0.9 and 0.8 others.
    order = [tasks.index(records[i]["title"]) for i in (6, 5, 7)]
    assert order == sorted(order)
    assert "not about multimodal LLMs" not in everything
    # A subscriber who chose the task tag by name gets all its papers.
    assert run("subscribe", str(db_path), "det@example.org", "--tag", "detection").exit_code == 0
    chosen = run("digest", str(db_path), "--week", "2026-W47", "--now", NOW, "--to", "det@example.org").output
    assert "-- Object detection (3) --" in chosen and records[5]["title"] in chosen
    # A subscriber to every tag gets the default.
    assert run("subscribe", str(db_path), "all@example.org").exit_code == 0
    default = run(
        "digest", str(db_path), "--week", "2026-W47", "--now", NOW, "--to", "all@example.org"
    ).output
    assert "-- Object detection (1) --" in default


def test_reader_order_puts_unknown_facets_before_the_tasks():
    assert reading_order.sort_facets(["task", "paradigm", "extra", "mllm", "architecture", "topic"]) == [
        "mllm",
        "topic",
        "paradigm",
        "architecture",
        "extra",
        "task",
    ]
    assert reading_order.is_mllm({"mllm": 1}) and not reading_order.is_mllm({"mllm": None})
    assert not reading_order.is_mllm({})


def test_digest_tags_resolve_like_label_and_export():
    taxonomy = digest.taxonomy_from_pairs([("M-CoT", "paradigm"), ("hallucination", "topic")])
    assert taxonomy.validate(["m-cot", "M-CoT", "HALLUCINATION"]) == ["M-CoT", "hallucination"]
    with pytest.raises(ConfigError, match=r"unknown tag 'halucination' \(did you mean hallucination\?\)"):
        taxonomy.validate(["halucination"])
    with pytest.raises(ConfigError, match=r"unknown tag 'zzz'; known tags: M-CoT, hallucination$"):
        taxonomy.validate(["zzz"])
