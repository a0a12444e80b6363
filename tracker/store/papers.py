"""Papers: storing API records and feed announcements under one precedence rule, versions, authors, and the
reads of paper rows (texts for the classifier, day-by-day windows for digests and status, exports).

Multi-row writes happen inside one transaction each, so a run killed at any instant leaves either all of a
batch or none of it. The write path is the ingest hot loop (bench/bench_sync.py keeps it within 3x of a
bare parse + executemany), so it speaks SQL to the connection directly rather than through table objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from tracker.parse import Announcement, PaperRow
from tracker.store.core import utcnow

# The columns a PaperRow fills, in the order _UPSERT_SQL binds them (other stages own the rest).
PAPER_COLUMNS = (
    "arxiv_id",
    "version",
    "title",
    "abstract",
    "authors",
    "primary_category",
    "categories",
    "published",
    "updated",
    "comment",
    "journal_ref",
    "doi",
    "abs_url",
    "pdf_url",
    "announce_type",
    "announced",
    "needs_metadata",
)

# The day a paper counts for in a digest or a trend: its announcement date (RSS), else the date of
# its current version (API records carry no announcement date).
EVENT_DATE_SQL = "COALESCE(p.announced, substr(p.updated, 1, 10), substr(p.published, 1, 10))"
# Spelled exactly as the expression index idx_papers_event_day (migration m007), so a window is an
# index range scan: keep the two in step (SQLite matches the expression, not its meaning).
IN_WINDOW_SQL = f"{EVENT_DATE_SQL} BETWEEN :since AND :until"


@dataclass
class Counts:
    """What a write did: papers new to the database, updated to a newer version, or already current."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def __iadd__(self, other: Counts) -> Counts:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self

    @property
    def total(self) -> int:
        return self.new + self.updated + self.unchanged


_UPSERT_SQL = """
INSERT INTO papers ({cols}, first_seen) VALUES ({marks}, ?)
ON CONFLICT(arxiv_id) DO UPDATE SET
    version = excluded.version, title = excluded.title, abstract = excluded.abstract,
    authors = excluded.authors, primary_category = COALESCE(excluded.primary_category, papers.primary_category),
    categories = CASE WHEN excluded.categories = '[]' THEN papers.categories ELSE excluded.categories END,
    published = COALESCE(excluded.published, papers.published), updated = COALESCE(excluded.updated, papers.updated),
    comment = excluded.comment, journal_ref = excluded.journal_ref, doi = excluded.doi,
    abs_url = excluded.abs_url, pdf_url = excluded.pdf_url,
    announce_type = COALESCE(excluded.announce_type, papers.announce_type),
    announced = COALESCE(excluded.announced, papers.announced),
    needs_metadata = excluded.needs_metadata,
    tagged_by = CASE WHEN papers.title = excluded.title AND papers.abstract = excluded.abstract
                     THEN papers.tagged_by ELSE NULL END
""".format(cols=", ".join(PAPER_COLUMNS), marks=", ".join("?" for _ in PAPER_COLUMNS))
# Which rows reach _UPSERT_SQL is decided once, by _supersedes; its COALESCEs keep what a feed stub lacks, so
# these columns keep the stored value when the incoming row has none.
_KEPT_IF_MISSING = {"primary_category", "published", "updated", "announce_type", "announced"}


