"""Network only: arXiv API pages through `arxiv.Client`, announcement feeds as raw bytes.

`arxiv.Client` pages through results and parses Atom, but its HTTP call has no timeout, ignores
`Retry-After`, retries with no backoff and retries even a 400. `PoliteSession` closes those gaps in one
place and is mounted as the client's session: one connection, a timeout on every request, at least
`delay` seconds between requests (arXiv's terms of use ask for 3 s), exponential backoff that honours
`Retry-After` on 429/503, a strict XML check of every body (a truncated page is retried, never half
stored), and a descriptive User-Agent. When the retries are spent it raises `FetchError`, which
`arxiv.Client` does not catch, so the failure reaches the caller at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import arxiv
import requests
from lxml import etree

from tracker.config import USER_AGENT_BASE
from tracker.errors import FetchError, InputError
from tracker.parse import ATOM, OPENSEARCH, api_error_message
from tracker.xmlsafe import check_xml

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://export.arxiv.org/api/query"
DEFAULT_RSS_URL = "https://rss.arxiv.org/rss"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 600.0  # a server asking for more than 10 minutes is treated as down for tonight


class PoliteSession(requests.Session):
    """A `requests.Session` that is polite to arXiv and strict about what it accepts."""

    def __init__(
        self,
        *,
        delay: float = 3.0,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 5.0,
        user_agent: str = USER_AGENT_BASE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.delay = delay
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.user_agent = user_agent
        self.sleep = sleep
        self.requests_made = 0
        self._last: float | None = None
        # URL prefix -> check of the parsed root. A well-formed page that is not what the URL serves (an HTML
        # error page sent with HTTP 200, say) must not pass for an empty result and move the watermark.
        self.expect: dict[str, Callable[[etree._Element], str | None]] = {}
        # One connection, kept alive: arXiv asks clients not to open several at once.
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def _throttle(self, at_least: float) -> None:
        if self._last is not None:
            wait = at_least - (time.monotonic() - self._last)
            if wait > 0:
                log.debug("waiting %.1f s before the next request", wait)
                self.sleep(wait)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        headers = dict(kwargs.pop("headers", None) or {})
        headers = {k: v for k, v in headers.items() if k.lower() != "user-agent"}
        headers["User-Agent"] = self.user_agent
        kwargs["headers"] = headers
        url_text = url.decode() if isinstance(url, bytes) else url
        wait = self.delay
        problem = ""
        for attempt in range(self.retries + 1):
            self._throttle(wait)
            log.info("GET %s%s", url_text, f" (retry {attempt})" if attempt else "")
            try:
                self.requests_made += 1
                resp = super().request(method, url, *args, **kwargs)
            except requests.RequestException as exc:
                problem = _describe(exc)
            else:
                self._last = time.monotonic()
                if resp.status_code in RETRY_STATUSES:
                    problem = f"HTTP {resp.status_code}"
                    after = _retry_after(resp.headers.get("Retry-After"))
                    if after is not None:
                        if after > MAX_RETRY_AFTER:
                            raise FetchError(
                                f"{url_text}: HTTP {resp.status_code}, server asks to retry after {after:.0f} s; giving up for this run"
                            )
                        log.info("%s: HTTP %d, Retry-After %.0f s", url_text, resp.status_code, after)
                        wait = max(after, self.delay)
                        continue
                elif resp.status_code >= 400:
                    raise FetchError(f"{url_text}: HTTP {resp.status_code}{_error_detail(resp)}")
                else:
                    try:
                        root = check_xml(resp.content, url_text)
                    except InputError as exc:
                        problem = str(exc).replace(url_text + ": ", "")
                    else:
                        checks = [c for prefix, c in self.expect.items() if url_text.startswith(prefix)]
                        problem = next((p for c in checks if (p := c(root))), "")
                        if not problem:
                            return resp
            self._last = time.monotonic()
            wait = max(self.delay, self.backoff * (2**attempt))
            if attempt < self.retries:
                log.info("%s: %s; retrying in %.0f s", url_text, problem, wait)
        raise FetchError(f"{url_text}: {problem} (gave up after {self.retries + 1} attempts)")


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped mid-response (truncated body)"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


def _error_detail(resp: requests.Response) -> str:
    try:
        message = api_error_message(check_xml(resp.content, resp.url))
    except InputError:
        message = None
    return f": {message}" if message else ""


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())


def make_client(session: PoliteSession, api_url: str, page_size: int) -> arxiv.Client:
    """An `arxiv.Client` that sends every request through `session` to `api_url`."""
    client = arxiv.Client(page_size=page_size, delay_seconds=0.0, num_retries=3)
    # The session does the spacing and retries; the client keeps its own retry only for empty pages.
    client._session = session
    client.query_url_format = api_url + "?{}"
    session.expect[api_url + "?"] = _api_page_problem
    return client


def _api_page_problem(root: etree._Element) -> str | None:
    """Why `root` is not an arXiv API result page (an Atom feed with opensearch:totalResults), or None."""
    if root.tag != f"{ATOM}feed":
        return f"not an arXiv API page (its root element is <{etree.QName(root).localname}>)"
    if root.find(f"{OPENSEARCH}totalResults") is None:
        return "not an arXiv API page (an Atom feed without opensearch:totalResults)"
    return None


def fetch_results(client: arxiv.Client, search: arxiv.Search, offset: int = 0) -> Iterator[arxiv.Result]:
    """Results of `search` from `offset`, page by page; an empty page mid-way is retried, then FetchError."""
    try:
        yield from client.results(search, offset=offset)
    except arxiv.UnexpectedEmptyPageError as exc:
        raise FetchError(
            f"{exc.url}: arXiv kept returning an empty page mid-way (tried {exc.retry + 1} times)"
        ) from None
    except arxiv.HTTPError as exc:
        raise FetchError(f"{exc.url}: HTTP {exc.status}") from None


def fetch_feed(session: PoliteSession, rss_url: str, categories: list[str]) -> tuple[str, bytes]:
    """GET the announcement feed of `categories` (`BASE/C1+C2`); returns (url, body bytes)."""
    url = f"{rss_url.rstrip('/')}/{'+'.join(categories)}"
    return url, session.get(url).content
