"""Every error class in tracker/errors.py, raised once through the real CLI, exits with exactly its code.

Cron and monitors branch on these numbers (75 means "try again later"), so each is pinned here, next to
the class that defines it, rather than only as "non-zero" in the scenario tests.
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

from digest_support import corpus_records, make_week_db
from helpers import run, sync_args

from tracker import errors, store
from tracker.config import model_paths
from tracker.demo.mirror import ArxivMirror, Fault

DIGEST_RULES = Path(__file__).parent / "fixtures" / "digest" / "rules"


def free_port() -> int:
    """A loopback port that was just free: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_error_class_is_covered_here():
    classes = {c.__name__ for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)}
    assert classes == {
        "TrackerError",
        "ConfigError",
        "InputError",
        "FetchError",
        "LockedError",
        "ModelError",
        "MailError",
    }


def test_config_error_exits_2(tmp_path, mirror):
    result = run(*sync_args(tmp_path / "t.db", mirror, "--since", "2024-02-30"))
    assert result.exit_code == errors.ConfigError.exit_code == 2
    assert result.stderr.startswith("Error: --since '2024-02-30' is not a valid date")


def test_input_error_exits_1(tmp_path):
    saved = tmp_path / "page.xml"
    saved.write_bytes(b"<?xml version='1.0'?><html><body>a login page</body></html>")
    result = run("sync", tmp_path / "t.db", "--load", saved, "--no-classify")
    assert result.exit_code == errors.InputError.exit_code == 1
    assert "neither an arXiv API page nor an announcement feed" in result.stderr


def test_fetch_error_exits_1(tmp_path, mirror: ArxivMirror):
    mirror.faults.extend(Fault(status=503) for _ in range(3))
    result = run(
        *sync_args(tmp_path / "t.db", mirror, "--retries", "1", "--no-feed", "--since", "2024-03-01")
    )
    assert result.exit_code == errors.FetchError.exit_code == 1
    assert "gave up after 2 attempts" in result.stderr


def test_locked_error_exits_75(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(2))
    with store.writer_lock(db_path):
        result = run("subscribe", db_path, "me@example.org")
    assert result.exit_code == errors.LockedError.exit_code == 75
    assert "is being written by another tracker process" in result.stderr


def test_model_error_exits_1(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(2))
    model_path, meta_path = model_paths(db_path)
    model_path.write_bytes(b"not a model")
    meta_path.write_text("{not json")
    result = run("classify", db_path)
    assert result.exit_code == errors.ModelError.exit_code == 1
    assert "sidecar is not valid JSON; run: tracker train" in result.stderr


def test_mail_error_exits_1(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_RULES", str(DIGEST_RULES))
    monkeypatch.setenv("TRACKER_SMTP_TIMEOUT", "5")
    db_path = make_week_db(tmp_path / "t.db", corpus_records(4))
    args = ["--send", "--to", "me@example.org", "--smtp-host", "127.0.0.1", "--smtp-port", str(free_port())]
    result = run("digest", db_path, "--week", "2026-W47", *args, "--plain", "--from", "tracker@example.org")
    assert result.exit_code == errors.MailError.exit_code == 1
    assert "1 of 1 digests for 2026-W47 failed (me@example.org)" in result.stderr


def test_tracker_error_itself_exits_1(tmp_path, monkeypatch):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(2))

    def failing_disk(db: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr("tracker.public.check_public", failing_disk)
    result = run("public-copy", db_path, tmp_path / "public.db")
    assert result.exit_code == errors.TrackerError.exit_code == 1
    assert "cannot write the public copy: disk I/O error" in result.stderr
