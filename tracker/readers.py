"""A reader's library in the database: match each entry of their library file to a paper (by arXiv id,
else by title), fetch the papers the database lacks from arXiv (`id_list`), and store the result.

What could not be matched is kept with its line, so `tracker library` can say what was not understood.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from sqlite_utils import Database

from tracker import store
from tracker.fetch import PoliteSession, make_client
from tracker.library import Library, normalise_title
from tracker.parse import PaperRow
from tracker.sync import ID_BATCH, records_by_id

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
    words = " ".join(key.split()[:12])
    # The phrase first; the words in any order only when a stored title's LaTeX or punctuation splits
    # its words differently from the library's (`$\textit{S}^3$` against `S^3`).
    for phrase in (True, False):
        for arxiv_id, candidate in store.title_matches(db, words, phrase=phrase):
            if normalise_title(candidate) == key:
                return arxiv_id
    return None


def resolve(db: Database, library: Library, fetched: Collection[str] = ()) -> list[Resolved]:
    """Each entry matched against the database, without the network.

    :param fetched: ids just fetched from arXiv for this library: reported as `fetched`, not `matched`
    """
    out = []
    for e in library.entries:
        if e.arxiv_id:
            found = store.paper_exists(db, e.arxiv_id)
            status = (FETCHED if e.arxiv_id in fetched else MATCHED) if found else MISSING
            out.append(Resolved(e.line, e.arxiv_id, e.title or e.text, status))
            continue
        match = match_title(db, e.title) if e.title else None
        out.append(Resolved(e.line, match, e.text, MATCHED if match else UNMATCHED))
    return out


def fetch_missing(
    resolved: Sequence[Resolved],
    session: PoliteSession,
    api_url: str,
    report: Callable[[str], None] | None = None,
) -> list[PaperRow]:
    """The records of the entries' missing papers, fetched from arXiv by id (`id_list`, in batches).

    Only reads the network: the caller stores them (under the writer lock, which a slow arXiv must not
    hold up for the nightly sync)."""
    wanted = sorted({r.arxiv_id for r in resolved if r.status == MISSING and r.arxiv_id})
    rows: list[PaperRow] = []
    for asked, found in records_by_id(make_client(session, api_url, ID_BATCH), wanted):
        rows += found
        if report:
            report(f"asked arXiv for {asked}/{len(wanted)} library papers; {len(rows)} found")
    return rows


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
