"""Datasette plugin: make paper rows readable: short arXiv links, JSON lists as text, folded abstracts.

Datasette links any URL-looking value already; this shows "arXiv:2301.01234" and "PDF" instead of
full addresses, `["M-CoT", "MIT"]` as "M-CoT, MIT", long author lists as "A, B, C et al. (12)",
and wraps abstracts in a block that tracker.css folds to a few lines (hover to read it all).
Only arXiv addresses (https://arxiv.org/..., http(s)://export.arxiv.org/...) become links; any other
value of a URL column is shown as plain text, so a hostile record cannot send readers elsewhere (left
to Datasette, an https value of any site would be linked). All text is escaped.

Each title in the papers table (its table pages and row pages) is followed by a small "similar" link to
the `similar` canned query for that paper (issue 15). The link goes on the title because Datasette
renders a table's primary key (`arxiv_id`) as the row link itself, without asking plugins.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from datasette import hookimpl
from datasette.app import Datasette
from markupsafe import Markup, escape

ARXIV_PREFIXES = ("https://arxiv.org/", "https://export.arxiv.org/", "http://export.arxiv.org/")
URL_COLUMNS = {"abs_url", "pdf_url", "atom_link", "atom_id"}
LIST_COLUMNS = {"tags", "categories", "authors"}
MAX_AUTHORS = 3
PAPERS_TABLE = "papers"
SIMILAR_QUERY = "similar"


def similar_url(datasette: Datasette, database: str, arxiv_id: str) -> str | None:
    """The address of the `similar` query for a paper, or None when the database has no such query."""
    if SIMILAR_QUERY not in (datasette.metadata("queries", database=database) or {}):
        return None
    return f"{datasette.urls.database(database)}/{SIMILAR_QUERY}?{urlencode({'id': arxiv_id})}"


@hookimpl
def render_cell(
    row: Any, value: Any, column: str, table: str | None, database: str, datasette: Datasette
) -> Markup | None:
    if not isinstance(value, str):
        return None
    if column == "title" and table == PAPERS_TABLE:
        return _title_with_similar_link(row, value, database, datasette)
    if column in URL_COLUMNS:
        if not value.startswith(ARXIV_PREFIXES) or any(c.isspace() for c in value):
            return escape(value)
        text = "PDF" if column == "pdf_url" else "arXiv:" + value.rsplit("/abs/", 1)[-1]
        return Markup('<a href="{}">{}</a>').format(value, text)
    if column == "abstract":
        return Markup('<div class="abstract">{}</div>').format(value)
    if column in LIST_COLUMNS and value.startswith("["):
        try:
            items = json.loads(value)
        except ValueError:
            return None
        if not isinstance(items, list):
            return None
        if column == "authors" and len(items) > MAX_AUTHORS:
            return escape(", ".join(map(str, items[:MAX_AUTHORS])) + f" et al. ({len(items)})")
        return escape(", ".join(map(str, items)))
    return None


def _title_with_similar_link(row: Any, title: str, database: str, datasette: Datasette) -> Markup | None:
    try:
        arxiv_id = row["arxiv_id"]
    except (IndexError, KeyError):  # a column choice without the key: just the title
        return None
    url = similar_url(datasette, database, arxiv_id) if isinstance(arxiv_id, str) else None
    if url is None:
        return None
    return Markup('{} <small><a class="similar" href="{}">similar</a></small>').format(title, url)
