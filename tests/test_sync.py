"""`tracker sync` against a real loopback HTTP server serving real recorded arXiv records and pages."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
import sqlite_utils
from helpers import FIXTURES, db_snapshot, run, sync_args
from helpers import query as q

from tracker import store
from tracker.demo.mirror import Fault
from tracker.fetch import PoliteSession
from tracker.sync import Syncer, SyncOptions

API = FIXTURES / "api"
WINDOW = ["--since", "2024-03-01", "--until", "2024-03-31", "--no-feed"]


def test_pagination_stores_every_paper_in_about_n_over_page_size_requests(tmp_path, mirror, march_2024):
    mirror.add(march_2024)
    db = tmp_path / "t.db"
    result = run(*sync_args(db, mirror, *WINDOW, "--page-size", "50"))
    assert result.exit_code == 0, result.output
    n = len(march_2024)
    assert n > 100
    assert q(db, "SELECT count(*) FROM papers")[0][0] == n
    api = mirror.api_requests()
    assert len(api) == -(-n // 50)  # ceil(n / page size), nothing per day of the month
    assert [int(r["start"]) for r in api] == list(range(0, n, 50))
    assert "submittedDate:[202403010000 TO 202403312359]" in api[0]["search_query"]
    assert api[0]["sortOrder"] == "descending"
    assert f"{n} new, 0 updated, 0 unchanged" in result.output
    # what a user queries: full text (also through `sqlite-utils search`, which looks for
    # content="papers" in the index's schema), authors linked, categories as JSON
    found = list(
        sqlite_utils.Database(db)["papers"].search(march_2024[1]["title"], columns=["arxiv_id"], quote=True)
    )
    assert {"arxiv_id": march_2024[1]["id"]} in found
    hit = q(
        db,
        "SELECT p.title FROM papers_fts JOIN papers p ON p.rowid = papers_fts.rowid WHERE papers_fts MATCH ?",
        '"' + march_2024[0]["title"].split()[0].strip(":") + '"',
    )
    assert hit
    paper = march_2024[0]
    row = q(
        db,
        "SELECT title, categories, primary_category, published FROM papers WHERE arxiv_id = ?",
        paper["id"],
    )[0]
    assert row[0] == paper["title"] and json.loads(row[1]) == paper["categories"]
    assert row[3].startswith(paper["published"][:10])
    authors = q(
        db,
        "SELECT a.name FROM paper_authors pa JOIN authors a ON a.id = pa.author_id WHERE pa.arxiv_id = ? ORDER BY position",
        paper["id"],
    )
    assert [a for (a,) in authors] == paper["authors"]


def test_incremental_rerun_adds_nothing_and_reads_one_page(tmp_path, mirror, march_2024):
    mirror.add(march_2024)
    db = tmp_path / "t.db"
    assert run(*sync_args(db, mirror, *WINDOW, "--page-size", "50")).exit_code == 0
    before = db_snapshot(db, check_time=False)
    mirror.requests.clear()
    result = run(*sync_args(db, mirror, *WINDOW, "--page-size", "50"))
    assert result.exit_code == 0
    assert "0 new, 0 updated" in result.output
    assert len(mirror.api_requests()) == 1  # a full page of known papers ends the window
    assert db_snapshot(db, check_time=False) == before


def test_watermark_catches_up_after_a_week_offline(tmp_path, mirror, corpus):
    march = [r for r in corpus if "2024-03-01" <= r["published"][:10] <= "2024-03-20"]
    later = [r for r in corpus if "2024-03-21" <= r["published"][:10] <= "2024-03-31"]
    mirror.add(march)
    db = store.open_db(tmp_path / "t.db")
    opts = SyncOptions(
        categories=("cs.CV", "cs.CL", "cs.AI", "cs.LG"), api_url=mirror.api_url, rss_url=None, initial_days=20
    )
    night1 = Syncer(db, PoliteSession(delay=0), opts).run(now=datetime(2024, 3, 21, tzinfo=timezone.utc))
    assert night1.counts.new == len(march)
    mirror.add(later)  # a week offline: nothing synced between the 21st and the 31st
    mirror.requests.clear()
    night2 = Syncer(db, PoliteSession(delay=0), opts).run(now=datetime(2024, 4, 1, tzinfo=timezone.utc))
    assert night2.counts.new == len(later)
    (window,) = night2.windows
    assert window[0].startswith("2024-03-19")  # watermark minus the two-day overlap
    assert db.execute("SELECT count(*) FROM papers").fetchone()[0] == len(march) + len(later)


def test_an_explicit_old_window_does_not_move_the_nightly_watermark(tmp_path, mirror, march_2024):
    mirror.add(march_2024)
    db = tmp_path / "t.db"
    assert run(*sync_args(db, mirror, *WINDOW)).exit_code == 0
    assert q(db, "SELECT watermark FROM sync_state") == [(None,)]
    mirror.requests.clear()
    assert run(*sync_args(db, mirror, "--no-feed")).exit_code == 0
    (query,) = mirror.api_requests()  # the first nightly run looks back initial_days, not to March 2024
    assert "submittedDate:[2024" not in query["search_query"]


def test_newer_version_updates_and_older_never_overwrites(tmp_path, mirror, march_2024):
    paper = dict(march_2024[0], version="v1")
    mirror.add([paper])
    db = tmp_path / "t.db"
    assert run(*sync_args(db, mirror, *WINDOW)).exit_code == 0
    mirror.add(
        [dict(paper, version="v2", title="Revised: " + paper["title"], updated="2024-04-02T10:00:00Z")]
    )
    result = run(*sync_args(db, mirror, *WINDOW, "--all"))
    assert "0 new, 1 updated" in result.output
    assert q(db, "SELECT version, title FROM papers")[0] == (2, "Revised: " + paper["title"])
    assert q(db, "SELECT version, updated FROM paper_versions ORDER BY version") == [
        (1, paper["updated"].replace("Z", "+00:00")),
        (2, "2024-04-02T10:00:00+00:00"),
    ]
    mirror.add([paper])  # a stale mirror serving v1 again
    result = run(*sync_args(db, mirror, *WINDOW, "--all"))
    assert "0 new, 0 updated, 1 unchanged" in result.output
    assert q(db, "SELECT version FROM papers")[0] == (2,)


def test_recorded_pages_with_old_style_ids_load(tmp_path):
    db = tmp_path / "t.db"
    files = [
        API / "arxivpy_id_astro-ph_0601001_s0_m100_3150dca9dc76.xml",
        API / "arxivpy_id_hep-ex_0406020v1_s0_m100_84b15d66c0ce.xml",
        API / "arxivpy_legacy_search_query_au_del_maestro.xml",
    ]
    args = ["sync", str(db), "--no-classify"]
    for f in files:
        args += ["--load", str(f)]
    result = run(*args)
    assert result.exit_code == 0, result.output
    ids = {r[0] for r in q(db, "SELECT arxiv_id FROM papers")}
    assert {"astro-ph/0601001", "hep-ex/0406020"} <= ids
    assert len(ids) == 12  # 1 + 1 + the legacy page's 10 entries
    assert (
        q(db, "SELECT version, abs_url FROM papers WHERE arxiv_id = 'astro-ph/0601001'")[0][1]
        == "https://arxiv.org/abs/astro-ph/0601001"
    )


def test_recorded_error_feed_400_is_one_line_and_changes_nothing(tmp_path, mirror, march_2024):
    mirror.add(march_2024)
    db = tmp_path / "t.db"
    run(*sync_args(db, mirror, *WINDOW))
    before = db_snapshot(db)
    mirror.faults.append(
        Fault(status=400, body=(API / "arxivpy_id_abc_s0_m100_b79c8dcf6bc3.xml").read_bytes())
    )
    result = run(*sync_args(db, mirror, *WINDOW, "--all"))
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "HTTP 400: incorrect id format for abc" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert len(mirror.api_requests()) == len(march_2024) // 100 + 2  # no retry of a client error
    assert db_snapshot(db) == before


def test_a_well_formed_page_that_is_not_atom_fails_and_keeps_the_watermark(tmp_path, mirror, march_2024):
    """An error page sent with HTTP 200 parses as XML but is no result page: it must not pass for an empty
    night, or the watermark moves past a window that was never read."""
    mirror.add(march_2024[:30])
    db = tmp_path / "t.db"
    assert run(*sync_args(db, mirror, *WINDOW)).exit_code == 0
    before = db_snapshot(db)
    watermark = q(db, "SELECT * FROM sync_state")
    page = b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>503 Service Unavailable</p></body></html>'
    mirror.faults.extend(Fault(status=200, body=page, path="/api") for _ in range(10))
    result = run(*sync_args(db, mirror, "--no-feed"))
    assert result.exit_code == 1
    assert "not an arXiv API page (its root element is <html>)" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert q(db, "SELECT * FROM sync_state") == watermark and db_snapshot(db) == before
    assert q(db, "SELECT status FROM sync_runs ORDER BY id DESC LIMIT 1") == [("failed",)]


def test_recorded_empty_result_is_a_successful_empty_run(tmp_path, mirror):
    mirror.faults.append(
        Fault(status=200, body=(API / "arxivpy_id_0000.0000_s0_m100_8b51d9633a68.xml").read_bytes())
    )
    db = tmp_path / "t.db"
    result = run(*sync_args(db, mirror, *WINDOW))
    assert result.exit_code == 0
    assert "sync empty: 0 new" in result.output
    assert q(db, "SELECT source, status FROM sync_runs") == [("api", "empty")]


@pytest.mark.parametrize("status", [503, 429])
def test_retry_after_is_honoured(tmp_path, mirror, march_2024, status):
    mirror.add(march_2024[:30])
    mirror.faults.append(Fault(status=status, headers={"Retry-After": "1"}))
    db = tmp_path / "t.db"
    result = run(*sync_args(db, mirror, *WINDOW))
    assert result.exit_code == 0, result.stderr
    assert q(db, "SELECT count(*) FROM papers")[0][0] == 30
    assert mirror.times[1] - mirror.times[0] >= 0.95  # waited as told, not the 0.05 s backoff


def test_timeout_is_retried(tmp_path, mirror, march_2024):
    mirror.add(march_2024[:30])
    mirror.faults.append(Fault(status=200, delay=1.5))  # answers slower than --timeout
    db = tmp_path / "t.db"
    result = run(*sync_args(db, mirror, *WINDOW, "--timeout", "0.5"))
    assert result.exit_code == 0, result.stderr
    assert q(db, "SELECT count(*) FROM papers")[0][0] == 30
    assert len(mirror.api_requests()) == 2


def test_empty_page_mid_pagination_is_retried(tmp_path, mirror, march_2024):
    mirror.add(march_2024)
    db = tmp_path / "t.db"
    original, calls = mirror._handle, {"n": 0}

    def handle(handler):  # the 2nd request (page 2) comes back as a valid feed with no entries, once
        calls["n"] += 1
        if calls["n"] == 2:
            mirror.faults.appendleft(Fault(status=200, empty_page=True))
        original(handler)

    mirror._handle = handle  # type: ignore[method-assign]
    result = run(*sync_args(db, mirror, *WINDOW, "--page-size", "50"))
    assert result.exit_code == 0, result.stderr
    assert q(db, "SELECT count(*) FROM papers")[0][0] == len(march_2024)
    starts = [int(r["start"]) for r in mirror.api_requests()]
    assert starts[:3] == [0, 50, 50]  # the empty page at start=50 was asked again


def test_truncated_body_is_retried_then_fails_cleanly_keeping_earlier_pages(tmp_path, mirror, march_2024):
    mirror.add(march_2024)
    db = tmp_path / "t.db"
    mirror.faults.append(Fault(status=200, truncate=700))
    result = run(*sync_args(db, mirror, *WINDOW, "--page-size", "50"))
    assert result.exit_code == 0, result.stderr  # one truncated page, retried
    assert q(db, "SELECT count(*) FROM papers")[0][0] == len(march_2024)

    db2 = tmp_path / "t2.db"
    calls = {"n": 0}
    original = mirror._handle

    def handle(handler):  # page 1 fine, then every request truncated
        calls["n"] += 1
        if calls["n"] > 1:
            mirror.faults.appendleft(Fault(status=200, truncate=700))
        original(handler)

    mirror._handle = handle  # type: ignore[method-assign]
    result = run(*sync_args(db2, mirror, *WINDOW, "--page-size", "50", "--retries", "2"))
    assert result.exit_code == 1
    assert "gave up after 3 attempts" in result.stderr and result.stderr.count("\n") == 1
    assert q(db2, "SELECT count(*) FROM papers")[0][0] == 50  # page 1 kept, nothing half-stored
    assert q(db2, "SELECT status FROM sync_runs")[0][0] == "failed"
    assert q(db2, "SELECT resume_offset FROM sync_state")[0][0] == 50

    mirror._handle = original  # type: ignore[method-assign]
    mirror.requests.clear()
    result = run(*sync_args(db2, mirror, *WINDOW, "--page-size", "50"))
    assert result.exit_code == 0
    assert int(mirror.api_requests()[0]["start"]) == 50  # resumed where it stopped
    assert q(db2, "SELECT count(*) FROM papers")[0][0] == len(march_2024)


def test_sigkill_mid_run_then_rerun_completes(tmp_path, mirror, corpus):
    papers = [r for r in corpus if r["published"].startswith("2024")]
    mirror.add(papers)
    db = tmp_path / "t.db"
    args = [
        sys.executable,
        "-m",
        "tracker",
        *sync_args(
            db, mirror, "--since", "2024-01-01", "--until", "2024-12-31", "--no-feed", "--page-size", "20"
        ),
    ]
    args[args.index("--delay") + 1] = "0.05"
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    stored = 0
    while time.time() < deadline:
        time.sleep(0.1)
        if db.exists():
            try:
                stored = q(db, "SELECT count(*) FROM papers")[0][0]
            except sqlite3.OperationalError:
                continue
            if stored >= 200:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < stored < len(papers)
    assert q(db, "PRAGMA integrity_check")[0][0] == "ok"
    result = run(
        *sync_args(
            db, mirror, "--since", "2024-01-01", "--until", "2024-12-31", "--no-feed", "--page-size", "20"
        )
    )
    assert result.exit_code == 0, result.stderr
    assert q(db, "SELECT count(*), count(DISTINCT arxiv_id) FROM papers")[0] == (len(papers), len(papers))
    assert q(db, "SELECT count(*) FROM papers_fts")[0][0] == len(papers)
    statuses = [s for (s,) in q(db, "SELECT status FROM sync_runs ORDER BY id")]
    assert statuses == ["failed", "ok"]  # the killed run is marked, not left "running"


def test_feed_with_all_four_announce_types(tmp_path, mirror, march_2024, corpus):
    known = march_2024[0]
    rest = [r for r in corpus if r["published"] < "2024-01-15"][:4]  # outside any window this test reads
    mirror.add([known, *rest])
    db = tmp_path / "t.db"
    # One paper is already stored at v1; the feed announces v2 of it.
    run(
        *sync_args(
            db, mirror, "--since", known["published"][:10], "--until", known["published"][:10], "--no-feed"
        )
    )
    types = ["new", "cross", "replace", "replace-cross"]
    items = [dict(known, version=2, announce_type="replace")] + [
        dict(r, announce_type=t) for r, t in zip(rest, ["new", "cross", "replace-cross", "new"], strict=True)
    ]
    mirror.add([dict(known, version="v2")])
    mirror.announcements = {"2024-04-01": items}
    mirror.requests.clear()
    result = run(
        "sync", db, "--api-url", mirror.api_url, "--rss-url", mirror.rss_url, "--delay", "0", "--no-classify"
    )
    assert result.exit_code == 0, result.stderr
    assert [p for p, _ in mirror.requests if p.startswith("/rss/")] == ["/rss/cs.CV+cs.CL+cs.AI+cs.LG+cs.MM"]
    assert {t for (t,) in q(db, "SELECT DISTINCT announce_type FROM announcements")} == set(types)
    assert q(db, "SELECT version, announce_type, needs_metadata FROM papers WHERE arxiv_id = ?", known["id"])[
        0
    ] == (2, "replace", 0)
    # papers first seen in the feed got their full record from the API by id_list
    assert q(db, "SELECT count(*) FROM papers WHERE needs_metadata = 1")[0][0] == 0
    assert any("id_list" in query and query["id_list"] for _, query in mirror.requests)
    assert q(db, "SELECT announced FROM papers WHERE arxiv_id = ?", rest[0]["id"])[0][0] == "2024-04-01"


def test_weekend_empty_feed_is_success_and_distinct_from_failure(tmp_path, mirror):
    db = tmp_path / "t.db"
    mirror.announcements = {"2024-03-02": []}
    result = run(
        "sync", db, "--api-url", mirror.api_url, "--rss-url", mirror.rss_url, "--delay", "0", "--no-classify"
    )
    assert result.exit_code == 0
    assert {s for (s,) in q(db, "SELECT status FROM sync_runs")} == {"empty"}
    mirror.faults.extend([Fault(status=503)] * 3)
    result = run(*sync_args(db, mirror, "--retries", "2"))
    assert result.exit_code == 1
    assert q(db, "SELECT status, error FROM sync_runs ORDER BY id DESC LIMIT 1")[0][0] == "failed"


ENTITY_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&lol3;</title></feed>"""


