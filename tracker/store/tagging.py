"""Tagging: the classifier's `paper_tags` and `tag_scores`, people's `manual_labels`, and the reads built
on them (papers still to tag, a paper's tags, review candidates near a threshold, the demo's summary).

A chunk of papers is re-tagged in one transaction (old tags and scores out, new ones in, `papers.tags`
mirrored for Datasette facets), and a manual label applies to the paper's tags at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from tracker.store.core import utcnow

# How far a score is from its threshold, as a ratio: exp(|ln(score / threshold)|) without needing SQLite's
# optional math functions. A ratio rather than a difference, so tags with low and high thresholds interleave fairly.
REVIEW_DISTANCE_SQL = "max(s.score / s.threshold, s.threshold / s.score)"


# A paper to (re)tag: never tagged, tagged by another model, or tagged before paper vectors were kept
# (issue 15: a database from an older tracker gets its vectors on the next classify). Parameters: model_id
# twice.
UNTAGGED_SQL = (
    "tagged_by IS NULL OR tagged_by != ? OR NOT EXISTS (SELECT 1 FROM paper_vectors v "
    "WHERE v.arxiv_id = papers.arxiv_id AND v.model_id = ?)"
)


def count_untagged(db: Database, model_id: str, all_papers: bool = False) -> int:
    """How many papers `iter_untagged` will yield."""
    papers = db.table("papers")
    if all_papers:
        return papers.count
    return papers.count_where(UNTAGGED_SQL, [model_id, model_id])


def iter_untagged(
    db: Database, model_id: str, all_papers: bool = False, chunk_size: int = 2000
) -> Iterator[list[tuple[str, str, str]]]:
    """Chunks of (arxiv_id, title, abstract) not yet tagged by `model_id` (or all papers), in id order.

    Keyset pagination (`arxiv_id > last`) rather than one open cursor, so the caller may write each chunk
    before reading the next, and memory stays flat whatever the size of the table.
    """
    last = ""
    where = "" if all_papers else f"AND ({UNTAGGED_SQL})"
    while True:
        args: list[Any] = [last] + ([] if all_papers else [model_id, model_id]) + [chunk_size]
        rows = db.conn.execute(
            f"SELECT arxiv_id, title, abstract FROM papers WHERE arxiv_id > ? {where} ORDER BY arxiv_id LIMIT ?",
            args,
        ).fetchall()
        if not rows:
            return
        yield [(r[0], r[1] or "", r[2] or "") for r in rows]
        last = rows[-1][0]


def save_tagging(
    db: Database,
    tags: Sequence[tuple[str, str, str, float, str, str | None]],
    scores: Sequence[tuple[str, str, float, float, str]],
    papers: Sequence[tuple[str, str, str, float, int]],
    vectors: Sequence[tuple[str, str, bytes, bytes]] = (),
) -> None:
    """Replace the tags, scores and TF-IDF vectors of a chunk of papers, in one transaction.

    :param tags: (arxiv_id, tag, facet, score, source, model_id) rows for `paper_tags`
    :param scores: (arxiv_id, tag, score, threshold, model_id) rows for `tag_scores`
    :param papers: (arxiv_id, tags JSON, tagged_by, relevance, mllm) for the papers of the chunk (all of
        them, tagged or not)
    :param vectors: (arxiv_id, model_id, terms, weights) rows for `paper_vectors` (`store.pack_rows`); a
        paper whose vector changed has its neighbours recomputed (`tracker.similar`), one whose vector is
        the same keeps them
    """
    ids = [(p[0],) for p in papers]
    with db.atomic():
        db.conn.executemany("DELETE FROM paper_tags WHERE arxiv_id = ?", ids)
        db.conn.executemany("DELETE FROM tag_scores WHERE arxiv_id = ?", ids)
        db.conn.executemany(
            "INSERT INTO paper_tags (arxiv_id, tag, facet, score, source, model_id) VALUES (?, ?, ?, ?, ?, ?)",
            tags,
        )
        db.conn.executemany(
            "INSERT INTO tag_scores (arxiv_id, tag, score, threshold, model_id) VALUES (?, ?, ?, ?, ?)",
            scores,
        )
        db.conn.executemany(
            "UPDATE papers SET tags = ?, tagged_by = ?, relevance = ?, mllm = ? WHERE arxiv_id = ?",
            ((p[1], p[2], p[3], p[4], p[0]) for p in papers),
        )
        db.conn.executemany(
            "INSERT INTO paper_vectors (arxiv_id, model_id, terms, weights) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(arxiv_id) DO UPDATE SET model_id = excluded.model_id, terms = excluded.terms, "
            "weights = excluded.weights, neighbours_by = CASE WHEN paper_vectors.model_id = excluded.model_id "
            "AND paper_vectors.terms = excluded.terms AND paper_vectors.weights = excluded.weights "
            "THEN paper_vectors.neighbours_by END",
            vectors,
        )


def paper_tag_rows(db: Database, arxiv_id: str) -> list[dict[str, Any]]:
    """The tags a paper carries, with score and source."""
    rows = db.table("paper_tags").rows_where(
        "arxiv_id = ?", [arxiv_id], select="tag, facet, score, source, model_id", order_by="tag"
    )
    return list(rows)


def stored_tags(db: Database) -> list[tuple[str, str]]:
    """(tag, facet) pairs present in paper_tags, for when no taxonomy file is at hand."""
    return [
        (r[0], r[1])
        for r in db.conn.execute("SELECT DISTINCT tag, facet FROM paper_tags ORDER BY facet, tag")
    ]


def scored_tags(db: Database) -> list[str]:
    """The tags `tag_scores` holds any score for (the model's tags that `classify` has run on)."""
    return [r[0] for r in db.conn.execute("SELECT DISTINCT tag FROM tag_scores ORDER BY tag")]


# -- manual labels -------------------------------------------------------------------------------


def manual_labels(db: Database) -> list[tuple[str, str, str]]:
    """Every person's correction: (arxiv_id, tag, 'add' | 'remove')."""
    return [
        tuple(r)
        for r in db.conn.execute("SELECT arxiv_id, tag, action FROM manual_labels ORDER BY arxiv_id, tag")
    ]


def save_manual_label(db: Database, arxiv_id: str, tag: str, facet: str, action: str) -> None:
    """Record a person's correction and apply it to the paper's tags at once (one transaction)."""
    with db.atomic():
        db.conn.execute(
            "INSERT INTO manual_labels (arxiv_id, tag, action, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(arxiv_id, tag) DO UPDATE SET action = excluded.action, created = excluded.created",
            (arxiv_id, tag, action, utcnow()),
        )
        if action == "add":
            db.conn.execute(
                "INSERT OR REPLACE INTO paper_tags (arxiv_id, tag, facet, score, source, model_id) "
                "VALUES (?, ?, ?, 1.0, 'manual', NULL)",
                (arxiv_id, tag, facet),
            )
        else:
            db.conn.execute("DELETE FROM paper_tags WHERE arxiv_id = ? AND tag = ?", (arxiv_id, tag))
        tags = [
            r[0]
            for r in db.conn.execute(
                "SELECT tag FROM paper_tags WHERE arxiv_id = ? ORDER BY tag", (arxiv_id,)
            )
        ]
        db.conn.execute("UPDATE papers SET tags = ? WHERE arxiv_id = ?", (json.dumps(tags), arxiv_id))


# -- review --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewCandidate:
    """A paper and a tag whose model score lies near the tag's threshold, with the paper's current tags."""

    arxiv_id: str
    title: str
    abstract: str
    tags: tuple[str, ...]
    tag: str
    score: float
    threshold: float


def review_candidates(db: Database, tags: Sequence[str], limit: int) -> list[ReviewCandidate]:
    """Up to `limit` (paper, tag) pairs of `tags` nearest their threshold first, leaving out any a person labelled.

    Only scores of the model that last tagged the paper count (`papers.tagged_by`).
    """
    if not tags:
        return []
    sql = f"""
        SELECT s.arxiv_id, p.title, p.abstract, p.tags, s.tag, s.score, s.threshold
        FROM tag_scores s JOIN papers p ON p.arxiv_id = s.arxiv_id AND p.tagged_by = s.model_id
        WHERE s.tag IN ({", ".join("?" * len(tags))}) AND s.score > 0 AND s.threshold > 0
          AND NOT EXISTS (SELECT 1 FROM manual_labels m WHERE m.arxiv_id = s.arxiv_id AND m.tag = s.tag)
        ORDER BY {REVIEW_DISTANCE_SQL}, s.tag, s.arxiv_id
        LIMIT ?
    """
    return [
        ReviewCandidate(r[0], r[1] or "", r[2] or "", tuple(json.loads(r[3] or "[]")), r[4], r[5], r[6])
        for r in db.conn.execute(sql, [*tags, limit])
    ]


def strongest_tagged(db: Database, limit: int = 5) -> list[dict[str, Any]]:
    """The papers with the highest model scores and their tags, for the demo's closing summary."""
    sql = """
        SELECT p.arxiv_id, p.title, p.tags, max(t.score) AS score
        FROM paper_tags t JOIN papers p ON p.arxiv_id = t.arxiv_id
        WHERE t.source = 'model' GROUP BY p.arxiv_id ORDER BY score DESC, p.arxiv_id LIMIT ?
    """
    return [
        {"arxiv_id": r[0], "title": r[1], "tags": json.loads(r[2] or "[]"), "score": r[3]}
        for r in db.conn.execute(sql, (limit,))
    ]
