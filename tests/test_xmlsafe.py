"""XML with a DTD is refused in any encoding: the check is the parser's view of the document, not a byte search."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import db_snapshot, run, sync_args
from oai_server import Canned, OaiServer, load_records

from tracker.demo.mirror import Fault
from tracker.errors import InputError
from tracker.xmlsafe import check_xml

LAUGHS = (
    '<?xml version="1.0" encoding="{enc}"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'
)
ATOM_PAGE = (
    '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">'
    "<title>&lol3;</title><opensearch:totalResults>0</opensearch:totalResults>"
    "<opensearch:startIndex>0</opensearch:startIndex><opensearch:itemsPerPage>100</opensearch:itemsPerPage></feed>"
)
OAI_PAGE = '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>&lol3;</ListRecords></OAI-PMH>'


def encoded(body: str, codec: str, declared: str) -> bytes:
    return (LAUGHS.format(enc=declared) + body).encode(codec)


@pytest.mark.parametrize(
    ("codec", "declared"),
    [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16LE"), ("utf-32", "UTF-32"), ("utf-8", "UTF-8")],
)
def test_a_dtd_is_refused_whatever_the_encoding(codec: str, declared: str) -> None:
    content = encoded(ATOM_PAGE, codec, declared)
    assert b"<!ENTITY" not in content or codec == "utf-8"  # the old byte search could not see it
    with pytest.raises(InputError, match="refusing XML that declares entities"):
        check_xml(content, "page")


def test_a_doctype_without_entities_is_refused_too() -> None:
    content = (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE feed SYSTEM "http://127.0.0.1:9/x.dtd">'
        + ATOM_PAGE.replace("&lol3;", "x")
    ).encode("utf-16")
    with pytest.raises(InputError, match="DTD"):
        check_xml(content, "page")


def test_a_utf16_page_without_a_dtd_still_parses() -> None:
    content = ('<?xml version="1.0" encoding="UTF-16"?>' + ATOM_PAGE.replace("&lol3;", "x")).encode("utf-16")
    assert check_xml(content, "page").tag == "{http://www.w3.org/2005/Atom}feed"


def test_sync_refuses_a_utf16_api_page_with_an_entity_bomb_in_one_line(tmp_path: Path, mirror) -> None:
    db = tmp_path / "t.db"
    mirror.faults.extend(
        Fault(status=200, body=encoded(ATOM_PAGE, "utf-16", "UTF-16"), path="/api") for _ in range(10)
    )
    result = run(
        *sync_args(
            db, mirror, "--no-feed", "--retries", "0", "--since", "2024-03-01", "--until", "2024-03-02"
        )
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and result.stderr.strip().count("\n") == 0
    assert "refusing XML that declares entities" in result.stderr
    assert db_snapshot(db) == [] or all(row[0] == "sync_state" for row in db_snapshot(db))


def test_backfill_refuses_a_utf16_oai_page_with_an_entity_bomb_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "papers.db"
    with OaiServer({"arXiv": load_records("excerpt_*.xml")}) as oai:
        for _ in range(10):  # every retry gets the bomb too
            oai.canned.append(Canned(200, encoded(OAI_PAGE, "utf-16", "UTF-16")))
        result = run(
            "backfill",
            db,
            "--from",
            "2016-06-01",
            "--until",
            "2016-06-30",
            "--oai-url",
            oai.url,
            "--delay",
            "0",
            "--no-classify",
            "--category",
            "hep-th",
        )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "refusing XML that declares entities" in errors[0]
    assert "Traceback" not in result.output + result.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM papers").fetchone() == (0,)
    conn.close()
