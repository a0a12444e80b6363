"""`tracker backfill` against a loopback OAI-PMH server serving the recorded arXiv records (tests/oai_server.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest
import yaml
from helpers import query, run, run_on_terminal
from oai_server import Canned, OaiServer, load_records

from tracker import store
from tracker.backfill import BackfillOptions, BackfillReport, run_backfill
from tracker.config import DEFAULT_DB_DIR
from tracker.fetch import PoliteSession

RECORDS = [r for r in load_records("hepcrawl_*.xml") + load_records("excerpt_*.xml")]
CATEGORIES = sorted({c for r in RECORDS for c in r.categories})
SPRING_2016 = {
    "1603.00997",
    "1603.01251",
    "1603.05976",
    "1604.05585",
    "1606.04259",
    "1606.06775",
    "1606.07066",
    "1606.07538",
}
BOMB = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'
    b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>&lol3;</ListRecords></OAI-PMH>'
)


def backfill_args(
    db: Path, oai: OaiServer, start: str, end: str, *extra: str, categories: Sequence[str] = CATEGORIES
) -> list[str]:
    cats = [a for c in categories for a in ("--category", c)]
    return [
        "backfill",
        str(db),
        "--from",
        start,
        "--until",
        end,
        "--set",
        "physics",
        "--oai-url",
        oai.url,
        "--delay",
        "0",
        "--no-classify",
        *cats,
        *extra,
    ]


def paper_ids(db: Path) -> set[str]:
    return {r[0] for r in query(db, "SELECT arxiv_id FROM papers")}


def snapshot(db: Path) -> list[tuple]:
    rows: list[tuple] = []
    for table in ("papers", "paper_versions", "paper_authors", "backfill_state"):
        rows += [(table, *r) for r in query(db, f"SELECT * FROM {table} ORDER BY 1, 2")]
    return rows


def test_multi_page_harvest_stores_each_record_once_and_a_rerun_is_a_no_op(tmp_path: Path) -> None:
    db = tmp_path / "papers.db"
    with OaiServer({"arXiv": RECORDS}, page_size=2) as oai:
        result = run(*backfill_args(db, oai, "2016-03-01", "2016-07-31"))
        assert result.exit_code == 0, result.output
        # March (3 records) and June (4) take two pages each, chained by a resumption token.
        tokens = [q for q in oai.requests if "resumptionToken" in q]
        assert len(tokens) == 2
        assert paper_ids(db) == SPRING_2016 | {"1607.00786"}
        assert "backfill ok: 9 records in 5 window(s)" in result.stdout
        assert "ETA" not in result.stderr  # no progress bar when stderr is not a terminal

        title, authors, cats, published, version = query(
            db,
            "SELECT title, authors, categories, published, version FROM papers WHERE arxiv_id = '1607.00786'",
        )[0]
        assert title == "Exclusive Photoproduction of Upsilon in pPb collisions with the CMS"
        assert json.loads(authors) == ["Ruchi Chudasama", "Dipanwita Dutta for the CMS Collaboration"]
        assert json.loads(cats) == ["hep-ex"] and published.startswith("2016-07-04") and version == 1
        assert query(db, "SELECT done, records FROM backfill_state") == [(1, 9)]
        assert query(db, "SELECT source, status, new FROM sync_runs") == [("oai", "ok", 9)]

        before = len(oai.requests)
        again = run(*backfill_args(db, oai, "2016-03-01", "2016-07-31"))
        assert again.exit_code == 0 and "already harvested" in again.stdout
        assert len(oai.requests) == before
    assert query(db, "SELECT count(*) FROM paper_versions") == [(9,)]


def test_progress_bar_shows_rate_and_eta_on_a_terminal(tmp_path: Path) -> None:
    db = tmp_path / "papers.db"
    with OaiServer({"arXiv": RECORDS}, page_size=2) as oai:
        status, stdout, line = run_on_terminal(
            *backfill_args(db, oai, "2016-03-01", "2016-07-31"), timeout=120
        )
    assert status == 0, line
    # The last update: everything done, the count, the rate, and no time left.
    assert re.fullmatch(r"backfill 100\.0% 9 records [\d,]+/s ETA -- done", line), line
    assert b"backfill ok: 9 records" in stdout


def test_only_configured_categories_are_kept(tmp_path: Path) -> None:
    db = tmp_path / "papers.db"
    with OaiServer({"arXiv": RECORDS}) as oai:
        result = run(*backfill_args(db, oai, "2016-03-01", "2016-07-31", categories=["hep-ex"]))
    assert result.exit_code == 0, result.output
    assert paper_ids(db) == {"1603.01251", "1606.07538", "1607.00786"}
    assert "9 records in 5 window(s), 3 in the wanted categories" in result.stdout


def test_no_records_match_is_an_empty_window_not_an_error(tmp_path: Path) -> None:
    db = tmp_path / "papers.db"
    with OaiServer({"arXiv": RECORDS}) as oai:
        result = run(*backfill_args(db, oai, "2016-05-01", "2016-05-31"))
    assert result.exit_code == 0, result.output
    assert paper_ids(db) == set()
    assert query(db, "SELECT status FROM sync_runs") == [("empty",)]
    assert query(db, "SELECT done FROM backfill_state") == [(1,)]


def test_503_with_retry_after_is_waited_out_then_the_page_is_stored(tmp_path: Path) -> None:
    db = store.open_db(tmp_path / "papers.db")
    sleeps: list[float] = []
    session = PoliteSession(delay=0, backoff=0, sleep=sleeps.append)
    opts = BackfillOptions(date(2016, 4, 1), date(2016, 4, 30), "physics", categories=tuple(CATEGORIES))
    with OaiServer({"arXiv": RECORDS}) as oai:
        oai.canned.append(Canned(503, b"busy", {"Retry-After": "7"}))
        report = run_backfill(db, BackfillOptions(**{**opts.__dict__, "oai_url": oai.url}), session)
        assert len(oai.requests) == 2 and oai.requests[0] == oai.requests[1]
    assert sleeps and 6.0 < max(sleeps) <= 7.0  # the wait the server asked for, not a default backoff
    assert report.counts.new == 1
    assert [r["arxiv_id"] for r in db.query("SELECT arxiv_id FROM papers")] == ["1604.05585"]


def test_expired_resumption_token_restarts_only_the_current_window(tmp_path: Path) -> None:
    db = tmp_path / "papers.db"
    with OaiServer({"arXiv": RECORDS}, page_size=2) as oai:
        # Requests: Mar p1, Mar p2, Apr, May, Jun p1 -> the tokens expire -> Jun p2 is refused.
        original = oai._answer

        def expiring(q: dict[str, str]) -> bytes:
            body = original(q)
            if q.get("from") == "2016-06-01" and oai.generation == 1:
                oai.expire_tokens()  # once, like arXiv's daily expiry
            return body

        oai._answer = expiring  # type: ignore[method-assign]
        result = run(*backfill_args(db, oai, "2016-03-01", "2016-06-30"))
        firsts = [q["from"] for q in oai.requests if "from" in q]
    assert result.exit_code == 0, result.output
    assert firsts.count("2016-03-01") == 1  # finished windows are never harvested again
    assert firsts.count("2016-06-01") >= 2
    assert paper_ids(db) == SPRING_2016
    assert "window restart(s) after an expired token" in result.stdout


def test_bad_resumption_token_forever_fails_with_one_line_and_keeps_earlier_windows(tmp_path: Path) -> None:
    db = tmp_path / "papers.db"
    with OaiServer({"arXiv": RECORDS}, page_size=2) as oai:
        original = oai._answer

        def always_expired(q: dict[str, str]) -> bytes:
            body = original(q)
            if q.get("from") == "2016-06-01":
                oai.expire_tokens()
            return body

        oai._answer = always_expired  # type: ignore[method-assign]
        result = run(*backfill_args(db, oai, "2016-05-01", "2016-06-30"))
    assert result.exit_code == 1
    # Each restart is logged as a warning; the failure itself is one "Error:" line, no traceback.
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "badResumptionToken" in errors[0] and "giving up" in errors[0]
    assert "Traceback" not in result.output
    # Each restart stored the first June page again (upserts, so no duplicates); progress points at June.
    assert paper_ids(db) == {"1606.04259", "1606.06775"}
    assert query(db, "SELECT window_from, token, done FROM backfill_state") == [("2016-06-01", None, 0)]
    assert query(db, "SELECT status FROM sync_runs") == [("failed",)]


def test_a_server_repeating_a_resumption_token_is_stopped_not_followed_for_ever(tmp_path: Path) -> None:
    db = tmp_path / "papers.db"
    with OaiServer({"arXiv": RECORDS}, page_size=2) as oai:
        original = oai._answer

        def first_page_again(q: dict[str, str]) -> bytes:
            if "resumptionToken" in q:  # answer every continuation with the window's first page (and token)
                _, prefix, set_spec, from_, until, _ = q["resumptionToken"].split("|")
                q = {
                    "verb": "ListRecords",
                    "metadataPrefix": prefix,
                    "set": set_spec,
                    "from": from_,
                    "until": until,
                }
            return original(q)

        oai._answer = first_page_again  # type: ignore[method-assign]
        result = run(*backfill_args(db, oai, "2016-03-01", "2016-03-31"))
        requests = len(oai.requests)
    assert result.exit_code == 1 and requests == 2
    assert "returned resumptionToken" in result.stderr and "a second time" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert len(paper_ids(db)) == 2  # the first page was stored once and kept


def test_killed_backfill_resumes_at_the_saved_token_without_duplicates(tmp_path: Path) -> None:
    db = tmp_path / "papers.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with OaiServer({"arXiv": RECORDS}, page_size=2) as oai:
        args = backfill_args(db, oai, "2016-03-01", "2017-12-31")
        oai.hold_at = 6  # Mar p1, Mar p2, Apr, May (empty), Jun p1, [Jun p2 held]
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracker", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert oai.held.wait(60), proc.communicate(timeout=5)
            stored = paper_ids(db)
            token_row = query(db, "SELECT window_from, token FROM backfill_state")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        oai.release.set()
        assert proc.returncode == -signal.SIGKILL
        assert stored == {"1603.00997", "1603.01251", "1603.05976", "1604.05585", "1606.04259", "1606.06775"}
        assert token_row[0][0] == "2016-06-01" and token_row[0][1]

        oai.hold_at = None
        seen = len(oai.requests)
        done = subprocess.run(
            [sys.executable, "-m", "tracker", *args], check=False, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        # The rerun starts with the saved token (June page 2), not at March.
        assert oai.requests[seen] == {"verb": "ListRecords", "resumptionToken": token_row[0][1]}
    assert "resumed at 2016-06-01..2016-06-30 (mid-window)" in done.stdout
    expected = SPRING_2016 | {
        "1607.00786",
        "1706.05371",
        "1706.09418",
        "1707.00874",
        "1412.8323",
        "1507.07790",
        "1607.01710",
    }
    assert paper_ids(db) == expected
    assert query(db, "SELECT count(*) FROM paper_versions") == [(len(expected),)]
    assert query(db, "SELECT done, records FROM backfill_state") == [(1, len(expected))]
    assert query(db, "SELECT status FROM sync_runs ORDER BY id") == [("failed",), ("ok",)]


def test_arxivraw_old_style_id_keeps_its_version_history(tmp_path: Path) -> None:
    db = tmp_path / "papers.db"
    with OaiServer({"arXivRaw": load_records("constructed_*.xml")}) as oai:
        result = run(
            "backfill",
            db,
            "--from",
            "2016-05-01",
            "--until",
            "2016-05-31",
            "--set",
            "physics:hep-th",
            "--metadata-prefix",
            "arXivRaw",
            "--category",
            "hep-th",
            "--oai-url",
            oai.url,
            "--delay",
            "0",
            "--no-classify",
        )
        assert oai.requests[0]["metadataPrefix"] == "arXivRaw"
    assert result.exit_code == 0, result.output
    row = query(
        db, "SELECT arxiv_id, version, published, updated, authors, pdf_url, primary_category FROM papers"
    )
    assert row == [
        (
            "hep-th/9901001",
            3,
            "1999-01-01T12:00:00+00:00",
            "1999-09-07T17:05:10+00:00",
            '["Ada Example", "Bo Sample", "Cy Placeholder"]',
            "https://arxiv.org/pdf/hep-th/9901001v3",
            "hep-th",
        ),
    ]
    assert query(db, "SELECT version, updated FROM paper_versions ORDER BY version") == [
        (1, "1999-01-01T12:00:00+00:00"),
        (2, "1999-03-15T09:30:00+00:00"),
        (3, "1999-09-07T17:05:10+00:00"),
    ]


def test_entity_bomb_page_is_refused_in_one_line_and_the_database_is_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "papers.db"
    with OaiServer({"arXiv": RECORDS}) as oai:
        assert run(*backfill_args(db, oai, "2016-04-01", "2016-04-30")).exit_code == 0
        before = snapshot(db)
        for _ in range(10):  # every retry gets the bomb too
            oai.canned.append(Canned(200, BOMB))
        result = run(*backfill_args(db, oai, "2016-06-01", "2016-06-30"))
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "refusing XML that declares entities" in errors[0]
    assert "Traceback" not in result.output
    assert snapshot(db) == before
    assert query(db, "SELECT status FROM sync_runs ORDER BY id") == [("ok",), ("failed",)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2016-07-01", "--until", "2016-06-01"], "is after --until"),
        (["--from", "yesterday"], "--from 'yesterday'"),
        (["--from", "2016-01-01", "--category", "cs.CVV"], "unknown arXiv category 'cs.CVV'"),
    ],
)
def test_bad_options_fail_in_one_line_without_touching_the_network(
    tmp_path: Path, args: list[str], message: str
) -> None:
    with OaiServer({"arXiv": RECORDS}) as oai:
        result = run("backfill", tmp_path / "papers.db", "--oai-url", oai.url, "--delay", "0", *args)
        assert oai.requests == []
    assert result.exit_code != 0 and message in result.stderr and result.stderr.count("\n") == 1


def test_a_week_of_backfilled_papers_is_found_through_the_event_day_index(tmp_path: Path) -> None:
    # Backfilled papers have no announcement date, so their day is their version's date. The digest window
    # and the canned "this week" query must reach them through idx_papers_event_day: a plan that reads
    # every paper instead takes seconds on a million-paper backfill, and only a respelled expression breaks it.
    db = tmp_path / "papers.db"
    with OaiServer({"arXiv": RECORDS}) as oai:
        assert run(*backfill_args(db, oai, "2016-03-01", "2016-07-31")).exit_code == 0
    handle = store.open_db(db)
    days = dict(handle.conn.execute(f"SELECT arxiv_id, {store.EVENT_DATE_SQL} FROM papers p"))
    june = {i for i, day in days.items() if "2016-06-01" <= day <= "2016-06-30"}
    assert june and june < set(days)
    assert store.papers_between_count(handle, "2016-06-01", "2016-06-30") == len(june)

    paper = sorted(june)[0]
    store.save_manual_label(handle, paper, "hallucination", "topic", "add")
    meta = yaml.safe_load((DEFAULT_DB_DIR / "metadata.yml").read_text())
    this_week = meta["databases"]["tracker"]["queries"]["papers_this_week"]["sql"]
    params = {"week_of": days[paper], "tag": ""}
    found = handle.conn.execute(this_week, params)
    column = [d[0] for d in found.description].index("arxiv_id")
    assert [r[column] for r in found] == [paper]

    window = f"SELECT arxiv_id FROM papers p WHERE {store.IN_WINDOW_SQL}"
    for sql, args in ((window, {"since": "2016-06-01", "until": "2016-06-30"}), (this_week, params)):
        plan = [r[3] for r in handle.conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
        assert any("idx_papers_event_day" in step for step in plan), plan
        assert not any(step.startswith(("SCAN p", "SCAN papers")) for step in plan), plan


def test_backfill_report_summary_is_one_line_without_click():
    report = BackfillReport(
        counts=store.Counts(new=2, updated=1),
        records=5,
        kept=3,
        windows=1,
        requests=2,
        restarts=1,
        resumed_from="2016-03-01..2016-03-31",
    )
    assert report.summary() == (
        "backfill ok: 5 records in 1 window(s), 3 in the wanted categories: 2 new, 1 updated, 0 unchanged; "
        "2 requests, resumed at 2016-03-01..2016-03-31, 1 window restart(s) after an expired token"
    )
    assert (
        BackfillReport(already_done=True).summary().startswith("backfill: this range was already harvested")
    )
