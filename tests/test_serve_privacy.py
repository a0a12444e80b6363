"""What `tracker serve` must not show (issue 13): subscribers, digests and other private state, by URL or SQL.

A real Datasette process (`tracker serve`) on loopback over a real SQLite file holding a subscriber,
their digest history (with an SMTP error naming them), their library and reading model (issue 15: "the
library is not readable through tracker serve") and the sync's own state; every trick a reader could
type into the SQL box, and a canned query, is tried and the address must appear in no answer. Also: the publishable
copy (`tracker public-copy`) holds none of it, not even in free pages of the file; the tag feed answers
for any tag in any case; hostile paper fields are neither linked nor kept as HTML.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest
from helpers import run
from sample_db import build_sample_db
from test_datasette import QUERIES, free_port, rows_of, serving, start, stop

ADDRESS = "private.reader@example.org"
SMTP_ERROR = f"550 5.1.1 <{ADDRESS}>: Recipient address rejected"
SECRET_QUERY = "secret-harvest-endpoint"
HOSTILE_ID = "2699.00001"
HOSTILE_TITLE = 'Hostile <img src="https://evil.example/t.png"> title'
HOSTILE_PDF = "https://evil.example/2699.00001.pdf"
LIBRARY_ENTRY = "a-paper-only-this-reader-knows-they-read"


def add_private_state(path: Path) -> None:
    """A subscriber, their digests, and sync/backfill state, as mail and sync would store them."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO subscribers (email, tags, created) VALUES (?, '[\"M-CoT\"]', '2026-07-01T06:00:00+00:00')",
            (ADDRESS,),
        )
        conn.execute(
            "INSERT INTO digests (recipient, window, state, attempts, papers, error, updated) "
            "VALUES (?, '2026-W27', 'failed', 3, 12, ?, '2026-07-01T07:00:00+00:00')",
            (ADDRESS, SMTP_ERROR),
        )
        arxiv_id = conn.execute("SELECT arxiv_id FROM papers LIMIT 1").fetchone()[0]
        conn.execute("INSERT INTO digest_papers VALUES (?, ?, 1, '2026-W27')", (ADDRESS, arxiv_id))
        conn.execute(
            "INSERT INTO sync_state (query_key, watermark, updated) VALUES (?, '2026-07-01', '2026-07-01')",
            (f"api:{SECRET_QUERY}",),
        )
        conn.execute(
            "INSERT INTO backfill_state (harvest_key, window_from, window_until, token, updated) "
            "VALUES (?, '2026-01-01', '2026-02-01', 'tok', '2026-07-01')",
            (f"https://{SECRET_QUERY}/oai",),
        )
        conn.execute(
            "INSERT INTO sync_runs (started, source, query, status, error) "
            "VALUES ('2026-07-02T06:00:00+00:00', 'load', ?, 'failed', ?)",
            (f"/home/someone/{SECRET_QUERY}.xml", f"cannot read /home/someone/{SECRET_QUERY}.xml"),
        )
        # Their library (issue 15), the model fitted on it, and a paper's vector.
        conn.execute(
            "INSERT INTO library (email, position, line, arxiv_id, entry, status) VALUES (?, 1, 1, ?, ?, 'matched')",
            (ADDRESS, arxiv_id, LIBRARY_ENTRY),
        )
        conn.execute(
            "INSERT INTO reader_models (email, model_id, library_hash, weights, bias, fitted) "
            "VALUES (?, 'sample', ?, x'0000803f', 0.5, '2026-07-01T07:00:00+00:00')",
            (ADDRESS, LIBRARY_ENTRY),
        )
        conn.execute(
            "INSERT INTO paper_vectors (arxiv_id, model_id, terms, weights) VALUES (?, ?, x'01000000', x'0000803f')",
            (arxiv_id, LIBRARY_ENTRY),
        )
        # A paper whose fields try to inject markup and a non-arXiv link.
        conn.execute(
            "INSERT INTO papers (arxiv_id, version, title, abstract, first_seen, announced, abs_url, pdf_url, tags) "
            "VALUES (?, 1, ?, ?, '2026-07-01', '2026-07-01', ?, ?, '[\"MIT\"]')",
            (
                HOSTILE_ID,
                HOSTILE_TITLE,
                'An abstract <img src="https://evil.example/a.png"> with <b>markup</b>.',
                f"https://arxiv.org/abs/{HOSTILE_ID}",
                HOSTILE_PDF,
            ),
        )
        conn.execute(
            "INSERT INTO paper_tags VALUES (?, 'MIT', 'mllm', 0.9, 'model', 'sample')", (HOSTILE_ID,)
        )
    conn.close()


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = build_sample_db(tmp_path_factory.mktemp("privacy") / "papers.db", limit=400)
    add_private_state(path)
    return path


