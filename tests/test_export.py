"""`tracker export`: JSON lines, CSV, BibTeX and the markdown awesome list, from a database of real papers."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import bibtexparser
import pytest
from bibtexparser.bparser import BibTexParser
from digest_support import READER_RULES, corpus_records, make_reader_db
from helpers import query, run
from markdown_it import MarkdownIt
from sample_db import build_sample_db

from tracker import store
from tracker.export import _md, load_taxonomy_if_any, render_chunks
from tracker.reading_order import facet_rank


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_db(tmp_path_factory.mktemp("export") / "papers.db")


def export(db_path: Path, *args: str) -> str:
    result = run("export", db_path, *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_jsonl_has_every_paper_with_its_tags_and_scores(db_path: Path) -> None:
    records = [json.loads(line) for line in export(db_path, "--format", "jsonl").splitlines()]
    assert len(records) == query(db_path, "SELECT count(*) FROM papers")[0][0]
    stored = {(a, t): s for a, t, s in query(db_path, "SELECT arxiv_id, tag, score FROM paper_tags")}
    exported = {(r["arxiv_id"], t["tag"]): t["score"] for r in records for t in r["tags"]}
    assert exported == pytest.approx(stored)
    days = [r["announced"] or (r["updated"] or r["published"])[:10] for r in records]
    assert days == sorted(days, reverse=True)  # newest first
    assert all(
        isinstance(r["authors"], list) and r["abs_url"].startswith("https://arxiv.org/abs/") for r in records
    )


def test_tag_and_since_filter_the_papers(db_path: Path) -> None:
    records = [json.loads(x) for x in export(db_path, "--tag", "m-cot", "--since", "2025-01-01").splitlines()]
    expected = query(
        db_path,
        "SELECT count(*) FROM papers p JOIN paper_tags t USING (arxiv_id) WHERE t.tag = 'M-CoT' "
        "AND coalesce(p.announced, substr(p.updated, 1, 10), substr(p.published, 1, 10)) >= '2025-01-01'",
    )[0][0]
    assert 0 < len(records) == expected
    assert all(any(t["tag"] == "M-CoT" for t in r["tags"]) for r in records)


def test_csv_is_one_paper_per_row(db_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(export(db_path, "--format", "csv", "--tag", "hallucination"))))
    assert len(rows) == query(db_path, "SELECT count(*) FROM paper_tags WHERE tag = 'hallucination'")[0][0]
    for row in rows:
        assert "hallucination" in row["tags"].split("; ")
        assert re.search(r"(^|; )hallucination=0\.\d{3}($|;)", row["scores"])


def parse_bibtex(text: str) -> list[dict]:
    parser = BibTexParser(common_strings=True)
    parser.ignore_nonstandard_types = False
    return bibtexparser.loads(text, parser=parser).entries


def test_bibtex_parses_with_arxiv_eprint_fields(db_path: Path) -> None:
    # bibtexparser 1.x takes about 10 ms an entry, so a recent slice of the database is parsed
    entries = parse_bibtex(export(db_path, "--format", "bibtex", "--since", "2026-06-01"))
    ids = [
        r[0]
        for r in query(
            db_path,
            "SELECT arxiv_id FROM papers WHERE coalesce(announced, "
            "substr(updated, 1, 10), substr(published, 1, 10)) >= '2026-06-01'",
        )
    ]
    assert len(ids) > 100 and sorted(e["eprint"] for e in entries) == sorted(ids)
    assert len({e["ID"] for e in entries}) == len(entries)  # keys are unique
    assert all(
        e["archiveprefix"] == "arXiv" and e["primaryclass"] and e["year"] and e["author"] for e in entries
    )
    tagged = [e for e in entries if e.get("keywords")]
    assert tagged and all(e["url"] == f"https://arxiv.org/abs/{e['eprint']}" for e in tagged)


def test_bibtex_keeps_real_latex_and_special_characters(db_path: Path) -> None:
    rows = [r for r in store.papers_for_export(store.open_db(db_path)) if re.search(r"[&{}$#]", r["title"])]
    assert len(rows) > 50
    entries = {e["eprint"]: e for e in parse_bibtex("".join(render_chunks("bibtex", rows)))}
    assert len(entries) == len(rows)
    for row in rows:
        title = entries[row["arxiv_id"]]["title"]
        assert title.count("{") == title.count("}")
        assert ("&" in row["title"]) == (r"\&" in title)
        if "$" in row["title"]:
            assert "$" in title  # math is LaTeX already and is kept


def test_bibtex_survives_unbalanced_braces() -> None:
    row = {
        "arxiv_id": "2401.00001",
        "title": "A {broken} title} with 50% & #1",
        "authors": ["Ada Lovelace", "Plato"],
        "published": "2024-01-02T00:00:00+00:00",
        "primary_category": "cs.CV",
        "tags": [],
        "abs_url": "https://arxiv.org/abs/2401.00001",
        "doi": None,
        "journal_ref": None,
    }
    entry = bibtexparser.loads("".join(render_chunks("bibtex", [row]))).entries[0]
    assert entry["title"] == r"A broken title with 50\% \& \#1"
    assert entry["author"] == "Lovelace, Ada and {Plato}"
    assert entry["ID"] == "lovelace2024broken"


def test_markdown_renders_every_tag_section_newest_first(db_path: Path) -> None:
    text = export(db_path, "--format", "markdown")
    html = MarkdownIt().render(text)
    taxonomy = load_taxonomy_if_any()
    assert taxonomy is not None
    tags = [t for t in taxonomy.tags if query(db_path, "SELECT 1 FROM paper_tags WHERE tag = ?", t.slug)]
    headings = re.findall(r"<h3>(.*?)</h3>", html)
    # facets in reader order, tags in taxonomy order within each
    assert [h.split(":")[0] for h in headings] == [
        t.slug for t in sorted(tags, key=lambda t: facet_rank(t.facet))
    ]
    facets = re.findall(r"<h2>(.*?)</h2>", html)
    assert facets[0] == "Contents" and set(facets[1:]) == {
        taxonomy_facet.title
        for taxonomy_facet in taxonomy.facets
        if any(t.facet == taxonomy_facet.name for t in tags)
    }
    for section in text.split("\n### ")[1:]:
        days = re.findall(r"\)\*\* · (?:.*? · )?(\d{4}-\d{2}-\d{2}) ·", section)
        assert days and days == sorted(days, reverse=True)
    assert '<a href="https://arxiv.org/abs/' in html and ">PDF</a>" in html
    # the header counts the papers the list shows (tagged ones), not every exported row
    tagged = query(db_path, "SELECT count(DISTINCT arxiv_id) FROM paper_tags")[0][0]
    assert f"\n{tagged} arXiv papers tagged" in text
    assert f"exported {tagged} papers as markdown" in run("export", db_path, "--format", "markdown").stderr
    # a title with brackets stays one link (escaped), not broken markdown
    assert "It's All in The [MASK]" in html or "[MASK]" not in text


def test_markdown_with_tag_has_only_that_section(db_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "m-cot.md"
    result = run("export", db_path, "--format", "markdown", "--tag", "M-CoT", "--out", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert "exported" in result.stderr
    html = MarkdownIt().render(out.read_text())
    assert len(re.findall(r"<h3>", html)) == 1 and "M-CoT" in re.findall(r"<h3>(.*?)</h3>", html)[0]


def test_out_file_is_an_ordinary_file_for_the_umask(db_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "papers.csv"
    old = os.umask(0o022)
    try:
        assert run("export", db_path, "--format", "csv", "--out", out).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # not the 0600 of the temporary file it was written to
    out.chmod(0o600)  # a file kept private on purpose stays private when an export replaces it
    assert run("export", db_path, "--format", "csv", "--out", out).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".papers.csv")] == []


def test_markdown_without_a_taxonomy_uses_stored_facets(db_path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRACKER_RULES", str(tmp_path))  # no taxonomy.yml there
    html = MarkdownIt().render(export(db_path, "--format", "markdown"))
    assert re.findall(r"<h2>(.*?)</h2>", html) == ["Contents", "mllm", "topic", "paradigm"]  # reader order
    assert re.findall(r"<h3>(.*?)</h3>", html) == [
        "M-CoT",
        "MIT",
        "evaluation",
        "hallucination",
        "contrastive",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tag", "no-such-tag"], "unknown tag 'no-such-tag'"),
        (["--since", "2026-02-30"], "--since '2026-02-30' is not a valid date"),
        (["--format", "pdf"], "Invalid value for '--format'"),
    ],
)
def test_bad_input_is_one_line_error(db_path: Path, args: list[str], message: str) -> None:
    before = query(db_path, "SELECT count(*), sum(length(tags)) FROM papers")
    result = run("export", db_path, *args)
    assert result.exit_code != 0 and result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # click's usage errors too: no Usage/Try lines
    assert query(db_path, "SELECT count(*), sum(length(tags)) FROM papers") == before


def test_missing_database_is_not_created(tmp_path: Path) -> None:
    result = run("export", tmp_path / "nope.db")
    assert result.exit_code == 1 and "no such database" in result.stderr
    assert not (tmp_path / "nope.db").exists()


def test_out_never_replaces_the_database_or_a_special_file(db_path: Path, tmp_path: Path) -> None:
    before = query(db_path, "SELECT count(*), sum(length(tags)) FROM papers")
    for target in (db_path, Path(f"{db_path}-wal")):
        result = run("export", db_path, "--out", target)
        assert result.exit_code == 2 and "that is the database" in result.stderr
    link = tmp_path / "link.db"
    link.symlink_to(db_path)  # the same file by another name
    assert "that is the database" in run("export", db_path, "--out", link).stderr
    assert query(db_path, "SELECT count(*), sum(length(tags)) FROM papers") == before
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # a pipe is written into, not replaced by a regular file
    copy = tmp_path / "received.csv"
    with open(copy, "wb") as sink:  # the reader drains the pipe into a file (a PIPE back to us could fill up)
        reader = subprocess.Popen(["cat", str(fifo)], stdout=sink)
        assert run("export", db_path, "--format", "csv", "--out", fifo).exit_code == 0
        reader.wait(timeout=60)
    received = copy.read_text()
    assert stat.S_ISFIFO(fifo.stat().st_mode) and received.startswith("arxiv_id,")
    # Nor any other SQLite file (another project's database), also through a symlink: the one rule of
    # tracker/outfile.py, which digest --out follows too.
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    before_other = other.read_bytes()
    for target in (other, tmp_path / "to-other.csv"):
        if target.suffix == ".csv":
            target.symlink_to(other)
        result = run("export", db_path, "--format", "csv", "--out", target)
        assert result.exit_code == 2 and "is a SQLite database; refusing to replace it" in result.stderr
    assert other.read_bytes() == before_other


def test_a_full_disk_behind_stdout_is_an_error_not_a_success(db_path: Path) -> None:
    with open("/dev/full", "w") as full:
        child = subprocess.run(
            [sys.executable, "-m", "tracker", "export", str(db_path)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            check=False,
        )
    assert child.returncode == 1
    assert child.stderr.strip() == "Error: No space left on device"


def test_a_reader_that_stops_early_ends_the_export_quietly(db_path: Path) -> None:
    export_ = subprocess.Popen(
        [sys.executable, "-m", "tracker", "export", str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert export_.stdout is not None and export_.stderr is not None
    first = export_.stdout.read(100)  # like `| head -c 100`
    export_.stdout.close()
    assert export_.wait(timeout=300) == 141 and export_.stderr.read() == b""
    assert first.startswith(b'{"arxiv_id"')


def test_out_dev_stdout_writes_where_stdout_goes(db_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("earlier line\n")
    with open(log, "a") as appended:  # `tracker export ... --out /dev/stdout >> log.txt`
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "tracker",
                "export",
                str(db_path),
                "--format",
                "csv",
                "--out",
                "/dev/stdout",
            ],
            stdout=appended,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            check=False,
        )
    assert child.returncode == 0, child.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "earlier line" and lines[1].startswith("arxiv_id,")  # appended, not replaced
    assert (
        Path("/dev/stdout").is_symlink() or Path("/dev/stdout").is_char_device()
    )  # the device is still there


def test_markdown_follows_reader_order_and_lists_only_mllm_work_under_tasks(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("TRACKER_RULES", str(READER_RULES))
    records = corpus_records(8)
    db_path = make_reader_db(tmp_path / "t.db", records)
    result = run("export", db_path, "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    html = MarkdownIt().render(result.stdout)
    assert re.findall(r"<h2>(.*?)</h2>", html) == [
        "Contents",
        "Kind of multimodal-LLM work",
        "Research topic",
        "Vision foundation-model paradigm",
        "MM-LLM building block",
        "Classic vision task",
    ]
    tasks = result.stdout.split("## Classic vision task")[1]
    assert records[6]["title"] in tasks  # mllm = 1
    assert records[5]["title"] not in result.stdout and records[7]["title"] not in result.stdout  # 0 and NULL
    # The header and the command count the papers the list shows.
    assert "\n6 arXiv papers tagged" in result.stdout and "exported 6 papers as markdown" in result.stderr
    everything = run("export", db_path, "--format", "markdown", "--all-tasks").stdout
    assert all(records[i]["title"] in everything.split("## Classic vision task")[1] for i in (5, 6, 7))
    # A task tag asked for by name lists all its papers; other formats are never filtered.
    chosen = run("export", db_path, "--format", "markdown", "--tag", "detection").stdout
    assert all(records[i]["title"] in chosen for i in (5, 6, 7))
    assert len(run("export", db_path, "--format", "jsonl").stdout.splitlines()) == 8


# -- hostile metadata: arXiv's bytes are not trusted (#13) -----------------------------------------

HOSTILE_DOI = "10.1/x}, url={https://evil.example/}}\n@misc{x,"
HOSTILE = {
    "arxiv_id": "2401.66666",
    "version": 1,
    "title": '=HYPERLINK("https://evil.example","click") [pwn](https://evil.example/t) <img src=x onerror=alert(1)> '
    r"\input{/etc/passwd} \href{https://evil.example}{x} ^^5cwrite18{id} \lstinputlisting{/etc/passwd} "
    r"\ExplSyntaxOn \file_input:n {/etc/passwd} \textit{kept}",
    "abstract": "<script>alert(1)</script>\n@misc{abs, title={x}}",
    "authors": ["@SUM(1+1)*cmd|' /C calc'!A0", "-2+3 <script>alert(2)</script>", "Eve }, title = {Pwned"],
    "primary_category": "[cs.CV](https://evil.example/c) <img src=x>",
    "categories": ["cs.CV", "+evil <b>x</b>"],
    "published": "<img src=x onerror=alert(3)>",
    "updated": "<img src=x onerror=alert(4)>",
    "announced": "2026-11-18",
    "comment": "\t=1+1\r\n@misc{c,",
    "journal_ref": "J. }} \n@article{jr, title={Injected}",
    "doi": HOSTILE_DOI,
    "abs_url": "javascript:alert(document.cookie)",
    "pdf_url": "https://evil.example/arxiv.org/pdf/2401.66666",
}
HOSTILE_TAG = ("+x](https://evil.example/tag) <script>alert(5)</script>", "topic")


@pytest.fixture()
def hostile_db(tmp_path: Path) -> Path:
    """A real database holding one paper whose every field is hostile, tagged with a hostile tag, and one plain paper."""
    path = tmp_path / "hostile.db"
    db = store.open_db(path)
    plain = {
        **HOSTILE,
        "arxiv_id": "2401.00002",
        "title": "A plain paper about visual reasoning",
        "abstract": "Plain.",
        "authors": ["Ada Lovelace"],
        "primary_category": "cs.CV",
        "categories": ["cs.CV"],
        "published": "2026-11-17T01:00:00+00:00",
        "updated": "2026-11-17T01:00:00+00:00",
        "announced": "2026-11-17",
        "comment": None,
        "journal_ref": None,
        "doi": None,
        "abs_url": "https://arxiv.org/abs/2401.00002",
        "pdf_url": "http://arxiv.org/pdf/2401.00002v1",
    }
    store.save_papers(db, [HOSTILE, plain])  # type: ignore[list-item]
    with db.atomic():  # as the classifier writes them
        db.conn.executemany(
            "INSERT INTO paper_tags (arxiv_id, tag, facet, score, source) VALUES (?, ?, ?, ?, 'model')",
            [(HOSTILE["arxiv_id"], *HOSTILE_TAG, 0.9), ("2401.00002", "hallucination", "topic", 0.8)],
        )
    return path


def test_bibtex_carries_hostile_fields_inertly(hostile_db: Path) -> None:
    text = export(hostile_db, "--format", "bibtex")
    # no line starts an entry but the real ones
    assert not re.search(r"^\s*@(?!misc\{[a-z0-9]+,$)", text, re.M)
    entries = parse_bibtex(text)
    assert sorted(e["eprint"] for e in entries) == ["2401.00002", "2401.66666"]  # one entry per paper
    hostile = next(e for e in entries if e["eprint"] == "2401.66666")
    assert re.fullmatch(r"[a-z0-9]+", hostile["ID"])
    assert hostile["url"] == "https://arxiv.org/abs/2401.66666"  # not the javascript: link, not evil.example
    assert "evil.example" not in hostile["url"] and "x" not in {e["ID"] for e in entries}
    # the DOI is one field whose text is the DOI, percent-encoded where a URL or BibTeX cannot hold it raw
    assert hostile["doi"] == "10.1/x%7D,%20url=%7Bhttps://evil.example/%7D%7D%20@misc%7Bx,"
    assert set(hostile) <= {
        "ENTRYTYPE",
        "ID",
        "title",
        "author",
        "year",
        "eprint",
        "archiveprefix",
        "primaryclass",
        "url",
        "doi",
        "note",
        "keywords",
    }
    # typeset as text, never run by TeX; formatting commands are kept
    assert not re.search(r"(?<!\\)\\(?!textbackslash |textit)[A-Za-z]|\^\^", hostile["title"]), hostile[
        "title"
    ]
    assert r"\textit{kept}" in hostile["title"]
    assert hostile["year"] == "2026"  # from the announcement day: "<img" is no year
    for value in hostile.values():
        assert value.count("{") == value.count("}") and "\n" not in value
    assert len(hostile["author"].split(" and ")) == 3


def test_csv_neutralises_formula_cells(hostile_db: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(export(hostile_db, "--format", "csv"))))
    assert len(rows) == 2
    hostile = next(r for r in rows if r["arxiv_id"] == "2401.66666")
    assert hostile["title"] == "'" + HOSTILE["title"]
    assert hostile["authors"].startswith("'@SUM(1+1)")
    assert hostile["comment"].startswith("'\t=1+1")
    assert hostile["tags"].startswith("'+x]") and hostile["scores"].startswith("'+x]")
    assert hostile["doi"] == HOSTILE_DOI  # starts with a digit: left as it is
    for row in rows:
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r\n"
    plain = next(r for r in rows if r["arxiv_id"] == "2401.00002")
    assert plain["title"] == "A plain paper about visual reasoning" and plain["version"] == "1"


def test_markdown_links_only_to_arxiv_and_carries_no_html(
    hostile_db: Path, tmp_path: Path, monkeypatch
) -> None:
    # no taxonomy: the stored (hostile) tag names are shown
    monkeypatch.setenv("TRACKER_RULES", str(tmp_path))
    text = export(hostile_db, "--format", "markdown")
    html = MarkdownIt().render(text)
    hosts = re.findall(r'<a href="([^"]*)"', html)
    assert hosts and all(re.match(r"(https://arxiv\.org/|#)", h) for h in hosts), hosts
    assert "<img" not in html and "<script" not in html and "<b>" not in html
    assert "https://arxiv.org/abs/2401.66666" in hosts  # the id still gives the paper its arXiv link
    assert "https://arxiv.org/pdf/2401.00002v1" in hosts  # arXiv's own http link, upgraded
    # its PDF link was not arXiv's: not linked
    assert not any("2401.66666" in h and "pdf" in h for h in hosts)
    assert "https://evil" not in text  # no bare URL left for GitHub's autolinker either
    # Nor a bare e-mail address, which GitHub would turn into a mailto: link.
    shown = _md("write to eve@attacker.example")
    assert "eve@attacker" not in shown and "<a" not in MarkdownIt().render(shown)
    # one facet and its two tags in the contents, then the two papers: nothing injected
    assert len(re.findall(r"<h3>", html)) == 2 and len(re.findall(r"<li>", html)) == 1 + 2 + 2


def test_jsonl_keeps_one_record_per_line_for_any_line_splitter(hostile_db: Path) -> None:
    db = store.open_db(hostile_db)
    title = "a\u2028b\u2029c\x85d"  # separators Python's str.splitlines() and JavaScript take for line breaks
    with db.atomic():
        db.conn.execute("UPDATE papers SET title = ? WHERE arxiv_id = '2401.66666'", (title,))
    text = export(hostile_db, "--format", "jsonl")
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["arxiv_id"] for r in records] == ["2401.66666", "2401.00002"]
    assert records[0]["title"] == title and records[0]["doi"] == HOSTILE_DOI


def test_out_never_replaces_the_live_wal_of_a_database_opened_through_a_symlink(
    db_path: Path, tmp_path: Path
) -> None:
    """SQLite names the -wal after the file a symlink points to, not after the link: a cold review replaced
    the live -wal (transactions not yet checkpointed) through `export link.db --out real.db-wal`."""
    folder = tmp_path / "sl"
    folder.mkdir()
    real = folder / "real.db"
    real.write_bytes(db_path.read_bytes())
    link = folder / "link.db"
    link.symlink_to(real)
    writer = sqlite3.connect(real)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("UPDATE papers SET title = title || ' (edited)'")
    writer.commit()  # committed, in the -wal only
    wal = Path(f"{real}-wal")
    before = wal.read_bytes()
    assert before[:4] in (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")
    result = run("export", link, "--format", "csv", "--out", wal)
    assert result.exit_code == 2, result.output
    assert wal.read_bytes() == before
    writer.close()
