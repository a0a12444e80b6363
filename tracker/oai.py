"""OAI-PMH harvesting from arXiv: fetch one ListRecords page at a time and turn its records into PaperRows.

The HTTP part (`OaiClient`) sends ListRecords requests through a session it is given: the CLI hands it
the sync's `PoliteSession`, which keeps arXiv's 3-second spacing and honours `Retry-After` on 503 (arXiv's
OAI server uses 503 for flow control). The parsing part is pure: bytes in,
`OaiPage` out, after `check_xml` has refused entity declarations. Both `arXiv` (structured authors,
latest version only) and `arXivRaw` (authors as one string, every version with its date) are read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests
from lxml import etree

from tracker.config import USER_AGENT_BASE
from tracker.endpoints import DEFAULT_OAI_URL, pdf_url
from tracker.errors import FetchError, InputError
from tracker.parse import PaperRow, check_id, collapse, iso_utc, paper_row, split_versioned_id
from tracker.xmlsafe import check_xml

log = logging.getLogger(__name__)

METADATA_PREFIXES = ("arXiv", "arXivRaw")
OAI_NS = "{http://www.openarchives.org/OAI/2.0/}"
USER_AGENT = f"{USER_AGENT_BASE} oai-backfill"


class BadResumptionToken(FetchError):
    """The server no longer knows the token (expired daily at arXiv): the window must start again."""


@dataclass
class OaiPage:
    """One ListRecords response, already filtered to the wanted categories."""

    rows: list[PaperRow] = field(default_factory=list)
    # Earlier versions of the kept records (arXivRaw only): (arxiv_id, version, date) each.
    versions: list[tuple[str, int, str | None]] = field(default_factory=list)
    token: str | None = None  # resumption token of the next page; None ends the list
    records: int = 0  # records on the page before filtering (deleted ones included)
    deleted: int = 0
    cursor: int | None = None  # from the token's attributes, when the server gives them
    complete_size: int | None = None


# -- HTTP --------------------------------------------------------------------------------------


class OaiClient:
    """ListRecords requests to one OAI-PMH base URL through a polite session.

    Spacing, timeouts, retries and `Retry-After` belong to the session (`tracker.fetch.PoliteSession`
    in the CLI), so the API sync and the backfill are polite in exactly the same way.
    """

    def __init__(self, session: requests.Session, base_url: str = DEFAULT_OAI_URL) -> None:
        self.session = session
        self.base_url = base_url
        self.requests = 0

    def list_records(
        self, prefix: str, set_spec: str | None, from_: str | None, until: str | None, token: str | None
    ) -> bytes:
        """The body of one ListRecords page: the first of a window, or the one `token` points to."""
        if token:
            # OAI-PMH: resumptionToken is an exclusive argument, nothing else may accompany it.
            params = {"verb": "ListRecords", "resumptionToken": token}
        else:
            params = {"verb": "ListRecords", "metadataPrefix": prefix}
            if set_spec:
                params["set"] = set_spec
            if from_:
                params["from"] = from_
            if until:
                params["until"] = until
        self.requests += 1
        log.info("ListRecords %s", params)
        return self.session.get(self.base_url, params=params).content


# -- parsing -----------------------------------------------------------------------------------


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _children(element: etree._Element | None) -> dict[str, etree._Element]:
    """First child of each local name: arXiv's record formats repeat no field except author/version."""
    found: dict[str, etree._Element] = {}
    if element is None:
        return found
    for child in element:
        if isinstance(child.tag, str):
            found.setdefault(_local(child), child)
    return found


def _text(fields: dict[str, etree._Element], name: str) -> str | None:
    element = fields.get(name)
    if element is None:
        return None
    return collapse("".join(element.itertext())) or None


def _date_iso(text: str | None) -> str | None:
    """'2017-06-16' (arXiv format) -> '2017-06-16T00:00:00+00:00'."""
    if not text:
        return None
    try:
        return iso_utc(datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=timezone.utc))
    except ValueError:
        return None


def _rfc_date_iso(text: str | None) -> str | None:
    """'Mon, 2 Apr 2007 19:18:42 GMT' (arXivRaw version dates) -> ISO UTC."""
    if not text:
        return None
    try:
        return iso_utc(parsedate_to_datetime(text.strip()))
    except (TypeError, ValueError):
        return None