@pytest.fixture(scope="module")
def site(db_path: Path) -> Iterator[httpx.Client]:
    with serving(db_path) as client:
        yield client


PRIVATE_TABLES = (
    "subscribers",
    "digests",
    "digest_papers",
    "sync_state",
    "backfill_state",
    "library",
    "reader_models",
    "paper_vectors",
)


def assert_private(response: httpx.Response) -> None:
    body = response.text
    assert ADDRESS not in body and "example.org" not in body and SECRET_QUERY not in body, body[:300]
    assert LIBRARY_ENTRY not in body, body[:300]


@pytest.mark.parametrize("table", PRIVATE_TABLES)
def test_private_tables_cannot_be_opened_by_address(site: httpx.Client, table: str) -> None:
    for path in (f"/papers/{table}", f"/papers/{table}.json", f"/papers/{table}.csv", f"/papers/{table}/1"):
        response = site.get(path)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert_private(response)


SQL_TRICKS = [
    "select * from subscribers",
    "select * from [subscribers]",
    'select * from "SUBSCRIBERS"',
    "select * from main.subscribers",
    "select email from subscribers where email like '%example%'",
    "select count(*) from subscribers",
    "select p.title, s.email from papers p join subscribers s on 1 limit 5",
    "select title, (select group_concat(email) from subscribers) from papers limit 1",
    "with x as (select * from subscribers) select * from x",
    "select * from papers where exists (select 1 from subscribers where email like 'private%') limit 1",
    "select recipient, error from digests",
    "select * from digest_papers",
    "select * from sync_state",
    "select * from backfill_state",
    "select * from dbstat",
    "select * from sqlite_stmt",
    "select * from pragma_table_info('subscribers') join subscribers",
    "select name, sql from sqlite_master",  # the schema is public (it is in the repository); rows are not
    "attach database ':memory:' as x",
    "select * from papers_fts where papers_fts match 'example'",
    "select * from library",
    "select entry from [LIBRARY] where email like '%example%'",
    "select p.title, l.entry from papers p join library l on l.arxiv_id = p.arxiv_id",
    "select title from papers where arxiv_id in (select arxiv_id from library) limit 1",
    "select s.* from similar_papers s join library l on l.arxiv_id = s.arxiv_id",
    "select * from reader_models",
    "select model_id from paper_vectors",
]


@pytest.mark.parametrize("sql", SQL_TRICKS)
def test_private_rows_cannot_be_read_by_sql(site: httpx.Client, sql: str) -> None:
    for suffix in ("", ".json", ".csv"):
        response = site.get(f"/papers{suffix}", params={"sql": sql})
        assert_private(response)
    if re.search(r"subscribers|library|reader_models|paper_vectors", sql, re.I) and "pragma" not in sql:
        assert site.get("/papers.json", params={"sql": sql}).status_code == 400


