"""`tracker demo`: the whole nightly pipeline, offline, over loopback HTTP, as a new user first runs it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys


def test_demo_syncs_tags_and_is_idempotent(tmp_path):
    db = tmp_path / "demo.db"
    first = subprocess.run(
        [sys.executable, "-m", "tracker", "demo", str(db)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    conn = sqlite3.connect(db)
    papers = conn.execute("SELECT count(*) FROM papers WHERE needs_metadata = 0").fetchone()[0]
    assert papers > 900
    types = {t for (t,) in conn.execute("SELECT DISTINCT announce_type FROM announcements")}
    assert types == {"new", "cross", "replace", "replace-cross"}
    assert {s for (s,) in conn.execute("SELECT status FROM sync_runs")} == {"ok"}
    tagged = conn.execute("SELECT count(DISTINCT arxiv_id) FROM paper_tags").fetchone()[0]
    assert 0 < tagged < papers  # most papers of a night carry no tag
    conn.close()
    assert f"{papers} new" in first.stdout or "new," in first.stdout
    assert "Next, try" in first.stdout and f"tracker explain {db}" in first.stdout

    second = subprocess.run(
        [sys.executable, "-m", "tracker", "demo", str(db)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    assert "0 new, 0 updated" in second.stdout
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM papers WHERE needs_metadata = 0").fetchone()[0] == papers
    assert conn.execute("SELECT count(DISTINCT arxiv_id) FROM paper_tags").fetchone()[0] == tagged
