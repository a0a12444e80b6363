"""The HTTP client against hostile or absent loopback servers: bombs, trickles, redirects, no network.

Each server here is a real socket on a loopback address (127.0.0.1, 127.0.0.2), so the bytes go through
requests and urllib3 exactly as they would from arXiv. The mirror (tracker/demo/mirror.py) plays arXiv where a
well-behaved server is needed.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import run, self_signed_cert, sync_args, terminal_output

from tracker import store
from tracker.fetch import redirect_refusal

WINDOW = ["--since", "2024-03-01", "--until", "2024-03-31", "--no-feed"]


class Loopback:
    """A threaded HTTP(S) server on a loopback address whose every GET is answered by `handle(handler)`."""

    def __init__(
        self, handle: Callable[[BaseHTTPRequestHandler], None], host: str = "127.0.0.1", tls: Any = None
    ) -> None:
        self.handle, self.host, self.tls = handle, host, tls
        self.paths: list[str] = []

    def __enter__(self) -> Loopback:  # noqa: PYI034 (no typing.Self before 3.11)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle(self) -> None:
                # the client gave up on us (a refused bomb, a trickle past the deadline), as it should
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    super().handle()

            def do_GET(self) -> None:
                server.paths.append(self.path)
                server.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((self.host, 0), Handler)
        self.server.daemon_threads = True
        if self.tls:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.server.server_address[1]}"


def gzip_bomb(decoded_mib: int) -> bytes:
    """A gzip body of `decoded_mib` MiB of zeros, compressed a MiB at a time so the test stays small."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip container
    zeros = bytes(1 << 20)
    parts = [packer.compress(zeros) for _ in range(decoded_mib)]
    return b"".join([*parts, packer.flush()])


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error: ")]


