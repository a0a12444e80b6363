"""Read a researcher's exported reference library and say which arXiv papers it names, entry by entry.

Pure: one file in, a `Library` out; matching the titles of entries without an arXiv id against the
database is the caller's (`normalise_title` gives both sides the same key). Formats, told from the content:
BibTeX (Zotero, Better BibTeX, Google Scholar, arXiv, JabRef), Zotero's CSV export (and any CSV with a
Title column, such as `tracker export --format csv`), RIS, and plain text with one arXiv id or link a line.

The parsers are small and written here rather than taken from bibtexparser or rispy: a report must name the
line each entry starts on, which bibtexparser 1.x does not keep (2.x is a rewrite still in beta) and rispy
does not either; only fields and their values are read, where the formats are simple; and the project keeps
its dependencies few. The file may be anything a user points at, so its size is capped and a binary or
non-UTF-8 file is refused in one line.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tracker.errors import InputError
from tracker.ids import parse_arxiv_id

# BibTeX with abstracts runs to a few kB an entry: 50 MB holds tens of thousands of references.
MAX_BYTES = 50 * 1024 * 1024
FORMATS = ("bibtex", "zotero-csv", "ris", "plain")
TEXT_CHARS = 100  # Entry.text is cut to this for reports
# C0/C1 controls but tab and line ends: a report prints titles and lines to a terminal, where these are
# escape sequences (the file may be anything).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

# An id as it stands inside longer text; `(?!\d)` keeps 2304.08485 from matching the start of 2304.084851.
_ID = r"(?P<id>\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?(?!\d)"
# arXiv's own pages only (not mirrors such as alphaxiv.org): abs, pdf, html, ps and format, on any of its hosts.
ARXIV_URL = re.compile(
    r"(?<![\w.-])(?i:(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html|ps|format)/)" + _ID
)
# arXiv's DataCite DOIs (https://info.arxiv.org/help/doi.html): 10.48550/arXiv.<id without version>.
ARXIV_DOI = re.compile(r"(?i:10\.48550/arxiv\.)" + _ID)
# A citation: `arXiv:2304.08485`, `arXiv: 2304.08485` (Zotero's Extra), `arXiv preprint arXiv:...` (Scholar).
ARXIV_CITED = re.compile(r"(?<![\w/.-])(?i:arxiv)(?:\s+(?i:preprint))?\s*[:\s]\s*" + _ID)

# BibTeX fields, in the order they are trusted. Fields meant to hold an id may hold it bare.
BIBTEX_ID_FIELDS = ("eprint", "arxiv", "arxivid")
BIBTEX_TEXT_FIELDS = (
    "url",
    "doi",
    "journal",
    "journaltitle",
    "note",
    "howpublished",
    "number",
    "booktitle",
    "eid",
    "addendum",
    "annote",
)
# Zotero CSV columns (lower-cased), the same way; `arxiv_id` and `abs_url` are tracker's own export.
CSV_ID_COLUMNS = ("arxiv_id", "arxiv id", "archive id", "eprint")
CSV_TEXT_COLUMNS = (
    "url",
    "abs_url",
    "doi",
    "extra",
    "number",
    "report number",
    "publication title",
    "link attachments",
)
CSV_ID_HINTS = ("url", "extra", "doi", "arxiv_id")  # with a Title column, what makes a first line a header
# RIS tags (RIS format specification, Research Information Systems 2011): links, DOI, accession number,
# notes, type of work, reference id, journal names.
RIS_TITLE_TAGS = ("TI", "T1")
RIS_ID_TAGS = ("AN", "ID", "M3")
RIS_TEXT_TAGS = ("UR", "L2", "L1", "LK", "L3", "L4", "DO", "N1", "JO", "JF", "T2")
RIS_LINE = re.compile(r"([A-Z][A-Z0-9])  ?-(?: (.*))?")

_BIB_AT = re.compile(r"@\s*([A-Za-z][\w-]*)\s*([{(])")
_BIB_LOOKS_LIKE = re.compile(r"^\s*@\s*[A-Za-z][\w-]*\s*[{(]", re.MULTILINE)
_BIB_KEY = re.compile(r"\s*([^\s,{}()=\"#%]*)\s*")
_BIB_NAME = re.compile(r"\s*([^\s,{}()=\"#%']+)\s*=\s*")
_BIB_BARE = re.compile(r"[^\s,#{}()\"=]+")
_BIB_BRACE = re.compile(r"[{}]")
_BIB_QUOTED_END = re.compile(r'[{}"]')
_NON_SPACE = re.compile(r"\S")
# A field after an entry has closed: the sign of a `}` too many inside the entry.
_BIB_STRAY_FIELD = re.compile(r"\s*,?\s*[A-Za-z][\w-]*\s*=\s*[{\"\w]")
_RIS_LOOKS_LIKE = re.compile(r"^TY  ?- ", re.MULTILINE)

# LaTeX in titles, as BibTeX exports write it. Accents become Unicode combining marks (then NFC).
_ACCENTS = {
    "'": "\u0301",
    "`": "\u0300",
    "^": "\u0302",
    '"': "\u0308",
    "~": "\u0303",
    "=": "\u0304",
    ".": "\u0307",
    "u": "\u0306",
    "v": "\u030c",
    "H": "\u030b",
    "c": "\u0327",
    "k": "\u0328",
    "r": "\u030a",
    "d": "\u0323",
    "b": "\u0331",
}
_LETTERS = {"ss": "ß", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "aa": "å", "AA": "Å", "o": "ø", "O": "Ø"}
_LETTERS.update({"l": "ł", "L": "Ł", "i": "i", "j": "j"})
_TEX_DOTLESS = re.compile(r"\\([ij])(?![A-Za-z])")
_TEX_ACCENT_SYMBOL = re.compile(r"""\\(['`^"~=.])\s*(?:\{\s*([A-Za-z])\s*\}|([A-Za-z]))""")
_TEX_ACCENT_LETTER = re.compile(r"\\([uvHckrdb])(?:\s*\{\s*([A-Za-z])\s*\}|\s+([A-Za-z]))")
_TEX_LETTER = re.compile(r"\\(ss|ae|AE|oe|OE|aa|AA|o|O|l|L)(?![A-Za-z])(?:\{\}|\s*)")  # TeX eats the space
_TEX_ESCAPED = re.compile(r"\\([&%$#_{}])")
_TEX_COMMAND = re.compile(r"\\([A-Za-z]+)\*?")
_TEX_SYMBOL = re.compile(r"\\(.)", re.DOTALL)
# Commands that only format their argument: the argument stays, the name goes.
_TEX_FORMATTING_NAMES = """
    textit textbf textsl textsc texttt textrm textsf textup textmd textnormal emph underline text mbox
    mathrm mathbf mathit mathcal mathbb mathsf mathtt mathfrak mathscr boldsymbol bm operatorname url
    protect relax
    """
_TEX_FORMATTING = frozenset(_TEX_FORMATTING_NAMES.split())
_ESCAPED_KEEP = {"{": "\ue000", "}": "\ue001", "$": "\ue002"}  # survive the brace strip


@dataclass(frozen=True)
class Entry:
    """One reference in the file."""

    line: int  # 1-based line where the entry starts
    arxiv_id: str | None  # the bare id (no version) when the entry carries one
    title: str | None  # plain-text title (LaTeX and braces gone, whitespace collapsed), when known
    text: str  # what the file said, short: the id, link or DOI that gave the id, else the title or line


@dataclass
class Library:
    """The entries of one library file, in file order, each arXiv id once."""

    path: Path
    format: str  # one of FORMATS
    entries: list[Entry]
    duplicates: list[Entry] = field(default_factory=list)  # later entries naming an id already seen

    @property
    def arxiv_ids(self) -> list[str]:
        """The ids the entries carry, in file order."""
        return [e.arxiv_id for e in self.entries if e.arxiv_id]


def read_library(path: Path, *, max_bytes: int = MAX_BYTES) -> Library:
    """Read the library file at `path`; InputError (one line, naming the file) when it cannot be read."""
    text = _read_text(path, max_bytes)
    fmt = detect_format(text, path)
    if fmt == "bibtex":
        entries = list(_BibTeX(text, path).entries())
    elif fmt == "zotero-csv":
        entries = list(_csv_entries(text, path))
    elif fmt == "ris":
        entries = list(_ris_entries(text))
    else:
        entries = list(_plain_entries(text))
        if entries and not any(e.arxiv_id for e in entries):
            raise InputError(
                f"{path}: no arXiv id or arXiv link on any of its {len(entries)} lines, and not BibTeX, RIS "
                "or a CSV with a Title column"
            )
    if not entries:
        raise InputError(f"{path}: no entries ({fmt})")
    kept: list[Entry] = []
    duplicates: list[Entry] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.arxiv_id and entry.arxiv_id in seen:
            duplicates.append(entry)
            continue
        if entry.arxiv_id:
            seen.add(entry.arxiv_id)
        kept.append(entry)
    return Library(path, fmt, kept, duplicates)


def detect_format(text: str, path: Path) -> str:
    """The format of a library's text: a CSV header with a Title column, BibTeX, RIS, else plain."""
    first = text.split("\n", 1)[0]
    header = [cell.strip().lower() for cell in next(csv.reader([first]), [])]
    is_csv = path.suffix.lower() == ".csv"
    if "title" in header and (is_csv or any(h in header for h in CSV_ID_HINTS)):
        return "zotero-csv"
    if _RIS_LOOKS_LIKE.match(text.lstrip()):  # before BibTeX: an abstract may hold a line such as "@misc{"
        return "ris"
    if _BIB_LOOKS_LIKE.search(text):
        return "bibtex"
    if _RIS_LOOKS_LIKE.search(text):
        return "ris"
    # A header of quoted names (as Zotero writes) or a .csv file, but no Title: say so rather than read
    # the rows as lines of ids. A first line of comma-separated ids is a plain list all the same.
    if (is_csv or (first.startswith('"') and len(header) >= 3)) and not any(map(_id_in_value, header)):
        shown = ", ".join(header[:6]) + (", ..." if len(header) > 6 else "")
        raise InputError(f"{path} line 1: a CSV header without a Title column ({shown})")
    return "plain"


def find_arxiv_id(text: str) -> str | None:
    """The arXiv id free text names: an arxiv.org link, an arXiv DOI or an `arXiv:` citation, else None."""
    for pattern in (ARXIV_URL, ARXIV_DOI, ARXIV_CITED):
        for match in pattern.finditer(text):
            if arxiv_id := parse_arxiv_id(match.group("id")):
                return arxiv_id
    return None


def plain_title(title: str) -> str:
    """A title as text: LaTeX accents as Unicode, escapes as their characters, braces, `$` and commands gone."""
    text = _TEX_ESCAPED.sub(lambda m: _ESCAPED_KEEP.get(m.group(1), m.group(1)), title.replace("\\\\", " "))
    text = _TEX_DOTLESS.sub(r"\1", text)
    text = _TEX_ACCENT_SYMBOL.sub(lambda m: (m.group(2) or m.group(3)) + _ACCENTS[m.group(1)], text)
    text = _TEX_ACCENT_LETTER.sub(lambda m: (m.group(2) or m.group(3)) + _ACCENTS[m.group(1)], text)
    text = _TEX_LETTER.sub(lambda m: _LETTERS[m.group(1)], text)
    text = _TEX_COMMAND.sub(lambda m: "" if m.group(1) in _TEX_FORMATTING else m.group(1), text)
    text = _TEX_SYMBOL.sub(lambda m: "" if m.group(1) == "-" else " ", text)  # \- is a hyphenation hint
    text = re.sub(r"[{}$]", "", text).replace("~", " ")
    for char, mark in _ESCAPED_KEEP.items():
        text = text.replace(mark, char)
    return unicodedata.normalize("NFC", " ".join(CONTROL.sub("", text).split()))


def normalise_title(title: str) -> str:
    """The key two titles match on: LaTeX gone, accents and case folded, punctuation as spaces."""
    decomposed = unicodedata.normalize("NFKD", plain_title(title))
    letters = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", letters).split())


# -- reading -----------------------------------------------------------------------------------------


def _read_text(path: Path, max_bytes: int) -> str:
    """The file as text with `\\n` line ends and no BOM; a file too big, binary or not UTF-8 is refused."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(
                f"{path}: {_megabytes(size)}, more than the {_megabytes(max_bytes)} a library may be"
            )
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)  # a pipe or device has no size to check beforehand
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise InputError(f"{path}: more than the {_megabytes(max_bytes)} a library may be")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{path}: UTF-16 text, not UTF-8; export or save the library as UTF-8")
    if (nul := data.find(b"\0")) != -1:
        raise InputError(f"{path}: a binary file (a NUL byte at offset {nul}), not a library")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{path} line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); export as UTF-8"
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InputError(f"{path}: empty file")
    return text


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def _short(text: str) -> str:
    text = " ".join(CONTROL.sub("", text).split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _id_in_value(value: str) -> str | None:
    """The id in a value meant to hold one, bare (`2304.08485v2`) or as a link or citation."""
    return parse_arxiv_id(value) or find_arxiv_id(value)


def _entry(line: int, found: tuple[str, str] | None, title: str | None, fallback: str) -> Entry:
    """An Entry from the id found (with the value it came from) and the raw title."""
    clean = plain_title(title) if title else None
    if found:
        return Entry(line, found[0], clean or None, _short(found[1]))
    return Entry(line, None, clean or None, _short(clean or fallback))


def _first_id(
    values: dict[str, str], id_keys: tuple[str, ...], text_keys: tuple[str, ...]
) -> tuple[str, str] | None:
    """(id, the line of the value it came from) from the first key that names one; `id_keys` may hold it bare.

    Values are read a line at a time: Zotero's Extra and repeated RIS tags hold one item a line.
    """
    for key in id_keys + text_keys:
        for line in (values.get(key) or "").split("\n"):
            arxiv_id = _id_in_value(line) if key in id_keys else find_arxiv_id(line)
            if arxiv_id:
                return arxiv_id, line
    return None


# -- BibTeX ------------------------------------------------------------------------------------------


class _BibTeX:
    """A BibTeX reader that keeps each entry's line: entries, @string macros, @comment and @preamble skipped.

    It follows BibTeX's own reading: text outside entries is a comment, `@type{` or `@type(` opens an entry,
    values are `{...}` (nested braces), `"..."` or a number or macro name, joined with `#`.
    """

    def __init__(self, text: str, path: Path) -> None:
        self.text = text
        self.path = path
        self.pos = 0
        self.macros: dict[str, str] = {}
        self._counted = (0, 1)  # (position, its line): positions asked for mostly grow

    def line(self, pos: int) -> int:
        start, line = self._counted if pos >= self._counted[0] else (0, 1)
        line += self.text.count("\n", start, pos)
        self._counted = (pos, line)
        return line

    def entries(self) -> Iterator[Entry]:
        text = self.text
        while (at := text.find("@", self.pos)) != -1:
            match = _BIB_AT.match(text, at)
            if not match:
                self.pos = at + 1
                continue
            kind, closer = match.group(1).lower(), ")" if match.group(2) == "(" else "}"
            self.pos = match.end()
            start = self.line(at)
            if kind in ("comment", "preamble"):
                # JabRef's @Comment{jabref-meta: ...}; a comment without its closing brace ends with its line
                end = self._balanced_end(match.end() - 1) if closer == "}" else text.find(")", match.end())
                if end is None or end == -1:
                    if kind == "preamble":
                        raise self._error(start, "@preamble has unbalanced braces")
                    end = text.find("\n", at) if "\n" in text[at:] else len(text)
                self.pos = end + 1
            elif kind == "string":
                for name, value in self._fields(closer, start, f"@{kind}").items():
                    self.macros[name] = value
            else:
                key = _BIB_KEY.match(text, self.pos)
                if key is None:  # the pattern matches the empty string: never
                    raise self._error(start, f"@{kind}: no key")
                self.pos = key.end()
                label = f"@{kind}{{{key.group(1)}"
                fields: dict[str, str] = {}
                if text.startswith(closer, self.pos):
                    self.pos += 1
                elif text.startswith(",", self.pos):
                    self.pos += 1
                    fields = self._fields(closer, start, label)
                else:
                    raise self._error(start, f"{label}: expected ',' after the key")
                if _BIB_STRAY_FIELD.match(text, self.pos):
                    raise self._error(
                        start, f"{label} has unbalanced braces: it closes before its last field"
                    )
                yield self._entry(start, kind, key.group(1), fields)

    def _entry(self, line: int, kind: str, key: str, fields: dict[str, str]) -> Entry:
        eprint_kind = (
            (fields.get("archiveprefix") or fields.get("eprinttype") or "arxiv").strip(" {}").lower()
        )
        if eprint_kind != "arxiv":  # an eprint of another archive (HAL, PubMed) is no arXiv id
            fields = {k: v for k, v in fields.items() if k != "eprint"}
        found = _first_id(fields, BIBTEX_ID_FIELDS, BIBTEX_TEXT_FIELDS)
        return _entry(line, found, fields.get("title"), f"@{kind}{{{key}}}")

    def _fields(self, closer: str, start: int, label: str) -> dict[str, str]:
        """`name = value, ...` up to the closing delimiter; the first of a repeated name is kept."""
        text = self.text
        fields: dict[str, str] = {}
        while True:
            self._skip_space(start, label)
            if text.startswith(closer, self.pos):
                self.pos += 1
                return fields
            name = _BIB_NAME.match(text, self.pos)
            if not name:
                raise self._error(
                    start, f"{label}: unbalanced braces or a missing comma near line {self.line(self.pos)}"
                )
            self.pos = name.end()
            fields.setdefault(name.group(1).lower(), self._value(start, label))
            self._skip_space(start, label)
            if text.startswith(",", self.pos):
                self.pos += 1
            elif not text.startswith(closer, self.pos):
                raise self._error(
                    start, f"{label}: unbalanced braces or a missing comma near line {self.line(self.pos)}"
                )

    def _value(self, start: int, label: str) -> str:
        text = self.text
        parts: list[str] = []
        while True:
            self._skip_space(start, label)
            char = text[self.pos]
            if char in '{"':
                end = self._balanced_end(self.pos) if char == "{" else self._quoted_end(self.pos)
                if end is None:
                    problem = (
                        "has unbalanced braces" if char == "{" else "has a quoted value that does not end"
                    )
                    raise self._error(start, f"{label} {problem}")
                parts.append(text[self.pos + 1 : end])
                self.pos = end + 1
            else:
                bare = _BIB_BARE.match(text, self.pos)
                if not bare:
                    raise self._error(start, f"{label}: no value near line {self.line(self.pos)}")
                parts.append(self.macros.get(bare.group().lower(), bare.group()))
                self.pos = bare.end()
            self._skip_space(start, label)
            if not text.startswith("#", self.pos):
                return "".join(parts)
            self.pos += 1

    def _skip_space(self, start: int, label: str) -> None:
        found = _NON_SPACE.search(self.text, self.pos)
        if found is None:
            raise self._error(start, f"{label} has unbalanced braces (the file ends inside it)")
        self.pos = found.start()

    def _balanced_end(self, opening: int) -> int | None:
        """Where the `{` at `opening` closes, or None when the file ends first."""
        depth = 0
        for match in _BIB_BRACE.finditer(self.text, opening):
            depth += 1 if match.group() == "{" else -1
            if depth == 0:
                return match.start()
        return None

    def _quoted_end(self, opening: int) -> int | None:
        """Where the `"` at `opening` closes: the next `"` outside braces, or None."""
        depth = 0
        for match in _BIB_QUOTED_END.finditer(self.text, opening + 1):
            char = match.group()
            if char == '"' and depth == 0:
                return match.start()
            depth += {"{": 1, "}": -1}.get(char, 0)
            if depth < 0:
                return None
        return None

    def _error(self, line: int, problem: str) -> InputError:
        return InputError(f"{self.path} line {line}: BibTeX entry {problem}")


# -- CSV, RIS, plain ---------------------------------------------------------------------------------


def _csv_entries(text: str, path: Path) -> Iterator[Entry]:
    """One entry a row of a CSV with a header; multi-line cells (abstracts, notes) keep line numbers right."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [cell.strip().lower() for cell in next(reader)]
    if "title" not in header:
        raise InputError(f"{path} line 1: a CSV header without a Title column")
    end = reader.line_num
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            values = dict(zip(header, row, strict=False))  # a short row lacks its last cells
            found = _first_id(values, CSV_ID_COLUMNS, CSV_TEXT_COLUMNS)
            yield _entry(start, found, values.get("title"), ",".join(row))
    except csv.Error as exc:
        raise InputError(f"{path} line {reader.line_num}: not valid CSV: {exc}") from None


def _ris_entries(text: str) -> Iterator[Entry]:
    """One entry a `TY  - ` ... `ER  - ` record; a TY without the ER before it starts a new record all the same."""
    record: dict[str, str] | None = None
    start = last = ""
    line_of_record = 0
    for number, raw in enumerate(text.split("\n"), 1):
        match = RIS_LINE.fullmatch(raw.rstrip())
        if match is None:
            if record is not None and raw.strip() and last:  # a wrapped value (long abstracts, notes)
                record[last] += " " + raw.strip()
            continue
        tag, value = match.group(1), (match.group(2) or "").strip()
        if tag == "TY":
            if record is not None:
                yield _ris_entry(line_of_record, record, start)
            record, line_of_record, start, last = {}, number, value, ""
        elif record is not None and tag == "ER":
            yield _ris_entry(line_of_record, record, start)
            record = None
        elif record is not None:
            # Repeated tags (UR, L1, N1, AU) are joined: any of them may carry the id.
            record[tag] = f"{record[tag]}\n{value}" if tag in record else value
            last = tag
    if record is not None:
        yield _ris_entry(line_of_record, record, start)


def _ris_entry(line: int, record: dict[str, str], kind: str) -> Entry:
    found = _first_id(record, RIS_ID_TAGS, RIS_TEXT_TAGS)
    title = next((record[t].split("\n")[0] for t in RIS_TITLE_TAGS if record.get(t)), None)
    return _entry(line, found, title, f"TY  - {kind}")


def _plain_entries(text: str) -> Iterator[Entry]:
    """One entry a line that is not blank or a `#` comment: an id or link, or an unmatched line."""
    for number, raw in enumerate(text.split("\n"), 1):
        line = re.split(r"\s#", raw.strip(), maxsplit=1)[0].strip()  # `2304.08485  # LLaVA`
        if not line or line.startswith("#"):
            continue
        arxiv_id = _id_in_value(line) or _id_in_value(line.split()[0])
        yield Entry(number, arxiv_id, None, _short(line))
