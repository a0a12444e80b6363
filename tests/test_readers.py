"""A reader's library (`subscribe --library`, `library`), the ranking it gives (`recommend`) and the
digest's "For you" section, on the demo's real database (994 real papers, tagged and vectorised by the
real classifier) with arXiv on loopback for missing papers and a real SMTP server for the digest."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from digest_support import Inbox, send_args, smtp_server
from helpers import query as q
from helpers import run, sync_args

from tracker.demo.mirror import ArxivMirror, load_corpus

WINDOW = ("--since", "2025-08-01", "--until", "2025-08-07")  # the demo's week: 657 papers
# Real papers on hallucination in vision-language models, in the demo database; the first is in the window.
LIBRARY = ["2508.01678", "2506.11417", "2506.04039"]
# Papers of the window on the same subject: they must come first for this library.
ALIKE = ["2508.04182", "2508.04567", "2503.10183"]
# Papers of the window about something else entirely.
UNRELATED = ["2508.04180", "2508.04517", "2508.04195"]  # molecules, traffic, speech


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    assert run("demo", folder / "demo.db").exit_code == 0
    return folder


@pytest.fixture
def db_path(demo_db: Path, tmp_path: Path) -> Path:
    """A private copy of the demo database and its classifier."""
    for f in demo_db.iterdir():
        if f.name.startswith("demo.") and not f.name.endswith((".lock", "-shm")):
            shutil.copy(f, tmp_path / f.name)
    return tmp_path / "demo.db"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_subscribe_with_a_plain_list_matches_ids_and_urls_and_reports_the_rest_by_line(
    db_path: Path, tmp_path: Path
) -> None:
    lib = write(
        tmp_path / "mine.txt",
        "# my papers\n2508.01678\nhttps://arxiv.org/abs/2506.11417v2\n\narXiv:2506.04039\n"
        "not a paper at all\nhep-th/9901001\n",
    )
    result = run("subscribe", db_path, "me@example.org", "--library", lib, "--offline")
    assert result.exit_code == 0, result.output
    assert "library" in result.stdout and "3 matched" in result.stdout
    assert (
        "line 6: no arXiv id" in result.stderr
        and "line 7: hep-th/9901001 is not in the database" in result.stderr
    )
    shown = run("library", db_path, "me@example.org", "--json")
    rows = json.loads(shown.stdout)
    assert [(r["line"], r["arxiv_id"], r["status"]) for r in rows] == [
        (2, "2508.01678", "matched"),
        (3, "2506.11417", "matched"),
        (5, "2506.04039", "matched"),
        (6, None, "unmatched"),
        (7, "hep-th/9901001", "missing"),
    ]
    assert rows[0]["title"].startswith("Cure or Poison?")
    text = run("library", db_path, "me@example.org").stdout
    assert "line     6  unmatched" in text and "not a paper at all" in text


def test_missing_library_papers_are_fetched_from_arxiv_by_id_and_tagged(
    db_path: Path, tmp_path: Path
) -> None:
    known = {r[0] for r in q(db_path, "SELECT arxiv_id FROM papers")}
    outside = [r for r in load_corpus() if r["id"] not in known][:2]
    lib = write(
        tmp_path / "mine.txt", "\n".join(["2508.01678", *(r["id"] for r in outside), "2401.99999"]) + "\n"
    )
    with ArxivMirror(outside) as mirror:
        result = run("subscribe", db_path, "me@example.org", "--library", lib, "--api-url", mirror.api_url)
        requests = mirror.api_requests()
    assert result.exit_code == 0, result.output
    assert any("id_list" in r for r in requests)
    assert "1 matched, 2 fetched, 1 missing" in result.stdout
    rows = q(db_path, "SELECT arxiv_id, status FROM library ORDER BY line")
    assert rows == [
        ("2508.01678", "matched"),
        (outside[0]["id"], "fetched"),
        (outside[1]["id"], "fetched"),
        ("2401.99999", "missing"),
    ]
    # fetched papers are stored, tagged and vectorised: they count for the reader's model
    ids = [r["id"] for r in outside]
    assert q(db_path, "SELECT count(*) FROM paper_vectors WHERE arxiv_id IN (?, ?)", *ids) == [(2,)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary"),
        (b"2508.01678\nCaf\xe9 papers\n", "UTF-8"),
        (b"@article{x,\n  title = {Unbalanced {braces},\n", "line 1"),
    ],
)
def test_a_bad_library_file_is_one_line_and_stores_nothing(
    db_path: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    bad = tmp_path / "bad.bib"
    bad.write_bytes(content)
    result = run("subscribe", db_path, "me@example.org", "--library", bad, "--offline")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.output
    assert q(db_path, "SELECT count(*) FROM subscribers") == [(0,)]
    assert q(db_path, "SELECT count(*) FROM library") == [(0,)]


def test_recommend_puts_the_librarys_subject_first_and_unrelated_papers_far_below(
    db_path: Path, tmp_path: Path
) -> None:
    lib = write(tmp_path / "mine.txt", "\n".join(LIBRARY) + "\n")
    result = run("recommend", db_path, "--library", lib, *WINDOW, "--limit", "1000", "--json")
    assert result.exit_code == 0, result.output
    ranked = json.loads(result.stdout)
    order = [p["arxiv_id"] for p in ranked]
    assert len(order) == 656 and "2508.01678" not in order  # the window's papers but the library's own
    assert set(order[:5]) >= set(ALIKE)
    # three library papers say little about the long tail; far from the top is what a reader notices
    assert all(order.index(u) > len(order) // 10 for u in UNRELATED)
    assert set(ranked[0]) >= {"arxiv_id", "title", "score", "like"}
    assert ranked[0]["score"] > ranked[-1]["score"]
    library_titles = {
        t for (t,) in q(db_path, "SELECT title FROM papers WHERE arxiv_id IN (?, ?, ?)", *LIBRARY)
    }
    assert all(p["like"] in library_titles for p in ranked[:20])
    text = run("recommend", db_path, "--library", lib, *WINDOW, "--limit", "3").stdout
    assert text.count("like: ") == 3


def test_a_stored_reader_model_is_refitted_when_the_library_changes(db_path: Path, tmp_path: Path) -> None:
    first = write(tmp_path / "a.txt", "\n".join(LIBRARY) + "\n")
    assert run("subscribe", db_path, "me@example.org", "--library", first, "--offline").exit_code == 0
    before = run("recommend", db_path, "--for", "me@example.org", *WINDOW, "--limit", "5", "--json")
    assert [p["arxiv_id"] for p in json.loads(before.stdout)][:3] != []
    # a library about speech instead: the ranking follows it
    second = write(tmp_path / "b.txt", "2507.08603\n2507.04738\n2507.05177\n")
    assert run("subscribe", db_path, "me@example.org", "--library", second, "--offline").exit_code == 0
    after = json.loads(run("recommend", db_path, "--for", "me@example.org", *WINDOW, "--json").stdout)
    assert not set(p["arxiv_id"] for p in after[:5]) & set(ALIKE)
    assert sum("speech" in p["title"].lower() for p in after[:5]) >= 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "pass one of --library FILE or --for EMAIL"),
        (["--for", "nobody@example.org"], "nobody@example.org is not subscribed"),
        (["--for", "me@example.org", "--week", "2025-W99"], "2025-W99"),
    ],
)
def test_recommend_bad_input_is_one_line(db_path: Path, args: list[str], message: str) -> None:
    result = run("recommend", db_path, *args)
    assert result.exit_code != 0
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_the_digest_opens_with_for_you_for_a_reader_with_a_library(db_path: Path, tmp_path: Path) -> None:
    lib = write(tmp_path / "mine.txt", "\n".join(LIBRARY) + "\n")
    assert run("subscribe", db_path, "me@example.org", "--library", lib, "--offline").exit_code == 0
    assert run("subscribe", db_path, "other@example.org").exit_code == 0
    box = Inbox()
    controller = smtp_server(box)
    try:
        result = run(
            "digest",
            db_path,
            *WINDOW,
            *send_args(controller.port),
            "--datasette-url",
            "http://127.0.0.1:8001",
        )
    finally:
        controller.stop()
    assert result.exit_code == 0, result.output
    mails = box.by_recipient()
    mine = mails["me@example.org"][0]
    text = mine.get_body(("plain",)).get_content()
    html = mine.get_body(("html",)).get_content()
    # "For you" comes first, then the tag sections
    assert text.index("== For you ==") < text.index("Papers per tag")
    section = text[text.index("== For you ==") : text.index("Papers per tag")]
    assert section.count("\n* ") == 10 and section.count("like: ") == 10
    assert "Hacking Hallucinations of MLLMs" in section
    assert html.index(">For you<") < html.index('id="tag-')
    assert html.count("like: ") == 10
    assert "http://127.0.0.1:8001/demo/similar?id=2508.04182" in html
    # a reader without a library gets the tag sections only
    other = mails["other@example.org"][0].get_body(("plain",)).get_content()
    assert "For you" not in other
    # the papers of "For you" are recorded as delivered with the rest
    assert q(
        db_path,
        "SELECT count(*) FROM digest_papers WHERE recipient = 'me@example.org' AND arxiv_id = '2508.04182'",
    ) == [(1,)]


def test_unsubscribe_takes_the_library_and_model_away(db_path: Path, tmp_path: Path) -> None:
    lib = write(tmp_path / "mine.txt", "\n".join(LIBRARY) + "\n")
    assert run("subscribe", db_path, "me@example.org", "--library", lib, "--offline").exit_code == 0
    assert q(db_path, "SELECT count(*) FROM reader_models") == [(1,)]  # fitted when subscribing
    assert run("unsubscribe", db_path, "me@example.org").exit_code == 0
    assert q(db_path, "SELECT count(*) FROM library") == [(0,)]
    assert q(db_path, "SELECT count(*) FROM reader_models") == [(0,)]


def test_a_sync_that_brings_a_closer_paper_puts_it_first_in_the_similar_list(db_path: Path) -> None:
    """The nightly path: sync stores a new paper, classify vectorises it, and the neighbours of the
    papers it is close to now list it (here a revised copy of a paper's text under a new id)."""
    before = json.loads(run("similar", db_path, "2508.04182", "--json").stdout)
    assert len(before) == 10 and all(p["arxiv_id"] != "2508.04182" for p in before)
    ((title, abstract),) = q(db_path, "SELECT title, abstract FROM papers WHERE arxiv_id = '2508.04182'")
    twin = {
        "id": "2508.09999",
        "title": title + " (extended version)",
        "abstract": abstract,
        "categories": ["cs.CV"],
        "primary_category": "cs.CV",
        "published": "2025-08-06T10:00:00Z",
        "updated": "2025-08-06T10:00:00Z",
    }
    with ArxivMirror([twin]) as mirror:
        args = sync_args(db_path, mirror, "--since", "2025-08-05", "--until", "2025-08-07", "--no-feed")
        result = run(*[a for a in args if a != "--no-classify"])
    assert result.exit_code == 0, result.output
    assert "1 with new similar papers" in result.output
    after = json.loads(run("similar", db_path, "2508.04182", "--json").stdout)
    assert after[0]["arxiv_id"] == "2508.09999" and after[0]["score"] > 0.9
    assert [p["arxiv_id"] for p in after[1:]] == [p["arxiv_id"] for p in before[:9]]  # pushed the tenth out
    mine = json.loads(run("similar", db_path, "2508.09999", "--json").stdout)
    assert mine[0]["arxiv_id"] == "2508.04182" and all(p["arxiv_id"] != "2508.09999" for p in mine)
    text = run("similar", db_path, "arXiv:2508.09999v1", "--limit", "3").stdout
    assert text.count("\n") == 3 and "2508.04182" in text.splitlines()[0]


def test_similar_bad_input_is_one_line(db_path: Path) -> None:
    for args, message in (
        (["2512.99999"], "2512.99999 is not in"),
        (["not-an-id"], "is not an arXiv id"),
        (["2508.04182", "--limit", "0"], "--limit"),
    ):
        result = run("similar", db_path, *args)
        assert result.exit_code != 0 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output


def test_a_new_vocabulary_refits_the_stored_reader_model(db_path: Path, tmp_path: Path) -> None:
    """After a retrain every paper is vectorised under the new model; the reader's stored model, fitted
    over the old vocabulary, must not be used with it."""
    from tracker import recommend, store

    lib = write(tmp_path / "mine.txt", "\n".join(LIBRARY) + "\n")
    assert run("subscribe", db_path, "me@example.org", "--library", lib, "--offline").exit_code == 0
    (old_model,) = q(db_path, "SELECT model_id FROM reader_models")
    db = store.open_db(db_path)
    db.execute("UPDATE paper_vectors SET model_id = 'retrained'")
    db.conn.commit()
    n_terms = recommend.Vocabulary.of(db, db_path).n_terms
    model = recommend.Vocabulary(db, "retrained", n_terms).reader("me@example.org", save=True)
    assert model is not None and model.model_id == "retrained"
    assert q(db_path, "SELECT model_id FROM reader_models") == [("retrained",)] != [old_model]


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole bundled corpus (9,481 real papers) in a database, without a classifier."""
    from sample_db import build_sample_db

    return build_sample_db(tmp_path_factory.mktemp("corpus") / "corpus.db")


@pytest.mark.parametrize(
    ("fixture", "by_title", "unmatched", "missing"),
    [
        # "Attention Is All You Need" is not in the corpus; line 82 is a GitHub repository
        ("zotero.bib", [35, 62, 68], [74, 82], []),
        ("zotero.csv", [10], [11], []),
        ("zotero.ris", [49], [], [58]),  # an old-style physics paper the corpus does not hold
        ("reading-list.txt", [], [13, 14], [10, 11]),
    ],
)
def test_real_shaped_exports_are_matched_by_id_or_title_and_the_rest_reported(
    corpus_db: Path,
    tmp_path: Path,
    fixture: str,
    by_title: list[int],
    unmatched: list[int],
    missing: list[int],
) -> None:
    db_path = tmp_path / "corpus.db"
    shutil.copy(corpus_db, db_path)
    library = Path(__file__).parent / "fixtures" / "library" / fixture
    result = run("subscribe", db_path, "me@example.org", "--library", library, "--offline")
    assert result.exit_code == 0, result.output
    rows = json.loads(run("library", db_path, "me@example.org", "--json").stdout)
    assert [r["line"] for r in rows if r["status"] == "unmatched"] == unmatched
    assert [r["line"] for r in rows if r["status"] == "missing"] == missing
    for line in unmatched + missing:
        assert f"line {line}: " in result.stderr
    matched = [r for r in rows if r["status"] == "matched"]
    assert matched and all(r["title"] for r in matched)
    # entries known only by their title found their paper: the stored title is that title
    from tracker.library import normalise_title

    titled = [r for r in matched if r["line"] in by_title]
    assert len(titled) == len(by_title) and all(r["arxiv_id"] for r in titled)
    assert all(normalise_title(r["entry"]) == normalise_title(r["title"]) for r in titled)


def test_two_entries_on_one_line_are_both_kept(db_path: Path, tmp_path: Path) -> None:
    """`cat a.bib b.bib` when a.bib has no final newline: two entries start on line 1."""
    lib = write(tmp_path / "cat.bib", "@misc{a, eprint={2508.01678}}@misc{b, eprint={2506.11417}}\n")
    result = run("subscribe", db_path, "me@example.org", "--library", lib, "--offline")
    assert result.exit_code == 0, result.output
    assert q(db_path, "SELECT line, arxiv_id FROM library ORDER BY position") == [
        (1, "2508.01678"),
        (1, "2506.11417"),
    ]


def test_a_short_famous_title_is_found_among_many_longer_ones(db_path: Path, tmp_path: Path) -> None:
    from tracker import store
    from tracker.parse import PaperRow

    def paper(n: int, title: str) -> PaperRow:
        day = "2025-08-05T00:00:00+00:00"
        return {
            "arxiv_id": f"2508.{90000 + n}",
            "version": 1,
            "title": title,
            "abstract": "x",
            "published": day,
        }

    longer = [paper(n, f"Visual Instruction Tuning for Domain {n}") for n in range(30)]
    store.save_papers(store.open_db(db_path), [*longer, paper(99, "Visual Instruction Tuning")])
    lib = write(
        tmp_path / "vit.bib", "@inproceedings{liu2023,\n  title = {Visual {Instruction} Tuning},\n}\n"
    )
    assert run("subscribe", db_path, "me@example.org", "--library", lib, "--offline").exit_code == 0
    assert q(db_path, "SELECT arxiv_id, status FROM library") == [("2508.90099", "matched")]


def test_a_new_library_keeps_the_readers_tags(db_path: Path, tmp_path: Path) -> None:
    assert run("subscribe", db_path, "me@example.org", "--tag", "hallucination").exit_code == 0
    lib = write(tmp_path / "mine.txt", "\n".join(LIBRARY) + "\n")
    result = run("subscribe", db_path, "me@example.org", "--library", lib, "--offline")
    assert "updated me@example.org: hallucination" in result.stdout
    assert q(db_path, "SELECT tags FROM subscribers") == [('["hallucination"]',)]


def test_subscribe_never_trains_a_classifier_and_arxiv_down_stores_nothing(
    db_path: Path, tmp_path: Path
) -> None:
    from tracker.demo.mirror import Fault

    for model_file in db_path.parent.glob("demo.classifier.*"):
        model_file.unlink()
    known = {r[0] for r in q(db_path, "SELECT arxiv_id FROM papers")}
    outside = [r for r in load_corpus() if r["id"] not in known][:1]
    lib = write(tmp_path / "mine.txt", f"2508.01678\n{outside[0]['id']}\n")
    papers = q(db_path, "SELECT count(*) FROM papers")
    with ArxivMirror(outside) as mirror:
        mirror.faults.extend(Fault(status=503) for _ in range(5))
        args = ["subscribe", db_path, "me@example.org", "--library", lib, "--api-url", mirror.api_url]
        down = run(*args, "--retries", "0", "--delay", "0")
        assert down.exit_code != 0 and down.stderr.count("\n") == 1 and "503" in down.stderr
        assert "Traceback" not in down.output
        assert q(db_path, "SELECT count(*) FROM subscribers") == [(0,)]
        assert q(db_path, "SELECT count(*) FROM papers") == papers
        mirror.faults.clear()
        up = run(*args, "--delay", "0")
    assert up.exit_code == 0, up.output
    assert q(db_path, "SELECT status FROM library ORDER BY position") == [("matched",), ("fetched",)]
    assert not list(db_path.parent.glob("demo.classifier.*"))  # the nightly classify trains, not subscribe
    assert "classify:" not in up.stdout


def test_for_you_leaves_out_what_the_reader_already_got_and_escapes_titles(
    db_path: Path, tmp_path: Path
) -> None:
    lib = write(tmp_path / "mine.txt", "\n".join(LIBRARY) + "\n")
    assert run("subscribe", db_path, "me@example.org", "--library", lib, "--offline").exit_code == 0
    with sqlite3.connect(db_path) as conn:  # a hostile title on the paper ranked first
        conn.execute(
            "UPDATE papers SET title = '<script>alert(1)</script> ' || title WHERE arxiv_id = '2508.04567'"
        )
    box = Inbox()
    controller = smtp_server(box)
    send = send_args(controller.port)
    try:
        first = run("digest", db_path, "--since", "2025-08-01", "--until", "2025-08-07", *send)
        second = run("digest", db_path, "--since", "2025-08-02", "--until", "2025-08-07", *send)
    finally:
        controller.stop()
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    one, two = box.by_recipient()["me@example.org"]
    html = one.get_body(("html",)).get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "similar?id=" not in html  # mail gets no loopback links unless --datasette-url says where

    def for_you(message: object) -> set[str]:
        text = message.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
        start = text.index("== For you ==")
        # the tag sections follow, or say nothing is new in them (the second digest repeats none)
        end = min(
            i for i in (text.find("Papers per tag"), text.find("Nothing new in your tags")) if i > start
        )
        return set(re.findall(r"arxiv.org/abs/(\S+)", text[start:end]))

    assert len(for_you(one)) == 10 and len(for_you(two)) == 10
    assert not for_you(one) & for_you(two)


def test_an_upgraded_database_says_to_classify_then_ranks(db_path: Path, tmp_path: Path) -> None:
    """A database from before paper vectors: its papers are tagged but have no vectors yet."""
    lib = write(tmp_path / "mine.txt", "\n".join(LIBRARY) + "\n")
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM paper_vectors")
        conn.execute("DELETE FROM similar_papers")
    result = run("recommend", db_path, "--library", lib, *WINDOW)
    assert result.exit_code != 0 and "run: tracker classify" in result.stderr
    assert "run tracker classify" in run("similar", db_path, "2508.04182").stderr
    classified = run("classify", db_path)
    assert classified.exit_code == 0 and "994 papers" in classified.stdout  # every paper, to get its vector
    assert run("recommend", db_path, "--library", lib, *WINDOW).exit_code == 0
    assert len(json.loads(run("similar", db_path, "2508.04182", "--json").stdout)) == 10


def test_a_backfill_gives_its_papers_similar_papers_too(db_path: Path) -> None:
    from oai_server import OaiServer, load_records
    from test_backfill import backfill_args

    records = [r for r in load_records("hepcrawl_*.xml") if r.datestamp.startswith("2016-03")]
    with OaiServer({"arXiv": records}) as oai:
        args = backfill_args(db_path, oai, "2016-03-01", "2016-03-31")
        result = run(*[a for a in args if a != "--no-classify"])  # classify, as the nightly backfill does
    assert result.exit_code == 0, result.output
    ids = [r[0] for r in q(db_path, "SELECT arxiv_id FROM papers WHERE published LIKE '2016-%'")]
    assert ids and f"{len(ids)} with new similar papers" in result.output
    for arxiv_id in ids:
        listed = json.loads(run("similar", db_path, arxiv_id, "--json").stdout)
        assert len(listed) == 10 and arxiv_id not in {p["arxiv_id"] for p in listed}