@pytest.mark.parametrize(
    "content, message",
    [
        (
            lambda: (API / "arxivpy_q_testing_s0_m10_bc5a6c384fe9.xml").read_bytes()[:3000],
            "malformed XML at line 33, column 6: ",
        ),
        (lambda: b"<html><body>Service unavailable</body></html>", "neither an arXiv API page"),
        (lambda: b"this is not xml at all", "malformed XML"),
        (lambda: ENTITY_BOMB, "refusing XML that declares entities"),
        (
            lambda: (
                (API / "arxivpy_q_testing_s0_m10_bc5a6c384fe9.xml")
                .read_bytes()
                .replace(b"/abs/2405.13786v1<", b"/abs/garbage<")
            ),
            "record id 'http://arxiv.org/abs/garbage' is not an arXiv",
        ),
        (
            lambda: (
                (API / "arxivpy_q_testing_s0_m10_bc5a6c384fe9.xml")
                .read_bytes()
                .replace(b"/abs/2405.13786v1<", b"/abs/2405.13786v99999999999999999999<")
            ),
            "is not an arXiv identifier",
        ),
    ],
)
def test_bad_load_file_is_one_line_error_and_database_unchanged(tmp_path, content, message):
    db = tmp_path / "t.db"
    good = API / "arxivpy_q_testing_s0_m10_bc5a6c384fe9.xml"
    assert run("sync", db, "--no-classify", "--load", good).exit_code == 0
    before = db_snapshot(db)
    bad = tmp_path / "bad.xml"
    bad.write_bytes(content())
    # the good page is listed first: it must be rolled back with the bad one
    result = run(
        "sync",
        db,
        "--no-classify",
        "--load",
        API / "arxivpy_q_testing_s10_m10_34e56e15aaac.xml",
        "--load",
        bad,
    )
    assert result.exit_code != 0
    assert message in result.stderr and result.stderr.count("\n") == 1
    # the place is said once, up front ("at line 38, column 10: ..."), not repeated by libxml2 at the end
    assert not re.search(r", line \d+, column \d+$", result.stderr.strip())
    assert db_snapshot(db) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--since", "2024-02-30"], "--since '2024-02-30' is not a valid date"),
        (["--until", "yesterday"], "--until 'yesterday' is not a valid date"),
        (["--since", "2024-03-05", "--until", "2024-03-01"], "is after --until"),
        (["--category", "cs.VC"], "unknown arXiv category 'cs.VC'"),
        (["--category", "cs.cv"], "did you mean cs.CV"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, mirror, args, message):
    db = tmp_path / "t.db"
    result = run(*sync_args(db, mirror, *args))
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert mirror.requests == []


