"""Datasette plugin: make paper rows readable: short arXiv links, JSON lists as text, folded abstracts.

Datasette links any URL-looking value already; this shows "arXiv:2301.01234" and "PDF" instead of
full addresses, `["M-CoT", "MIT"]` as "M-CoT, MIT", long author lists as "A, B, C et al. (12)",
and wraps abstracts in a block that tracker.css folds to a few lines (hover to read it all).
Only arXiv addresses (https://arxiv.org/..., http(s)://export.arxiv.org/...) become links; any other
value of a URL column is shown as plain text, so a hostile record cannot send readers elsewhere (left
to Datasette, an https value of any site would be linked). All text is escaped.
"""

from __future__ import annotations

import json
from typing import Any

from datasette import hookimpl
from markupsafe import Markup, escape

ARXIV_PREFIXES = ("https://arxiv.org/", "https://export.arxiv.org/", "http://export.arxiv.org/")
URL_COLUMNS = {"abs_url", "pdf_url", "atom_link", "atom_id"}
LIST_COLUMNS = {"tags", "categories", "authors"}
MAX_AUTHORS = 3


@hookimpl
def render_cell(value: Any, column: str) -> Markup | None:
    if not isinstance(value, str):
        return None
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
