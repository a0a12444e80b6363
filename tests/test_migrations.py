"""tracker/migrations.py, as llm's test_migrate.py: every migration from an empty database gives the final
schema, and a database left at any earlier migration is brought to that same schema by `store.open_db` with
its rows intact (and still found by full-text search, whose index m009 rebuilt)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from tracker import store
from tracker.migrations import migrations

NAMES = [m.name for m in migrations._migrations]

# One representative row for each table a migration creates, as the code of that time wrote it.
ROWS: dict[str, dict[str, Any]] = {
    "papers": {
        "arxiv_id": "hep-th/9901001",
        "version": 2,
        "title": "A representative paper",
        "abstract": "Rows written by an older tracker survive every migration.",
        "authors": '["A. Author"]',
        "primary_category": "hep-th",
        "categories": '["hep-th", "cs.CV"]',
        "published": "1999-01-01T00:00:00+00:00",
        "updated": "1999-02-01T00:00:00+00:00",
        "first_seen": "2026-01-01T00:00:00+00:00",
        "announce_type": "replace",
        "announced": "1999-02-02",
        "needs_metadata": 0,
        "tags": '["MIT"]',
        "tagged_by": "model-1",
    },
    "authors": {"id": 7, "name": "A. Author"},
    "paper_authors": {"arxiv_id": "hep-th/9901001", "author_id": 7, "position": 0},
    "paper_versions": {
        "arxiv_id": "hep-th/9901001",
        "version": 1,
        "updated": None,
        "first_seen": "2026-01-01",
    },
    "announcements": {
        "arxiv_id": "hep-th/9901001",
        "version": 2,
        "announce_type": "replace",
        "announced": "1999-02-02",
        "feed": "hep-th",
    },
    "sync_runs": {
        "id": 1,
        "started": "2026-01-01T00:00:00+00:00",
        "source": "api",
        "query": "cat:hep-th",
        "new": 1,
        "status": "ok",
    },
    "sync_state": {
        "query_key": "api:cat:hep-th",
        "watermark": "2026-01-01T00:00:00+00:00",
        "updated": "2026-01-01",
    },
    "paper_tags": {
        "arxiv_id": "hep-th/9901001",
        "tag": "MIT",
        "facet": "task",
        "score": 0.9,
        "source": "model",
        "model_id": "model-1",
    },
    "manual_labels": {
        "arxiv_id": "hep-th/9901001",
        "tag": "VQA",
        "action": "remove",
        "created": "2026-01-01",
    },
    "tag_scores": {
        "arxiv_id": "hep-th/9901001",
        "tag": "MIT",
        "score": 0.9,
        "threshold": 0.5,
        "model_id": "model-1",
    },
    "subscribers": {"email": "a@example.org", "tags": '["MIT"]', "created": "2026-01-01"},
    "digests": {
        "recipient": "a@example.org",
        "window": "2026-W01",
        "state": "sent",
        "attempts": 1,
        "papers": 1,
        "updated": "2026-01-01",
    },
    "digest_papers": {
        "recipient": "a@example.org",
        "arxiv_id": "hep-th/9901001",
        "version": 2,
        "window": "2026-W01",
    },
    "backfill_state": {
        "harvest_key": "oai set=cs",
        "window_from": "1999-01-01",
        "window_until": "1999-01-31",
        "updated": "2026-01-01",
    },
}


def schema(db: Database) -> list[tuple[str, str, str]]:
    """Every table, index, view and trigger as SQLite holds it (FTS shadow tables included)."""
    return db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()


@pytest.fixture(scope="module")
def final_schema(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str]]:
    db = store.open_db(tmp_path_factory.mktemp("scratch") / "scratch.db")
    try:
        return schema(db)
    finally:
        db.close()


def test_every_migration_from_an_empty_database_gives_the_final_schema(
    db_path: Path, final_schema: list[tuple[str, str, str]]
) -> None:
    db = Database(db_path)
    migrations.apply(db)
    assert [m.name for m in migrations.applied(db)] == NAMES and migrations.pending(db) == []
    assert schema(db) == final_schema
    assert set(ROWS) <= set(db.table_names())  # the representative rows below cover every data table
    papers = db.table("papers").columns_dict
    assert set(store.PAPER_COLUMNS) | {"first_seen", "tags", "tagged_by", "relevance", "mllm"} == set(papers)
    assert "idx_papers_event_day" in {i.name for i in db.table("papers").indexes}


def test_migration_names_are_numbered_in_order() -> None:
    assert [int(name[1:4]) for name in NAMES] == list(range(1, len(NAMES) + 1))


@pytest.mark.parametrize("applied", range(1, len(NAMES)), ids=lambda k: f"from-{NAMES[k - 1]}")
def test_a_database_at_an_earlier_migration_is_upgraded_with_its_rows(
    db_path: Path, final_schema: list[tuple[str, str, str]], applied: int
) -> None:
    old = Database(db_path)
    migrations.apply(old, stop_before=NAMES[applied])
    assert [m.name for m in migrations.applied(old)] == NAMES[:applied]
    written = [table for table in ROWS if old.table(table).exists()]
    for table in written:
        old.table(table).insert(ROWS[table])
    old.close()

    db = store.open_db(db_path)
    assert migrations.pending(db) == [] and schema(db) == final_schema
    for table in written:
        rows = list(db.table(table).rows)
        assert len(rows) == 1 and {k: rows[0][k] for k in ROWS[table]} == ROWS[table], table
    found = db.execute("SELECT rowid FROM papers_fts WHERE papers_fts MATCH 'representative'").fetchall()
    assert found == db.execute("SELECT rowid FROM papers").fetchall()
    text = (ROWS["papers"]["title"], ROWS["papers"]["abstract"])
    assert store.paper_texts(db, ["hep-th/9901001"]) == {"hep-th/9901001": text}
    # and the upgraded database takes the current code's writes
    counts = store.save_papers(
        db, [{"arxiv_id": "hep-th/9901001", "version": 3, "title": "v3", "abstract": ""}]
    )
    assert counts.updated == 1
