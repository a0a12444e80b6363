"""Similar papers in Datasette (issue 15): the `similar` canned query, the link after each paper's title.

A real `tracker serve` on loopback over a small tracker database written with `store.save_papers`, whose
`similar_papers` rows are planted directly (the engine that computes them is tested on its own). Also:
the neighbours are public (they are in `tracker public-copy`), a subscriber's library and reading model
are not.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import run
from test_datasette import rows_of, serving

from tracker import store
from tracker.parse import PaperRow

HOSTILE_TITLE = '<script>alert("t")</script> & <img src="https://evil.example/x.png"> detection'
# id -> (title, published, tags)
PAPERS = {
    "2401.00001": ("Visual chain-of-thought for multimodal models", "2024-01-02T10:00:00+00:00", '["M-CoT"]'),
    "2401.00002": ("Step-by-step visual reasoning", "2024-01-03T10:00:00+00:00", '["M-CoT", "MIT"]'),
    "2401.00003": ("Instruction tuning with images", "2024-01-04T10:00:00+00:00", '["MIT"]'),
    "2401.00004": (HOSTILE_TITLE, "2024-01-05T10:00:00+00:00", "[]"),
    "2401.00005": ("A paper nothing resembles yet", "2024-01-06T10:00:00+00:00", "[]"),
    "hep-th/9901001": ("An old-style identifier", "1999-01-01T00:00:00+00:00", "[]"),
}
# (arxiv_id, rank, similar_id, score), planted out of rank order
SIMILAR = [
    ("2401.00001", 3, "2401.00004", 0.31234),
    ("2401.00001", 1, "2401.00002", 0.87654),
    ("2401.00001", 2, "2401.00003", 0.55555),
    ("2401.00002", 1, "2401.00001", 0.87654),
    ("hep-th/9901001", 1, "2401.00003", 0.1),
]
ADDRESS = "library.reader@example.org"
LIBRARY_ENTRY = "my-private-reading-list-entry"


def paper(arxiv_id: str) -> PaperRow:
    title, published, _ = PAPERS[arxiv_id]
    return {
        "arxiv_id": arxiv_id,
        "version": 1,
        "title": title,
        "abstract": f"The abstract of {arxiv_id}.",
        "authors": ["A. Author"],
        "primary_category": "cs.CV",
        "categories": ["cs.CV"],
        "published": published,
        "updated": published,
        "abs_url": f"https://arxiv.org/abs/{arxiv_id}",
        "pdf_url": f"https://arxiv.org/pdf/{arxiv_id}v1",
        "needs_metadata": 0,
    }


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("similar") / "papers.db"
    db = store.open_db(path)
    store.save_papers(db, [paper(i) for i in PAPERS], now="2026-07-01T06:00:00+00:00")
    db.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "UPDATE papers SET tags = ? WHERE arxiv_id = ?", [(t, i) for i, (_, _, t) in PAPERS.items()]
        )
        conn.executemany("INSERT INTO similar_papers VALUES (?, ?, ?, ?)", SIMILAR)
        conn.execute(
            "INSERT INTO subscribers (email, tags, created) VALUES (?, '[]', '2026-07-01T06:00:00+00:00')",
            (ADDRESS,),
        )
        conn.execute(
            "INSERT INTO library (email, position, line, arxiv_id, entry, status) VALUES (?, 1, 1, '2401.00001', ?, 'matched')",
            (ADDRESS, LIBRARY_ENTRY),
        )
        conn.execute(
            "INSERT INTO reader_models (email, model_id, library_hash, weights, bias, fitted) "
            "VALUES (?, 'model-1', ?, x'0000803f', 0.5, '2026-07-01T06:00:00+00:00')",
            (ADDRESS, LIBRARY_ENTRY),
        )
    conn.close()
    return path


@pytest.fixture(scope="module")
def site(db_path: Path) -> Iterator[httpx.Client]:
    with serving(db_path) as client:
        yield client


def test_similar_query_lists_the_neighbours_in_rank_order(site: httpx.Client) -> None:
    rows = rows_of(site, "similar", {"id": "2401.00001"})
    assert rows == [
        {
            "rank": 1,
            "arxiv_id": "2401.00002",
            "title": "Step-by-step visual reasoning",
            "score": 0.877,
            "published": "2024-01-03",
            "tags": '["M-CoT", "MIT"]',
            "abs_url": "https://arxiv.org/abs/2401.00002",
        },
        {
            "rank": 2,
            "arxiv_id": "2401.00003",
            "title": "Instruction tuning with images",
            "score": 0.556,
            "published": "2024-01-04",
            "tags": '["MIT"]',
            "abs_url": "https://arxiv.org/abs/2401.00003",
        },
        {
            "rank": 3,
            "arxiv_id": "2401.00004",
            "title": HOSTILE_TITLE,
            "score": 0.312,
            "published": "2024-01-05",
            "tags": "[]",
            "abs_url": "https://arxiv.org/abs/2401.00004",
        },
    ]
    assert [r["arxiv_id"] for r in rows_of(site, "similar", {"id": "2401.00002"})] == ["2401.00001"]
    assert [r["arxiv_id"] for r in rows_of(site, "similar", {"id": "hep-th/9901001"})] == ["2401.00003"]


@pytest.mark.parametrize(
    "typed",
    ["arXiv:2401.00001", "2401.00001v3", " https://arxiv.org/abs/2401.00001v2 ", "ARXIV:2401.00001v1"],
)
def test_similar_query_takes_the_id_as_people_paste_it(site: httpx.Client, typed: str) -> None:
    rows = rows_of(site, "similar", {"id": typed})
    assert [r["arxiv_id"] for r in rows] == ["2401.00002", "2401.00003", "2401.00004"]


@pytest.mark.parametrize("typed", ["2401.00005", "9999.99999", ""])
def test_similar_query_is_empty_for_a_paper_without_neighbours(site: httpx.Client, typed: str) -> None:
    assert rows_of(site, "similar", {"id": typed}) == []
    page = site.get("/papers/similar", params={"id": typed})
    assert page.status_code == 200 and "Similar papers" in page.text


def test_similar_query_page_escapes_paper_text(site: httpx.Client) -> None:
    page = site.get("/papers/similar", params={"id": "2401.00001"})
    assert page.status_code == 200
    table = page.text.split("<table", 1)[1]
    assert "<script>alert" not in page.text and "<img src=" not in table
    assert "&lt;script&gt;alert(" in table and "&amp; &lt;img src=" in table  # shown as the words it is
    assert "Step-by-step visual reasoning" in table
    assert '<a href="https://arxiv.org/abs/2401.00002">arXiv:2401.00002</a>' in table
    assert "M-CoT, MIT" in table  # tags as text, as in the papers table


def similar_link(arxiv_id: str) -> str:
    query = arxiv_id.replace("/", "%2F")
    return f'<a class="similar" href="/papers/similar?id={query}">similar</a>'


def test_papers_table_links_each_title_to_its_similar_papers(site: httpx.Client) -> None:
    page = site.get("/papers/papers")
    assert page.status_code == 200
    table = page.text.split("<table", 1)[1]
    for arxiv_id in PAPERS:
        assert similar_link(arxiv_id) in table, arxiv_id
    # the hostile title stays text beside its link
    assert "<script>alert" not in page.text and "<img src=" not in table
    cell = re.search(r'<td class="col-title[^"]*"[^>]*>(.*?)</td>', table.split("2401.00004", 1)[1], re.S)
    assert cell and cell.group(1).startswith("&lt;script&gt;") and similar_link("2401.00004") in cell.group(1)
    # JSON and CSV keep the plain title
    rows = site.get("/papers/papers.json", params={"_shape": "objects", "arxiv_id": "2401.00004"}).json()
    assert rows["rows"][0]["title"] == HOSTILE_TITLE
    assert "similar" not in site.get("/papers/papers.csv").text


SIMILAR_OF = {"2401.00001": "2401.00002", "hep-th/9901001": "2401.00003"}


@pytest.mark.parametrize("arxiv_id", sorted(SIMILAR_OF))
def test_paper_row_page_links_to_its_similar_papers(site: httpx.Client, arxiv_id: str) -> None:
    # Datasette's tilde-encoding of the primary key
    row_path = "/papers/papers/" + arxiv_id.replace(".", "~2E").replace("/", "~2F")
    assert f'<a href="{row_path}">' in site.get("/papers/papers").text  # the row page the table links
    page = site.get(row_path)
    assert page.status_code == 200 and PAPERS[arxiv_id][0] in page.text
    assert similar_link(arxiv_id) in page.text
    linked = site.get(f"/papers/similar?id={arxiv_id.replace('/', '%2F')}")
    assert linked.status_code == 200 and PAPERS[SIMILAR_OF[arxiv_id]][0] in linked.text


def test_similar_papers_are_public_and_the_library_is_not(site: httpx.Client) -> None:
    assert rows_of(site, "similar_papers", {"arxiv_id": "2401.00002"})[0]["similar_id"] == "2401.00001"
    for table in ("library", "reader_models", "paper_vectors"):
        assert site.get(f"/papers/{table}.json").status_code == 403
        answer = site.get("/papers.json", params={"sql": f"select * from {table}"})
        assert answer.status_code == 400 and LIBRARY_ENTRY not in answer.text and ADDRESS not in answer.text


def test_public_copy_keeps_similar_papers_and_drops_the_library(db_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "public.db"
    result = run("public-copy", db_path, out)
    assert result.exit_code == 0, result.stderr
    conn = sqlite3.connect(out)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "similar_papers" in tables
    assert not tables & {"library", "reader_models", "paper_vectors", "subscribers"}
    copied = conn.execute("SELECT * FROM similar_papers ORDER BY arxiv_id, rank").fetchall()
    assert copied == sorted(SIMILAR)
    data = out.read_bytes()
    assert LIBRARY_ENTRY.encode() not in data and ADDRESS.encode() not in data
