"""The scheduled jobs in cron/, run as cron would run them: bash scripts against a temporary database,
a loopback arXiv (tracker.demo.mirror) and a loopback SMTP server, including two runs at once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from digest_support import Inbox, corpus_records, make_week_db, smtp_server

from tracker import store

REPO = Path(__file__).resolve().parent.parent
CRON = REPO / "cron"
FIXTURES = Path(__file__).parent / "fixtures" / "digest"
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z ")


def tracker_bin() -> str:
    beside = Path(sys.executable).with_name("tracker")
    return str(beside) if beside.exists() else (shutil.which("tracker") or "tracker")


def script_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env.update(
        TRACKER_DB=str(tmp_path / "t.db"),
        TRACKER_LOG=str(tmp_path / "job.log"),
        TRACKER_BIN=tracker_bin(),
        TRACKER_AUTH=str(tmp_path / "auth.json"),
        TRACKER_RULES=str(FIXTURES / "rules"),
    )
    env.update(extra)
    return env


def run_script(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CRON / name)], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def loaded_mirror(mirror, march_2024):
    mirror.add(r for r in march_2024 if r["published"] < "2024-03-08")
    return mirror


def sync_args(mirror, *extra: str) -> str:
    return " ".join(
        [
            "--api-url",
            mirror.api_url,
            "--rss-url",
            mirror.rss_url,
            "--delay",
            "0",
            "--since",
            "2024-03-01",
            "--until",
            "2024-03-07",
            "--no-feed",
            "--no-classify",
            *extra,
        ]
    )


def papers(db_path: Path) -> int:
    return int(store.open_db(db_path).conn.execute("SELECT count(*) FROM papers").fetchone()[0])


def log_lines(tmp_path: Path) -> list[str]:
    return (tmp_path / "job.log").read_text().splitlines()


def test_nightly_syncs_and_logs_with_timestamps(tmp_path, loaded_mirror):
    env = script_env(tmp_path, TRACKER_SYNC_ARGS=sync_args(loaded_mirror))
    result = run_script("nightly.sh", env)
    assert result.returncode == 0, result.stderr
    assert papers(tmp_path / "t.db") > 0
    lines = log_lines(tmp_path)
    assert all(STAMP.match(line) for line in lines)
    assert any("sync ok:" in line for line in lines) and lines[-1].endswith("nightly: done")
    # Nothing new the second night is still success.
    again = run_script("nightly.sh", env)
    assert again.returncode == 0 and log_lines(tmp_path)[-1].endswith("nightly: done")


def test_nightly_failure_exits_non_zero_and_status_alerts(tmp_path):
    with socket_closed_port() as port:
        args = (
            f"--api-url http://127.0.0.1:{port}/api/query --delay 0 --retries 0 --timeout 2 --no-feed "
            "--since 2024-03-01 --until 2024-03-07"
        )
        result = run_script("nightly.sh", script_env(tmp_path, TRACKER_SYNC_ARGS=args))
    assert result.returncode != 0
    assert "nightly: FAILED" in log_lines(tmp_path)[-1]
    status = subprocess.run(
        [tracker_bin(), "status", str(tmp_path / "t.db")], capture_output=True, text=True, check=False
    )
    assert status.returncode == 1 and "the last sync failed" in status.stdout


def test_nightly_skips_cleanly_while_another_writer_holds_the_lock(tmp_path, loaded_mirror):
    db_path = tmp_path / "t.db"
    store.open_db(db_path)
    env = script_env(tmp_path, TRACKER_SYNC_ARGS=sync_args(loaded_mirror))
    with store.writer_lock(db_path):
        result = run_script("nightly.sh", env)
    assert result.returncode == 0
    assert "another tracker process holds" in log_lines(tmp_path)[-1]
    assert papers(db_path) == 0


def test_nightly_waits_for_the_lock_when_asked(tmp_path, loaded_mirror):
    db_path = tmp_path / "t.db"
    store.open_db(db_path)
    env = script_env(tmp_path, TRACKER_SYNC_ARGS=sync_args(loaded_mirror), TRACKER_LOCK_WAIT="60")
    held = threading.Event()

    def hold() -> None:
        with store.writer_lock(db_path):
            held.set()
            time.sleep(1.5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    result = run_script("nightly.sh", env)
    holder.join()
    assert result.returncode == 0, result.stderr
    assert papers(db_path) > 0 and log_lines(tmp_path)[-1].endswith("nightly: done")


def test_two_nightly_runs_at_once_both_end_cleanly(tmp_path, loaded_mirror):
    env = script_env(tmp_path, TRACKER_SYNC_ARGS=sync_args(loaded_mirror))
    store.open_db(tmp_path / "t.db")
    procs = [subprocess.Popen(["bash", str(CRON / "nightly.sh")], env=env) for _ in range(2)]
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0, 0]
    lines = log_lines(tmp_path)
    finished = [line for line in lines if line.endswith("nightly: done") or "holds" in line]
    assert len(finished) == 2
    assert papers(tmp_path / "t.db") == len([r for r in loaded_mirror.records.values()])


def test_weekly_sends_once_and_fails_loudly(tmp_path):
    db_path = make_week_db(tmp_path / "t.db", corpus_records(6))
    store.save_subscriber(store.open_db(db_path), "reader@example.org", [])
    inbox = Inbox()
    controller = smtp_server(inbox)
    try:
        args = f"--week 2026-W47 --smtp-host 127.0.0.1 --smtp-port {controller.port} --plain --from t@example.org"
        env = script_env(tmp_path, TRACKER_DIGEST_ARGS=args, TRACKER_LOG=str(tmp_path / "job.log"))
        inbox.refuse_next = 1
        failed = run_script("weekly.sh", env)
        assert failed.returncode != 0 and "weekly: FAILED" in log_lines(tmp_path)[-1]
        assert inbox.messages == []
        for _ in range(2):  # the retry delivers; the rerun after it sends nothing
            assert run_script("weekly.sh", env).returncode == 0
        assert [str(m["To"]) for m in inbox.messages] == ["reader@example.org"]
        assert any("already sent to reader@example.org" in line for line in log_lines(tmp_path))
    finally:
        controller.stop()


def test_schedule_follows_arxivs_announcements():
    """Nightly after 20:00 US/Eastern on Sunday..Thursday; weekly on Monday morning, in both cron and systemd."""
    crontab = (CRON / "crontab.example").read_text()
    assert "CRON_TZ=America/New_York" in crontab
    entries = {
        line.split()[-1].rsplit("/", 1)[-1]: line.split()[:5]
        for line in crontab.splitlines()
        if line and not line.startswith("#") and "=" not in line
    }
    _minute, hour, _, _, dow = entries["nightly.sh"]
    assert int(hour) >= 20 and dow == "0-4"
    assert entries["weekly.sh"][4] == "1"
    nightly = (CRON / "tracker-nightly.timer").read_text()
    assert "OnCalendar=Sun,Mon..Thu *-*-* 21:30:00 America/New_York" in nightly
    assert "OnCalendar=Mon *-*-* 06:00:00 America/New_York" in (CRON / "tracker-weekly.timer").read_text()
    for unit in ("tracker-nightly.service", "tracker-weekly.service"):
        assert re.search(
            r"^ExecStart=\S+/cron/(nightly|weekly)\.sh$", (CRON / unit).read_text(), re.MULTILINE
        )
    for script in ("nightly.sh", "weekly.sh"):
        body = (CRON / script).read_text()
        assert os.access(CRON / script, os.X_OK) and "set -euo pipefail" in body
        assert '"$TRACKER" ' in body  # the scripts call only the tracker CLI


class socket_closed_port:
    """A loopback port with nothing listening (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None
