"""Write the stored papers, with their tags and scores, as JSON lines, CSV, BibTeX or a markdown "awesome list".

Pure rendering: the caller passes the rows (`store.papers_for_export`) and, when there is one, the
taxonomy, whose tag order (and titles) the awesome list follows; without it the facets and tags
stored in `paper_tags` are used, tags in alphabetical order. Facets come in reader order
(`tracker.reading_order`: MLLM kind and topic first, classic vision tasks last), the order the digest
uses, and the task sections list only papers the relevance score calls multimodal-LLM work unless
the caller asks for all of them. JSON lines, CSV and BibTeX are written a paper at
a time as the rows arrive, so memory does not grow with the number of papers; the awesome list keeps
the tagged papers (it needs them all to build its contents), never the untagged majority.

Every field of a paper row comes from arXiv's bytes and is not trusted (issue 13): each format carries it
as inert text. JSON is safe by construction (json.dumps quotes and escapes everything; the line separators
it leaves raw are escaped here too); CSV cells that a spreadsheet would run as formulas get a leading `'`;
BibTeX values are one line with balanced braces and the entry key is built from [a-z0-9] only; the markdown
escapes every field and links only to arXiv.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import unicodedata
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker.config import rules_dir
from tracker.dates import parse_day
from tracker.endpoints import abs_url
from tracker.errors import ConfigError
from tracker.outfile import check_target, replacing
from tracker.reading_order import facet_rank, shown, sort_facets
from tracker.rules import Taxonomy, load_taxonomy, resolve_slug, unknown_tag

FORMATS = ("jsonl", "csv", "bibtex", "markdown")
JSON_FIELDS = (
    "arxiv_id",
    "version",
    "title",
    "authors",
    "abstract",
    "primary_category",
    "categories",
    "published",
    "updated",
    "announced",
    "comment",
    "journal_ref",
    "doi",
    "abs_url",
    "pdf_url",
)
CSV_FIELDS = (*JSON_FIELDS, "tags", "scores")
# Characters that are special in LaTeX text and that arXiv titles carry unescaped (math `$`/`_` is kept).
BIBTEX_ESCAPES = re.compile(r"(?<!\\)([&%#])")
# The TeX commands a .bib value may keep: the formatting, accent, symbol and math commands arXiv titles and
# names use. Every other command is written as text (\textbackslash input): an allow-list, because a
# denylist of file, shell and definition commands misses some (\lstinputlisting, \verbatiminput, expl3's
# \ExplSyntaxOn ... \file_input:n). TeX's ^^5c notation for a backslash is broken up too.
_TEX_ALLOWED_NAMES = """
    textit textbf textsl textsc texttt textrm textsf textup textmd textnormal emph underline text mbox
    textsubscript textsuperscript textbackslash textasciitilde textasciicircum textendash textemdash
    textquoteleft textquoteright textquotedblleft textquotedblright textregistered texttrademark textdegree
    ldots dots cdots vdots ddots LaTeX TeX BibTeX S P ss ae AE oe OE o O l L i j aa AA c d b k r u v H t
    mathrm mathbf mathit mathcal mathbb mathsf mathtt mathfrak mathscr boldsymbol bm operatorname
    frac dfrac tfrac sqrt sum prod int oint log ln exp sin cos tan min max arg argmax argmin lim sup inf det
    infty partial nabla times cdot div le leq ge geq neq ne approx sim simeq equiv propto pm mp in notin ni
    subset subseteq supset supseteq cup cap setminus emptyset forall exists neg land lor to gets rightarrow
    leftarrow Rightarrow Leftarrow leftrightarrow Leftrightarrow mapsto mid vert Vert left right big Big bigl
    bigr Bigl Bigr langle rangle lfloor rfloor lceil rceil hat tilde bar vec dot ddot overline widehat
    widetilde mathring prime ell hbar star ast circ bullet dagger top bot perp parallel angle quad qquad
    alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi varpi rho
    varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon
    Phi Psi Omega
    """
TEX_ALLOWED = frozenset(_TEX_ALLOWED_NAMES.split())
TEX_COMMAND = re.compile(r"\\([A-Za-z@]+)")
MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>|#~!])")
# GitHub turns bare `https://...` and `www.x` into links (GFM "autolinks (extension)"); an escaped `:` or `.` stops it.
GFM_AUTOLINK = re.compile(r"(?i)(?<=[a-z])(:)(?=//)|(?<=www)(\.)")
# C0/C1 control characters other than tab, LF and CR: nothing in a title needs them, and printed to a
# terminal they are escape sequences (cursor moves, window titles, clipboard writes).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f]")
# OWASP "CSV Injection" (https://owasp.org/www-community/attacks/CSV_Injection): a cell starting with one of
# these is run as a formula by spreadsheets; LF and the full-width forms some of them fold are added.
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# The only links the exports write: arXiv's abstract and PDF pages (parse.py stores https://arxiv.org/...).
ARXIV_LINK = re.compile(r"(?:https://arxiv\.org|https?://export\.arxiv\.org)/(?:abs|pdf)/[\w./-]+", re.ASCII)
# New-style (2401.00001) and old-style (hep-th/9901001) ids, as parse.split_versioned_id keeps them.
ARXIV_ID = re.compile(r"(?:\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(?:v\d+)?", re.ASCII)
# What JSON leaves raw inside strings but str.splitlines() (and pre-2019 JavaScript) take for line breaks.
JSON_LINE_BREAKS = {0x2028: "\\u2028", 0x2029: "\\u2029", 0x85: "\\u0085"}


@dataclass(frozen=True)
class Section:
    """One heading level of the awesome list: a facet or a tag, with its title."""

    key: str
    title: str


def load_taxonomy_if_any() -> Taxonomy | None:
    """The taxonomy from the rules folder, or None when there is no taxonomy.yml (a bad one is an error)."""
    path = rules_dir() / "taxonomy.yml"
    return load_taxonomy(path) if path.is_file() else None


def write_output(chunks: Iterable[str], out: str | None, protect: Sequence[str | Path] = ()) -> None:
    """Print the chunks, or write them to `out` whole or not at all (`outfile.replacing`): a failed export
    never leaves half a file, and never replaces the database or any other SQLite file.

    :param protect: files `out` must never replace (the database and its companions)
    """
    if out is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
        return
    if Path(out).absolute().parts[1:2] in (("dev",), ("proc",)) and Path(out).exists():
        # /dev/stdout, /proc/self/fd/1: a pipe, or a file the shell opened with >>. Write into it as given,
        # appending; renaming a temporary file over it would replace what the shell is appending to.
        check_target(out, protect)
        with open(out, "a", encoding="utf-8", newline="") as fh:
            for chunk in chunks:
                fh.write(chunk)
        return
    with replacing(out, protect) as path, open(path, "w", encoding="utf-8", newline="") as fh:
        for chunk in chunks:
            fh.write(chunk)


def check_since(value: str | None) -> str | None:
    """--since must be a real YYYY-MM-DD date."""
    return None if value is None else parse_day(value, "--since").isoformat()


def check_tag(tag: str | None, taxonomy: Taxonomy | None, stored: Sequence[tuple[str, str]]) -> str | None:
    """The slug `tag` names (case-insensitive through the taxonomy), or a ConfigError listing the known tags."""
    if tag is None:
        return None
    if taxonomy is not None:
        return taxonomy.resolve(tag).slug
    known = sorted({t for t, _ in stored})
    slug = resolve_slug(tag, known)
    if slug is None:
        raise unknown_tag(tag, known, "tags in the database")
    return slug


def render_chunks(
    fmt: str,
    rows: Iterable[dict[str, Any]],
    taxonomy: Taxonomy | None = None,
    tag: str | None = None,
    all_tasks: bool = False,
) -> Iterator[str]:
    """The export in one format (`FORMATS`), a paper at a time; `tag` limits the awesome list to that tag.

    :param all_tasks: the awesome list's task sections list every paper, not only MLLM work
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "jsonl":
        return (json.dumps(_record(r), ensure_ascii=False).translate(JSON_LINE_BREAKS) + "\n" for r in rows)
    if fmt == "csv":
        return _csv_chunks(rows)
    if fmt == "bibtex":
        return _bibtex_chunks(rows)
    # Untagged papers are in no section of the list: drop them as they arrive.
    return iter(
        [render_markdown(list(markdown_rows(rows, taxonomy, tag, all_tasks)), taxonomy, tag, all_tasks)]
    )


