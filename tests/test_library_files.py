"""tracker.library: the arXiv papers a researcher's exported reference library names, entry by entry.

The fixtures in tests/fixtures/library/ have the shape of real exports (Zotero's BibTeX and Better BibTeX,
Google Scholar, doi.org; Zotero's CSV with its BOM and full header; Zotero's RIS; a hand-kept list) and name
real papers; every title there without an id is the title of a paper in the bundled corpus, except
"Attention Is All You Need", which is not in it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import bibtexparser
import pytest
from bibtexparser.bparser import BibTexParser

from tracker.errors import InputError
from tracker.export import render_chunks
from tracker.library import MAX_BYTES, find_arxiv_id, normalise_title, plain_title, read_library

FIXTURES = Path(__file__).parent / "fixtures" / "library"

# (line, arXiv id or None, title or None) of each entry kept, in file order
BIBTEX = [
    (5, "2403.11299", "SQ-LLaVA: Self-Questioning for Large Vision-Language Assistant"),  # BBT eprint
    (25, "2501.10834", "Visual RAG: Expanding MLLM Visual Knowledge without Fine-Tuning"),  # eprinttype
    (35, None, "Mixture of Rationale: Multi-Modal Reasoning Mixture for Visual Question Answering"),
    (41, "2403.15388", "LLaVA-PruMerge: Adaptive Token Reduction for Efficient Large Multimodal Models"),
    (
        54,
        "2408.16224",
        "LLaVA-SG: Leveraging Scene Graphs as Visual Semantic Expression in Vision-Language Models",
    ),
    (62, None, "From Pampas to Pixels: Fine-Tuning Diffusion Models for Gaúcho Heritage"),
    (68, None, "Hybrid Quantum-Classical Ensemble Learning for S&P 500 Directional Prediction"),
    (74, None, "Attention Is All You Need"),
    (82, None, None),  # a GitHub repository: neither an id nor a title
    (
        88,
        "2405.10948",
        "Surgical-LVLM: Learning to Adapt Large Vision-Language Model for Grounded Visual Question Answering "
        "in Robotic Surgery",
    ),
    (
        95,
        "2408.04664",
        "Mitigating Hallucinations in Large Vision-Language Models (LVLMs) via Language-Contrastive Decoding (LCD)",
    ),
    (102, "2409.09564", "TG-LLaVA: Text Guided LLaVA via Learnable Latent Embeddings"),  # doi.org's DataCite
    (
        111,
        "2405.20323",
        "S^3Gaussian: Self-Supervised Street Gaussians for Autonomous Driving",
    ),  # arxiv field
]
ZOTERO_CSV = [
    (2, "2403.11299"),  # Url (DOI, Extra and Number name it too)
    (4, "2403.15388"),  # an old Zotero arXiv import: journalArticle, id in Url and "arXiv: ..." in Extra
    (5, "2501.10834"),  # Extra only, on its second line
    (7, "2409.09564"),  # DOI only
    (8, "2408.16224"),  # a PDF link
    (9, "2405.10948"),  # Number ("arXiv:...", where Zotero keeps a preprint's archive id)
    (10, None),
    (11, None),
]
RIS = [
    (1, "2505.18657"),
    (21, "2508.14160"),  # N1 only
    (31, "2509.24361"),  # L2 PDF link, T1 title
    (39, "2401.11337"),  # AN
    (49, None),
    (58, "hep-th/9711200"),  # an old-style id in a link
    (69, "2407.19778"),
]
PLAIN = [
    (2, "2403.11299"),
    (3, "2403.15388"),
    (4, "2408.04664"),
    (6, "2408.16224"),
    (7, "2409.09564"),
    (8, "2407.19778"),
    (9, "2501.10834"),
    (10, "hep-th/9711200"),
    (11, "math.DG/0211159"),
    (12, "2505.18657"),
    (13, None),  # a note in words
    (14, None),  # a link to a mirror, not to arXiv
]


def lines_and_ids(path: Path) -> list[tuple[int, str | None]]:
    return [(e.line, e.arxiv_id) for e in read_library(path).entries]


def test_bibtex_export_gives_each_entry_with_its_line_id_and_plain_title() -> None:
    library = read_library(FIXTURES / "zotero.bib")
    assert library.format == "bibtex"
    assert [(e.line, e.arxiv_id, e.title) for e in library.entries] == BIBTEX
    assert library.arxiv_ids == [i for _, i, _ in BIBTEX if i]
    # the ECCV entry links the same preprint's PDF: the first entry keeps the id
    assert [(e.line, e.arxiv_id) for e in library.duplicates] == [(118, "2403.11299")]
    texts = {e.line: e.text for e in library.entries}
    assert texts[41] == "http://arxiv.org/abs/2403.15388"
    assert texts[88] == "arXiv preprint arXiv:2405.10948"
    assert texts[82] == "@misc{liu_llava_2023}"
    assert texts[35] == BIBTEX[2][2]


def test_bibtex_entries_are_those_bibtexparser_reads() -> None:
    parser = BibTexParser(common_strings=True)
    parser.ignore_nonstandard_types = False
    theirs = bibtexparser.loads((FIXTURES / "zotero.bib").read_text(encoding="utf-8"), parser=parser).entries
    library = read_library(FIXTURES / "zotero.bib")
    assert len(theirs) == len(library.entries) + len(library.duplicates)
    ours = sorted(library.entries + library.duplicates, key=lambda e: e.line)
    assert [plain_title(e["title"]) if "title" in e else None for e in theirs] == [e.title for e in ours]


def test_zotero_csv_with_bom_multiline_cells_and_crlf() -> None:
    assert (FIXTURES / "zotero.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    library = read_library(FIXTURES / "zotero.csv")
    assert library.format == "zotero-csv"
    assert lines_and_ids(FIXTURES / "zotero.csv") == ZOTERO_CSV
    assert [(e.line, e.arxiv_id) for e in library.duplicates] == [(12, "2403.11299")]
    by_line = {e.line: e for e in library.entries}
    assert (
        by_line[10].title
        == "Mixture of Rationale: Multi-Modal Reasoning Mixture for Visual Question Answering"
    )
    assert by_line[5].text == "arXiv: 2501.10834"  # the line of Extra that named it


def test_ris_records() -> None:
    library = read_library(FIXTURES / "zotero.ris")
    assert library.format == "ris"
    assert lines_and_ids(FIXTURES / "zotero.ris") == RIS
    by_line = {e.line: e for e in library.entries}
    assert by_line[31].title == "UI-UG: A Unified MLLM for UI Understanding and Generation"
    assert by_line[49].title == "Mechanisms of Prompt-Induced Hallucination in Vision-Language Models"


def test_plain_list_reports_lines_that_are_not_ids() -> None:
    library = read_library(FIXTURES / "reading-list.txt")
    assert library.format == "plain"
    assert lines_and_ids(FIXTURES / "reading-list.txt") == PLAIN
    unmatched = [(e.line, e.text) for e in library.entries if not e.arxiv_id]
    assert unmatched == [(13, "see the LLaVA paper too"), (14, "https://alphaxiv.org/abs/2601.05201")]
    assert [(e.line, e.text) for e in library.duplicates] == [(15, "2403.11299v2")]
    assert all(e.title is None for e in library.entries)


def test_titles_without_ids_are_titles_of_corpus_papers(corpus: list[dict[str, Any]]) -> None:
    """The caller matches these against the database: each fixture's title-only entry is a bundled paper."""
    by_title = {normalise_title(r["title"]): r["id"] for r in corpus}
    found = {
        (path.name, e.line): by_title.get(normalise_title(e.title))
        for path in sorted(FIXTURES.iterdir())
        for e in read_library(path).entries
        if e.title and not e.arxiv_id
    }
    assert found == {
        ("zotero.bib", 35): "2406.01402",
        ("zotero.bib", 62): "2401.05520",  # Ga{\'u}cho
        ("zotero.bib", 68): "2512.15738",  # S\&P on both sides
        ("zotero.bib", 74): None,
        ("zotero.csv", 10): "2406.01402",
        ("zotero.csv", 11): None,
        ("zotero.ris", 49): "2601.05201",
    }
    # and every entry with an id and a title names the paper it says
    for path in sorted(FIXTURES.iterdir()):
        for e in read_library(path).entries:
            if e.title and e.arxiv_id and e.arxiv_id in by_title.values():
                assert by_title[normalise_title(e.title)] == e.arxiv_id, (path.name, e.line)


