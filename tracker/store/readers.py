"""Readers' libraries and ranking models: `library` (the papers a subscriber's own file names) and
`reader_models` (the model fitted on them), both private like `subscribers`; and the window and sample
reads of `paper_vectors` a ranking needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlite_utils import Database

from tracker.store.core import utcnow
from tracker.store.papers import IN_WINDOW_SQL
from tracker.store.vectors import in_parts


def save_library(db: Database, email: str, rows: Sequence[tuple[int, str | None, str, str]]) -> None:
    """Replace a subscriber's library, in one transaction; their ranking model goes with the old one.

    :param rows: (line, arxiv_id or None, entry as the file said it, status) per entry
    """
    with db.atomic():
        db.conn.execute("DELETE FROM library WHERE email = ?", (email,))
        db.conn.execute("DELETE FROM reader_models WHERE email = ?", (email,))
        db.conn.executemany(
            "INSERT INTO library (email, position, line, arxiv_id, entry, status) VALUES (?, ?, ?, ?, ?, ?)",
            [(email, position, *row) for position, row in enumerate(rows, 1)],
        )


def library_rows(db: Database, email: str) -> list[dict[str, Any]]:
    """A subscriber's library entries in file order, with the title of each matched paper."""
    return list(
        db.query(
            "SELECT l.line, l.arxiv_id, l.entry, l.status, p.title FROM library l "
            "LEFT JOIN papers p ON p.arxiv_id = l.arxiv_id WHERE l.email = ? ORDER BY l.position",
            [email],
        )
    )


def library_ids(db: Database, email: str) -> list[str]:
    """The arXiv ids of a subscriber's library papers that are in the database, sorted."""
    rows = db.conn.execute(
        "SELECT DISTINCT l.arxiv_id FROM library l JOIN papers p ON p.arxiv_id = l.arxiv_id "
        "WHERE l.email = ? ORDER BY l.arxiv_id",
        (email,),
    )
    return [r[0] for r in rows]


def readers_with_library(db: Database) -> list[str]:
    """Subscribers who gave a library, by address."""
    return [r[0] for r in db.conn.execute("SELECT DISTINCT email FROM library ORDER BY email")]


def reader_model(db: Database, email: str) -> dict[str, Any] | None:
    row = db.conn.execute(
        "SELECT model_id, library_hash, weights, bias, fitted FROM reader_models WHERE email = ?", (email,)
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("model_id", "library_hash", "weights", "bias", "fitted"), row, strict=True))


def save_reader_model(
    db: Database, email: str, model_id: str, library_hash: str, weights: np.ndarray, bias: float
) -> None:
    with db.atomic():
        db.conn.execute(
            "INSERT OR REPLACE INTO reader_models (email, model_id, library_hash, weights, bias, fitted) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (email, model_id, library_hash, weights.astype("<f4").tobytes(), float(bias), utcnow()),
        )


def window_vectors(
    db: Database, model_id: str, since: str, until: str
) -> list[tuple[str, int, str, bytes, bytes]]:
    """(arxiv_id, version, title, terms, weights) of the papers whose day lies in [since, until] and that
    have a vector under `model_id`; papers still waiting for their full record (`needs_metadata`) are left
    out, as the digest's tag sections leave them out."""
    sql = f"""
        SELECT p.arxiv_id, p.version, p.title, v.terms, v.weights
        FROM papers p JOIN paper_vectors v ON v.arxiv_id = p.arxiv_id
        WHERE {IN_WINDOW_SQL} AND p.needs_metadata = 0 AND v.model_id = :model_id
        ORDER BY p.arxiv_id
    """
    rows = db.conn.execute(sql, {"since": since, "until": until, "model_id": model_id})
    return [(r[0], int(r[1]), r[2], r[3], r[4]) for r in rows]


def sample_vectors(db: Database, model_id: str, size: int, seed: int) -> list[tuple[str, bytes, bytes]]:
    """Up to `size` paper vectors under `model_id`, drawn at random but the same for the same seed.

    Drawn by rowid (cheap at any size: no scan, no sort of a million rows); a drawn rowid of another
    model's vector is just missing, so a database in the middle of a retag gives a little fewer.
    """
    top = db.conn.execute("SELECT max(rowid) FROM paper_vectors").fetchone()[0] or 0
    if top <= size:
        rows = db.conn.execute(
            "SELECT arxiv_id, terms, weights FROM paper_vectors WHERE model_id = ?", (model_id,)
        )
        return [(r[0], r[1], r[2]) for r in rows]
    picks = np.sort(np.random.default_rng(seed).choice(top, size=size, replace=False) + 1).tolist()
    out: list[tuple[str, bytes, bytes]] = []
    for part in in_parts(picks):
        rows = db.conn.execute(
            "SELECT arxiv_id, terms, weights FROM paper_vectors "
            f"WHERE model_id = ? AND rowid IN ({', '.join('?' * len(part))})",
            [model_id, *part],
        )
        out += [(r[0], r[1], r[2]) for r in rows]
    return out


def title_matches(db: Database, words: str, *, phrase: bool = True, limit: int = 50) -> list[tuple[str, str]]:
    """(arxiv_id, title) of papers whose title holds these words (full-text search), shortest title first:
    the candidates a library entry known only by its title is compared with. Shortest first, so a famous
    short title ("Segment Anything") is among them however many longer titles contain its words.

    :param phrase: the words in this order (few candidates, fast); else all of them anywhere in the title
    """
    tokens = [w for w in words.replace('"', " ").split() if w]
    if not tokens:
        return []
    query = (
        f'title : "{" ".join(tokens)}"' if phrase else "title : (" + " ".join(f'"{w}"' for w in tokens) + ")"
    )
    rows = db.conn.execute(
        "SELECT p.arxiv_id, p.title FROM papers_fts f JOIN papers p ON p.rowid = f.rowid "
        "WHERE papers_fts MATCH ? ORDER BY length(p.title), p.arxiv_id LIMIT ?",
        (query, limit),
    )
    return [(r[0], r[1]) for r in rows]
