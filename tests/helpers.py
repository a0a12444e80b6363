"""Helpers the tests share: run the CLI, point sync at the loopback mirror, snapshot a database."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner, Result

from tracker.cli import cli
from tracker.demo.mirror import ArxivMirror

FIXTURES = Path(__file__).parent / "fixtures"


def run_on_terminal(*args: str, timeout: float = 300) -> tuple[int, bytes, str]:
    """Run the CLI as a process whose stderr is a real terminal (a pty), as when a person types the command.

    Returns (exit status, stdout, the last line the terminal shows after carriage returns).
    """
    code, stdout, shown = terminal_output(*args, timeout=timeout)
    lines = shown.replace("\r", "\n").strip().splitlines()
    return code, stdout, lines[-1] if lines else ""


def terminal_output(*args: str, timeout: float = 300) -> tuple[int, bytes, str]:
    """Like run_on_terminal, but returns everything written to the terminal, carriage returns included."""
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    try:
        child = subprocess.run(
            [sys.executable, "-m", "tracker", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=timeout,
            check=False,
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal is closed once everything written has been read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    return child.returncode, child.stdout, shown.decode()


def run(*args: str) -> Result:
    """Invoke the CLI in-process; stderr is kept apart from stdout."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def sync_args(db: Path, m: ArxivMirror, *extra: str) -> list[str]:
    """`tracker sync` pointed at the loopback mirror, with no politeness delay and fast retries."""
    return [
        "sync",
        str(db),
        "--api-url",
        m.api_url,
        "--rss-url",
        m.rss_url,
        "--delay",
        "0",
        "--backoff",
        "0.05",
        "--no-classify",
        *extra,
    ]


def query(db_path: Path | str, sql: str, *params: object) -> list[tuple]:
    """Rows of one SQL statement on a database file, through a connection of its own."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        return conn.execute(sql, params).fetchall()


def db_snapshot(path: Path, *, check_time: bool = True) -> list[tuple]:
    """Every row of the data tables, to prove a failed command changed nothing.

    check_time=False leaves out sync_state.updated: a sync that succeeds without news still records when
    it last looked, and a second boundary between two runs must not fail the test."""
    import sqlite3

    if not os.path.exists(path):
        return []
    conn = sqlite3.connect(path)
    rows: list[tuple] = []
    for table in ("papers", "paper_versions", "announcements", "paper_authors", "sync_state"):
        columns = "*"
        if table == "sync_state" and not check_time:
            columns = "query_key, watermark, resume_since, resume_until, resume_offset"
        rows += [(table, *r) for r in conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2")]
    conn.close()
    return rows


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for 127.0.0.1 (openssl), for TLS servers on loopback in tests."""
    import pytest

    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key