def split_raw_authors(text: str | None) -> list[str]:
    """arXivRaw's 'A. One, B. Two (Univ, Dept) and C. Three' -> names, affiliations dropped.

    Commas and ' and ' separate names only outside parentheses, where affiliations sit.
    """
    if not text:
        return []
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in collapse(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
            continue
        if depth:
            continue
        if char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    names: list[str] = []
    for part in parts:
        names.extend(re.split(r"\s+and\s+|^and\s+", part.strip()))
    return [collapse(n) for n in names if collapse(n)]


def _arxiv_row(meta: etree._Element) -> PaperRow:
    fields = _children(meta)
    arxiv_id, _ = split_versioned_id(_text(fields, "id") or "")
    check_id(arxiv_id, _text(fields, "id") or "")
    authors: list[str] = []
    if "authors" in fields:
        for author in fields["authors"]:
            if not isinstance(author.tag, str):
                continue
            parts = _children(author)
            name = " ".join(
                p for p in (_text(parts, "forenames"), _text(parts, "keyname"), _text(parts, "suffix")) if p
            )
            if name:
                authors.append(name)
    categories = (_text(fields, "categories") or "").split()
    updated = _date_iso(_text(fields, "updated"))
    row = paper_row(
        arxiv_id,
        # The arXiv format names no version: an <updated> date means at least v2. The lower bound
        # keeps the store's "newer version wins" rule right; arXivRaw gives the exact number.
        2 if updated else 1,
        title=_text(fields, "title"),
        abstract=_text(fields, "abstract"),
        authors=authors,
        categories=categories,
        primary_category=categories[0] if categories else None,
        published=_date_iso(_text(fields, "created")),
        updated=updated or _date_iso(_text(fields, "created")),
        comment=_text(fields, "comments"),
        journal_ref=_text(fields, "journal-ref"),
        doi=_text(fields, "doi"),
        pdf=pdf_url(arxiv_id),  # unversioned: the version above is only a lower bound
    )
    row["needs_metadata"] = 0
    return row


def _raw_row(meta: etree._Element) -> tuple[PaperRow, list[tuple[str, int, str | None]]]:
    fields = _children(meta)
    arxiv_id, _ = split_versioned_id(_text(fields, "id") or "")
    check_id(arxiv_id, _text(fields, "id") or "")
    versions: list[tuple[str, int, str | None]] = []
    for element in meta:
        if isinstance(element.tag, str) and _local(element) == "version":
            match = re.fullmatch(r"v(\d+)", (element.get("version") or "").strip())
            if match:
                versions.append(
                    (arxiv_id, int(match.group(1)), _rfc_date_iso(_text(_children(element), "date")))
                )
    versions.sort(key=lambda v: v[1])
    latest = versions[-1] if versions else (arxiv_id, 1, None)
    categories = (_text(fields, "categories") or "").split()
    row = paper_row(
        arxiv_id,
        latest[1],
        title=_text(fields, "title"),
        abstract=_text(fields, "abstract"),
        authors=split_raw_authors(_text(fields, "authors")),
        categories=categories,
        primary_category=categories[0] if categories else None,
        published=versions[0][2] if versions else None,
        updated=latest[2],
        comment=_text(fields, "comments"),
        journal_ref=_text(fields, "journal-ref"),
        doi=_text(fields, "doi"),
    )
    row["needs_metadata"] = 0
    return row, versions[:-1]


def parse_list_records(content: bytes, source: str, categories: Iterable[str] = ()) -> OaiPage:
    """A ListRecords response -> OaiPage of the records in `categories` (all records if empty).

    `noRecordsMatch` is an empty, final page; `badResumptionToken` raises BadResumptionToken; any
    other OAI error, or a body that is not OAI-PMH, raises a one-line error naming `source`.
    """
    root = check_xml(content, source)
    if root.tag != f"{OAI_NS}OAI-PMH":
        raise InputError(f"{source}: not an OAI-PMH response (root element {_local(root)})")
    for error in root.iterfind(f"{OAI_NS}error"):
        code = error.get("code") or "?"
        message = collapse(error.text) or code
        if code == "noRecordsMatch":
            return OaiPage()
        if code == "badResumptionToken":
            raise BadResumptionToken(f"{source}: badResumptionToken: {message}")
        raise FetchError(f"{source}: OAI-PMH error {code}: {message}")
    listing = root.find(f"{OAI_NS}ListRecords")
    if listing is None:
        raise InputError(f"{source}: OAI-PMH response without ListRecords")
    wanted = set(categories)
    page = OaiPage()
    for record in listing.iterfind(f"{OAI_NS}record"):
        page.records += 1
        header = record.find(f"{OAI_NS}header")
        if header is not None and header.get("status") == "deleted":
            page.deleted += 1
            continue
        metadata = record.find(f"{OAI_NS}metadata")
        meta = next((c for c in metadata if isinstance(c.tag, str)), None) if metadata is not None else None
        if meta is None:
            identifier = header.findtext(f"{OAI_NS}identifier") if header is not None else "?"
            raise InputError(f"{source}: record {identifier} has no metadata")
        kind = _local(meta)
        versions: list[tuple[str, int, str | None]] = []
        if kind == "arXiv":
            row = _arxiv_row(meta)
        elif kind == "arXivRaw":
            row, versions = _raw_row(meta)
        else:
            raise InputError(f"{source}: unsupported metadata format {kind!r} (use arXiv or arXivRaw)")
        if not row["arxiv_id"] or not row["title"]:
            raise InputError(f"{source}: record {page.records} has no id or title")
        if wanted and not wanted.intersection(row.get("categories") or []):
            continue
        page.rows.append(row)
        page.versions.extend(versions)
    token = listing.find(f"{OAI_NS}resumptionToken")
    if token is not None:
        # An empty token element marks the last page of a list (OAI-PMH 2.0, section 3.5).
        page.token = (token.text or "").strip() or None
        page.cursor = _int_or_none(token.get("cursor"))
        page.complete_size = _int_or_none(token.get("completeListSize"))
    return page


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