def count_papers(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM papers").fetchone()[0]
    finally:
        conn.close()


def assert_lock_free(db: Path) -> None:
    with store.writer_lock(db):  # raises LockedError if the failed run had kept it
        pass


def dead_port() -> int:
    """A loopback port nobody listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- size cap ------------------------------------------------------------------------------------

# VmHWM is the peak RSS of this process image alone; ru_maxrss would carry over the peak of the pytest
# process that forked it (Linux keeps the larger of the two across exec).
PEAK_MEMORY = """\
import re, sys
from pathlib import Path
from tracker.cli import cli
try:
    cli(sys.argv[1:])
finally:
    peak = re.search(r"VmHWM:\\s*(\\d+)", Path("/proc/self/status").read_text()).group(1)
    print("peak-rss-kib", peak, file=sys.stderr)
"""


def test_gzip_bomb_is_refused_in_one_line_with_little_memory(tmp_path: Path) -> None:
    bomb = gzip_bomb(200)
    assert len(bomb) < 1 << 20  # a few hundred kB on the wire, 200 MiB once decoded

    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/atom+xml; charset=utf-8")
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(bomb)))
        h.end_headers()
        h.wfile.write(bomb)

    db = tmp_path / "t.db"
    with Loopback(handle) as server:
        args = [
            "sync",
            str(db),
            "--api-url",
            f"{server.url}/api/query",
            "--delay",
            "0",
            "--backoff",
            "0.05",
            "--no-classify",
            *WINDOW,
        ]
        child = subprocess.run(
            [sys.executable, "-c", PEAK_MEMORY, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    peak_mib = int(child.stderr.split("peak-rss-kib ")[1].split()[0]) / 1024
    print(f"peak memory of the sync that met a 200 MiB gzip bomb: {peak_mib:.0f} MiB")
    assert child.returncode == 1, child.stderr
    (line,) = errors(child.stderr)
    assert f"127.0.0.1:{server.server.server_address[1]}" in line and "MiB" in line, line
    assert "Traceback" not in child.stderr
    assert peak_mib < 160  # the cap is 64 MiB of decoded body; without it this was over 400 MiB
    assert len(server.paths) == 1  # a bomb is not asked for again
    assert count_papers(db) == 0
    assert_lock_free(db)


# -- total deadline ------------------------------------------------------------------------------


def sync_with_a_2_s_deadline(handle: Callable[[BaseHTTPRequestHandler], None], db: Path) -> tuple[float, str]:
    """Sync against a loopback server that answers with `handle`, --timeout 1 --deadline 2 and no retry; check
    that it failed in one line naming the server, stored nothing and let the lock go. Seconds taken, the line."""
    with Loopback(handle) as server:
        started = time.monotonic()
        args = ["--api-url", f"{server.url}/api/query", "--delay", "0", "--no-classify", "--timeout", "1"]
        result = run("sync", db, *args, "--deadline", "2", "--retries", "0", *WINDOW)
        took = time.monotonic() - started
    assert result.exit_code == 1, result.output
    (line,) = errors(result.stderr)
    assert f"127.0.0.1:{server.server.server_address[1]}" in line, line
    assert count_papers(db) == 0
    assert_lock_free(db)
    return took, line


def test_a_trickling_body_fails_at_the_deadline_in_one_line(tmp_path: Path) -> None:
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/atom+xml; charset=utf-8")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        for _ in range(120):  # one byte every 0.5 s: each read is quick, so --timeout alone never fires
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(0.5)

    db = tmp_path / "t.db"
    took, line = sync_with_a_2_s_deadline(handle, db)
    print(f"a body trickling one byte every 0.5 s was given up after {took:.1f} s (deadline 2 s)")
    assert "2 s" in line and took < 4, line


@pytest.mark.parametrize("stall", ["headers", "gzip header"])
def test_a_server_trickling_before_any_body_byte_fails_at_the_deadline(tmp_path: Path, stall: str) -> None:
    """A status line and headers sent a byte at a time, or a gzip header whose file name grows a byte at a
    time (the decoder gives nothing, so no chunk ever arrives): no per-read timeout and no between-chunks
    check fires. Found by a review; the deadline now interrupts the read itself."""

    def handle(h: BaseHTTPRequestHandler) -> None:
        if stall == "headers":
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/atom+xml\r\nX-Slow: " + b"a" * 100
            chunks = [head[i : i + 1] for i in range(len(head))]
        else:
            h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 100000\r\n\r\n")
            chunks = [b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\xff"] + [b"a"] * 100  # FNAME set: a name follows
        for chunk in chunks:
            try:
                h.wfile.write(chunk)
                h.wfile.flush()
            except OSError:
                return
            time.sleep(0.5)

    db = tmp_path / "t.db"
    took, line = sync_with_a_2_s_deadline(handle, db)
    print(f"a server stalling in its {stall} was given up after {took:.1f} s (deadline 2 s)")
    assert "deadline" in line and took < 6, line


# -- redirects -----------------------------------------------------------------------------------


def test_a_redirect_to_another_host_is_refused_and_nothing_is_stored(tmp_path, mirror, march_2024):
    mirror.add(march_2024[:30])

    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", mirror.url + h.path)
        h.send_header("Content-Length", "0")
        h.end_headers()

    db = tmp_path / "t.db"
    with Loopback(handle, host="127.0.0.2") as elsewhere:
        result = run(*sync_args(db, mirror, *WINDOW, "--api-url", f"{elsewhere.url}/api/query"))
    assert result.exit_code == 1, result.output
    (line,) = errors(result.stderr)
    assert "redirect" in line and "127.0.0.2" in line and mirror.url.split("//")[1] in line, line
    assert "search_query=" not in line
    assert mirror.requests == []  # never asked
    assert count_papers(db) == 0
    assert_lock_free(db)


def test_a_redirect_on_the_same_host_is_followed(tmp_path, mirror, march_2024):
    mirror.add(march_2024[:30])
    original = mirror._handle

    def handle(h: BaseHTTPRequestHandler) -> None:  # /old/api/query?... -> /api/query?...
        if h.path.startswith("/old/"):
            h.send_response(301)
            h.send_header("Location", h.path[len("/old") :])
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        original(h)

    mirror._handle = handle  # type: ignore[method-assign]
    db = tmp_path / "t.db"
    result = run(*sync_args(db, mirror, *WINDOW, "--api-url", f"{mirror.url}/old/api/query"))
    assert result.exit_code == 0, result.stderr
    assert count_papers(db) == 30


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context with a throwaway self-signed certificate for 127.0.0.1, trusted by requests."""
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_a_redirect_from_https_to_http_is_refused(tmp_path, mirror, march_2024, tls):
    mirror.add(march_2024[:30])

    def handle(h: BaseHTTPRequestHandler) -> None:  # same address, but the page would travel in clear
        h.send_response(302)
        h.send_header("Location", mirror.url + h.path)
        h.send_header("Content-Length", "0")
        h.end_headers()

    db = tmp_path / "t.db"
    with Loopback(handle, tls=tls) as secure:
        result = run(*sync_args(db, mirror, *WINDOW, "--api-url", f"{secure.url}/api/query"))
        assert secure.paths  # the https server was reached, so its certificate was trusted
    assert result.exit_code == 1, result.output
    (line,) = errors(result.stderr)
    assert "https to http" in line, line
    assert mirror.requests == []
    assert count_papers(db) == 0


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        ("https://export.arxiv.org/api/query", "https://export.arxiv.org/api/query?x", True),
        ("http://export.arxiv.org/oai2", "https://export.arxiv.org/oai2", True),  # upgrade to https
        ("https://export.arxiv.org/oai2", "https://oaipmh.arxiv.org/oai", True),  # arXiv's own hosts
        ("https://rss.arxiv.org/rss/cs.CV", "https://arxiv.org/rss/cs.CV", True),
        ("https://export.arxiv.org/api/query", "http://export.arxiv.org/api/query", False),
        ("https://export.arxiv.org/api/query", "https://evilarxiv.org/api/query", False),
        ("https://export.arxiv.org/api/query", "https://arxiv.org.example.com/api/query", False),
        ("http://127.0.0.1:8000/api", "http://127.0.0.1:9000/api", False),  # another port, another server
        ("http://127.0.0.1:8000/api", "http://127.0.0.2:8000/api", False),
    ],
)
def test_redirect_rule(old: str, new: str, allowed: bool) -> None:
    assert (redirect_refusal(old, new) is None) is allowed


