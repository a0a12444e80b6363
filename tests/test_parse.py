"""parse.paper_row: the one PaperRow builder every source (API, Atom, feed, OAI) goes through."""

from __future__ import annotations

from tracker.parse import paper_row


def test_paper_row_normalises_text_versions_and_links():
    row = paper_row(
        "hep-th/9901001",
        None,
        title="  A\n  title ",
        abstract="An\tabstract",
        authors=["A. One"],
        categories=["hep-th"],
        primary_category="",
        comment="  ",
        journal_ref=None,
        doi="",
    )
    assert row == {
        "arxiv_id": "hep-th/9901001",
        "version": 1,
        "title": "A title",
        "abstract": "An abstract",
        "authors": ["A. One"],
        "primary_category": None,
        "categories": ["hep-th"],
        "published": None,
        "updated": None,
        "comment": None,
        "journal_ref": None,
        "doi": None,
        "abs_url": "https://arxiv.org/abs/hep-th/9901001",
        "pdf_url": "https://arxiv.org/pdf/hep-th/9901001v1",
    }


def test_paper_row_keeps_a_pdf_link_the_source_names():
    row = paper_row(
        "2506.04039",
        3,
        title="t",
        abstract="a",
        authors=[],
        categories=[],
        pdf="https://arxiv.org/pdf/2506.04039",
    )
    assert row["version"] == 3 and row["pdf_url"] == "https://arxiv.org/pdf/2506.04039"