def test_second_writer_is_refused_with_a_clear_message(tmp_path, mirror):
    db = tmp_path / "t.db"
    with store.writer_lock(db):
        result = run(*sync_args(db, mirror))
    assert result.exit_code == 75
    assert "is being written by another tracker process" in result.stderr
    assert mirror.requests == []


def test_user_agent_and_delay_between_requests(tmp_path, mirror, march_2024):
    mirror.add(march_2024)
    db = tmp_path / "t.db"
    args = sync_args(db, mirror, *WINDOW, "--page-size", "100")
    args[args.index("--delay") + 1] = "0.4"
    assert run(*args).exit_code == 0
    gaps = [b - a for a, b in zip(mirror.times, mirror.times[1:], strict=False)]
    assert gaps and min(gaps) >= 0.39


def test_verbose_logs_each_request_and_summary_line(tmp_path, mirror, march_2024):
    mirror.add(march_2024[:10])
    result = run(*sync_args(tmp_path / "t.db", mirror, *WINDOW, "-v"))
    assert result.stderr.count("tracker.fetch: GET http://127.0.0.1") == len(mirror.requests)
    assert (
        "Requesting page" not in result.stderr
    )  # each request is logged once, not also by the arxiv package
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith("sync ok: 10 new, 0 updated, 0 unchanged; 1 requests;") and line.endswith(" s")


class _NoScikitLearn:
    """An import finder that answers for scikit-learn as Python does when it is not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "sklearn":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def test_sync_fails_loudly_when_the_classifier_cannot_be_imported(tmp_path, mirror, march_2024, monkeypatch):
    """A broken install (scikit-learn missing) fails the nightly sync instead of reporting ok, nothing tagged."""
    mirror.add(march_2024[:30])
    db = tmp_path / "t.db"
    # Import it afresh with scikit-learn gone: the import itself fails, as on a machine without it.
    for name in [m for m in sys.modules if m.split(".")[0] == "sklearn" or m.startswith("tracker.classify")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoScikitLearn(), *sys.meta_path])
    before = set(sys.modules)
    try:
        result = run(*[a for a in sync_args(db, mirror, *WINDOW) if a != "--no-classify"])
    finally:
        for name in set(sys.modules) - before:  # half-imported modules of the failed import
            if name.startswith("tracker.classify"):
                del sys.modules[name]
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        "Error: the classifier cannot be imported: module sklearn is missing; "
        "reinstall the tracker and its dependencies: pip install -e ."
    ]
    assert "sync ok" not in result.stdout
    assert q(db, "SELECT count(*) FROM papers")[0][0] == 30  # what was fetched is kept for the next run
