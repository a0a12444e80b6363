"""A loopback arXiv: serves real recorded records through the API's and the announcement feed's formats.

Used by `tracker demo` (the nightly pipeline, offline, over the same HTTP path a real night uses) and by
the tests, which also queue faults (503 with Retry-After, 429, slow responses, truncated bodies, empty
pages) or verbatim recorded responses. It binds to 127.0.0.1 only.

The API part understands what `tracker sync` sends: `search_query` made of `cat:X` terms joined by OR and
an optional `submittedDate:[YYYYMMDDHHMM TO YYYYMMDDHHMM]`, `id_list`, `start`, `max_results`,
`sortBy=submittedDate` and `sortOrder`. Entries are rendered like the 2026 API backend (see the recorded
pages in tests/fixtures/api/).
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

from tracker.config import DATA_DIR

_DATE_RANGE = re.compile(r"submittedDate:\[(\d{8,14})\s+TO\s+(\d{8,14})\]")
_CAT = re.compile(r"cat:([\w.\-]+)")


@dataclass
class Fault:
    """A canned response for the next matching request (instead of the mirror's own answer)."""

    status: int = 503
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a timeout test sets it above the client's)
    truncate: int | None = None  # send only this many bytes of the real answer, then close
    empty_page: bool = False  # answer with a valid feed holding no entries
    path: str = ""  # only requests whose path starts with this


def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def _z(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(rec: dict[str, Any]) -> int:
    raw = str(rec.get("version") or "1").lstrip("v")
    return int(raw) if raw.isdigit() else 1


def entry_xml(rec: dict[str, Any]) -> str:
    """One corpus record as an API `<entry>`, in the current backend's element order."""
    arxiv_id, version = rec["id"], _version(rec)
    published = _ts(rec.get("published")) or datetime(2000, 1, 1, tzinfo=timezone.utc)
    updated = _ts(rec.get("updated")) or published
    cats = rec.get("categories") or ([rec["primary_category"]] if rec.get("primary_category") else [])
    parts = [
        "  <entry>",
        f"    <id>http://arxiv.org/abs/{escape(arxiv_id)}v{version}</id>",
        f"    <title>{escape(rec.get('title') or '')}</title>",
        f"    <updated>{_z(updated)}</updated>",
        f'    <link href="https://arxiv.org/abs/{escape(arxiv_id)}v{version}" rel="alternate" type="text/html"/>',
        (
            f'    <link href="https://arxiv.org/pdf/{escape(arxiv_id)}v{version}" rel="related" '
            'type="application/pdf" title="pdf"/>'
        ),
        f"    <summary>{escape(rec.get('abstract') or '')}</summary>",
    ]
    parts += [f'    <category term={quoteattr(c)} scheme="http://arxiv.org/schemas/atom"/>' for c in cats]
    parts.append(f"    <published>{_z(published)}</published>")
    if rec.get("comment"):
        parts.append(f"    <arxiv:comment>{escape(rec['comment'])}</arxiv:comment>")
    if cats:
        parts.append(
            f"    <arxiv:primary_category term={quoteattr(rec.get('primary_category') or cats[0])}/>"
        )
    for name in rec.get("authors") or []:
        parts += ["    <author>", f"      <name>{escape(name)}</name>", "    </author>"]
    parts.append("  </entry>")
    return "\n".join(parts)


def feed_xml(entries: list[dict[str, Any]], total: int, start: int, per_page: int, query: str) -> bytes:
    """A whole API response page."""
    head = (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">\n'
        "  <id>https://arxiv.org/api/loopback</id>\n"
        f"  <title>arXiv Query: {escape(query)}</title>\n"
        f"  <updated>{_z(datetime.now(timezone.utc))}</updated>\n"
        f"  <opensearch:itemsPerPage>{per_page}</opensearch:itemsPerPage>\n"
        f"  <opensearch:totalResults>{total}</opensearch:totalResults>\n"
        f"  <opensearch:startIndex>{start}</opensearch:startIndex>\n"
    )
    body = "\n".join(entry_xml(e) for e in entries)
    return (head + body + ("\n" if body else "") + "</feed>\n").encode()


def rss_xml(items: list[dict[str, Any]], cats: str, day: str) -> bytes:
    """An rss.arxiv.org RSS 2.0 feed (the 2024+ format of reference/arxiv-docs/rss_specifications.md)."""
    pub = format_datetime(datetime.fromisoformat(day).replace(hour=0, tzinfo=timezone.utc))
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        (
            '<rss xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:atom="http://www.w3.org/2005/Atom" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'version="2.0">'
        ),
        "  <channel>",
        f"    <title>{escape(cats.replace('+', ', '))} updates on arXiv.org</title>",
        f"    <link>http://rss.arxiv.org/rss/{escape(cats)}</link>",
        f"    <description>{escape(cats)} updates on the arXiv.org e-print archive.</description>",
        "    <docs>http://www.rssboard.org/rss-specification</docs>",
        "    <language>en-us</language>",
        f"    <lastBuildDate>{pub}</lastBuildDate>",
        "    <managingEditor>rss-help@arxiv.org</managingEditor>",
        f"    <pubDate>{pub}</pubDate>",
        "    <skipDays><day>Saturday</day><day>Sunday</day></skipDays>",
    ]
    for item in items:
        arxiv_id, version, kind = item["id"], _version(item), item["announce_type"]
        out += [
            "    <item>",
            f"      <title>{escape(item.get('title') or '')}</title>",
            f"      <link>https://arxiv.org/abs/{escape(arxiv_id)}</link>",
            (
                f"      <description>arXiv:{escape(arxiv_id)}v{version} Announce Type: {kind} \n"
                f"Abstract: {escape(item.get('abstract') or '')}</description>"
            ),
            f'      <guid isPermaLink="false">oai:arXiv.org:{escape(arxiv_id)}v{version}</guid>',
        ]
        out += [f"      <category>{escape(c)}</category>" for c in item.get("categories") or []]
        out += [
            f"      <pubDate>{pub}</pubDate>",
            f"      <arxiv:announce_type>{kind}</arxiv:announce_type>",
            "      <dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>",
            f"      <dc:creator>{escape(', '.join(item.get('authors') or []))}</dc:creator>",
            "    </item>",
        ]
    out += ["  </channel>", "</rss>", ""]
    return "\n".join(out).encode()


class ArxivMirror:
    """A threaded HTTP server on 127.0.0.1 answering like export.arxiv.org/api/query and rss.arxiv.org/rss.

    `records` are corpus-style dicts (id, version, title, abstract, authors, categories, primary_category,
    published, updated, comment). `announcements` maps a day (YYYY-MM-DD) to feed items: the same dicts
    plus `announce_type`; the feed serves the newest day. `requests` logs (path, query) of each request.
    """

    def __init__(
        self, records: Iterable[dict[str, Any]] = (), announcements: dict[str, list[dict]] | None = None
    ):
        self.records: dict[str, dict[str, Any]] = {}
        self.add(records)
        self.announcements = announcements or {}
        self.faults: deque[Fault] = deque()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.times: list[float] = []  # time.monotonic() of each request, for spacing checks
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        """Add or replace records (a newer version of a paper replaces the old one, as on arXiv)."""
        for rec in records:
            self.records[rec["id"]] = rec

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> ArxivMirror:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ArxivMirror:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                mirror._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # silence stderr
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "mirror not started"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/query"

    @property
    def rss_url(self) -> str:
        return f"{self.url}/rss"

    def api_requests(self) -> list[dict[str, str]]:
        return [q for p, q in self.requests if p.startswith("/api/")]

    # -- answering -------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            self.requests.append((parts.path, query))
            self.times.append(time.monotonic())
            fault = None
            for i, f in enumerate(self.faults):
                if parts.path.startswith(f.path):
                    fault = f
                    del self.faults[i]
                    break
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and not (
            fault.truncate is not None or fault.empty_page or (fault.status == 200 and not fault.body)
        ):
            ctype = (
                "application/atom+xml; charset=utf-8"
                if fault.body.lstrip().startswith(b"<")
                else "text/plain"
            )
            self._send(handler, fault.status, fault.body, ctype, fault.headers)
            return
        if parts.path.startswith("/api/query"):
            status, body = 200, self._api(query, empty=bool(fault and fault.empty_page))
            ctype = "application/atom+xml; charset=utf-8"
        elif parts.path.startswith("/rss/"):
            status, body, ctype = 200, self._rss(unquote(parts.path[len("/rss/") :])), "application/rss+xml"
        else:
            status, body, ctype = 404, b"not found", "text/plain"
        if fault and fault.truncate is not None:
            # Announce the full length, send a prefix, close: what a dropped connection looks like.
            handler.send_response(status)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(body[: fault.truncate])
            handler.wfile.flush()
            handler.close_connection = True
            return
        self._send(handler, status, body, ctype, {})

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str, headers: dict[str, str]
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _api(self, query: dict[str, str], empty: bool = False) -> bytes:
        start = int(query.get("start") or 0)
        per_page = int(query.get("max_results") or 10)
        search = query.get("search_query", "")
        id_list = [i.strip() for i in query.get("id_list", "").split(",") if i.strip()]
        if id_list:
            matches = []
            for raw in id_list:
                base = re.sub(r"v\d+$", "", raw)
                if base in self.records:
                    matches.append(self.records[base])
        else:
            matches = self._search(search)
            reverse = query.get("sortOrder", "descending") == "descending"
            matches.sort(key=lambda r: (r.get("published") or "", r["id"]), reverse=reverse)
        page = [] if empty else matches[start : start + per_page]
        return feed_xml(
            page, len(matches), start, per_page, f"search_query={search}&id_list={','.join(id_list)}"
        )

    def _search(self, search: str) -> list[dict[str, Any]]:
        cats = set(_CAT.findall(search))
        low = high = None
        match = _DATE_RANGE.search(search)
        if match:
            low, high = (datetime.strptime(v.ljust(12, "0")[:12], "%Y%m%d%H%M") for v in match.groups())
            low, high = low.replace(tzinfo=timezone.utc), high.replace(tzinfo=timezone.utc, second=59)
        out = []
        for rec in self.records.values():
            published = _ts(rec.get("published"))
            if published is None:
                continue
            if cats and not cats.intersection(rec.get("categories") or [rec.get("primary_category")]):
                continue
            if low and high and not (low <= published <= high):
                continue
            out.append(rec)
        return out

    def _rss(self, cats: str) -> bytes:
        wanted = {c.lower() for c in cats.split("+")}
        day = max(self.announcements) if self.announcements else datetime.now(timezone.utc).date().isoformat()
        items = [
            it
            for it in self.announcements.get(day, [])
            if not it.get("categories") or wanted.intersection(c.lower() for c in it["categories"])
        ]
        return rss_xml(items, cats, day)


# -- the bundled snapshot ------------------------------------------------------------------------


def load_corpus() -> list[dict[str, Any]]:
    """The bundled real abstracts (tracker/data/corpus.jsonl.gz)."""
    with gzip.open(DATA_DIR / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def demo_snapshot() -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Records with full API metadata, and the real announcement feed of 2025-08-07.

    The feed items (id, version, announce type, title, authors, abstract) are real. Where the corpus holds
    a paper's full record the API serves that; for the other feed papers it serves what the feed itself
    says, dated on the announcement day (the recorded feed carries no submission dates or categories).
    """
    corpus = [r for r in load_corpus() if r.get("published")]
    by_id = {r["id"]: r for r in corpus}
    with gzip.open(DATA_DIR / "rss_2025-08-07.json.gz", "rt", encoding="utf-8") as fh:
        feeds = json.load(fh)
    items: dict[str, dict[str, Any]] = {}
    for feed in feeds.values():
        for entry in feed["entries"]:
            match = re.match(r"(.+?)v(\d+)$", entry["id"].rsplit(":", 1)[-1])
            kind = re.search(r"Announce Type:\s*([\w-]+)", entry.get("summary", ""))
            if not match or not kind:
                continue
            arxiv_id, version = match.group(1), int(match.group(2))
            rec = by_id.get(arxiv_id) or {
                "id": arxiv_id,
                "title": entry.get("title", ""),
                "abstract": entry.get("summary", "").split("Abstract:", 1)[-1].strip(),
                "authors": [a.strip() for a in entry.get("author", "").split(",") if a.strip()],
                "categories": [],
                "primary_category": None,
                "published": "2025-08-07T00:00:00Z",
                "updated": "2025-08-07T00:00:00Z",
            }
            items[arxiv_id] = {**rec, "version": version, "announce_type": kind.group(1)}
    # The API serves a paper's latest version, which is the one the feed announces.
    records = [
        {**rec, "version": items[rec["id"]]["version"]} if rec["id"] in items else rec for rec in corpus
    ]
    records += [item for item in items.values() if item["id"] not in by_id]
    return records, {"2025-08-07": list(items.values())}