def _papers_by_id(db: Database, columns: str, ids: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """Rows (arxiv_id, *columns) of those `ids` that are stored, 500 ids per query (SQLite's variable limit)."""
    id_list = list(ids)
    for start in range(0, len(id_list), 500):
        chunk = id_list[start : start + 500]
        marks = ",".join("?" for _ in chunk)
        yield from db.conn.execute(
            f"SELECT arxiv_id, {columns} FROM papers WHERE arxiv_id IN ({marks})", chunk
        )


def _supersedes(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """Whether storing `new` over `old` changes it (both as column -> stored value): the one precedence rule.

    A newer version always wins and an older one never does. At the same version a feed stub never replaces
    a full record, a full record completes a stub, and a full record with other metadata updates (arXiv
    adds a journal reference or DOI without a new version); an identical one leaves the row as it is.
    """
    if old is None or new["version"] != old["version"]:
        return old is None or new["version"] > old["version"]
    if new["needs_metadata"]:
        return False
    if old["needs_metadata"]:
        return True
    return any(
        new[col] != old[col]
        for col in PAPER_COLUMNS[2:]
        if not (new[col] is None and col in _KEPT_IF_MISSING)
        and not (col == "categories" and new[col] == "[]")
    )


def save_papers(db: Database, rows: Iterable[PaperRow], now: str | None = None) -> Counts:
    """Upsert paper rows in one transaction, by `_supersedes`: an older version never replaces a newer one.

    Each new version is also recorded in `paper_versions`, and authors are linked many-to-many.
    """
    now = now or utcnow()
    best: dict[str, PaperRow] = {}
    for row in rows:  # the row of each id that wins over the batch's others, later rows winning ties
        seen = best.get(row["arxiv_id"])
        if seen is None or _supersedes(_stored_form(row), _stored_form(seen)):
            best[row["arxiv_id"]] = row
    counts = Counts()
    with db.atomic():  # read and write in one transaction: what was compared is what gets replaced
        existing = {
            r[0]: dict(zip(PAPER_COLUMNS, r, strict=True))
            for r in _papers_by_id(db, ", ".join(PAPER_COLUMNS[1:]), list(best))
        }
        changed: list[PaperRow] = []
        for arxiv_id, row in best.items():
            old = existing.get(arxiv_id)
            # A paper not stored yet is new whatever it holds: no stored form to build (the ingest hot path).
            if old is not None and not _supersedes(_stored_form(row), old):
                counts.unchanged += 1
                continue
            if old is None:
                counts.new += 1
            else:
                counts.updated += 1
            changed.append(row)
        if not changed:
            return counts
        new_ids = json.dumps([row["arxiv_id"] for row in changed if row["arxiv_id"] not in existing])
        db.conn.execute("INSERT INTO fts_bulk (active) VALUES (1)")
        db.conn.executemany(_UPSERT_SQL, (_paper_values(row, now) for row in changed))
        db.conn.execute("DELETE FROM fts_bulk")
        db.conn.execute(
            "INSERT INTO papers_fts (rowid, title, abstract) SELECT rowid, title, abstract FROM papers "
            "WHERE arxiv_id IN (SELECT value FROM json_each(?))",
            (new_ids,),
        )
        db.conn.executemany(
            "INSERT OR IGNORE INTO paper_versions (arxiv_id, version, updated, first_seen) VALUES (?, ?, ?, ?)",
            (
                (r["arxiv_id"], r["version"], r.get("updated"), now)
                for r in changed
                if not r.get("needs_metadata")
            ),
        )
        _link_authors(db, changed, [row["arxiv_id"] for row in changed if row["arxiv_id"] in existing])
    return counts


def _stored_form(row: PaperRow) -> dict[str, Any]:
    """`row` as the papers table would hold it (lists as JSON text, needs_metadata as 0/1)."""
    return dict(zip(PAPER_COLUMNS, _paper_values(row, ""), strict=False))


def _paper_values(row: PaperRow, now: str) -> tuple[Any, ...]:
    values: list[Any] = []
    for col in PAPER_COLUMNS:
        value = row.get(col)
        if col in ("authors", "categories"):
            value = json.dumps(value or [], ensure_ascii=False)
        elif col == "needs_metadata":
            value = 1 if value else 0
        values.append(value)
    values.append(now)
    return tuple(values)


def _link_authors(db: Database, rows: Sequence[PaperRow], known_ids: Sequence[str]) -> None:
    names = {name for row in rows for name in row.get("authors") or [] if name}
    if not names:
        return
    conn = db.conn
    conn.executemany("INSERT OR IGNORE INTO authors (name) VALUES (?)", ((n,) for n in names))
    ids: dict[str, int] = {}
    name_list = list(names)
    for start in range(0, len(name_list), 500):
        chunk = name_list[start : start + 500]
        marks = ",".join("?" for _ in chunk)
        ids.update(conn.execute(f"SELECT name, id FROM authors WHERE name IN ({marks})", chunk).fetchall())
    # Only papers that were stored before can have old links; new ones skip the DELETE.
    conn.executemany("DELETE FROM paper_authors WHERE arxiv_id = ?", ((i,) for i in known_ids))
    conn.executemany(
        "INSERT OR IGNORE INTO paper_authors (arxiv_id, author_id, position) VALUES (?, ?, ?)",
        (
            (row["arxiv_id"], ids[name], position)
            for row in rows
            for position, name in enumerate(row.get("authors") or [])
            if name in ids
        ),
    )


def save_announcements(
    db: Database, items: Sequence[Announcement], feed: str, now: str | None = None
) -> Counts:
    """Record a feed's announcements and store a stub for each paper the database lacks (or has older).

    Stubs carry `needs_metadata = 1` until `papers_needing_metadata` is fetched from the API.
    Returns counts of stub papers new / updated / unchanged, all in one transaction.
    """
    now = now or utcnow()
    with db.atomic():
        db.conn.executemany(
            "INSERT OR REPLACE INTO announcements (arxiv_id, version, announce_type, announced, feed) "
            "VALUES (?, ?, ?, ?, ?)",
            ((a.arxiv_id, a.version, a.announce_type, a.announced, feed) for a in items),
        )
        counts = save_papers(db, [a.row for a in items], now)
        # A paper we already hold at this version still gets its latest announcement type and date.
        db.conn.executemany(
            "UPDATE papers SET announce_type = ?, announced = ? WHERE arxiv_id = ? AND version <= ? "
            "AND (announced IS NULL OR announced <= ?)",
            ((a.announce_type, a.announced, a.arxiv_id, a.version, a.announced) for a in items),
        )
    return counts


def save_paper_versions(
    db: Database, versions: Iterable[tuple[str, int, str | None]], now: str | None = None
) -> int:
    """Record earlier versions (arXivRaw history) in `paper_versions`; known ones are left as they are."""
    now = now or utcnow()
    with db.atomic():
        cursor = db.conn.executemany(
            "INSERT OR IGNORE INTO paper_versions (arxiv_id, version, updated, first_seen) VALUES (?, ?, ?, ?)",
            ((arxiv_id, version, updated, now) for arxiv_id, version, updated in versions),
        )
    return max(cursor.rowcount, 0)


def papers_needing_metadata(db: Database) -> list[str]:
    """Ids seen only in a feed so far, whose full record must come from the API."""
    return [
        r[0]
        for r in db.conn.execute("SELECT arxiv_id FROM papers WHERE needs_metadata = 1 ORDER BY arxiv_id")
    ]


def paper_exists(db: Database, arxiv_id: str) -> bool:
    """Whether the database holds `arxiv_id` (as a full record or a feed stub)."""
    return db.table("papers").count_where("arxiv_id = ?", [arxiv_id]) > 0


def paper_texts(db: Database, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """{arxiv_id: (title, abstract)} for those of `ids` in the database."""
    return {
        arxiv_id: (title, abstract) for arxiv_id, title, abstract in _papers_by_id(db, "title, abstract", ids)
    }


# -- reads by event day (digest, trends, status) ------------------------------------------------


def tagged_papers_between(db: Database, since: str, until: str) -> list[dict[str, Any]]:
    """Papers whose event day lies in [since, until] (YYYY-MM-DD, inclusive), one row per tag they carry."""
    sql = f"""
        SELECT p.arxiv_id, p.version, p.title, p.abstract, p.authors, p.primary_category, p.published,
               p.updated, p.announced, p.announce_type, p.abs_url, p.mllm, p.relevance,
               t.tag, t.facet, t.score, t.source
        FROM papers p JOIN paper_tags t ON t.arxiv_id = p.arxiv_id
        WHERE {IN_WINDOW_SQL} AND p.needs_metadata = 0
    """
    return list(db.query(sql, {"since": since, "until": until}))


def papers_between_count(db: Database, since: str, until: str) -> int:
    """How many papers (tagged or not) have their event day in [since, until]."""
    sql = f"SELECT count(*) FROM papers p WHERE {IN_WINDOW_SQL}"
    return int(db.conn.execute(sql, {"since": since, "until": until}).fetchone()[0])


def tag_counts_by_week(
    db: Database, since: str, until: str, mllm_only: bool = False
) -> list[tuple[str, str, int]]:
    """(tag, Monday of the ISO week, papers) for every tag and week with papers in [since, until].

    :param mllm_only: count only papers the relevance score calls MLLM work (`mllm = 1`), as the
        digest's task sections list them
    """
    # date(d, 'weekday 0', '-6 days'): the Sunday on or after d, minus six days = that week's Monday.
    sql = f"""
        SELECT t.tag, date({EVENT_DATE_SQL}, 'weekday 0', '-6 days') AS monday, count(*)
        FROM papers p JOIN paper_tags t ON t.arxiv_id = p.arxiv_id
        WHERE {IN_WINDOW_SQL}{" AND p.mllm = 1" if mllm_only else ""}
        GROUP BY t.tag, monday
    """
    return [(r[0], r[1], int(r[2])) for r in db.conn.execute(sql, {"since": since, "until": until})]


def papers_per_day(db: Database, since: str, until: str) -> dict[str, int]:
    """{YYYY-MM-DD: papers} by event day in [since, until]."""
    sql = f"SELECT {EVENT_DATE_SQL} AS day, count(*) FROM papers p WHERE {IN_WINDOW_SQL} GROUP BY day"
    return {r[0]: int(r[1]) for r in db.conn.execute(sql, {"since": since, "until": until})}


def newest_announced(db: Database) -> str | None:
    """The latest announcement date held (feeds), or None if only API records were ever stored."""
    row = db.conn.execute(
        "SELECT max(d) FROM (SELECT max(announced) AS d FROM papers UNION ALL SELECT max(announced) FROM announcements)"
    ).fetchone()
    return row[0] if row else None


def newest_updated(db: Database) -> str | None:
    """The latest version timestamp held (ISO UTC), or None for an empty database."""
    row = db.conn.execute("SELECT max(updated) FROM papers WHERE needs_metadata = 0").fetchone()
    return row[0] if row else None


# -- export --------------------------------------------------------------------------------------


def papers_for_export(
    db: Database, tag: str | None = None, since: str | None = None
) -> Iterator[dict[str, Any]]:
    """Full-metadata papers (newest first) with `tags` = [{tag, facet, score, source}], optionally one tag's only.

    A generator: rows are read as they are written out, so exporting a million papers does not hold them.

    :param since: YYYY-MM-DD; keeps papers whose event day (as in the digest) is on or after it.
    """
    where = ["p.needs_metadata = 0"]
    params: list[Any] = []
    if tag:
        where.append("EXISTS (SELECT 1 FROM paper_tags x WHERE x.arxiv_id = p.arxiv_id AND x.tag = ?)")
        params.append(tag)
    if since:
        where.append(f"{EVENT_DATE_SQL} >= ?")
        params.append(since)
    sql = f"""
        SELECT p.*, {EVENT_DATE_SQL} AS day,
               (SELECT json_group_array(json_object('tag', t.tag, 'facet', t.facet, 'score', t.score,
                                                    'source', t.source))
                FROM (SELECT * FROM paper_tags t WHERE t.arxiv_id = p.arxiv_id ORDER BY t.score DESC) t
               ) AS tag_list
        FROM papers p
        WHERE {" AND ".join(where)}
        ORDER BY day DESC, p.arxiv_id DESC
    """
    for row in db.query(sql, params):
        row = dict(row)
        for key in ("authors", "categories"):
            row[key] = json.loads(row[key] or "[]")
        row["tags"] = json.loads(row.pop("tag_list") or "[]")
        yield row