def _record(row: dict[str, Any]) -> dict[str, Any]:
    record = {k: row.get(k) for k in JSON_FIELDS}
    record["tags"] = [
        {"tag": t["tag"], "facet": t["facet"], "score": round(float(t["score"]), 4), "source": t["source"]}
        for t in row["tags"]
    ]
    return record


def arxiv_link(url: str | None) -> str | None:
    """`url` if it is an arXiv abstract or PDF page (arXiv's own http link upgraded to https), else None."""
    if not url:
        return None
    if url.startswith("http://arxiv.org/"):
        url = "https://" + url[len("http://") :]
    return url if ARXIV_LINK.fullmatch(url) else None


def paper_link(row: dict[str, Any]) -> str | None:
    """The paper's arXiv abstract page: its stored link if that is arXiv's, else one built from a well-formed id."""
    if link := arxiv_link(row.get("abs_url")):
        return link
    arxiv_id = str(row.get("arxiv_id") or "")
    return abs_url(arxiv_id) if ARXIV_ID.fullmatch(arxiv_id) else None


def _csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet reads as text: control characters dropped, a formula's first character quoted."""
    if not isinstance(value, str):
        return value
    value = CONTROL.sub("", value)
    return "'" + value if value.startswith(CSV_FORMULA_STARTS) else value


