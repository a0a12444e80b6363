"""tracker.ids: one id pattern, and ids as people paste them working wherever a command takes an id."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tracker import store
from tracker.cli import cli
from tracker.ids import is_arxiv_id, parse_arxiv_id


@pytest.mark.parametrize(
    "pasted",
    [
        "2506.04039",
        "2506.04039v2",
        "arXiv:2506.04039",
        "arxiv:2506.04039v3",
        " 2506.04039 ",
        "https://arxiv.org/abs/2506.04039v2",
        "http://arxiv.org/abs/2506.04039",
        "https://arxiv.org/pdf/2506.04039v2",
        "https://arxiv.org/pdf/2506.04039v2.pdf",
        "https://export.arxiv.org/abs/2506.04039?context=cs",
        "https://www.arxiv.org/abs/2506.04039/",
        "oai:arXiv.org:2506.04039",
    ],
)
def test_ids_as_people_paste_them(pasted: str) -> None:
    assert parse_arxiv_id(pasted) == "2506.04039"


def test_old_style_ids_keep_their_archive() -> None:
    assert parse_arxiv_id("hep-th/9901001v1") == "hep-th/9901001"
    assert parse_arxiv_id("http://export.arxiv.org/abs/hep-th/9901001") == "hep-th/9901001"
    assert parse_arxiv_id("math.GT/0309136") == "math.GT/0309136"


@pytest.mark.parametrize(
    "bad", ["", "abc", "2506.040391", "https://evil.example/abs/2506.04039", "2506.04039v", "12345.6789"]
)
def test_what_is_not_an_id_is_refused(bad: str) -> None:
    assert parse_arxiv_id(bad) is None
    assert not is_arxiv_id(bad)


def test_an_id_with_a_newline_inside_is_not_an_id() -> None:
    # A record's <id> of "…/abs/2301.01234&#10;v2" once stored a second paper "2301.01234\n": "$" matches
    # before a final newline, so the pattern must match the whole string.
    assert not is_arxiv_id("2301.01234\n") and not is_arxiv_id("hep-th/9901001\n")
    assert parse_arxiv_id("2301.01234\n") == "2301.01234"  # what a person pastes may end with a newline


def test_label_and_explain_take_pasted_ids_and_refuse_others_in_one_line(tmp_path: Path) -> None:
    db_path = tmp_path / "papers.db"
    store.save_papers(
        store.open_db(db_path), [{"arxiv_id": "2506.04039", "version": 2, "title": "T", "abstract": "A"}]
    )  # type: ignore[list-item]
    runner = CliRunner()
    added = runner.invoke(cli, ["label", str(db_path), "https://arxiv.org/abs/2506.04039v2", "MIT"])
    assert added.exit_code == 0, added.output
    assert added.output.startswith("2506.04039: added MIT")
    rows = store.open_db(db_path).conn.execute("SELECT arxiv_id, tag, action FROM manual_labels").fetchall()
    assert rows == [("2506.04039", "MIT", "add")]
    bad = runner.invoke(cli, ["explain", str(db_path), "not-an-id"])
    assert bad.exit_code == 2 and "is not an arXiv id" in bad.output
    assert len([line for line in bad.output.splitlines() if line.strip()]) == 1
