"""Pure conversions from arXiv's formats to row dicts: API results, Atom pages, announcement feeds.

No I/O here. Rows are `PaperRow` dicts whose keys are the `papers` column names. Timestamps are
timezone-aware UTC rendered as ISO-8601 text; titles and abstracts have whitespace collapsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypedDict

import feedparser
from lxml import etree

from tracker.endpoints import abs_url, pdf_url
from tracker.errors import InputError
from tracker.ids import VERSION_SUFFIX, is_arxiv_id
from tracker.xmlsafe import check_xml

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"

ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")


class PaperRow(TypedDict, total=False):
    arxiv_id: str
    version: int
    title: str
    abstract: str
    authors: list[str]
    primary_category: str | None
    categories: list[str]
    published: str | None
    updated: str | None
    comment: str | None
    journal_ref: str | None
    doi: str | None
    abs_url: str | None
    pdf_url: str | None
    announce_type: str | None
    announced: str | None
    needs_metadata: int


@dataclass(frozen=True)
class Announcement:
    """One item of a daily announcement feed."""

    arxiv_id: str
    version: int
    announce_type: str
    announced: str  # YYYY-MM-DD
    row: PaperRow  # what the feed itself says about the paper (a stub until the API fills it)


@dataclass(frozen=True)
class AtomPage:
    """One page of an API response: its paging header and the rows it holds."""

    total_results: int
    start_index: int
    items_per_page: int
    rows: list[PaperRow]


def collapse(text: str | None) -> str:
    """Collapse runs of whitespace (arXiv wraps titles and abstracts) to single spaces."""
    if not text:
        return ""
    if "  " not in text and "\n" not in text and "\t" not in text and "\r" not in text:
        return text.strip()  # the common case, several times cheaper than split/join
    return " ".join(text.split())


def split_versioned_id(raw: str) -> tuple[str, int | None]:
    """`http://arxiv.org/abs/2301.01234v2` -> ("2301.01234", 2); old-style prefixes are kept."""
    text = raw.strip()
    for prefix in ("oai:arXiv.org:", "arXiv:", "arxiv:"):
        text = text.removeprefix(prefix)
    if "/abs/" in text:
        text = text.split("/abs/", 1)[1]
    match = VERSION_SUFFIX.search(text)
    if match:
        return text[: match.start()], int(match.group(1))
    return text, None


def check_id(arxiv_id: str, raw: str) -> None:
    """Refuse a record whose id is not an arXiv identifier: it would be stored, labelled and exported as one."""
    if not is_arxiv_id(arxiv_id):
        raise InputError(
            f"record id {raw!r} is not an arXiv identifier (like 2401.00001v2 or hep-th/9901001)"
        )


def iso_utc(value: datetime | None) -> str | None:
    """Aware datetime -> '2024-01-01T09:39:57+00:00' (UTC), None passes through."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def _parse_ts(text: str | None) -> str | None:
    if not text:
        return None
    text = text.strip()
    if len(text) == 20 and text[-1] == "Z" and text[10] == "T":
        return text[:-1] + "+00:00"  # arXiv's usual form, already UTC: no datetime round trip
    try:
        return iso_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def paper_row(
    arxiv_id: str,
    version: int | None,
    *,
    title: str | None,
    abstract: str | None,
    authors: list[str],
    categories: list[str],
    primary_category: str | None = None,
    published: str | None = None,
    updated: str | None = None,
    comment: str | None = None,
    journal_ref: str | None = None,
    doi: str | None = None,
    pdf: str | None = None,
) -> PaperRow:
    """The one PaperRow builder for every source (API result, Atom entry, feed item, OAI record).

    Whitespace is collapsed, empty optional text becomes None, a missing version is 1, and the links are
    arXiv's pages unless the source names its own PDF link (`pdf`).
    """
    version = version or 1
    return {
        "arxiv_id": arxiv_id,
        "version": version,
        "title": collapse(title),
        "abstract": collapse(abstract),
        "authors": authors,
        "primary_category": primary_category or None,
        "categories": categories,
        "published": published,
        "updated": updated,
        "comment": collapse(comment) or None,
        "journal_ref": collapse(journal_ref) or None,
        "doi": doi or None,
        "abs_url": abs_url(arxiv_id),
        "pdf_url": pdf or pdf_url(arxiv_id, version),
    }


def paper_from_result(result: Any) -> PaperRow:
    """An `arxiv.Result` -> PaperRow."""
    arxiv_id, version = split_versioned_id(result.entry_id)
    check_id(arxiv_id, result.entry_id)
    return paper_row(
        arxiv_id,
        version,
        title=result.title,
        abstract=result.summary,
        authors=[a.name for a in result.authors],
        categories=list(result.categories),
        primary_category=result.primary_category,
        published=iso_utc(result.published),
        updated=iso_utc(result.updated),
        comment=result.comment,
        journal_ref=result.journal_ref,
        doi=result.doi,
        pdf=result.pdf_url,
    )


