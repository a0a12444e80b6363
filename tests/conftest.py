"""Shared fixtures: real recorded records, a loopback arXiv, a real database file, and isolation from the
user's configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from tracker import store
from tracker.demo.mirror import ArxivMirror, load_corpus


@pytest.fixture(scope="session")
def corpus() -> list[dict[str, Any]]:
    """The bundled real abstracts that carry full API metadata (published dates, categories)."""
    return [r for r in load_corpus() if r.get("published") and r.get("categories")]


@pytest.fixture(scope="session")
def march_2024(corpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Real papers submitted in March 2024 (a window for sync tests)."""
    return [r for r in corpus if r["published"].startswith("2024-03")]


@pytest.fixture
def mirror():
    """An empty loopback arXiv; tests add records, announcements and faults."""
    with ArxivMirror() as m:
        yield m


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a test's database file goes (not created: the code under test creates it)."""
    return tmp_path / "tracker.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    """A fresh tracker database on a real file (WAL, triggers and FTS as in use), every migration applied."""
    database = store.open_db(db_path)
    yield database
    database.close()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads a real auth.json or a real SMTP password."""
    monkeypatch.setenv("TRACKER_AUTH", str(tmp_path / "auth.json"))
    monkeypatch.delenv("TRACKER_SMTP_PASSWORD", raising=False)
