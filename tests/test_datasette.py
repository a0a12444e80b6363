"""`tracker serve`: a real Datasette process on a loopback port over a database of real recorded papers."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest
import yaml
from helpers import run
from sample_db import build_sample_db

from tracker import store
from tracker.config import DEFAULT_DB_DIR
from tracker.reading_order import READER_FACET_ORDER, TASK_FACET, facet_rank

METADATA = yaml.safe_load((DEFAULT_DB_DIR / "metadata.yml").read_text())
QUERIES = METADATA["databases"]["tracker"]["queries"]
# Parameters a user would type; queries not listed here must answer with their defaults.
QUERY_PARAMS = {
    "tag_above_score": {"tag": "M-CoT", "min_score": "0.6"},
    "search_with_tags": {"q": "hallucination"},
    "tag_feed": {"tag": "M-CoT"},
    "similar": {"id": "1703.01347"},  # the corpus's first paper (sample_db gives every paper neighbours)
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(cmd: list[str], port: int, log: Path) -> subprocess.Popen:
    """Start a server process in its own process group and wait until it answers on loopback."""
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}: {log.read_text()}")
        try:
            status = httpx.get(f"http://127.0.0.1:{port}/-/versions.json", timeout=2).status_code
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if status == 200:
            return proc
        stop(proc)
        pytest.fail(f"server answered {status}: {log.read_text()}")
    stop(proc)
    pytest.fail(f"server did not answer within 60 s: {log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # `tracker serve` passes it on to Datasette
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group of the process this test started
            proc.wait()


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_db(tmp_path_factory.mktemp("serve") / "papers.db")


@contextlib.contextmanager
def serving(db_path: Path) -> Iterator[httpx.Client]:
    """`tracker serve` on a free loopback port, stopped (with a clean exit) when the block ends."""
    port = free_port()
    cmd = [sys.executable, "-m", "tracker", "serve", str(db_path), "--port", str(port)]
    proc = start(cmd, port, db_path.parent / "serve.log")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    stop(proc)
    assert proc.returncode == 0, (db_path.parent / "serve.log").read_text()


@pytest.fixture(scope="module")
def site(db_path: Path) -> Iterator[httpx.Client]:
    """`tracker serve` on the sample database; the database is at /papers."""
    with serving(db_path) as client:
        yield client


def rows_of(client: httpx.Client, path: str, params: dict[str, str] | None = None) -> list[dict]:
    """Rows of a table, query or (path "") SQL on the `papers` database, as dicts."""
    response = client.get(
        f"/papers{'/' if path else ''}{path}.json", params={**(params or {}), "_shape": "objects"}
    )
    assert response.status_code == 200, response.text[:500]
    return response.json()["rows"]


def test_metadata_describes_every_column_of_every_table(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    tables = METADATA["databases"]["tracker"]["tables"]
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in names:
        if table.startswith("papers_fts") or table == "_sqlite_migrations":
            continue
        columns = {r[1] for r in conn.execute(f"PRAGMA table_info([{table}])")}
        described = set(tables.get(table, {}).get("columns", {}))
        assert columns == described, (
            f"{table}: undescribed {columns - described}, stale {described - columns}"
        )
        assert tables[table].get("description")


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_canned_query_answers_with_rows(site: httpx.Client, name: str) -> None:
    page = site.get(f"/papers/{name}", params=QUERY_PARAMS.get(name, {}))
    assert page.status_code == 200
    assert html.escape(QUERIES[name]["title"]) in page.text
    assert rows_of(site, name, QUERY_PARAMS.get(name)), f"{name} returned no rows"


def test_this_week_holds_the_newest_papers_and_week_of_moves_it(site: httpx.Client, db_path: Path) -> None:
    newest = sqlite3.connect(db_path).execute("SELECT max(announced) FROM papers").fetchone()[0]
    rows = rows_of(site, "papers_this_week")
    assert newest in {r["day"] for r in rows}
    older = rows_of(site, "papers_this_week", {"week_of": "2023-11-01", "tag": "evaluation"})
    assert older and {r["tag"] for r in older} == {"evaluation"}
    assert all("2023-10-30" <= r["day"] <= "2023-11-05" for r in older)


def test_tag_above_score_keeps_only_that_tag_and_scores(site: httpx.Client) -> None:
    rows = rows_of(site, "tag_above_score", {"tag": "hallucination", "min_score": "0.8"})
    assert rows and all(r["tag"] == "hallucination" and r["score"] >= 0.8 for r in rows)


def test_uncertain_tags_are_near_the_threshold(site: httpx.Client) -> None:
    rows = rows_of(site, "uncertain_tags", {"margin": "0.02"})
    assert rows and all(abs(r["score"] - r["threshold"]) <= 0.02 + 1e-9 for r in rows)


def test_search_finds_papers_in_table_and_query(site: httpx.Client) -> None:
    hits = rows_of(site, "papers", {"_search": "hallucination"})
    assert hits and all("hallucinat" in (h["title"] + h["abstract"]).lower() for h in hits)
    # punctuation a user types (hyphens, quotes) must not break the canned search
    tagged = rows_of(site, "search_with_tags", {"q": 'chain-of-thought "visual'})
    assert tagged and any(r["tags"] and "M-CoT" in r["tags"] for r in tagged)


def test_search_lists_title_matches_first_then_newest(site: httpx.Client) -> None:
    rows = rows_of(site, "search_with_tags", {"q": "hallucination"})
    in_title = ["hallucination" in r["title"].lower() for r in rows]  # the word as typed, in the title
    assert any(in_title) and not all(in_title)  # both kinds of hit, so the order below is tested
    assert in_title == sorted(in_title, reverse=True)
    for tier in (True, False):
        # Feed-only papers not yet completed have no date; SQLite lists them last.
        published = [r["published"] or "" for r, t in zip(rows, in_title, strict=True) if t is tier]
        assert published == sorted(published, reverse=True)
    # Several words, typed with hyphens: a title must hold each of them to come first.
    rows = rows_of(site, "search_with_tags", {"q": "visual chain-of-thought"})
    words = ("visual", "chain", "of", "thought")
    in_title = [all(w in r["title"].lower() for w in words) for r in rows]
    assert any(in_title) and not all(in_title) and in_title == sorted(in_title, reverse=True)
    # Nothing searchable (empty, a lone quote, spaces) is an empty answer, not an FTS syntax error.
    for q in ("", '"', "   "):
        assert site.get("/papers/search_with_tags.json", params={"q": q}).json()["rows"] == []


def test_table_search_box_goes_to_the_tagged_search(site: httpx.Client) -> None:
    plain = site.get("/papers/papers", params={"_search": "chain of thought", "_sort_desc": "published"})
    assert plain.status_code == 302
    assert plain.headers["location"] == "/papers/search_with_tags?q=chain+of+thought"
    page = site.get(plain.headers["location"])
    assert page.status_code == 200 and "Chain-of-Thought" in page.text
    # What the table page's search form submits ends there too, after Datasette tidies the address.
    form = {
        "_search": "llava",
        "_filter_column": "",
        "_filter_op": "exact",
        "_filter_value": "",
        "_sort": "published",
        "_sort_by_desc": "on",
    }
    landed = site.get("/papers/papers", params=form, follow_redirects=True)
    assert landed.status_code == 200 and landed.url.path == "/papers/search_with_tags"
    assert landed.url.params["q"] == "llava"
    # A sort the user chose, or a filter, keeps the table page (it can apply them); JSON is never redirected.
    assert site.get("/papers/papers", params={"_search": "llava", "_sort": "title"}).status_code == 200
    assert site.get("/_memory/papers", params={"_search": "llava"}).status_code != 302  # no such query there
    filtered = site.get("/papers/papers", params={"_search": "hallucination", "primary_category": "cs.CV"})
    assert filtered.status_code == 200 and "hallucinat" in filtered.text.lower()
    assert site.get("/papers/papers.json", params={"_search": "hallucination"}).status_code == 200


def test_table_search_redirect_keeps_datasettes_base_url(db_path: Path, tmp_path: Path) -> None:
    from tracker.serve import datasette_command, load_metadata

    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps(load_metadata(db_path.stem)))
    port = free_port()
    cmd = [*datasette_command(db_path, metadata, "127.0.0.1", port), "--setting", "base_url", "/t/"]
    proc = start(cmd, port, tmp_path / "datasette.log")
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/t/papers/papers", params={"_search": "llava"})
        assert answer.status_code == 302
        assert answer.headers["location"] == "/t/papers/search_with_tags?q=llava"
    finally:
        stop(proc)


def test_papers_table_has_tag_facet_links_and_newest_first(site: httpx.Client) -> None:
    page = site.get("/papers/papers")
    assert page.status_code == 200
    assert 'data-column="tags"' in page.text and "tags__arraycontains=M-CoT" in page.text
    assert re.search(r'<a href="https://arxiv.org/abs/[^"]+">arXiv:', page.text)
    assert '">PDF</a>' in page.text
    data = site.get("/papers/papers.json", params={"_facet_array": "tags", "_shape": "objects"}).json()
    counts = {f["value"]: f["count"] for f in data["facet_results"]["tags"]["results"]}
    assert counts["M-CoT"] > 0 and counts["evaluation"] > counts["M-CoT"]
    published = [r["published"] for r in data["rows"] if r["published"]]
    assert published == sorted(published, reverse=True)


def test_atom_feed_holds_the_tags_newest_papers(site: httpx.Client, db_path: Path) -> None:
    response = site.get("/papers/tag_feed.atom", params={"tag": "M-CoT"})
    assert response.status_code == 200
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    newest = [
        r[0]
        for r in sqlite3.connect(db_path).execute(
            "SELECT p.title FROM papers p JOIN paper_tags t USING (arxiv_id) WHERE t.tag = 'M-CoT' "
            "ORDER BY coalesce(p.announced, substr(p.updated, 1, 10)) DESC, p.arxiv_id DESC LIMIT 5"
        )
    ]
    titles = [e.title for e in feed.entries]
    assert titles[:5] == newest
    assert feed.entries[0].link.startswith("https://arxiv.org/abs/")
    assert "<script" not in response.text  # paper text is escaped, then cleaned by datasette-atom


def test_writes_through_the_web_are_refused(site: httpx.Client, db_path: Path) -> None:
    before = sqlite3.connect(db_path).execute("SELECT count(*), max(title) FROM papers").fetchone()
    for sql in (
        "DELETE FROM papers",
        "UPDATE papers SET title = 'x'",
        "INSERT INTO papers_fts(papers_fts) VALUES ('delete-all')",
    ):
        response = site.get("/papers", params={"sql": sql})
        assert response.status_code == 400
    # Datasette 1.0's write API does not exist on 0.65, and a table refuses a POST (0.65 answers 500).
    assert site.post("/papers/papers/-/insert", json={"row": {"arxiv_id": "x"}}).status_code >= 400
    assert site.post("/papers/papers", data={"arxiv_id": "x"}).status_code >= 400
    assert sqlite3.connect(db_path).execute("SELECT count(*), max(title) FROM papers").fetchone() == before


def test_plugins_cannot_write_even_through_a_write_query(db_path: Path, tmp_path: Path) -> None:
    """A canned query declared `write: true` (the way plugins write too) is refused by tracker_readonly."""
    metadata = tmp_path / "metadata.yml"
    metadata.write_text(
        textwrap.dedent(
            """
            databases:
              papers:
                queries:
                  wipe:
                    sql: delete from papers where arxiv_id = :arxiv_id
                    write: true
            """
        )
    )
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "datasette",
        "serve",
        str(db_path),
        "--metadata",
        str(metadata),
        "--plugins-dir",
        str(DEFAULT_DB_DIR / "plugins"),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    proc = start(cmd, port, tmp_path / "datasette.log")
    target = sqlite3.connect(db_path).execute("SELECT arxiv_id FROM papers LIMIT 1").fetchone()[0]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/papers") as client:
            form = client.get("wipe")
            token = re.search(r'name="csrftoken" value="([^"]+)"', form.text).group(1)
            answer = client.post("wipe", data={"arxiv_id": target, "csrftoken": token}, follow_redirects=True)
        assert answer.status_code == 200
        assert "not authorized" in answer.text or "readonly" in answer.text
    finally:
        stop(proc)
    assert sqlite3.connect(db_path).execute("SELECT 1 FROM papers WHERE arxiv_id = ?", (target,)).fetchone()


WRITER = """
import gzip, json, sys
sys.path.insert(0, {tests!r})
from sample_db import paper_row
from tracker import store
from tracker.config import DATA_DIR
records = [json.loads(l) for l in gzip.open(DATA_DIR / "labelled.jsonl.gz", "rt")]
for start in range(0, len(records), 5):
    with store.writer_lock({db!r}, wait=30):
        db = store.open_db({db!r})
        store.save_papers(db, [paper_row(r) for r in records[start:start + 5]])
        db.close()
