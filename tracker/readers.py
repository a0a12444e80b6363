"""A reader's library in the database: match each entry of their library file to a paper (by arXiv id,
else by title), fetch the papers the database lacks from arXiv (`id_list`), and store the result.

What could not be matched is kept with its line, so `tracker library` can say what was not understood.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import arxiv
from sqlite_utils import Database

from tracker import store
from tracker.fetch import PoliteSession, fetch_results, make_client
from tracker.library import Library, normalise_title
from tracker.parse import paper_from_result

ID_BATCH = 100  # ids per id_list request, as sync uses

# How an entry ended up; `missing`: an arXiv id the database lacks (offline, or arXiv did not know it).
MATCHED, FETCHED, MISSING, UNMATCHED = "matched", "fetched", "missing", "unmatched"


@dataclass
class Resolved:
    """One library entry and the paper it names, if any."""

    line: int
    arxiv_id: str | None
    entry: str
    status: str

    def row(self) -> tuple[int, str | None, str, str]:
        return (self.line, self.arxiv_id, self.entry, self.status)


def match_title(db: Database, title: str) -> str | None:
    """The paper whose title is this one, ignoring case, punctuation and LaTeX (full-text search finds
    the candidates, the normalised titles must then be equal)."""
    key = normalise_title(title)
    if not key:
        return None
    for arxiv_id, candidate in store.title_matches(db, " ".join(key.split()[:12])):
        if normalise_title(candidate) == key:
            return arxiv_id
    return None


def resolve(db: Database, library: Library) -> list[Resolved]:
    """Each entry matched against the database, without the network."""
    out = []
    for e in library.entries:
        if e.arxiv_id:
            status = MATCHED if store.paper_exists(db, e.arxiv_id) else MISSING
            out.append(Resolved(e.line, e.arxiv_id, e.text, status))
            continue
        found = match_title(db, e.title) if e.title else None
        out.append(Resolved(e.line, found, e.text, MATCHED if found else UNMATCHED))
    return out


def fetch_missing(
    db: Database,
    resolved: Sequence[Resolved],
    session: PoliteSession,
    api_url: str,
    report: Callable[[str], None] | None = None,
) -> int:
    """Fetch the entries' missing papers by id (`id_list`), store them, and mark those arXiv returned as
    fetched; returns how many were. Each batch is stored in one transaction."""
    wanted = sorted({r.arxiv_id for r in resolved if r.status == MISSING and r.arxiv_id})
    if not wanted:
        return 0
    client = make_client(session, api_url, ID_BATCH)
    for start in range(0, len(wanted), ID_BATCH):
        chunk = wanted[start : start + ID_BATCH]
        rows = [
            paper_from_result(r)
            for r in fetch_results(client, arxiv.Search(id_list=chunk, max_results=len(chunk)))
        ]
        with db.atomic():
            store.save_papers(db, rows)
        if report:
            report(f"fetched {min(start + ID_BATCH, len(wanted))}/{len(wanted)} library papers from arXiv")
    fetched = 0
    for r in resolved:
        if r.status == MISSING and r.arxiv_id and store.paper_exists(db, r.arxiv_id):
            r.status, fetched = FETCHED, fetched + 1
    return fetched


def summary(library: Library, resolved: Sequence[Resolved]) -> str:
    counts = {s: sum(r.status == s for r in resolved) for s in (MATCHED, FETCHED, MISSING, UNMATCHED)}
    said = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return f"{len(resolved)} entries ({library.format}): {said or 'none'}"


def problems(resolved: Sequence[Resolved]) -> list[str]:
    """One line per entry that names no paper of the database, with its line in the file."""
    lines = []
    for r in resolved:
        if r.status == UNMATCHED:
            lines.append(
                f"line {r.line}: no arXiv id, and no paper in the database has this title: {r.entry}"
            )
        elif r.status == MISSING:
            lines.append(f"line {r.line}: {r.arxiv_id} is not in the database ({r.entry})")
    return lines
