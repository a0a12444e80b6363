"""Datasette plugin: the `.atom` output (datasette-atom's column convention) that answers for any tag.

datasette-atom 0.9 answers HTTP 500 when a query returns no rows (it takes the max of no dates), so
`tag_feed.atom?tag=...` failed for a tag without papers yet, or typed in another case; and it titles
every feed of a canned query with the query's title, whichever tag it follows. This renderer takes
its place (at startup, so it wins whatever order plugins load in): an empty query gives a valid empty
feed, and a feed with a `tag` parameter is titled with the tag as the database spells it
("New papers by tag: MIT" for `?tag=mit`). Columns are those of datasette-atom: atom_id, atom_title,
atom_updated, optional atom_link, atom_author_name, atom_content (text) or atom_content_html.
HTML content is cleaned down to paragraphs and http(s) links: anything else, an injected `<img>`
included, is escaped into visible text, never kept as markup.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import bleach
from datasette import __version__, hookimpl
from datasette.app import Datasette
from datasette.utils.asgi import Response
from feedgen.feed import FeedGenerator

REQUIRED_COLUMNS = {"atom_id", "atom_updated", "atom_title"}
ALLOWED_TAGS = {"p", "a", "br"}
ALLOWED_ATTRIBUTES = {"a": ["href"]}
ALLOWED_PROTOCOLS = {"http", "https"}
# The canonical spelling of a tag typed in any case: the exact match uses the tag index; a miss
# compares the distinct tags, walked one index seek each, without regard to case.
TAG_SQL = """
with recursive tag_names(tag) as (
  select (select min(tag) from paper_tags)
  union all
  select (select min(tag) from paper_tags where tag > tag_names.tag) from tag_names
  where tag_names.tag is not null
)
select coalesce(
  (select tag from paper_tags where tag = :tag limit 1),
  (select tag from tag_names where tag = :tag collate nocase limit 1),
  :tag
)
"""


def clean(html: str) -> str:
    return bleach.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, protocols=ALLOWED_PROTOCOLS)


async def feed_title(
    datasette: Datasette, request: Any, database: str, query_name: str | None, sql: str
) -> str:
    if not query_name:
        return request.args.get("_feed_title") or sql
    query = (datasette.metadata("queries", database=database) or {}).get(query_name) or {}
    title = (query.get("title") or query_name) if isinstance(query, dict) else query_name
    tag = (request.args.get("tag") or "").strip()
    if tag:
        rows = await datasette.get_database(database).execute(TAG_SQL, {"tag": tag})
        title = f"{title}: {rows.first()[0]}"
    return str(title)


async def render_atom(
    datasette: Datasette,
    request: Any,
    sql: str,
    columns: list[str],
    rows: list[Any],
    database: str,
    query_name: str | None,
) -> Response:
    if not REQUIRED_COLUMNS.issubset(columns):
        return Response.text(
            f"SQL query must return columns {', '.join(sorted(REQUIRED_COLUMNS))}", status=400
        )
    now = datetime.now(timezone.utc).replace(microsecond=0)
    fg = FeedGenerator()
    fg.generator(generator="Datasette", version=__version__, uri="https://github.com/simonw/datasette")
    fg.id(request.url)
    fg.link(href=request.url, rel="self")
    fg.title(await feed_title(datasette, request, database, query_name, sql))
    dates = [row["atom_updated"] for row in rows if row["atom_updated"]]
    fg.updated(max(dates) if dates else now)  # an empty feed is valid; it was updated now
    for row in reversed(rows):  # feedgen lists the last entry added first
        entry = fg.add_entry()
        entry.id(str(row["atom_id"]))
        entry.title(str(row["atom_title"]))
        entry.updated(row["atom_updated"] or fg.updated())
        if "atom_content_html" in columns and row["atom_content_html"]:
            entry.content(clean(str(row["atom_content_html"])), type="html")
        elif "atom_content" in columns and row["atom_content"]:
            entry.content(str(row["atom_content"]), type="text")
        if "atom_link" in columns and row["atom_link"]:
            entry.link(href=str(row["atom_link"]))
        if "atom_author_name" in columns and row["atom_author_name"]:
            entry.author({"name": str(row["atom_author_name"])})
    return Response(fg.atom_str(pretty=True), content_type="application/xml; charset=utf-8", status=200)


def can_render_atom(columns: list[str]) -> bool:
    return REQUIRED_COLUMNS.issubset(columns)


@hookimpl
def startup(datasette: Datasette) -> None:
    # Registered here rather than through register_output_renderer: with datasette-atom installed
    # both would claim `.atom`, and which one Datasette keeps would depend on plugin load order.
    datasette.renderers["atom"] = (render_atom, can_render_atom)