def _csv_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One line per paper; lists are joined with "; ", tags as `tag` and scores as `tag=0.812`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        record = {k: row.get(k) for k in JSON_FIELDS}
        record["authors"] = "; ".join(row["authors"])
        record["categories"] = " ".join(row["categories"])
        record["tags"] = "; ".join(t["tag"] for t in row["tags"])
        record["scores"] = "; ".join(f"{t['tag']}={float(t['score']):.3f}" for t in row["tags"])
        writer.writerow({k: _csv_cell(v) for k, v in record.items()})
        yield buffer.getvalue()  # the header, then one paper's line at a time
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()  # the header alone when there are no rows


# -- BibTeX --------------------------------------------------------------------------------------


def _ascii_word(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())


def _bibtex_name(name: str) -> str:
    """'Chaoqun Gong' -> 'Gong, Chaoqun'; a single-word or group name is kept braced."""
    parts = name.split()
    if len(parts) < 2:
        return "{" + name + "}"
    return f"{parts[-1]}, {' '.join(parts[:-1])}"


def _bibtex_value(text: str) -> str:
    """One line of LaTeX text with balanced braces, so the value cannot end its field or start an entry."""
    # A trailing backslash would escape the closing brace for LaTeX.
    text = BIBTEX_ESCAPES.sub(r"\\\1", " ".join(CONTROL.sub("", text).split())).rstrip("\\")
    text = TEX_COMMAND.sub(
        lambda m: m.group(0) if m.group(1) in TEX_ALLOWED else f"\\textbackslash {m.group(1)}",
        re.sub(r"\^\^+", "^", text),
    )
    depth = 0
    for ch in text:  # unbalanced braces would end the field early: drop them all in that case
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            break
    if depth != 0:
        text = text.replace("{", "").replace("}", "")
    return text


def _bibtex_verbatim(text: str) -> str:
    """A DOI or URL as biblatex reads it (verbatim): one line, with braces, spaces and backslashes percent-encoded."""
    return urllib.parse.quote(" ".join(CONTROL.sub("", text).split()), safe="/:;=?&+,!$'()*[]@~.-_%#")