def test_private_rows_cannot_be_read_by_a_canned_query(db_path: Path, tmp_path: Path) -> None:
    """Not even a canned query (which a deployment could add to the metadata) reads the library."""
    from tracker.serve import datasette_command, load_metadata

    metadata = load_metadata(db_path.stem)
    queries = metadata["databases"][db_path.stem]["queries"]
    queries["my_library"] = {"sql": "select l.entry, p.title from library l join papers p using (arxiv_id)"}
    queries["readers"] = {"sql": "select email, library_hash from reader_models where email like :who"}
    metadata_file = tmp_path / "metadata.json"
    metadata_file.write_text(json.dumps(metadata))
    port = free_port()
    proc = start(datasette_command(db_path, metadata_file, "127.0.0.1", port), port, tmp_path / "ds.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/papers") as client:
            for name, params in (("my_library", {}), ("readers", {"who": "%"})):
                for suffix in ("", ".json", ".csv"):
                    answer = client.get(f"{name}{suffix}", params=params)
                    assert_private(answer)
                assert client.get(f"{name}.json", params=params).status_code == 400
            # and none of the shipped queries shows any of it, whatever it is asked
            for name in QUERIES:
                for value in ("", "%", ADDRESS, LIBRARY_ENTRY):
                    params = {"tag": value, "id": value, "q": value, "week_of": value, "margin": "1"}
                    answer = client.get(f"{name}.json", params=params)  # (the answer echoes the params)
                    assert answer.status_code == 200, (name, answer.text[:300])
                    rows = json.dumps(answer.json()["rows"])
                    assert ADDRESS not in rows and LIBRARY_ENTRY not in rows and SECRET_QUERY not in rows
    finally:
        stop(proc)


def test_sync_runs_show_counts_but_not_queries_or_errors(site: httpx.Client) -> None:
    rows = rows_of(site, "", {"sql": "select query, error, status from sync_runs where status = 'failed'"})
    assert rows == [{"query": None, "error": None, "status": "failed"}]
    table = site.get("/papers/sync_runs.json", params={"_shape": "objects"})
    assert table.status_code == 200 and table.json()["rows"]
    assert_private(table)
    history = rows_of(site, "sync_history")
    assert history and "failed" in {r["status"] for r in history}


def test_database_page_does_not_list_private_tables(site: httpx.Client) -> None:
    page = site.get("/papers")
    assert page.status_code == 200
    data = site.get("/papers.json").json()
    names = {t["name"] for t in data["tables"]}
    assert "papers" in names and not names & set(PRIVATE_TABLES)
    assert_private(page)


# -- the publishable copy -------------------------------------------------------------------------