# -- no network ----------------------------------------------------------------------------------


def test_no_network_is_one_short_line_naming_the_host_and_the_option(tmp_path: Path) -> None:
    port = dead_port()
    db = tmp_path / "t.db"
    result = run(
        "sync",
        db,
        *dead_api_args(port),
    )
    assert result.exit_code == 1
    (line,) = errors(result.stderr)
    assert f"127.0.0.1:{port}" in line and "connection refused" in line and "--api-url" in line, line
    assert "search_query=" not in line and len(line) < 150, line
    assert "waiting" not in result.stderr  # not a terminal: silent, as under cron
    assert_lock_free(db)


def dead_api_args(port: int) -> list[str]:
    """Sync options for an API nobody answers on `port`: quick retries, no classifier."""
    return ["--api-url", f"http://127.0.0.1:{port}/api/query", "--delay", "0", "--backoff", "0.05"] + [
        "--retries",
        "2",
        "--no-classify",
        *WINDOW,
    ]


def test_no_network_on_a_terminal_says_what_it_is_waiting_for(tmp_path: Path) -> None:
    port = dead_port()
    code, _, shown = terminal_output(
        "sync",
        tmp_path / "t.db",
        *dead_api_args(port),
    )
    assert code == 1
    assert f"waiting for 127.0.0.1:{port} (retry 1 of 2 in 0 s)" in shown, shown
    assert f"waiting for 127.0.0.1:{port} (retry 2 of 2 in 0 s)" in shown, shown


def test_no_network_for_the_feed_names_the_feed_option(tmp_path, mirror, march_2024):
    mirror.add(march_2024[:30])
    port = dead_port()
    result = run(
        *sync_args(tmp_path / "t.db", mirror, "--rss-url", f"http://127.0.0.1:{port}/rss", "--retries", "1")
    )
    assert result.exit_code == 1
    (line,) = errors(result.stderr)
    assert f"127.0.0.1:{port}" in line and "--rss-url" in line and len(line) < 150, line


def test_no_network_for_the_backfill_names_the_oai_option(tmp_path: Path) -> None:
    port = dead_port()
    result = run(
        "backfill",
        tmp_path / "t.db",
        "--from",
        "2016-04-01",
        "--until",
        "2016-04-30",
        "--oai-url",
        f"http://127.0.0.1:{port}/oai",
        "--delay",
        "0",
        "--no-classify",
    )
    assert result.exit_code == 1
    (line,) = errors(result.stderr)
    assert f"127.0.0.1:{port}" in line and "--oai-url" in line and "verb=" not in line, line
    assert len(line) < 150, line