def _year(row: dict[str, Any]) -> str:
    for key in ("published", "day", "announced", "updated"):
        year = str(row.get(key) or "")[:4]
        if re.fullmatch(r"\d{4}", year, re.ASCII):  # it goes into the entry key: digits only
            return year
    match = re.match(r"(\d{2})\d{2}\.", str(row["arxiv_id"]))  # new-style ids start with YYMM
    return f"20{match.group(1)}" if match else ""


def bibtex_key(row: dict[str, Any], taken: set[str]) -> str:
    """Google-Scholar-style key, `gong2024text2avatar`, made unique with a, b, c... suffixes."""
    last = _ascii_word(row["authors"][0].split()[-1]) if row["authors"] else "anon"
    words = [w for w in (_ascii_word(w) for w in row["title"].split()) if len(w) > 3] or ["paper"]
    base = f"{last or 'anon'}{_year(row)}{words[0]}"
    key, n = base, 0
    while key in taken:
        key = base + "abcdefghijklmnopqrstuvwxyz"[n % 26] + ("" if n < 26 else str(n // 26))
        n += 1
    taken.add(key)
    return key


def _bibtex_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """`@misc` entries with arXiv's eprint fields (eprint, archivePrefix, primaryClass), as arXiv exports them."""
    taken: set[str] = set()  # keys given so far, to make each unique: one short string per paper
    for i, row in enumerate(rows):
        fields = [
            ("title", _bibtex_value(row["title"])),
            ("author", " and ".join(_bibtex_name(_bibtex_value(a)) for a in row["authors"])),
            ("year", _year(row)),
            ("eprint", _bibtex_verbatim(str(row["arxiv_id"]))),
            ("archivePrefix", "arXiv"),
            ("primaryClass", _bibtex_value(row.get("primary_category") or "")),
            ("url", paper_link(row) or ""),
            ("doi", _bibtex_verbatim(row.get("doi") or "")),
            ("note", _bibtex_value(row.get("journal_ref") or "")),
            ("keywords", ", ".join(_bibtex_value(t["tag"]) for t in row["tags"])),
        ]
        body = ",\n".join(f"  {name:<13} = {{{value}}}" for name, value in fields if value)
        yield ("\n" if i else "") + f"@misc{{{bibtex_key(row, taken)},\n{body}\n}}\n"


# -- markdown awesome list -------------------------------------------------------------------------


def _md(text: str) -> str:
    """Text that markdown shows as it is: no link, image, HTML, heading, emphasis or autolink can start in it."""
    text = MARKDOWN_SPECIALS.sub(r"\\\1", " ".join(CONTROL.sub("", text).split()))
    text = GFM_AUTOLINK.sub(lambda m: "\\" + (m.group(1) or m.group(2)), text)
    # GitHub also links a bare e-mail address (mailto:); an HTML entity for "@" shows the same text, unlinked.
    return text.replace("@", "&#64;")


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def markdown_rows(
    rows: Iterable[dict[str, Any]],
    taxonomy: Taxonomy | None = None,
    only: str | None = None,
    all_tasks: bool = False,
) -> Iterator[dict[str, Any]]:
    """The rows as the awesome list shows them: tags of sections the paper is kept out of dropped (a non-MLLM
    paper under a task tag, `tracker.reading_order`), and papers left with no tag dropped. Idempotent."""
    facet_of = {t.slug: t.facet for t in taxonomy.tags} if taxonomy is not None else {}
    chosen = (only,) if only else ()
    for row in rows:
        tags = row.get("tags") or []
        kept = [
            t
            for t in tags
            if shown(facet_of.get(t["tag"], t["facet"]), t["tag"], row, all_tasks=all_tasks, chosen=chosen)
        ]
        if kept:
            yield row if len(kept) == len(tags) else {**row, "tags": kept}


def _sections(
    rows: Sequence[dict[str, Any]], taxonomy: Taxonomy | None, only: str | None
) -> list[tuple[Section, list[Section]]]:
    """Facets that have papers in reader order, with their tags in taxonomy order (alphabetical without one)."""
    present = {(t["facet"], t["tag"]) for r in rows for t in r["tags"] if only is None or t["tag"] == only}
    if taxonomy is not None:
        out = []
        for facet in sorted(taxonomy.facets, key=lambda f: facet_rank(f.name)):
            tags = [
                Section(t.slug, f"{t.slug}: {t.title}" if t.title != t.slug else t.slug)
                for t in taxonomy.tags
                if t.facet == facet.name and any(tag == t.slug for _, tag in present)
            ]
            if tags:
                out.append((Section(facet.name, facet.title), tags))
        listed = {s.key for _, tags in out for s in tags}
        # tags stored in the database but since removed from the taxonomy still get a section
        extra = sorted({tag for _, tag in present} - listed)
        if extra:
            out.append((Section("other", "Other tags"), [Section(t, t) for t in extra]))
        return out
    facets = sort_facets(sorted({f for f, _ in present}))
    return [
        (Section(f, f), [Section(t, t) for t in sorted({t for ff, t in present if ff == f})]) for f in facets
    ]


def _paper_line(row: dict[str, Any], tag: str) -> str:
    authors = row["authors"]
    names = ", ".join(authors[:3]) + (" et al." if len(authors) > 3 else "")
    score = next((float(t["score"]) for t in row["tags"] if t["tag"] == tag), None)
    link = paper_link(row)  # a stored link elsewhere is not followed: the title is then plain text
    parts = [f"**[{_md(row['title'])}]({link})**" if link else f"**{_md(row['title'])}**"]
    if names:
        parts.append(_md(names))
    parts.append(_md(str(row.get("day") or row.get("published") or "")[:10]))
    if row.get("primary_category"):
        parts.append(_md(row["primary_category"]))
    if pdf := arxiv_link(row.get("pdf_url")):
        parts.append(f"[PDF]({pdf})")
    if score is not None:
        parts.append(f"score {score:.2f}")
    return "- " + " · ".join(p for p in parts if p)


def render_markdown(
    rows: Sequence[dict[str, Any]],
    taxonomy: Taxonomy | None = None,
    only: str | None = None,
    all_tasks: bool = False,
) -> str:
    """An awesome list: a contents list, then one `##` per facet and `###` per tag, newest papers first.

    Newest first even where the digest puts MLLM work first: a reference list is read by date, and its
    MLLM-only task sections already keep the rest out.
    """
    rows = list(markdown_rows(rows, taxonomy, only, all_tasks))
    sections = _sections(rows, taxonomy, only)
    # Count and date only the papers the list shows: untagged rows are in `rows` but in no section.
    tagged = [r for r in rows if r.get("tags")]
    newest = max((str(r.get("day") or "") for r in tagged), default="")
    lines = [
        "# Multimodal-LLM papers",
        "",
        f"{len(tagged)} arXiv papers tagged with the tracker's taxonomy"
        + (f", newest from {_md(newest)}" if newest else "")
        + ". Generated by `tracker export --format markdown`; edit the taxonomy, not this file.",
        "",
        "## Contents",
        "",
    ]
    for facet, tags in sections:
        lines.append(f"- [{_md(facet.title)}](#{_anchor(facet.title)})")
        lines += [f"  - [{_md(t.title)}](#{_anchor(t.title)})" for t in tags]
    for facet, tags in sections:
        lines += ["", f"## {_md(facet.title)}"]
        for tag in tags:
            papers = [r for r in rows if any(t["tag"] == tag.key for t in r["tags"])]
            lines += ["", f"### {_md(tag.title)}", ""]
            lines += [_paper_line(r, tag.key) for r in papers]  # rows arrive newest first
    return "\n".join(lines) + "\n"