def test_public_copy_holds_no_private_table_or_byte(db_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "public.db"
    result = run("public-copy", db_path, out)
    assert result.exit_code == 0, result.stderr
    data = out.read_bytes()
    assert ADDRESS.encode() not in data and SECRET_QUERY.encode() not in data
    assert LIBRARY_ENTRY.encode() not in data
    conn = sqlite3.connect(out)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "papers" in tables and "paper_tags" in tables and not tables & set(PRIVATE_TABLES)
    source = sqlite3.connect(db_path)
    assert (
        conn.execute("SELECT count(*) FROM papers").fetchone()
        == source.execute("SELECT count(*) FROM papers").fetchone()
    )
    hits = conn.execute("SELECT count(*) FROM papers_fts WHERE papers_fts MATCH 'hallucination'").fetchone()[
        0
    ]
    assert hits > 0  # the search index came along
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    withheld = (
        "SELECT count(*) FROM sync_runs WHERE query != '' OR error IS NOT NULL"  # query is NOT NULL: blanked
    )
    assert conn.execute(withheld).fetchone()[0] == 0
    # the source is untouched
    assert source.execute("SELECT email FROM subscribers").fetchall() == [(ADDRESS,)]


def test_public_copy_refuses_to_overwrite_the_source_or_a_missing_db(db_path: Path, tmp_path: Path) -> None:
    before = db_path.read_bytes()
    result = run("public-copy", db_path, db_path)
    assert result.exit_code != 0 and "Traceback" not in result.stderr and "source" in result.stderr
    assert db_path.read_bytes() == before
    result = run("public-copy", tmp_path / "missing.db", tmp_path / "out.db")
    assert result.exit_code == 1 and "no such database" in result.stderr
    assert not (tmp_path / "out.db").exists()


def test_public_copy_replaces_an_old_copy_whole(db_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "public.db"
    out.write_bytes(b"an old copy")
    assert run("public-copy", db_path, out).exit_code == 0
    assert sqlite3.connect(out).execute("SELECT count(*) FROM papers").fetchone()[0] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["public.db"]  # no temporary file left behind


# -- the tag feed and hostile fields ----------------------------------------------------------------


@pytest.mark.parametrize("tag", ["no-such-tag", "mit", "m-cot", "MIT"])
def test_tag_feed_answers_any_tag_in_any_case(site: httpx.Client, db_path: Path, tag: str) -> None:
    response = site.get("/papers/tag_feed.atom", params={"tag": tag})
    assert response.status_code == 200, response.text[:300]
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    stored = (
        sqlite3.connect(db_path)
        .execute("SELECT DISTINCT tag FROM paper_tags WHERE tag = ? COLLATE NOCASE", (tag,))
        .fetchone()
    )
    name = stored[0] if stored else tag
    assert name in feed.feed.title
    if stored:
        assert feed.entries
    else:
        assert feed.entries == []


@pytest.mark.parametrize("query", ["papers_this_week", "tag_above_score", "tag_trend", "tag_feed"])
def test_canned_queries_accept_a_tag_in_any_case(site: httpx.Client, query: str) -> None:
    exact = rows_of(site, query, {"tag": "MIT", "week_of": "2026-07-01"})
    lower = rows_of(site, query, {"tag": "mit", "week_of": "2026-07-01"})
    assert exact and lower == exact


def test_feed_keeps_no_markup_from_paper_fields(site: httpx.Client) -> None:
    response = site.get("/papers/tag_feed.atom", params={"tag": "MIT"})
    feed = feedparser.parse(response.content)
    entry = next(e for e in feed.entries if HOSTILE_ID in e.id)
    content = entry.content[0].value
    assert "<img" not in content and "<b>" not in content and "evil.example/a.png" in content  # kept as text
    assert 'href="https://evil.example' not in response.text  # a PDF link only to arXiv
    assert "<img" not in response.text  # no element anywhere: titles are Atom text, their markup escaped
    assert entry.title == HOSTILE_TITLE  # shown as the words it is, not rendered


def test_table_links_only_arxiv_addresses(site: httpx.Client) -> None:
    page = site.get("/papers/papers", params={"arxiv_id": HOSTILE_ID})
    assert page.status_code == 200
    table = page.text.split("<table", 1)[1]
    assert HOSTILE_ID in table and "evil.example/2699.00001.pdf" in table  # shown, as text
    assert 'href="https://evil.example' not in table
    assert "<img src=" not in table
    assert f'<a href="https://arxiv.org/abs/{HOSTILE_ID}">' in table


# -- what readers see first -------------------------------------------------------------------------


def test_papers_table_shows_title_tags_dates_first_and_hides_internal_columns(site: httpx.Client) -> None:
    page = site.get("/papers/papers")
    assert page.status_code == 200
    head = page.text.split("<thead>", 1)[1].split("</thead>", 1)[0]
    order = [
        c for c in ("arxiv_id", "title", "tags", "announced", "published") if f'data-column="{c}"' in head
    ]
    assert order == ["arxiv_id", "title", "tags", "announced", "published"]
    positions = [head.index(f'data-column="{c}"') for c in order]
    assert positions == sorted(positions)
    for internal in ("needs_metadata", "first_seen", "tagged_by", "announce_type"):
        assert f'data-column="{internal}"' not in head
    # still there for whoever asks: JSON, an explicit column choice, SQL
    row = site.get("/papers/papers.json", params={"_shape": "objects", "_size": "1"}).json()["rows"][0]
    assert {"needs_metadata", "first_seen", "tagged_by", "announce_type"} <= set(row)
    chosen = site.get("/papers/papers", params={"_col": "first_seen"})
    assert 'data-column="first_seen"' in chosen.text
    # facets still work on the default page
    assert "tags__arraycontains=M-CoT" in page.text