def _entry_row(entry: etree._Element) -> PaperRow | None:
    """One Atom `<entry>` element -> PaperRow (same fields as paper_from_result).

    One pass over the children instead of a `find` per field: `sync --load` parses tens of thousands.
    """
    raw_id = title = summary = published = updated = comment = journal_ref = doi = primary = pdf_url = None
    authors: list[str] = []
    categories: list[str] = []
    for child in entry:
        tag = child.tag
        if tag == _ID:
            raw_id = child.text
        elif tag == _TITLE:
            title = child.text
        elif tag == _SUMMARY:
            summary = child.text
        elif tag == _AUTHOR:
            for name in child:
                if name.tag == _NAME:
                    authors.append(collapse(name.text))
        elif tag == _CATEGORY:
            term = child.get("term")
            if term:
                categories.append(term)
        elif tag == _PUBLISHED:
            published = child.text
        elif tag == _UPDATED:
            updated = child.text
        elif tag == _LINK:
            if child.get("title") == "pdf":
                pdf_url = child.get("href")
        elif tag == _PRIMARY:
            primary = child.get("term")
        elif tag == _COMMENT:
            comment = child.text
        elif tag == _JOURNAL:
            journal_ref = child.text
        elif tag == _DOI:
            doi = child.text
    if not raw_id or "/api/errors" in raw_id:
        return None
    arxiv_id, version = split_versioned_id(raw_id)
    check_id(arxiv_id, raw_id)
    return paper_row(
        arxiv_id,
        version,
        title=title,
        abstract=summary,
        authors=authors,
        categories=categories,
        primary_category=primary,
        published=_parse_ts(published),
        updated=_parse_ts(updated),
        comment=comment,
        journal_ref=journal_ref,
        doi=doi,
        pdf=pdf_url,
    )


_ID, _TITLE, _SUMMARY, _AUTHOR, _NAME = (f"{ATOM}{t}" for t in ("id", "title", "summary", "author", "name"))
_CATEGORY, _PUBLISHED, _UPDATED, _LINK = (f"{ATOM}{t}" for t in ("category", "published", "updated", "link"))
_PRIMARY, _COMMENT, _JOURNAL, _DOI = (
    f"{ARXIV}{t}" for t in ("primary_category", "comment", "journal_ref", "doi")
)


def api_error_message(root: etree._Element) -> str | None:
    """The message of an API error feed (`<entry><id>.../api/errors#...`), or None."""
    for entry in root.iterfind(f"{ATOM}entry"):
        if "/api/errors" in (entry.findtext(f"{ATOM}id") or ""):
            return collapse(entry.findtext(f"{ATOM}summary")) or "arXiv API error"
    return None


def page_from_root(root: etree._Element, source: str) -> AtomPage:
    """An already checked Atom root -> AtomPage."""
    if root.tag != f"{ATOM}feed":
        raise InputError(f"{source}: not an arXiv API Atom feed (root element {etree.QName(root).localname})")
    message = api_error_message(root)
    if message:
        raise InputError(f"{source}: arXiv API error: {message}")

    def number(tag: str) -> int:
        text = root.findtext(f"{OPENSEARCH}{tag}")
        try:
            return int(text.strip()) if text else 0
        except ValueError:
            return 0

    rows = [row for row in (_entry_row(e) for e in root.iterfind(f"{ATOM}entry")) if row]
    return AtomPage(number("totalResults"), number("startIndex"), number("itemsPerPage"), rows)


def _announce_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).date().isoformat()
    except (TypeError, ValueError):
        return None


def announcements_from_rss(content: bytes, source: str) -> tuple[str | None, list[Announcement]]:
    """An rss.arxiv.org feed (RSS 2.0) -> (channel date, announcements).

    The bytes are checked strictly first; feedparser then reads the arXiv extension elements.
    An empty feed (weekends, holidays: arXiv's `skipDays`) is a normal result, not an error.
    """
    root = check_xml(content, source)
    if root.tag not in (
        "rss",
        "{http://www.w3.org/2005/Atom}feed",
        "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}RDF",
    ):
        raise InputError(f"{source}: not an announcement feed (root element {etree.QName(root).localname})")
    parsed = feedparser.parse(content)
    channel_date = _announce_date(parsed.feed.get("published") or parsed.feed.get("updated"))
    items: list[Announcement] = []
    for entry in parsed.entries:
        raw_id = entry.get("id") or ""
        arxiv_id, version = split_versioned_id(raw_id)
        description = entry.get("summary", "")
        announce_type = (entry.get("arxiv_announce_type") or "").strip()
        if not announce_type:
            match = re.search(r"Announce Type:\s*([\w-]+)", description)
            announce_type = match.group(1) if match else ""
        if announce_type not in ANNOUNCE_TYPES:
            raise InputError(f"{source}: item {raw_id or '?'} has unknown announce type {announce_type!r}")
        if not is_arxiv_id(arxiv_id):
            raise InputError(f"{source}: item has an invalid arXiv id {raw_id!r}")
        abstract = description.split("Abstract:", 1)[1] if "Abstract:" in description else ""
        announced = _announce_date(entry.get("published")) or channel_date
        if announced is None:
            raise InputError(f"{source}: item {raw_id} has no announcement date")
        authors = [a.strip() for a in (entry.get("author") or "").split(",") if a.strip()]
        categories = [t.get("term") for t in entry.get("tags", []) if t.get("term")]
        # The feed names no dates but the announcement's, no comment, and its PDF link is always versioned.
        row = paper_row(
            arxiv_id,
            version,
            title=entry.get("title"),
            abstract=abstract,
            authors=authors,
            categories=categories,
            primary_category=categories[0] if categories else None,
            journal_ref=entry.get("arxiv_journal_reference"),
            doi=entry.get("arxiv_doi"),
        )
        row["announce_type"], row["announced"], row["needs_metadata"] = announce_type, announced, 1
        items.append(Announcement(arxiv_id, version or 1, announce_type, announced, row))
    return channel_date, items
