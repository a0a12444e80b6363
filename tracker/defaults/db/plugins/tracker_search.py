"""Datasette plugin: the papers table page a reader lands on: its search box, and the columns shown first.

Datasette's table search sorts every match by date and counts them all. On a million papers a common
word ("model", in 79 % of them) takes 2.5 s to list and 1.2 s to count, so the page fails at the time
limit. The canned query answers a search of words in 5-21 ms there (it walks the full-text index from
the most recently added match and stops) and shows each hit's tags. A search with nothing else in the address (no filters, no
facets, no paging) is redirected to it; a search combined with filters stays on the table page, which
can apply them, and the JSON API is left alone. Only databases that have the canned query are
redirected, and Datasette's `base_url` setting is honoured on both sides.

Datasette 0.65 metadata cannot order or hide a table's columns, so the HTML page of the papers table
without a column choice of its own is answered as if it asked for `DEFAULT_COLUMNS` (`?_col=...`):
title, tags and dates first, the tracker's bookkeeping columns (needs_metadata, first_seen, tagged_by,
announce_type) left out. Any `_col`/`_nocol` in the address is the reader's choice and is kept; JSON,
CSV and SQL always have every column.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from datasette import hookimpl
from datasette.app import Datasette

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]
TABLE = "papers"
QUERY = "search_with_tags"
# What the table's own search form sends once Datasette has tidied it: the search and the table's
# default order (metadata: sort_desc published). A sort the user picked keeps them on the table page.
PLAIN_SEARCH = {("_sort_desc", "published")}
# After the primary key (arxiv_id), which Datasette always shows first.
DEFAULT_COLUMNS = (
    "title",
    "tags",
    "mllm",
    "announced",
    "published",
    "updated",
    "primary_category",
    "authors",
    "abstract",
    "abs_url",
    "pdf_url",
    "categories",
    "comment",
    "journal_ref",
    "doi",
    "version",
    "relevance",
)
COLUMN_CHOICES = {"_col", "_nocol", "_format"}
TABLE_PATH = re.compile(r"^/(?P<database>[^/]+)/" + TABLE + r"/?$")


def search_target(datasette: Datasette, path: str, query_string: str) -> str | None:
    """The canned query's address for a plain table search, else None."""
    base_url = datasette.setting("base_url") or "/"
    if base_url != "/" and path.startswith(base_url):  # as Datasette's own router strips it
        path = "/" + path[len(base_url) :]
    match = TABLE_PATH.match(path)
    if not match or not _has_query(datasette, match["database"]):
        return None
    params = parse_qsl(query_string, keep_blank_values=True)
    search = [value for key, value in params if key == "_search"]
    others = [(key, value) for key, value in params if key != "_search"]
    # Datasette tidies the table's form with a redirect that keeps the default columns added below
    if [value for key, value in others if key == "_col"] == list(DEFAULT_COLUMNS):
        others = [(key, value) for key, value in others if key != "_col"]
    if len(search) != 1 or not search[0].strip() or any(p not in PLAIN_SEARCH for p in others):
        return None
    return f"{datasette.urls.database(match['database'])}/{QUERY}?{urlencode({'q': search[0]})}"


def with_default_columns(datasette: Datasette, path: str, query_string: str) -> str | None:
    """The query string with the default columns added, for the papers table page; None to leave it."""
    base_url = datasette.setting("base_url") or "/"
    if base_url != "/" and path.startswith(base_url):
        path = "/" + path[len(base_url) :]
    match = TABLE_PATH.match(path)
    if not match or match["database"] not in datasette.databases:
        return None
    params = parse_qsl(query_string, keep_blank_values=True)
    if any(key in COLUMN_CHOICES for key, _ in params):
        return None
    return urlencode([*params, *(("_col", column) for column in DEFAULT_COLUMNS)])


def _has_query(datasette: Datasette, database: str) -> bool:
    if database not in datasette.databases:
        return False
    return QUERY in (datasette.metadata("queries", database=database) or {})


@hookimpl
def asgi_wrapper(datasette: Datasette) -> Callable[[ASGIApp], ASGIApp]:
    def wrap(app: ASGIApp) -> ASGIApp:
        async def redirect_table_search(
            scope: MutableMapping[str, Any],
            receive: Callable[[], Awaitable[Any]],
            send: Callable[[Any], Awaitable[None]],
        ) -> None:
            target = None
            if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
                query_string = scope.get("query_string", b"").decode("latin-1")
                target = search_target(datasette, scope["path"], query_string)
            if target is None:
                if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
                    query_string = scope.get("query_string", b"").decode("latin-1")
                    columns = with_default_columns(datasette, scope["path"], query_string)
                    if columns is not None:
                        scope = {**scope, "query_string": columns.encode("latin-1")}
                await app(scope, receive, send)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 302,
                    "headers": [(b"location", target.encode("latin-1")), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})

        return redirect_table_search

    return wrap
