"""A loopback OAI-PMH data provider for the backfill tests, serving the recorded records in tests/fixtures/oai.

It answers ListRecords like arXiv's endpoint: records whose `<datestamp>` lies in [from, until] and whose
`<setSpec>` falls under `set`, `page_size` at a time, chained by resumption tokens; `noRecordsMatch` for an
empty selection; `badResumptionToken` for a token of an older generation (`expire_tokens()` simulates
arXiv's daily expiry). Tests can queue raw responses (503 + Retry-After, an entity bomb) and hold one
request open, to kill a client mid-harvest. Binds to 127.0.0.1 only.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lxml import etree

FIXTURES = Path(__file__).parent / "fixtures" / "oai"
OAI = "{http://www.openarchives.org/OAI/2.0/}"


@dataclass(frozen=True)
class Record:
    identifier: str
    datestamp: str
    sets: tuple[str, ...]
    categories: tuple[str, ...]
    xml: bytes


def load_records(pattern: str = "*.xml") -> list[Record]:
    """Every distinct `<record>` of the fixture files matching `pattern`, in identifier order."""
    found: dict[str, Record] = {}
    for path in sorted(FIXTURES.glob(pattern)):
        root = etree.parse(str(path)).getroot()
        for record in root.iter(f"{OAI}record"):
            header = record.find(f"{OAI}header")
            identifier = header.findtext(f"{OAI}identifier").strip()
            categories = next((e.text for e in record.iter() if etree.QName(e).localname == "categories"), "")
            found.setdefault(
                identifier,
                Record(
                    identifier,
                    header.findtext(f"{OAI}datestamp").strip(),
                    tuple(s.text.strip() for s in header.iterfind(f"{OAI}setSpec")),
                    tuple(categories.split()),
                    etree.tostring(record),
                ),
            )
    return sorted(found.values(), key=lambda r: r.identifier)


def _envelope(inner: str, request: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
        f"<responseDate>2026-01-01T00:00:00Z</responseDate><request>{request}</request>{inner}</OAI-PMH>"
    ).encode()


def error_body(code: str, message: str) -> bytes:
    return _envelope(f'<error code="{code}">{message}</error>')


@dataclass
class Canned:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class OaiServer:
    """`with OaiServer({"arXiv": records}) as oai:` ... `oai.url` is the base URL to pass as --oai-url."""

    def __init__(self, records: dict[str, list[Record]], page_size: int = 2) -> None:
        self.records = records
        self.page_size = page_size
        self.generation = 1
        self.canned: deque[Canned] = deque()
        self.requests: list[dict[str, str]] = []
        self.hold_at: int | None = None  # 1-based request number to hold open until `release`
        self.held = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle
    def __enter__(self) -> OaiServer:  # noqa: PYI034 (no typing.Self before 3.11)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/oai"

    def expire_tokens(self) -> None:
        """Every token handed out so far becomes unknown (arXiv's tokens expire daily)."""
        self.generation += 1

    # -- serving
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(handler.path).query).items()}
        with self._lock:
            self.requests.append(query)
            number = len(self.requests)
            canned = self.canned.popleft() if self.canned else None
        if self.hold_at == number:
            self.held.set()
            self.release.wait(60)
        if canned is None:
            status, body, headers = 200, self._answer(query), {}
        else:
            status, body, headers = canned.status, canned.body, canned.headers
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "text/xml; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client was killed while we held it
            pass

    def _answer(self, query: dict[str, str]) -> bytes:
        if query.get("verb") != "ListRecords":
            return error_body("badVerb", "only ListRecords here")
        if "resumptionToken" in query:
            parts = query["resumptionToken"].split("|")
            if len(parts) != 6 or int(parts[0]) != self.generation:
                return error_body(
                    "badResumptionToken", "The value of the resumptionToken argument is invalid or expired."
                )
            _, prefix, set_spec, from_, until, offset_text = parts
            offset = int(offset_text)
        else:
            prefix, set_spec = query.get("metadataPrefix", ""), query.get("set", "")
            from_, until, offset = query.get("from", ""), query.get("until", "9999-12-31"), 0
        if prefix not in self.records:
            return error_body("cannotDisseminateFormat", f"unknown metadataPrefix {prefix}")
        chosen = [
            r
            for r in self.records[prefix]
            if (not from_ or r.datestamp >= from_)
            and r.datestamp <= until
            and (not set_spec or any(s == set_spec or s.startswith(set_spec + ":") for s in r.sets))
        ]
        chosen.sort(key=lambda r: (r.datestamp, r.identifier))
        if not chosen:
            return error_body(
                "noRecordsMatch",
                "The combination of the values of the from, until, and set arguments results in an empty list.",
            )
        page = chosen[offset : offset + self.page_size]
        end = offset + len(page)
        token = ""
        if end < len(chosen):
            value = f"{self.generation}|{prefix}|{set_spec}|{from_}|{until}|{end}"
            token = f'<resumptionToken cursor="{offset}" completeListSize="{len(chosen)}">{value}</resumptionToken>'
        elif offset:
            token = f'<resumptionToken cursor="{offset}" completeListSize="{len(chosen)}"/>'
        inner = b"".join(r.xml for r in page).decode()
        return _envelope(f"<ListRecords>{inner}{token}</ListRecords>", self.url)
