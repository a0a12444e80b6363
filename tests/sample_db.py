"""Build a tracker database from the bundled real corpus, with tags, scores, announcements and sync runs.

Shared by the Datasette and export tests. Papers are the real recorded records of
`tracker/data/corpus.jsonl.gz`, written through `store.save_papers`; the tags come from a few
keyword rules (the classifier is not needed to exercise queries), with scores derived from the id
so every run builds the same database.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

from tracker import store
from tracker.config import DATA_DIR

# (tag, facet, pattern): enough tags to fill facets, feeds and the awesome list.
TAG_RULES = (
    ("M-CoT", "mllm", r"chain[- ]of[- ]thought|step-by-step reasoning|visual reasoning"),
    ("MIT", "mllm", r"instruction[- ]tun"),
    ("contrastive", "paradigm", r"\bCLIP\b|contrastive language"),
    ("hallucination", "topic", r"hallucinat"),
    ("evaluation", "topic", r"\bbenchmark"),
)
THRESHOLD = 0.5
SIMILAR_K = 3  # neighbours per paper in the sample (the engine keeps 10)
# Stands in for the relevance model: papers that say they are about multimodal or large language models.
MLLM_PATTERN = r"multi-?modal|vision[- ]language|large language model|\bLLMs?\b|\bMLLMs?\b"


def paper_row(rec: dict) -> dict:
    """A corpus record -> the PaperRow dict `save_papers` takes."""
    arxiv_id = rec["id"]
    version = int(str(rec.get("version") or "v1").lstrip("v") or 1)

    def ts(value: str | None) -> str | None:
        return value.replace("Z", "+00:00") if value else None

    categories = rec.get("categories") or [rec.get("primary_category")]
    return {
        "arxiv_id": arxiv_id,
        "version": version,
        "title": rec["title"],
        "abstract": rec.get("abstract") or "",
        "authors": rec.get("authors") or [],
        "primary_category": rec.get("primary_category"),
        "categories": [c for c in categories if c],
        "published": ts(rec.get("published")),
        "updated": ts(rec.get("updated")),
        "comment": rec.get("comment") or None,
        "abs_url": f"https://arxiv.org/abs/{arxiv_id}",
        "pdf_url": f"https://arxiv.org/pdf/{arxiv_id}v{version}",
        "announce_type": rec.get("announce_type"),
        "announced": rec.get("announced"),
        "needs_metadata": 0,
    }


def _score(arxiv_id: str, tag: str) -> float:
    digest = hashlib.sha256(f"{arxiv_id}:{tag}".encode()).digest()
    return round(0.2 + digest[0] / 255 * 0.75, 3)  # 0.2 .. 0.95, deterministic


def build_sample_db(path: Path, limit: int | None = None) -> Path:
    """Write the sample database at `path` and return it."""
    with gzip.open(DATA_DIR / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    records = records[:limit] if limit else records
    db = store.open_db(path)
    store.save_papers(db, [paper_row(r) for r in records], now="2026-07-01T06:00:00+00:00")
    tags: list[tuple] = []
    scores: list[tuple] = []
    for rec in records:
        text = f"{rec['title']} {rec.get('abstract') or ''}"
        for tag, facet, pattern in TAG_RULES:
            if re.search(pattern, text, re.IGNORECASE):
                score = _score(rec["id"], tag)
                scores.append((rec["id"], tag, score, THRESHOLD, "sample"))
                if score >= THRESHOLD:
                    tags.append((rec["id"], tag, facet, score, "model", "sample"))
    announced = [r for r in records if r.get("announced")]
    relevance = []
    for rec in records:
        text = f"{rec['title']} {rec.get('abstract') or ''}"
        about = bool(re.search(MLLM_PATTERN, text, re.IGNORECASE))
        score = _score(rec["id"], "relevance")
        relevance.append((score if about else score / 4, int(about), rec["id"]))
    with db.atomic():
        db.conn.executemany("INSERT INTO paper_tags VALUES (?, ?, ?, ?, ?, ?)", tags)
        db.conn.executemany("INSERT INTO tag_scores VALUES (?, ?, ?, ?, ?)", scores)
        db.conn.execute(
            "UPDATE papers SET tagged_by = 'sample', tags = COALESCE((SELECT json_group_array(tag) FROM "
            "(SELECT tag FROM paper_tags t WHERE t.arxiv_id = papers.arxiv_id ORDER BY tag)), '[]')"
        )
        db.conn.executemany("UPDATE papers SET relevance = ?, mllm = ? WHERE arxiv_id = ?", relevance)
        # Stand-in neighbours for the `similar` query: each paper's next papers in corpus order.
        ids = [rec["id"] for rec in records]
        db.conn.executemany(
            "INSERT INTO similar_papers VALUES (?, ?, ?, ?)",
            [
                (arxiv_id, rank, ids[(i + rank) % len(ids)], round(0.9 - rank * 0.05, 3))
                for i, arxiv_id in enumerate(ids)
                for rank in range(1, min(SIMILAR_K, len(ids) - 1) + 1)
            ],
        )
        db.conn.executemany(
            "INSERT OR IGNORE INTO announcements VALUES (?, ?, ?, ?, ?)",
            [
                (
                    r["id"],
                    paper_row(r)["version"],
                    r.get("announce_type") or "new",
                    r["announced"],
                    r["primary_category"],
                )
                for r in announced
            ],
        )
        db.conn.executemany(
            "INSERT INTO sync_runs (started, finished, source, query, new, updated, unchanged, requests, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    "2026-06-30T06:00:00+00:00",
                    "2026-06-30T06:02:11+00:00",
                    "rss",
                    "cs.CV",
                    120,
                    14,
                    3,
                    2,
                    "ok",
                ),
                (
                    "2026-07-01T06:00:00+00:00",
                    "2026-07-01T06:01:40+00:00",
                    "rss",
                    "cs.CV",
                    145,
                    0,
                    0,
                    2,
                    "ok",
                ),
            ],
        )
    db.close()
    return path
