"""`tracker digest --send` against a real SMTP server (aiosmtpd) on loopback: what arrives, and that
each (recipient, week) arrives exactly once through reruns, refusals, timeouts and bad logins."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from digest_support import (
    Inbox,
    add_tags,
    corpus_records,
    make_week_db,
    paper_row,
    send_args,
    silent_server,
    smtp_server,
)
from helpers import self_signed_cert

from tracker import store
from tracker.cli import cli

FIXTURES = Path(__file__).parent / "fixtures" / "digest"
PASSWORD = "s3cret-Pa55word"


@pytest.fixture(autouse=True)
def digest_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_RULES", str(FIXTURES / "rules"))
    monkeypatch.setenv("TRACKER_AUTH", str(tmp_path / "auth.json"))
    monkeypatch.delenv("TRACKER_SMTP_PASSWORD", raising=False)
    monkeypatch.setenv("TRACKER_SMTP_TIMEOUT", "5")


@pytest.fixture
def inbox():
    box = Inbox()
    controller = smtp_server(box)
    box.port = controller.port  # type: ignore[attr-defined]
    yield box
    controller.stop()


@pytest.fixture
def week_db(tmp_path):
    records = corpus_records(12)
    records[0]["title"] = "<script>alert(1)</script> Seeing & <i>Believing</i>"
    return make_week_db(tmp_path / "t.db", records), records


def send(db_path, port, *extra, week="2026-W47"):
    args = [
        "digest",
        str(db_path),
        "--week",
        week,
        *send_args(port),
        *extra,
    ]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def digests_rows(db_path):
    return {(r["recipient"], r["window"]): r for r in store.open_db(db_path).query("SELECT * FROM digests")}


def subscribe(db_path, email, *tags):
    args = ["subscribe", str(db_path), email] + [x for t in tags for x in ("--tag", t)]
    assert CliRunner().invoke(cli, args).exit_code == 0


def test_each_subscriber_gets_one_message_with_both_parts_and_the_chart(inbox, week_db):
    db_path, records = week_db
    subscribe(db_path, "all@example.org")
    subscribe(db_path, "halluc@example.org", "hallucination")
    result = send(db_path, inbox.port)
    assert result.exit_code == 0, result.output
    received = inbox.by_recipient()
    assert sorted(received) == ["all@example.org", "halluc@example.org"]
    assert all(len(v) == 1 for v in received.values())
    assert sorted(r for _, rcpts in inbox.envelopes for r in rcpts) == [
        "all@example.org",
        "halluc@example.org",
    ]

    message = received["all@example.org"][0]
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "arXiv digest 2026-W47: 12 papers in 4 tags"
    text = message.get_body(("plain",)).get_content()
    html_part = message.get_body(("html",))
    html = html_part.get_content()
    for heading in (
        "Conversational",
        "Multimodal instruction tuning",
        "Hallucination",
        "Evaluation and benchmarks",
    ):
        assert f"-- {heading} (3) --" in text
        assert re.search(rf'<h3 id="tag-[^"]+"[^>]*>{heading} <span', html)
    # Paper text is shown as text, never as markup.
    assert "<script>alert(1)</script> Seeing & <i>Believing</i>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Seeing &amp; &lt;i&gt;Believing&lt;/i&gt;" in html
    assert "<script>" not in html
    # The chart: an inline PNG related to the HTML part, referenced by its Content-ID.
    images = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1
    cid = images[0]["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html
    assert images[0].get_content().startswith(b"\x89PNG\r\n\x1a\n")

    # The subscriber's tag filter: only hallucination papers, and only its heading.
    filtered = received["halluc@example.org"][0].get_body(("plain",)).get_content()
    assert "-- Hallucination (3) --" in filtered and "-- Conversational" not in filtered
    assert records[2]["title"] in filtered and records[0]["title"] not in filtered

    rows = digests_rows(db_path)
    assert rows[("all@example.org", "2026-W47")]["state"] == "sent"
    assert rows[("halluc@example.org", "2026-W47")]["papers"] == 3


def test_rerun_sends_nothing_and_says_so(inbox, week_db):
    db_path, _ = week_db
    subscribe(db_path, "a@example.org")
    assert send(db_path, inbox.port).exit_code == 0
    again = send(db_path, inbox.port)
    assert again.exit_code == 0
    assert "2026-W47 already sent to a@example.org" in again.output
    assert len(inbox.messages) == 1
    # --resend is the explicit override.
    assert send(db_path, inbox.port, "--resend").exit_code == 0
    assert len(inbox.messages) == 2


def test_refused_send_is_recorded_and_retried(inbox, week_db):
    db_path, _ = week_db
    subscribe(db_path, "a@example.org")
    subscribe(db_path, "b@example.org")
    inbox.refuse_next = 1  # the first DATA (a@example.org) gets a 550
    failed = send(db_path, inbox.port)
    assert failed.exit_code != 0
    assert "1 of 2 digests for 2026-W47 failed (a@example.org)" in failed.output
    rows = digests_rows(db_path)
    assert rows[("a@example.org", "2026-W47")]["state"] == "failed"
    assert "550" in rows[("a@example.org", "2026-W47")]["error"]
    assert rows[("b@example.org", "2026-W47")]["state"] == "sent"
    assert [str(m["To"]) for m in inbox.messages] == ["b@example.org"]

    retry = send(db_path, inbox.port)
    assert retry.exit_code == 0, retry.output
    assert sorted(str(m["To"]) for m in inbox.messages) == ["a@example.org", "b@example.org"]
    row = digests_rows(db_path)[("a@example.org", "2026-W47")]
    assert (row["state"], row["attempts"], row["error"]) == ("sent", 2, None)


def test_a_paper_is_not_sent_twice_unless_revised(inbox, tmp_path):
    records = corpus_records(6)
    db_path = make_week_db(tmp_path / "t.db", records[:4])
    subscribe(db_path, "a@example.org")
    assert send(db_path, inbox.port).exit_code == 0
    db = store.open_db(db_path)
    # Next week: a new paper, a revision (v2) of one already sent, and one sent paper announced again
    # at the same version (a cross-list): only the first two may come.
    store.save_papers(
        db,
        [
            paper_row(records[4], "2026-11-24"),
            paper_row(records[0], "2026-11-25", version=2, published="2026-11-18T01:00:00+00:00"),
        ],
    )
    add_tags(db_path, [(records[4]["id"], "MIT", "mllm", 0.9)])
    with db.atomic():
        db.conn.execute("UPDATE papers SET announced = '2026-11-26' WHERE arxiv_id = ?", (records[1]["id"],))
    assert send(db_path, inbox.port, week="2026-W48").exit_code == 0
    text = inbox.messages[-1].get_body(("plain",)).get_content()
    assert f"{records[4]['title']} [new]" in text
    assert f"{records[0]['title']} [revised, v2]" in text
    assert records[1]["title"] not in text
    assert "1 paper you already received is left out." in text
    sent = store.sent_versions(store.open_db(db_path), "a@example.org")
    assert sent[records[0]["id"]] == 2


def test_empty_week_sends_a_short_note_or_nothing(inbox, week_db):
    db_path, _ = week_db
    subscribe(db_path, "a@example.org", "hallucination")
    skipped = send(db_path, inbox.port, "--skip-empty", week="2026-W30")
    assert skipped.exit_code == 0 and inbox.messages == []
    assert digests_rows(db_path)[("a@example.org", "2026-W30")]["state"] == "empty"
    assert send(db_path, inbox.port, week="2026-W30").exit_code == 0
    (message,) = inbox.messages
    assert message["Subject"] == "arXiv digest 2026-W30: nothing new in your tags"
    assert "Nothing new in your tags this week." in message.get_body(("plain",)).get_content()
    assert not [p for p in message.walk() if p.get_content_type() == "image/png"]


def test_to_sends_directly_without_a_subscription(inbox, week_db):
    db_path, _ = week_db
    result = send(db_path, inbox.port, "--to", "direct@example.org")
    assert result.exit_code == 0
    assert [str(m["To"]) for m in inbox.messages] == ["direct@example.org"]
    assert digests_rows(db_path)[("direct@example.org", "2026-W47")]["state"] == "sent"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_bad_login_is_recorded_and_the_password_never_shown(tmp_path, week_db, monkeypatch):
    db_path, _ = week_db
    box = Inbox()
    controller = smtp_server(box, auth=("reader", PASSWORD))
    try:
        monkeypatch.setenv("TRACKER_SMTP_PASSWORD", "wrong-" + PASSWORD)
        failed = send(db_path, controller.port, "--to", "a@example.org", "--smtp-user", "reader")
        assert failed.exit_code != 0
        assert "login as reader failed" in failed.output and PASSWORD not in failed.output
        row = digests_rows(db_path)[("a@example.org", "2026-W47")]
        assert row["state"] == "failed" and PASSWORD not in row["error"]
        assert box.messages == []
        # The right password from a 600-mode auth.json (the environment no longer has one).
        monkeypatch.delenv("TRACKER_SMTP_PASSWORD")
        auth = tmp_path / "auth.json"
        auth.write_text(json.dumps({"smtp_user": "reader", "smtp_password": PASSWORD}))
        os.chmod(auth, 0o600)
        ok = send(db_path, controller.port, "--to", "a@example.org")
        assert ok.exit_code == 0, ok.output
        assert len(box.messages) == 1
    finally:
        controller.stop()


def test_timeout_is_recorded_as_failed(week_db, monkeypatch):
    db_path, _ = week_db
    monkeypatch.setenv("TRACKER_SMTP_TIMEOUT", "0.5")
    with silent_server() as port:
        result = send(db_path, port, "--to", "a@example.org")
    assert result.exit_code != 0
    assert "timed out after 0.5 s" in result.output
    row = digests_rows(db_path)[("a@example.org", "2026-W47")]
    assert row["state"] == "failed" and "timed out" in row["error"]


def test_connection_refused_is_recorded(week_db):
    db_path, _ = week_db
    with silent_server() as port:
        pass  # closed again: nothing listens on the port any more
    result = send(db_path, port, "--to", "a@example.org")
    assert result.exit_code != 0 and "Error:" in result.output
    assert digests_rows(db_path)[("a@example.org", "2026-W47")]["state"] == "failed"


def test_password_has_no_option_and_plain_login_elsewhere_is_refused(week_db, monkeypatch):
    db_path, _ = week_db
    result = CliRunner().invoke(cli, ["digest", str(db_path), "--send", "--smtp-password", "x"])
    assert result.exit_code == 2 and "No such option" in result.output
    monkeypatch.setenv("TRACKER_SMTP_PASSWORD", PASSWORD)
    result = CliRunner().invoke(
        cli,
        [
            "digest",
            str(db_path),
            "--send",
            "--to",
            "a@example.org",
            "--plain",
            "--smtp-host",
            "mail.example.org",
            "--smtp-user",
            "me@example.org",
        ],
    )
    assert result.exit_code != 0 and "refusing to send the SMTP password unencrypted" in result.output
    assert digests_rows(db_path) == {}


def test_auth_writes_a_600_file_with_hidden_password(tmp_path):
    answers = "smtp.example.org\nstarttls\n587\nme@example.org\n\n" + PASSWORD + "\n"
    result = CliRunner().invoke(cli, ["auth"], input=answers)
    assert result.exit_code == 0, result.output
    path = tmp_path / "auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["smtp_password"] == PASSWORD and data["smtp_from"] == "me@example.org"
    assert "Do not share" in data["// Note"]
    assert PASSWORD not in result.output


@pytest.mark.parametrize(
    "content, mode, message",
    [
        (b'{"smtp_host": "127.0.0.1"}', 0o644, "lets others read it; run: chmod 600"),
        (b"{not json", 0o600, "not valid JSON (line 1)"),
        (b'["smtp_host"]', 0o600, "expected a JSON object"),
        (b'{"smtp_host": "\xff\xfe"}', 0o600, "not UTF-8 text"),
        (
            b'{"smtp_host": "127.0.0.1", "smtp_from": "a@example.org", "smtp_timeout": "-5"}',
            0o600,
            "smtp_timeout '-5': expected seconds between 0 and 3600",
        ),
        (
            b'{"smtp_host": "127.0.0.1", "smtp_from": "a@example.org", "smtp_timeout": "nan"}',
            0o600,
            "smtp_timeout 'nan': expected seconds",
        ),
        (None, 0o700, "not a file"),
    ],
)
def test_bad_auth_file_is_one_line_error_and_nothing_is_sent(week_db, tmp_path, content, mode, message):
    db_path, _ = week_db
    auth = tmp_path / "auth.json"
    if content is None:
        auth.mkdir()
    else:
        auth.write_bytes(content)
    os.chmod(auth, mode)
    result = CliRunner().invoke(
        cli, ["digest", str(db_path), "--week", "2026-W47", "--send", "--to", "a@example.org"]
    )
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM digests").fetchone()[0] == 0


@pytest.fixture
def tls_files(tmp_path):
    """A self-signed certificate for 127.0.0.1, trusted by the client through SSL_CERT_FILE."""
    return self_signed_cert(tmp_path)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["--starttls", "--ssl"])
def test_tls_and_login(week_db, tls_files, monkeypatch, security):
    import ssl

    from aiosmtpd.controller import Controller
    from digest_support import Authenticator, InboxHandler, free_port

    db_path, _ = week_db
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = Inbox()
    common = {
        "hostname": "127.0.0.1",
        "port": free_port(),
        "authenticator": Authenticator("reader", PASSWORD),
        "auth_required": True,
    }
    if security == "--starttls":
        controller = Controller(InboxHandler(box), tls_context=context, require_starttls=True, **common)
    else:
        # aiosmtpd only counts STARTTLS as TLS for AUTH; this whole connection is TLS from the first byte.
        controller = Controller(InboxHandler(box), ssl_context=context, auth_require_tls=False, **common)
    controller.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client verifies the server against this CA
        monkeypatch.setenv("TRACKER_SMTP_PASSWORD", PASSWORD)
        args = [
            "digest",
            str(db_path),
            "--week",
            "2026-W47",
            "--send",
            "--to",
            "a@example.org",
            security,
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            str(controller.port),
            "--smtp-user",
            "reader",
            "--from",
            "tracker@example.org",
        ]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert [str(m["To"]) for m in box.messages] == ["a@example.org"]
    finally:
        controller.stop()


# -- addresses, per-recipient failures and exactly-once (issue 13) -------------------------------


def subscribers_table(db_path):
    return [r[0] for r in sqlite3.connect(db_path).execute("SELECT email FROM subscribers")]


@pytest.mark.parametrize(
    "address, message",
    [
        ("a\u0085b@example.org", "line break or control character U+0085"),
        ("a@exa\u2028mple.org", "line break or control character U+2028"),
        ("a@example.org\u2029x", "line break or control character U+2029"),
        ("a\x0bb@example.org", "line break or control character U+000B"),
        ("a\x1fb@example.org", "line break or control character U+001F"),
        ("a\u200bb@example.org", "line break or control character U+200B"),
        ("<a@b.org>", "without the <>"),
        ("@b.org", "nothing before the @"),
        ("a@b..org", "empty part"),
        ("a@b.org.", "empty part"),
        ("a@@b.org", "one @"),
        ("a@-b.org", "'-b'"),
        ("jö@b.org", "non-ASCII"),
        ('"a b"@c.org', "not a valid email address"),
        ("a@localhost", "not a valid email address"),
    ],
)
def test_subscribe_refuses_bad_addresses_in_one_line(week_db, address, message):
    db_path, _ = week_db
    result = CliRunner().invoke(cli, ["subscribe", str(db_path), address])
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert subscribers_table(db_path) == []


def store_bad_subscriber(db_path, address):
    """A row written before subscribe validated addresses (or by hand): send time must catch it."""
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "INSERT INTO subscribers (email, tags, created) VALUES (?, '[]', '2026-01-01')", (address,)
        )


@pytest.mark.parametrize("bad", ["b\u2028@example.org", "<b@example.org>", "b@example..org"])
def test_a_bad_stored_address_fails_alone(inbox, week_db, bad):
    db_path, _ = week_db
    subscribe(db_path, "a@example.org")
    subscribe(db_path, "c@example.org")
    store_bad_subscriber(db_path, bad)  # sorts between a and c
    result = send(db_path, inbox.port)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert sorted(inbox.by_recipient()) == ["a@example.org", "c@example.org"]
    rows = digests_rows(db_path)
    assert rows[("a@example.org", "2026-W47")]["state"] == "sent"
    assert rows[("c@example.org", "2026-W47")]["state"] == "sent"
    assert rows[(bad, "2026-W47")]["state"] == "failed"
    assert rows[(bad, "2026-W47")]["error"].startswith(f"stored address {bad!r}")
    assert "1 of 3 digests for 2026-W47 failed" in result.output


def test_a_recipient_the_server_refuses_fails_alone(inbox, week_db):
    db_path, _ = week_db
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        subscribe(db_path, email)
    inbox.refuse_rcpt = {"b@example.org"}
    result = send(db_path, inbox.port)
    assert result.exit_code != 0
    assert sorted(inbox.by_recipient()) == ["a@example.org", "c@example.org"]
    row = digests_rows(db_path)[("b@example.org", "2026-W47")]
    assert row["state"] == "failed" and "550" in row["error"] and "b@example.org" in row["error"]
    assert "1 of 3 digests for 2026-W47 failed (b@example.org)" in result.output


def test_quit_refused_after_acceptance_still_counts_as_sent(inbox, week_db):
    db_path, _ = week_db
    subscribe(db_path, "a@example.org")
    subscribe(db_path, "b@example.org")
    inbox.quit_reply = "421 4.3.2 Service shutting down"
    result = send(db_path, inbox.port)
    assert result.exit_code == 0, result.output
    rows = digests_rows(db_path)
    assert [rows[(e, "2026-W47")]["state"] for e in ("a@example.org", "b@example.org")] == ["sent", "sent"]
    assert send(db_path, inbox.port).exit_code == 0  # the rerun sends nothing again
    assert sorted(str(m["To"]) for m in inbox.messages) == ["a@example.org", "b@example.org"]


def test_database_write_failing_after_acceptance_does_not_resend(inbox, week_db):
    """The disk fills between the server's 250 and the `sent` write: the run stops with one line, and
    the next run (space freed) records what the server accepted instead of sending it again."""
    db_path, _ = week_db
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        subscribe(db_path, email)
    with sqlite3.connect(db_path) as conn:  # SQLite's own SQLITE_FULL text, on the `sent` write of b only
        conn.execute(
            "CREATE TRIGGER disk_full BEFORE UPDATE OF state ON digests "
            "WHEN NEW.state = 'sent' AND NEW.recipient = 'b@example.org' "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    stopped = send(db_path, inbox.port)
    assert stopped.exit_code != 0
    assert "Traceback" not in stopped.output
    assert (
        "accepted 2026-W47 for b@example.org" in stopped.output
        and "database or disk is full" in stopped.output
    )
    assert sorted(inbox.by_recipient()) == ["a@example.org", "b@example.org"]  # stopped before c
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TRIGGER disk_full")
    retry = send(db_path, inbox.port)
    assert retry.exit_code == 0, retry.output
    received = inbox.by_recipient()
    assert {k: len(v) for k, v in received.items()} == {
        "a@example.org": 1,
        "b@example.org": 1,
        "c@example.org": 1,
    }
    row = digests_rows(db_path)[("b@example.org", "2026-W47")]
    assert row["state"] == "sent" and row["papers"] == 12
    assert row["message_id"] == received["b@example.org"][0]["Message-ID"]
    assert len(store.sent_versions(store.open_db(db_path), "b@example.org")) == 12


def test_an_interrupted_send_is_retried_with_the_same_message_id(inbox, week_db):
    db_path, _ = week_db
    subscribe(db_path, "a@example.org")
    db = store.open_db(db_path)
    store.begin_digest(db, "a@example.org", "2026-W47", "<first-attempt@example.org>")  # then SIGKILL
    result = send(db_path, inbox.port)
    assert result.exit_code == 0, result.output
    assert "interrupted" in result.output
    (message,) = inbox.messages
    # If the first attempt did arrive, the copy carries the same Message-ID: mail systems can spot it.
    assert message["Message-ID"] == "<first-attempt@example.org>"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_non_ascii_password_is_one_line_error_before_anything_is_marked(week_db, monkeypatch):
    db_path, _ = week_db
    subscribe(db_path, "a@example.org")
    subscribe(db_path, "b@example.org")
    box = Inbox()
    controller = smtp_server(box, auth=("reader", "pässwörd"))
    try:
        monkeypatch.setenv("TRACKER_SMTP_PASSWORD", "pässwörd")
        result = send(db_path, controller.port, "--smtp-user", "reader")
    finally:
        controller.stop()
    assert result.exit_code != 0
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert "non-ASCII" in result.output and "pässwörd" not in result.output
    assert digests_rows(db_path) == {}


def test_list_unsubscribe_and_the_real_commands_in_both_parts(inbox, week_db):
    db_path, _ = week_db
    subscribe(db_path, "a+x@example.org")
    assert send(db_path, inbox.port).exit_code == 0
    (message,) = inbox.messages
    # No web endpoint, so no one-click (RFC 8058): a mailto to the sender, whose subject names the reader.
    assert (
        message["List-Unsubscribe"].strip()
        == "<mailto:tracker@example.org?subject=unsubscribe%20a%2Bx%40example.org>"
    )
    assert message["List-Unsubscribe-Post"] is None
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert f"tracker unsubscribe {db_path} a+x@example.org" in " ".join(text.split())
    assert f"<code>tracker unsubscribe {db_path} a+x@example.org</code>" in html
    assert f"tracker label {db_path} ARXIV_ID TAG" in text
    assert f"<code>tracker label {db_path} ARXIV_ID TAG</code>" in html
    assert "DB_PATH" not in text and "DB_PATH" not in html


def test_kill_loop_loses_nothing_and_duplicates_only_in_the_window(tmp_path, monkeypatch):
    """bench/bench_mail_kill.py, bounded: SIGKILL `digest --send` at random moments against a loopback server
    that delays each reply; no (recipient, week) may go missing, and a duplicate needs a kill in the window."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "bench" / "bench_mail_kill.py"
    spec = importlib.util.spec_from_file_location("bench_mail_kill", path)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    figures = bench.run_kill_loop(
        kills=5, subscribers=2, delay=(0.01, 0.04), seed=5, budget=60, per_week=0, workdir=tmp_path
    )
    assert figures.kills >= 5, bench.report(figures)
    assert figures.lost == 0, bench.report(figures)
    assert figures.duplicates <= figures.in_window, bench.report(figures)
