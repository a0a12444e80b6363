"""Network only: arXiv API pages through `arxiv.Client`, announcement feeds as raw bytes.

`arxiv.Client` pages through results and parses Atom, but its HTTP call has no timeout, ignores
`Retry-After`, retries with no backoff and retries even a 400. `PoliteSession` closes those gaps in one
place and is mounted as the client's session: one connection, a timeout on every request, at least
`delay` seconds between requests (arXiv's terms of use ask for 3 s), exponential backoff that honours
`Retry-After` on 429/503, a strict XML check of every body (a truncated page is retried, never half
stored), and a descriptive User-Agent. When the retries are spent it raises `FetchError`, which
`arxiv.Client` does not catch, so the failure reaches the caller at once.

It is also wary of the server: a body is streamed and refused past `max_bytes` once decoded (a small
gzip can expand to gigabytes), each attempt has a total deadline (a per-read timeout never fires on a body
that trickles one byte at a time, and a stalled run holds the writer lock), and a redirect is followed only
to the same host and port, to arXiv's own hosts, and never from https to http. Error messages name the
host, never the URL-encoded query.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import arxiv
import requests
import urllib3
from lxml import etree

from tracker.config import USER_AGENT_BASE
from tracker.endpoints import (
    DEADLINE_TIMEOUTS,
    DEFAULT_BACKOFF,
    DEFAULT_DELAY,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
)
from tracker.errors import FetchError, InputError
from tracker.parse import ATOM, OPENSEARCH, api_error_message
from tracker.xmlsafe import check_xml

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 600.0  # a server asking for more than 10 minutes is treated as down for tonight
# The largest real pages are a few MB: 100 API entries take 230 kB (tests/fixtures/api), so the API's
# 2000-entry maximum is under 5 MB, and an OAI-PMH ListRecords page or a day's feed is a few MB more.
MAX_BODY_BYTES = 64 * 2**20
MAX_REDIRECTS = 5
CHUNK_BYTES = 2**16
ARXIV_DOMAIN = "arxiv.org"  # export., rss., oaipmh. and arxiv.org itself redirect among each other


class PoliteSession(requests.Session):
    """A `requests.Session` that is polite to arXiv and strict about what it accepts."""

    def __init__(
        self,
        *,
        delay: float = DEFAULT_DELAY,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        user_agent: str = USER_AGENT_BASE,
        sleep: Callable[[float], None] = time.sleep,
        deadline: float | None = None,
        max_bytes: int = MAX_BODY_BYTES,
        url_options: dict[str, str] | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        """:param deadline: seconds one attempt may take in all, body included (default 4 x `timeout`)
        :param url_options: URL prefix -> the option that sets it, named in errors ("--api-url")
        :param notify: shown a line before each retry wait (the CLI passes one only on a terminal)
        """
        super().__init__()
        self.delay = delay
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.user_agent = user_agent
        self.sleep = sleep
        self.deadline = deadline or DEADLINE_TIMEOUTS * timeout
        self.max_bytes = max_bytes
        self.url_options = url_options or {}
        self.notify = notify
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
        host = _host(url_text)
        wait = self.delay
        problem = ""
        for attempt in range(self.retries + 1):
            self._throttle(wait)
            log.info("GET %s%s", url_text, f" (retry {attempt})" if attempt else "")
            try:
                resp = self._fetch(method, url_text, args, kwargs)
            except requests.RequestException as exc:
                problem = _describe(exc)
            except urllib3.exceptions.HTTPError as exc:  # raised while streaming the body
                problem = _describe_stream(exc)
            else:
                self._last = time.monotonic()
                if resp.status_code in RETRY_STATUSES:
                    problem = f"HTTP {resp.status_code}"
                    after = _retry_after(resp.headers.get("Retry-After"))
                    if after is not None:
                        if after > MAX_RETRY_AFTER:
                            raise FetchError(
                                f"{_where(url_text)}: HTTP {resp.status_code}, server asks to retry after {after:.0f} s; giving up for this run"
                            )
                        log.info("%s: HTTP %d, Retry-After %.0f s", url_text, resp.status_code, after)
                        wait = max(after, self.delay)
                        if attempt < self.retries:
                            self._announce(host, attempt, wait)
                        continue
                elif resp.status_code >= 400:
                    raise FetchError(f"{_where(url_text)}: HTTP {resp.status_code}{_error_detail(resp)}")
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
                self._announce(host, attempt, wait)
        attempts = f"gave up after {self.retries + 1} attempt{'s' if self.retries else ''}"
        if problem.startswith(("connection refused", "host not found", "connection failed")):
            raise FetchError(f"cannot reach {host}: {problem} ({attempts}); {self._hint(url_text)}")
        if problem.startswith(("timed out", "body still arriving", "no complete response")):
            raise FetchError(f"{host}: {problem} ({attempts}); {self._hint(url_text)}")
        raise FetchError(f"{_where(url_text)}: {problem} ({attempts})")

    def _announce(self, host: str, attempt: int, wait: float) -> None:
        if self.notify:
            self.notify(f"waiting for {host} (retry {attempt + 1} of {self.retries} in {wait:.0f} s)...")

    def _hint(self, url: str) -> str:
        option = next((o for prefix, o in self.url_options.items() if url.startswith(prefix)), None)
        return f"check the network or {option}" if option else "check the network"

    def _fetch(
        self, method: str | bytes, url: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> requests.Response:
        """One attempt: GET `url`, following allowed redirects, with the body read under the cap and deadline."""
        deadline = time.monotonic() + self.deadline
        kwargs = {**kwargs, "stream": True, "allow_redirects": False}
        with _alarm(self.deadline + 1) as rang:
            try:
                return self._follow(method, url, args, kwargs, deadline)
            except BaseException:
                if rang:  # requests and urllib3 re-wrap what the alarm raised as a connection error
                    raise DeadlineExceeded(
                        f"no complete response after the {self.deadline:g} s deadline"
                    ) from None
                raise

    def _follow(
        self, method: str | bytes, url: str, args: tuple[Any, ...], kwargs: dict[str, Any], deadline: float
    ) -> requests.Response:
        for _ in range(MAX_REDIRECTS + 1):
            self.requests_made += 1
            resp = super().request(method, url, *args, **kwargs)
            target = resp.headers.get("Location") if resp.is_redirect else None
            if not target:
                resp._content = self._read_body(resp, url, deadline)
                return resp
            resp.close()
            target = urllib.parse.urljoin(resp.url, target)
            refusal = redirect_refusal(resp.url, target)
            if refusal:
                raise FetchError(f"{_host(url)}: refusing a redirect to {_host(target)}: {refusal}")
            log.info("%s: HTTP %d, redirected to %s", url, resp.status_code, target)
            url = target
            kwargs.pop("params", None)  # the Location carries the query string
            if time.monotonic() > deadline:
                raise FetchError(f"{_host(url)}: redirects took longer than the {self.deadline:g} s deadline")
        raise FetchError(f"{_host(url)}: more than {MAX_REDIRECTS} redirects")

    def _read_body(self, resp: requests.Response, url: str, deadline: float) -> bytes:
        """The decoded body, read a chunk at a time so the size cap and the deadline hold mid-body."""
        limit = f"{self.max_bytes / 2**20:.0f} MiB"
        length = resp.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes and not resp.headers.get("Content-Encoding"):
            resp.close()
            raise FetchError(
                f"{_host(url)}: refusing a {int(length) / 2**20:.0f} MiB response (the limit is {limit})"
            )
        chunks: list[bytes] = []
        total = 0
        try:  # on success urllib3 hands the connection back to the pool at the end of the body
            # read1 returns what one socket read gives (read(n) would wait for n bytes, so a trickle
            # would never reach the deadline check), and urllib3 decodes gzip at most n bytes at a time.
            while chunk := resp.raw.read1(CHUNK_BYTES, decode_content=True):
                total += len(chunk)
                if total > self.max_bytes:
                    raise FetchError(
                        f"{_host(url)}: refusing a response over {limit} once decoded (a compression bomb?)"
                    )
                if time.monotonic() > deadline:
                    raise DeadlineExceeded(f"body still arriving after the {self.deadline:g} s deadline")
                chunks.append(chunk)
        except BaseException:
            resp.close()  # drop the connection: the rest of this body must not be read as the next response
            raise
        return b"".join(chunks)


class DeadlineExceeded(requests.Timeout):
    """One attempt ran past the session's total deadline: retried like a timeout, with its own message."""


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[list[bool]]:
    """Raise DeadlineExceeded in this thread after `seconds`, whatever it is blocked in.

    The deadline checks between body chunks cannot see a server that trickles its status line and headers,
    or a gzip header that grows a byte at a time (urllib3 keeps reading while the decoder gives nothing):
    each socket read returns within the timeout, and no chunk ever arrives. A timer signal interrupts the
    read itself. Signals reach only the main thread, where the CLI runs; elsewhere the chunk checks remain.
    """
    rang: list[bool] = []  # true once the alarm went off
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield rang
        return

    def ring(signum: int, frame: Any) -> None:
        rang.append(True)
        raise DeadlineExceeded("deadline")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield rang
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def redirect_refusal(old: str, new: str) -> str | None:
    """Why a redirect from `old` to `new` must not be followed, or None if it may.

    Allowed: the same scheme, host and port; http -> https on the same host; any https (or same-scheme)
    hop among arXiv's own hosts (arxiv.org and its subdomains). Refused: https -> http, anything else.
    """
    a, b = urllib.parse.urlsplit(old), urllib.parse.urlsplit(new)
    if a.scheme == "https" and b.scheme != "https":
        return "https to http would send the response in clear"
    if b.scheme not in ("http", "https"):
        return f"unsupported scheme {b.scheme!r}"
    if (a.scheme, a.hostname, _port(a)) == (b.scheme, b.hostname, _port(b)):
        return None
    if a.hostname == b.hostname and b.scheme == "https" and _port(b) == 443:
        return None
    if _is_arxiv(a.hostname) and _is_arxiv(b.hostname) and b.port is None:
        return None
    return "only the same host, or arXiv's own hosts, are followed"


