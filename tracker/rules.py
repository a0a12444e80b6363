"""Load and validate the human-edited rules (`taxonomy.yml`, `labels.csv`) into frozen dataclasses.

Every error names the file and the line, because these files are edited by hand and reviewed in PRs:
a malformed YAML line, an unknown facet, a duplicate tag or a label naming an unknown tag is refused
before anything is trained or written.
"""

from __future__ import annotations

import csv
import difflib
import fnmatch
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tracker.errors import ConfigError
from tracker.ids import is_arxiv_id

TAG_SLUG = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_LINE = "__line__"


@dataclass(frozen=True)
class SectionPattern:
    """A curated-list section glob, optionally restricted to lists matching `list_glob`."""

    section: str
    list_glob: str = "*"

    def matches(self, source_list: str, section: str) -> bool:
        return fnmatch.fnmatchcase(section.lower(), self.section.lower()) and fnmatch.fnmatchcase(
            source_list.lower(), self.list_glob.lower()
        )


@dataclass(frozen=True)
class Tag:
    slug: str
    facet: str
    title: str
    description: str
    sections: tuple[SectionPattern, ...] = ()
    keywords: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    title_keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    focus: int = 0
    threshold: float | None = None
    # Given only to papers the MLLM relevance score calls multimodal-LLM work (RUBRIC.md: every tag of
    # the mllm and topic facets but LAVR requires `mllm = y`).
    requires_mllm: bool = False
    # Given only when one of these phrases occurs in the title or abstract (LAVR: some visual input).
    requires: tuple[str, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Facet:
    name: str
    title: str
    description: str


@dataclass(frozen=True)
class NamedSystem:
    """A system the survey names: the paper introducing it (by id or title glob) carries `tags`."""

    name: str
    tags: tuple[str, ...]
    arxiv_id: str | None = None
    title: str | None = None

    def matches(self, arxiv_id: str, title: str) -> bool:
        if self.arxiv_id and arxiv_id == self.arxiv_id:
            return True
        if self.title:
            clean = " ".join(title.split()).lower()
            return fnmatch.fnmatchcase(clean, self.title.lower())
        return False


@dataclass(frozen=True)
class Taxonomy:
    facets: tuple[Facet, ...]
    tags: tuple[Tag, ...]
    named_systems: tuple[NamedSystem, ...] = ()
    path: str = ""

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(t.slug for t in self.tags)

    def tag(self, slug: str) -> Tag:
        for t in self.tags:
            if t.slug == slug:
                return t
        raise self.unknown(slug)

    def resolve(self, name: str) -> Tag:
        """Find a tag by slug, case-insensitively (so `tracker label ... mit` works)."""
        slug = resolve_slug(name, self.slugs)
        if slug is None:
            raise self.unknown(name)
        return self.tag(slug)

    def unknown(self, name: str) -> ConfigError:
        """The error for a tag name no slug matches (see `unknown_tag`)."""
        return unknown_tag(name, self.slugs)

    def tags_for_section(self, source_list: str, section: str) -> list[str]:
        return [t.slug for t in self.tags if any(p.matches(source_list, section) for p in t.sections)]


def resolve_slug(name: str, slugs: Sequence[str]) -> str | None:
    """The slug `name` names, matched case-insensitively (`m-cot` is M-CoT), or None.

    The one rule for every command that takes a tag; slugs that differ only in case are refused on load.
    """
    if name in slugs:
        return name
    folded = name.lower()
    return next((s for s in slugs if s.lower() == folded), None)


def unknown_tag(name: str, slugs: Sequence[str], known_as: str = "known tags") -> ConfigError:
    """The error for a tag name no slug matches: the closest slugs if it looks like a typo, else them all."""
    by_lower = {s.lower(): s for s in slugs}
    close = [by_lower[m] for m in difflib.get_close_matches(name.lower(), by_lower, n=3, cutoff=0.75)]
    if close:
        return ConfigError(f"unknown tag {name!r} (did you mean {' or '.join(close)}?)")
    return ConfigError(f"unknown tag {name!r}; {known_as}: {', '.join(slugs) or '(none yet)'}")


@dataclass(frozen=True)
class Label:
    """One paper's training labels: its tags, and whether it is about multimodal LLMs (None: not said)."""

    arxiv_id: str
    tags: tuple[str, ...]
    line: int = 0
    title: str = ""
    mllm: bool | None = None
    source: str = ""  # "reviewed" (read against RUBRIC.md) or "curated" (a curated list's section)


@dataclass(frozen=True)
class Labels:
    labels: tuple[Label, ...]
    path: str = ""
    content_hash: str = ""
    by_id: dict[str, Label] = field(default_factory=dict, compare=False, hash=False)


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that records each mapping's line and refuses duplicate keys."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable):  # `? [a, b]: 1` is valid YAML, but no key of ours
            raise ConfigError(f"{loader.name}:{line}: malformed YAML: found unhashable key {key!r}")
        if key in seen:
            raise ConfigError(f"{loader.name}:{line}: duplicate key {key!r} (first at line {seen[key]})")
        seen[key] = line
    mapping: dict[str, Any] = dict(loader.construct_mapping(node, deep=True))  # type: ignore[arg-type]
    mapping[_LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    loader = _LineLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ConfigError(f"{path}:{line}: malformed YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    finally:
        loader.dispose()


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: expected a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _text(entry: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    value = entry.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {key!r} must be a non-empty string")
    return value.strip()


def _sections(value: Any, where: str) -> tuple[SectionPattern, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{where}: 'sections' must be a list")
    out = []
    for item in value:
        if isinstance(item, str) and item.strip():
            out.append(SectionPattern(item.strip()))
        elif isinstance(item, dict) and isinstance(item.get("section"), str):
            unknown = set(item) - {"section", "list", _LINE}
            if unknown:
                raise ConfigError(f"{where}: unknown key(s) in a section entry: {', '.join(sorted(unknown))}")
            out.append(SectionPattern(item["section"].strip(), str(item.get("list") or "*").strip()))
        else:
            raise ConfigError(
                f"{where}: each section is a glob string or a mapping with 'section' (and 'list')"
            )
    return tuple(out)


TAG_KEYS = {
    "slug",
    "facet",
    "title",
    "description",
    "sections",
    "keywords",
    "context",
    "threshold",
    "requires_mllm",
    "requires",
    "title_keywords",
    "exclude",
    "focus",
    _LINE,
}


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Read and validate taxonomy.yml (facets, tags, named systems)."""
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping with 'facets' and 'tags'")
    unknown_top = set(data) - {"facets", "tags", "named_systems", _LINE}
    if unknown_top:
        raise ConfigError(f"{path}:1: unknown top-level key(s): {', '.join(sorted(map(str, unknown_top)))}")
    raw_facets = data.get("facets")
    if not isinstance(raw_facets, dict) or len(raw_facets) <= 1:
        raise ConfigError(
            f"{path}:{data[_LINE]}: 'facets' must be a mapping of facet name to title/description"
        )
    facets = []
    for name, entry in raw_facets.items():
        if name == _LINE:
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}:{raw_facets[_LINE]}: facet {name!r} must be a mapping")
        where = f"{path}:{entry[_LINE]}"
        facets.append(
            Facet(str(name), _text(entry, "title", where), _text(entry, "description", where, False))
        )
    facet_names = {f.name for f in facets}

    raw_tags = data.get("tags")
    if not isinstance(raw_tags, list) or not raw_tags:
        raise ConfigError(f"{path}: 'tags' must be a non-empty list")
    tags: list[Tag] = []
    seen: dict[str, int] = {}
    for entry in raw_tags:
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: each entry of 'tags' must be a mapping (got {entry!r})")
        line = entry[_LINE]
        where = f"{path}:{line}"
        extra = set(entry) - TAG_KEYS
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, extra)))} in tag")
        slug = _text(entry, "slug", where)
        if not TAG_SLUG.match(slug):
            raise ConfigError(f"{where}: tag slug {slug!r} must be letters, digits and '-'")
        if slug.lower() in seen:
            raise ConfigError(f"{where}: duplicate tag {slug!r} (first defined at line {seen[slug.lower()]})")
        seen[slug.lower()] = line
        facet = _text(entry, "facet", where)
        if facet not in facet_names:
            raise ConfigError(
                f"{where}: tag {slug!r} names unknown facet {facet!r}; facets: {', '.join(sorted(facet_names))}"
            )
        threshold = entry.get("threshold")
        if threshold is not None and not (isinstance(threshold, (int, float)) and 0 <= threshold <= 1):
            raise ConfigError(f"{where}: threshold of {slug!r} must be a number between 0 and 1")
        focus = entry.get("focus", 0)
        if not isinstance(focus, int) or isinstance(focus, bool) or not 0 <= focus <= 100:
            raise ConfigError(f"{where}: focus of {slug!r} must be a whole number from 0 to 100")
        requires_mllm = entry.get("requires_mllm", False)
        if not isinstance(requires_mllm, bool):
            raise ConfigError(f"{where}: requires_mllm of {slug!r} must be true or false")
        tags.append(
            Tag(
                slug=slug,
                facet=facet,
                title=_text(entry, "title", where),
                description=_text(entry, "description", where),
                sections=_sections(entry.get("sections"), where),
                keywords=_strings(entry.get("keywords"), f"{where}: keywords of {slug!r}"),
                context=_strings(entry.get("context"), f"{where}: context of {slug!r}"),
                title_keywords=_strings(entry.get("title_keywords"), f"{where}: title_keywords of {slug!r}"),
                exclude=_strings(entry.get("exclude"), f"{where}: exclude of {slug!r}"),
                focus=focus,
                threshold=float(threshold) if threshold is not None else None,
                requires_mllm=requires_mllm,
                requires=_strings(entry.get("requires"), f"{where}: requires of {slug!r}"),
                line=line,
            )
        )
    slugs = {t.slug for t in tags}
    systems = []
    for entry in data.get("named_systems") or []:
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: each entry of 'named_systems' must be a mapping (got {entry!r})")
        where = f"{path}:{entry[_LINE]}"
        name = _text(entry, "name", where)
        sys_tags = _strings(entry.get("tags"), f"{where}: tags of {name!r}")
        for slug in sys_tags:
            if slug not in slugs:
                raise ConfigError(f"{where}: named system {name!r} names unknown tag {slug!r}")
        arxiv_id = entry.get("arxiv_id")
        if arxiv_id is not None and not is_arxiv_id(str(arxiv_id)):
            raise ConfigError(f'{where}: {arxiv_id!r} is not an arXiv id (quote it: "2304.08485")')
        title = entry.get("title")
        if not sys_tags or (arxiv_id is None and not title):
            raise ConfigError(f"{where}: named system {name!r} needs tags and an arxiv_id or title")
        systems.append(NamedSystem(name, sys_tags, str(arxiv_id) if arxiv_id else None, title))
    return Taxonomy(tuple(facets), tuple(tags), tuple(systems), str(path))


def load_labels(path: str | Path, taxonomy: Taxonomy) -> Labels:
    """Read labels.csv: columns by header, `arxiv_id` and `tags` required (tags space-separated, empty = no
    tag), optional `mllm` (y / n / empty), `source`, `note` and `title`.

    scripts/build_labels.py writes it from rules/reviewed.csv (papers read against docs/labelling.md) and,
    for papers nobody read, the curated lists' sections.
    """
    import hashlib

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader, None) or []]
    if header[:2] != ["arxiv_id", "tags"]:
        raise ConfigError(f"{path}:1: header must start with 'arxiv_id,tags'")
    column = {name: i for i, name in enumerate(header)}
    known = {t.slug for t in taxonomy.tags}
    labels: list[Label] = []
    by_id: dict[str, Label] = {}
    for row in reader:
        line = reader.line_num
        if not row or not any(c.strip() for c in row):
            continue
        arxiv_id = row[0].strip()
        if not is_arxiv_id(arxiv_id):
            raise ConfigError(f"{path}:{line}: {arxiv_id!r} is not an arXiv id without version")
        if len(row) < 2:  # a forgotten column must not silently turn a paper into a curated negative
            raise ConfigError(
                f"{path}:{line}: expected arxiv_id,tags (a paper with no tag has an empty tags field: '{arxiv_id},')"
            )

        def cell(name: str, row: list[str] = row) -> str:
            i = column.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        tags = tuple(row[1].split())
        for tag in tags:
            if tag not in known:
                raise ConfigError(f"{path}:{line}: unknown tag {tag!r} for {arxiv_id}")
        mllm = cell("mllm").lower()
        if mllm not in ("y", "n", ""):
            raise ConfigError(f"{path}:{line}: mllm must be y, n or empty, not {mllm!r} ({arxiv_id})")
        if arxiv_id in by_id:
            raise ConfigError(
                f"{path}:{line}: duplicate arxiv_id {arxiv_id} (first at line {by_id[arxiv_id].line})"
            )
        label = Label(arxiv_id, tags, line, cell("title"), {"y": True, "n": False}.get(mllm), cell("source"))
        labels.append(label)
        by_id[arxiv_id] = label
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return Labels(tuple(labels), str(path), digest, by_id)


def load_rules(rules: Path) -> tuple[Taxonomy, Labels]:
    """Both classifier inputs from a rules folder."""
    taxonomy = load_taxonomy(rules / "taxonomy.yml")
    return taxonomy, load_labels(rules / "labels.csv", taxonomy)