@pytest.mark.parametrize("fmt", ["bibtex", "csv"])
def test_tracker_exports_read_back(fmt: str, corpus: list[dict[str, Any]], tmp_path: Path) -> None:
    special = [r for r in corpus if "$" in r["title"] or "&" in r["title"]][:20]
    records = special + [r for r in corpus[:30] if r not in special]
    rows = [
        {
            "arxiv_id": r["id"],
            "title": r["title"],
            "authors": r["authors"],
            "published": r["published"],
            "primary_category": r["primary_category"],
            "categories": r["categories"],
            "tags": [],
            "abs_url": f"https://arxiv.org/abs/{r['id']}",
            "doi": None,
            "journal_ref": None,
        }
        for r in records
    ]
    path = tmp_path / f"export.{fmt}"
    path.write_text("".join(render_chunks(fmt, rows)), encoding="utf-8")
    library = read_library(path)
    assert library.arxiv_ids == [r["id"] for r in records]
    assert [normalise_title(e.title or "") for e in library.entries] == [
        normalise_title(r["title"]) for r in records
    ]


@pytest.mark.parametrize(
    ("fixture", "fmt"),
    [
        ("zotero.bib", "bibtex"),
        ("zotero.csv", "zotero-csv"),
        ("zotero.ris", "ris"),
        ("reading-list.txt", "plain"),
    ],
)
def test_format_comes_from_the_content_not_the_name(fixture: str, fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "library.txt"
    path.write_bytes((FIXTURES / fixture).read_bytes())
    assert read_library(path).format == fmt


def test_bibtex_syntax_corners(tmp_path: Path) -> None:
    path = tmp_path / "corners.bib"
    path.write_text(
        "Free text before the entries is a comment, even with an email@example.org in it.\n"
        '@String(arx = "arXiv preprint arXiv:")\n'
        "@Article(parens,\n"
        '  Title = "A {Quoted, Braced} Title, with {\\"o} and {\\c c}",\n'
        '  Journal = arx # "2301.12597",\n'
        ")\n"
        "@misc{hal, title = {On {HAL}}, eprint = {2301.00001}, archivePrefix = {HAL}}\n"
        "@misc{pubmed, title = {On PubMed}, eprint = {2301.00002}, eprinttype = {pubmed},}\n"
        "@misc{bare, eprint = {arXiv:2310.03744v1}}\n"
        "@misc{old, url = {https://arxiv.org/abs/math.DG/0211159}, title = {The entropy formula\n"
        "    for the {Ricci} flow and its geometric applications}}\n"
        "@misc{nofields}\n",
        encoding="utf-8",
    )
    entries = read_library(path).entries
    assert [(e.line, e.arxiv_id, e.title) for e in entries] == [
        (3, "2301.12597", "A Quoted, Braced Title, with ö and ç"),
        (7, None, "On HAL"),
        (8, None, "On PubMed"),
        (9, "2310.03744", None),
        (10, "math.DG/0211159", "The entropy formula for the Ricci flow and its geometric applications"),
        (12, None, None),
    ]


@pytest.mark.parametrize(
    ("latex", "plain"),
    [
        ("{{{SQ-LLaVA}}}: {{Self-Questioning}}", "SQ-LLaVA: Self-Questioning"),
        ("{LLaVA}: Visual {Instruction} Tuning", "LLaVA: Visual Instruction Tuning"),
        (r"Vision \& Language: 50\% of \{it\}", "Vision & Language: 50% of {it}"),
        (r"Subjective $\textit{Isms}$? On \emph{Hate}", "Subjective Isms? On Hate"),
        (
            r"Ga{\'u}cho, Fr\'{e}chet, {\"O}zt{\"u}rk, Pe\~na, {\L}ukasz, Stra\ss e",
            "Gaúcho, Fréchet, Öztürk, Peña, Łukasz, Straße",
        ),
        ("A multi-line\n    {Title}~with a tie", "A multi-line Title with a tie"),
        (r"Claim $\rightarrow$ Evidence \\ in {\LaTeX}", "Claim rightarrow Evidence in LaTeX"),
        (r"Pre\-training", "Pretraining"),
    ],
)
def test_plain_title(latex: str, plain: str) -> None:
    assert plain_title(latex) == plain


def test_normalise_title_matches_what_arxiv_and_exports_write() -> None:
    key = normalise_title("LLaVA-PruMerge: Adaptive Token Reduction for Efficient Large Multimodal Models")
    assert key == "llava prumerge adaptive token reduction for efficient large multimodal models"
    assert (
        normalise_title(
            "{LLaVA}-{PruMerge}: {Adaptive} {Token} {Reduction} for {Efficient} {Large} "
            "{Multimodal} {Models}."
        )
        == key
    )
    assert normalise_title(
        r"From Pampas to Pixels: Fine-Tuning Diffusion Models for Ga{\'u}cho Heritage"
    ) == (normalise_title("From Pampas to Pixels: Fine-Tuning Diffusion Models for Gaucho Heritage"))
    assert normalise_title(r"S\&P 500") == normalise_title("S&P  500") == "s p 500"
    assert normalise_title(r"$\textit{S}^3$Gaussian") == normalise_title("S^3Gaussian") == "s 3gaussian"


@pytest.mark.parametrize(
    ("text", "arxiv_id"),
    [
        ("arXiv preprint arXiv:2304.08485", "2304.08485"),
        ("arXiv:2304.08485 [cs]", "2304.08485"),
        ("arXiv: 2304.08485", "2304.08485"),
        ("https://doi.org/10.48550/arXiv.2304.08485", "2304.08485"),
        ("10.48550/ARXIV.2304.08485", "2304.08485"),
        ("<https://www.arxiv.org/pdf/2304.08485v2.pdf>", "2304.08485"),
        ("see http://export.arxiv.org/abs/hep-th/9711200v3 for", "hep-th/9711200"),
        ("https://arxiv.org/html/2304.08485v1#S3", "2304.08485"),
        ("https://alphaxiv.org/abs/2304.08485", None),
        ("https://notarxiv.org/abs/2304.08485", None),
        ("https://arxiv.org.example.com/abs/2304.08485", None),
        ("arXiv:2304.084851", None),
        ("2304.08485", None),  # bare: only fields meant to hold an id take it so
        ("10.1109/CVPR52733.2024.02484", None),
    ],
)
def test_find_arxiv_id(text: str, arxiv_id: str | None) -> None:
    assert find_arxiv_id(text) == arxiv_id


BROKEN_BIB = "@misc{ok, title = {Fine}}\n\n@article{broken,\n  title = {Never {closed},\n  year = 2024\n}\n"
EARLY_CLOSE_BIB = "\n@article{early,\n  title = {Closed}},\n  eprint = {2304.08485}\n}\n"
NO_COMMA_BIB = "@article{nocomma,\n  title = {A}\n  eprint = {2304.08485}\n}\n"
QUOTE_BIB = '@article{q,\n  title = "never ends\n}\n'


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.bib", BROKEN_BIB, "line 3: BibTeX entry @article{broken has unbalanced braces"),
        ("early.bib", EARLY_CLOSE_BIB, "line 2: BibTeX entry @article{early has unbalanced braces"),
        (
            "nocomma.bib",
            NO_COMMA_BIB,
            "line 1: BibTeX entry @article{nocomma: unbalanced braces or a missing comma near line 3",
        ),
        ("quote.bib", QUOTE_BIB, "line 1: BibTeX entry @article{q has a quoted value that does not end"),
        ("comments.bib", "@comment{jabref-meta: databaseType:bibtex;}\n", "no entries (bibtex)"),
        (
            "latin1.bib",
            "@misc{a,\n title = {Ga\xfacho}}\n".encode("latin-1"),
            "line 2: not UTF-8 text (byte 0xfa)",
        ),
        ("utf16.txt", "2304.08485\n".encode("utf-16"), "UTF-16 text, not UTF-8"),
        ("empty.txt", b"", "empty file"),
        ("blank.txt", "\n  \n\t\n", "empty file"),
        ("comments.txt", "# nothing yet\n\n# still nothing\n", "no entries (plain)"),
        ("notes.txt", "Reading list\nLLaVA and friends\n", "no arXiv id or arXiv link on any of its 2 lines"),
        (
            "no-title.csv",
            '"Key","Item Type","Author","Url"\n"A","preprint","X","http://arxiv.org/abs/2304.08485"\n',
            "line 1: a CSV header without a Title column (key, item type, author, url)",
        ),
        ("no-title.txt", '"Key","Item Type","Author","Url"\n', "line 1: a CSV header without a Title column"),
        ("header-only.csv", '"Key","Item Type","Title","Url"\r\n', "no entries (zotero-csv)"),
        (
            "image.png",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            ": a binary file (a NUL byte at offset 8), not a library",
        ),
    ],
)
def test_bad_files_are_one_line_errors_naming_the_file(
    name: str, content: str | bytes, message: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_library(path)
    assert str(caught.value).startswith(f"{path}")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_terminal_controls_never_reach_a_report(tmp_path: Path) -> None:
    path = tmp_path / "hostile.txt"
    path.write_text("2304.08485\n\x1b]52;c;cm0gLXJmIH4=\x07 clipboard\n", encoding="utf-8")
    path_bib = tmp_path / "hostile.bib"
    path_bib.write_text("@misc{x, title = {Nice\x1b[2J Title\x9b}}\n", encoding="utf-8")
    assert read_library(path).entries[1].text == "]52;c;cm0gLXJmIH4= clipboard"
    assert (
        read_library(path_bib).entries[0].title == read_library(path_bib).entries[0].text == "Nice[2J Title"
    )


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    for path, message in [(tmp_path / "missing.bib", "cannot read"), (tmp_path, "cannot read")]:
        with pytest.raises(InputError, match=f"^{path}: {message}"):
            read_library(path)


def test_a_big_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.bib"
    with path.open("wb") as fh:
        fh.truncate(MAX_BYTES + 1)  # sparse: nothing is written, and nothing may be read
    with pytest.raises(InputError, match=r"huge\.bib: 50\.0 MB, more than the 50\.0 MB a library may be$"):
        read_library(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_pipe_is_cut_at_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "pipe"
    os.mkfifo(path)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), path.open("wb") as fh:  # the reader stops at the cap
            fh.write(b"2304.08485\n" * 100_000)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with pytest.raises(InputError, match="more than the 0.0 MB a library may be"):
            read_library(path, max_bytes=100)
    finally:
        writer.join(timeout=5)