def _port(parts: urllib.parse.SplitResult) -> int | None:
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def _is_arxiv(hostname: str | None) -> bool:
    return bool(hostname) and (hostname == ARXIV_DOMAIN or str(hostname).endswith("." + ARXIV_DOMAIN))


def _host(url: str) -> str:
    """host[:port] of `url`, what errors name instead of the URL and its encoded query."""
    return urllib.parse.urlsplit(url).netloc or url


def _where(url: str) -> str:
    """host[:port]/path of `url`, without the query."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.netloc}{parts.path}" if parts.netloc else url


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, DeadlineExceeded):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped mid-response (truncated body)"
    if isinstance(exc, requests.ConnectionError):
        # requests wraps the OS error a few levels deep; its kind is what a user can act on
        for cause in _causes(exc):
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            if isinstance(cause, (socket.gaierror, urllib3.exceptions.NameResolutionError)):
                return "host not found"
        return "connection failed"
    return type(exc).__name__


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps: urllib3 keeps the cause in `.reason`, requests in `args[0]`."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cause = todo.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        wrapped = [a for a in cause.args if isinstance(a, BaseException)]
        todo += [cause.__cause__, cause.__context__, getattr(cause, "reason", None), *wrapped]


def _describe_stream(exc: urllib3.exceptions.HTTPError) -> str:
    """The urllib3 errors met while streaming a body, worded like their requests counterparts."""
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return "connection dropped mid-response (truncated body)"
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return "a body that does not decode as its Content-Encoding says"
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