print(len(records))
"""


def test_datasette_keeps_answering_while_a_sync_writes(site: httpx.Client, db_path: Path) -> None:
    count = "select count(*) as n from papers"
    before = rows_of(site, "", {"sql": count})[0]["n"]
    script = WRITER.format(tests=str(Path(__file__).parent), db=str(db_path))
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    answers = []
    while writer.poll() is None or not answers:
        for path, params in (
            ("papers", {"_search": "benchmark"}),
            ("papers_this_week", {}),
            ("", {"sql": count}),
        ):
            response = site.get(
                f"/papers{'/' if path else ''}{path}.json", params={**params, "_shape": "objects"}
            )
            answers.append((response.status_code, "locked" in response.text))
    out, err = writer.communicate()
    assert writer.returncode == 0, err.decode()
    assert all(answer == (200, False) for answer in answers), [a for a in answers if a != (200, False)]
    written = int(out.decode().strip())
    after = rows_of(site, "", {"sql": count})[0]["n"]
    assert after > before and after <= before + written  # Datasette sees the sync's rows, no restart needed


def test_serve_refuses_a_missing_or_foreign_database(tmp_path: Path) -> None:
    result = run("serve", tmp_path / "nope.db", "--port", str(free_port()))
    assert result.exit_code == 1 and "no such database" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "nope.db").exists()
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    result = run("serve", other, "--port", str(free_port()))
    assert result.exit_code == 1 and "not a tracker database" in result.stderr
    tables = [
        r[0] for r in sqlite3.connect(other).execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    ]
    assert tables == ["notes"]  # no tracker tables were added to someone else's file
    assert sqlite3.connect(other).execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all, just some bytes" * 100)
    result = run("serve", tmp_path / "junk.db")
    assert result.exit_code == 1 and "cannot open database" in result.stderr


def test_serve_refuses_a_host_name(db_path: Path) -> None:
    result = run("serve", db_path, "--host", "example.org")
    assert result.exit_code == 2 and "--host 'example.org' is not an IP address" in result.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    db_path = tmp_path / "papers.db"
    store.open_db(db_path).close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", db_path, "--port", str(port))
    assert result.exit_code == 2 and "Serving" not in result.stderr
    assert (
        result.stderr.strip()
        == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use (is another server using it?)"
    )


# -- what readers see first (issue 12) ----------------------------------------------------------

FACET_CASE = re.compile(r"case t\.facet\b(.*?)\bend\b", re.DOTALL | re.IGNORECASE)


def test_queries_order_facets_as_the_digest_does() -> None:
    """Every `case t.facet` in a canned query spells READER_FACET_ORDER (YAML cannot import it)."""
    found = 0
    for name, query in QUERIES.items():
        for case in FACET_CASE.findall(query["sql"]):
            sql = re.sub(r"--[^\n]*", "", case)
            ranks = {f: int(r) for f, r in re.findall(r"when '(\w[\w-]*)' then (\d+)", sql)}
            other = int(re.search(r"else (\d+)", sql).group(1))
            assert sorted(ranks, key=ranks.__getitem__) == list(READER_FACET_ORDER), name
            # a facet the constant does not list sorts where reading_order.facet_rank puts it
            assert ranks["architecture"] < other < ranks[TASK_FACET], name
            found += 1
    assert found >= 2  # papers_this_week and tags_by_facet


def test_tags_by_facet_lists_tag_counts_in_reader_order(site: httpx.Client, db_path: Path) -> None:
    rows = rows_of(site, "tags_by_facet")
    facets = [r["facet"] for r in rows]
    assert facets == sorted(facets, key=facet_rank) and facets[0] == "mllm"
    conn = sqlite3.connect(db_path)
    counted = conn.execute("SELECT tag, facet, count(*) FROM paper_tags GROUP BY 1, 2")
    stored = {(t, f): n for t, f, n in counted}
    assert {(r["tag"], r["facet"]): r["papers"] for r in rows} == stored
    assert all(0 <= r["mllm_papers"] <= r["papers"] for r in rows)
    this_week = rows_of(site, "papers_this_week")
    assert [r["facet"] for r in this_week] == sorted((r["facet"] for r in this_week), key=facet_rank)


def test_papers_table_offers_the_mllm_facet(site: httpx.Client, db_path: Path) -> None:
    data = site.get("/papers/papers.json", params={"_shape": "objects"}).json()
    counts = {f["value"]: f["count"] for f in data["facet_results"]["mllm"]["results"]}
    stored = dict(sqlite3.connect(db_path).execute("SELECT mllm, count(*) FROM papers GROUP BY mllm"))
    assert counts == {k: v for k, v in stored.items() if k is not None} and set(counts) == {0, 1}
    mllm_only = site.get("/papers/papers.json", params={"mllm": "1", "_shape": "objects"}).json()
    assert mllm_only["filtered_table_rows_count"] == counts[1]
    page = site.get("/papers/papers").text
    assert (
        'data-column="mllm"' in page and "mllm=1" in page
    )  # the facet, with a link that filters to MLLM work
