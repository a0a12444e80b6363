"""The weekly digest: tagged paper rows + taxonomy + time window -> `Digest` -> plain text and HTML.

Pure: the caller reads the rows from the store, passes "now", and decides where the result goes.
HTML comes from an autoescaped Jinja2 template, so paper text (titles, authors, abstracts: all
written by strangers) can never become markup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from tracker.dates import parse_day
from tracker.endpoints import abs_url
from tracker.errors import ConfigError
from tracker.reading_order import facet_rank, gated, is_mllm, sort_facets
from tracker.rules import Taxonomy, resolve_slug, unknown_tag

WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
TREND_WEEKS = 12
MAX_PER_TAG = 20  # an email, not a database dump: the rest of a busy tag is one query away
SNIPPET_CHARS = 240  # about two lines of a mail client's reading pane
SPARK = "▁▂▃▄▅▆▇█"
REVISION_TYPES = ("replace", "replace-cross")


# -- windows -----------------------------------------------------------------------------------


ARXIV_BEGAN = date(1991, 8, 1)


@dataclass(frozen=True)
class Window:
    """An inclusive range of days; `label` names it in the digests table (an ISO week when it is one)."""

    label: str
    since: date
    until: date

    @property
    def pretty(self) -> str:
        return f"{self.since:%a %d %b %Y} – {self.until:%a %d %b %Y}"


def week_window(year: int, week: int) -> Window:
    monday = date.fromisocalendar(year, week, 1)
    return Window(f"{year}-W{week:02d}", monday, monday + timedelta(days=6))


def parse_week(text: str) -> Window:
    """'2026-W47' -> the Monday..Sunday of that ISO week."""
    match = WEEK_RE.match(text.strip())
    if not match:
        raise ConfigError(f"--week {text!r}: expected an ISO week like 2026-W47")
    try:
        window = week_window(int(match.group(1)), int(match.group(2)))
    except ValueError:
        raise ConfigError(f"--week {text!r}: year {match.group(1)} has no week {match.group(2)}") from None
    return _in_arxiv_era(window, f"--week {text!r}")


def _in_arxiv_era(window: Window, what: str) -> Window:
    # arXiv began in 1991; the trend chart also looks back twelve weeks, which overflows date.min near year 1.
    if window.since < ARXIV_BEGAN or window.until.year > 9000:
        raise ConfigError(f"{what}: outside arXiv's years (it began in August 1991)")
    return window


def window_between(since: str, until: str) -> Window:
    """--since/--until (inclusive); a range that is exactly one ISO week gets the week's label."""
    start, end = parse_day(since, "--since"), parse_day(until, "--until")
    if end < start:
        raise ConfigError(f"--until {until} is before --since {since}")
    iso = start.isocalendar()
    if iso[2] == 1 and end - start == timedelta(days=6):
        return _in_arxiv_era(week_window(iso[0], iso[1]), f"--since {since}")
    return _in_arxiv_era(Window(f"{start.isoformat()}..{end.isoformat()}", start, end), f"--since {since}")


def window_from_options(week: str | None, since: str | None, until: str | None, today: date) -> Window:
    """The window `--week` or `--since/--until` name (--until defaults to `today`); else the last complete week."""
    if week and (since or until):
        raise ConfigError("use either --week or --since/--until, not both")
    if week:
        return parse_week(week)
    if since or until:
        if not since:
            raise ConfigError("--until needs --since (or use --week)")
        return window_between(since, until or today.isoformat())
    return last_complete_week(today)


def last_complete_week(today: date) -> Window:
    """The latest ISO week that ended before `today` (on a Monday: the week that ended yesterday)."""
    iso = (today - timedelta(days=today.isoweekday())).isocalendar()
    return week_window(iso[0], iso[1])


def trend_mondays(window: Window, weeks: int = TREND_WEEKS) -> list[date]:
    """The Mondays of the `weeks` ISO weeks ending with the one that holds `window.until`."""
    last = window.until - timedelta(days=window.until.weekday())
    return [last - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]


# -- taxonomy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagInfo:
    slug: str
    title: str
    facet: str
    threshold: float | None = None


@dataclass(frozen=True)
class FacetInfo:
    slug: str
    title: str


@dataclass(frozen=True)
class DigestTaxonomy:
    """What the digest needs of the taxonomy: facet order and titles, tag titles and digest thresholds."""

    facets: tuple[FacetInfo, ...]
    tags: tuple[TagInfo, ...]

    def tag(self, slug: str) -> TagInfo | None:
        return next((t for t in self.tags if t.slug == slug), None)

    def validate(self, requested: Iterable[str]) -> list[str]:
        """The requested tag slugs, or ConfigError naming the first unknown one and the known ones."""
        known = [t.slug for t in self.tags]
        chosen = []
        for name in requested:
            slug = resolve_slug(name, known)  # `m-cot` is M-CoT, as label and export accept it
            if slug is None:
                raise unknown_tag(name, known)
            chosen.append(slug)
        return list(dict.fromkeys(chosen))


def taxonomy_from_rules(taxonomy: Taxonomy) -> DigestTaxonomy:
    """Adapt the taxonomy `tracker.rules` loads to DigestTaxonomy."""
    facets = tuple(FacetInfo(f.name, f.title or f.name) for f in taxonomy.facets)
    tags = tuple(
        TagInfo(t.slug, t.title or t.slug, t.facet, float(t.threshold) if t.threshold is not None else None)
        for t in taxonomy.tags
    )
    return DigestTaxonomy(facets, tags)


def taxonomy_from_pairs(pairs: Iterable[tuple[str, str]]) -> DigestTaxonomy:
    """A bare taxonomy from (tag, facet) pairs found in the database, when no taxonomy file exists."""
    tags = tuple(TagInfo(tag, tag, facet) for tag, facet in pairs)
    facets = tuple(FacetInfo(f, f) for f in dict.fromkeys(t.facet for t in tags))
    return DigestTaxonomy(facets, tags)


# -- the digest --------------------------------------------------------------------------------


@dataclass
class Entry:
    """One paper under one tag."""

    arxiv_id: str
    version: int
    title: str
    url: str
    authors: str
    category: str
    score: float
    source: str
    snippet: str
    revision: bool
    similar_url: str | None = None  # the paper's similar papers in Datasette, when its address is known

    @property
    def score_text(self) -> str:
        return "manual" if self.source == "manual" else f"{self.score:.2f}"


@dataclass
class ForYou:
    """A paper ranked for this reader by their own library (`tracker.recommend`)."""

    arxiv_id: str
    version: int
    title: str
    url: str
    score: float
    like: str  # title of the library paper it is most like
    similar_url: str | None = None  # the paper's similar papers in Datasette, when its address is known


@dataclass
class TagSection:
    slug: str
    title: str
    count: int  # papers of the window under this tag (before the per-tag cap)
    entries: list[Entry]
    trend: list[int]  # papers per week, oldest first, the window's week last

    @property
    def more(self) -> int:
        return self.count - len(self.entries)

    @property
    def spark(self) -> str:
        return sparkline(self.trend)


@dataclass
class FacetSection:
    slug: str
    title: str
    tags: list[TagSection]


@dataclass
class Digest:
    window: Window
    generated: datetime
    facets: list[FacetSection]
    trend_mondays: list[date]
    tag_filter: list[str] = field(default_factory=list)  # empty: all tags
    already_sent: int = 0  # papers left out because this recipient already had them
    quiet_tags: list[str] = field(default_factory=list)  # chosen tags with nothing this window
    total: int = 0  # distinct papers of the window in the chosen tags, listed or beyond the per-tag cap
    task_hidden: int = 0  # papers kept out of the task sections because they are not MLLM work
    for_you: list[ForYou] = field(default_factory=list)  # ranked by the reader's library, best first

    @property
    def sections(self) -> list[TagSection]:
        return [t for f in self.facets for t in f.tags]

    @property
    def empty(self) -> bool:
        return not self.sections and not self.for_you

    def paper_versions(self) -> list[tuple[str, int]]:
        """(arxiv_id, version) of every paper shown, once each: what the digest delivers."""
        seen: dict[str, int] = {p.arxiv_id: p.version for p in self.for_you}
        for section in self.sections:
            for entry in section.entries:
                seen[entry.arxiv_id] = entry.version
        return sorted(seen.items())

    @property
    def paper_count(self) -> int:
        """Distinct papers of the window in the reader's tags (the headline figure)."""
        return max(self.total, len(self.paper_versions()))

    @property
    def listed_count(self) -> int:
        """Distinct papers actually listed (fewer than paper_count when a tag hit its cap)."""
        return len(self.paper_versions())

    @property
    def revision_count(self) -> int:
        revised = {e.arxiv_id for s in self.sections for e in s.entries if e.revision}
        return len(revised)

    @property
    def subject(self) -> str:
        if self.empty:
            return f"arXiv digest {self.window.label}: nothing new in your tags"
        tags = len(self.sections)
        return f"arXiv digest {self.window.label}: {self.paper_count} papers in {tags} tag{'s' * (tags != 1)}"


def sparkline(counts: Sequence[int]) -> str:
    """Counts as block characters, scaled to the largest (the text part's trend picture)."""
    top = max(counts, default=0)
    if top == 0:
        return SPARK[0] * len(counts)
    return "".join(SPARK[min(len(SPARK) - 1, round(c / top * (len(SPARK) - 1)))] for c in counts)


def snippet(abstract: str, limit: int = SNIPPET_CHARS) -> str:
    """The abstract's opening, cut at a word boundary."""
    text = " ".join((abstract or "").split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ,;:") + " …"


def author_line(raw: Any) -> str:
    names = json.loads(raw) if isinstance(raw, str) else list(raw or [])
    if len(names) > 4:
        return ", ".join(names[:3]) + f", … ({len(names)} authors)"
    return ", ".join(names)


def is_revision(row: Mapping[str, Any], window: Window, sent_version: int | None) -> bool:
    """A revision when the reader already had an older version, or v1 predates the window."""
    if sent_version is not None:
        return True
    if int(row["version"]) <= 1:
        return False
    published = row.get("published")
    if published:
        return published[:10] < window.since.isoformat()
    return row.get("announce_type") in REVISION_TYPES


def build(
    rows: Iterable[Mapping[str, Any]],
    taxonomy: DigestTaxonomy,
    window: Window,
    now: datetime,
    *,
    tags: Sequence[str] = (),
    sent: Mapping[str, int] | None = None,
    trend: Iterable[tuple[str, str, int]] = (),
    mllm_trend: Iterable[tuple[str, str, int]] | None = None,
    max_per_tag: int = MAX_PER_TAG,
    all_tasks: bool = False,
    for_you: Sequence[ForYou] = (),
    similar_url: Callable[[str], str] | None = None,
) -> Digest:
    """Group the window's tagged rows into facets (in reader order, `tracker.reading_order`) and tags.

    :param tags: the recipient's tag choice (empty: every tag).
    :param sent: {arxiv_id: version} the recipient already received; those papers are left out
        unless they now have a newer version (then they come back marked as revisions).
    :param trend: (tag, Monday ISO date, papers) counts from the store, for the 12-week picture.
    :param mllm_trend: the same counts over MLLM papers only, for the task sections that list only
        those (None: use `trend`).
    :param all_tasks: list every paper of the task sections, not only MLLM work; a tag the reader
        chose by name is never limited.
    :param for_you: the reader's "For you" section (`tracker.recommend`), shown first.
    :param similar_url: the Datasette address of a paper's similar papers, for a link on each paper.
    """
    sent = sent or {}
    chosen = set(tags)
    infos = {t.slug: t for t in taxonomy.tags}
    # First pass keeps bare rows: with 10,000 papers a week only the top `max_per_tag` of each tag
    # become Entries (snippet, authors, revision), which is where the time would go.
    by_tag: dict[str, list[Mapping[str, Any]]] = {}
    facet_of: dict[str, str] = {}
    skipped: set[str] = set()
    hidden: set[str] = set()
    for row in rows:
        slug = row["tag"]
        if chosen and slug not in chosen:
            continue
        info = infos.get(slug)
        if (
            info
            and info.threshold is not None
            and row["source"] != "manual"
            and row["score"] < info.threshold
        ):
            continue
        facet = info.facet if info else row["facet"]
        if not is_mllm(row) and gated(facet, slug, all_tasks=all_tasks, chosen=chosen):
            hidden.add(row["arxiv_id"])
            continue
        had = sent.get(row["arxiv_id"])
        if had is not None and had >= row["version"]:
            skipped.add(row["arxiv_id"])
            continue
        facet_of.setdefault(slug, facet)
        by_tag.setdefault(slug, []).append(row)

    def entry(row: Mapping[str, Any]) -> Entry:
        arxiv_id = row["arxiv_id"]
        return Entry(
            arxiv_id=arxiv_id,
            version=int(row["version"]),
            title=row["title"],
            url=row.get("abs_url") or abs_url(arxiv_id),
            authors=author_line(row.get("authors")),
            category=row.get("primary_category") or "",
            score=float(row["score"]),
            source=row["source"],
            snippet=snippet(row.get("abstract") or ""),
            revision=is_revision(row, window, sent.get(arxiv_id)),
            similar_url=similar_url(arxiv_id) if similar_url else None,
        )

    mondays = trend_mondays(window)
    index = {m.isoformat(): i for i, m in enumerate(mondays)}

    def weekly(counts: Iterable[tuple[str, str, int]]) -> dict[str, list[int]]:
        series: dict[str, list[int]] = {}
        for slug, monday, count in counts:
            if monday in index:
                series.setdefault(slug, [0] * len(mondays))[index[monday]] += count
        return series

    series = weekly(trend)
    mllm_series = series if mllm_trend is None else weekly(mllm_trend)

    # Reader order (mllm, topic, paradigm, architecture, task); within a facet, taxonomy order.
    known = [f.slug for f in taxonomy.facets]
    facet_order = sort_facets(known + sorted({f for f in facet_of.values() if f not in known}))
    tag_order = {t.slug: i for i, t in enumerate(taxonomy.tags)}
    facets = []
    for facet in facet_order:
        slugs = sorted(
            (s for s in by_tag if facet_of[s] == facet), key=lambda s: (tag_order.get(s, 1 << 30), s)
        )
        if not slugs:
            continue
        sections = []
        for slug in slugs:
            # MLLM work first, then strongest first, a person's tag ("manual") before any score; ties by
            # id. The MLLM verdict leads because paradigm and architecture tags (contrastive, clip-vit)
            # also fit plain vision papers, and this reader came for the multimodal-LLM ones; within
            # each group the tag score still says how sure the tag is, which the relevance score does not.
            ranked = sorted(
                by_tag[slug],
                key=lambda r: (not is_mllm(r), r["source"] != "manual", -r["score"], r["arxiv_id"]),
            )
            info = infos.get(slug)
            limited = gated(facet, slug, all_tasks=all_tasks, chosen=chosen)
            sections.append(
                TagSection(
                    slug,
                    info.title if info else slug,
                    len(ranked),
                    [entry(r) for r in ranked[:max_per_tag]],
                    (mllm_series if limited else series).get(slug, [0] * len(mondays)),
                )
            )
        title = next((f.title for f in taxonomy.facets if f.slug == facet), facet)
        facets.append(FacetSection(facet, title, sections))

    wanted = [
        t.slug
        for t in sorted(taxonomy.tags, key=lambda t: facet_rank(t.facet))  # stable: taxonomy order within
        if not chosen or t.slug in chosen
    ]
    shown = {t.slug for f in facets for t in f.tags}
    return Digest(
        window=window,
        generated=now,
        facets=facets,
        trend_mondays=mondays,
        tag_filter=sorted(chosen),
        already_sent=len(skipped),
        total=len({r["arxiv_id"] for rs in by_tag.values() for r in rs}),
        task_hidden=len(hidden),
        quiet_tags=[s for s in wanted if s not in shown],
        for_you=list(for_you),
    )


# -- rendering ---------------------------------------------------------------------------------


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("tracker", "templates"),
        # Autoescape by the inner extension: digest.html.j2 is escaped, digest.txt.j2 is plain text.
        autoescape=select_autoescape(enabled_extensions=("html.j2", "html"), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_text(digest: Digest, *, db_path: str | None = None, recipient: str | None = None) -> str:
    """The plain-text part (also what `tracker digest` prints).

    :param db_path: the database path the footer's commands name (shell-quoted by the caller).
    :param recipient: whom the mail goes to: the footer then says how to unsubscribe them.
    """
    return (
        _environment()
        .get_template("digest.txt.j2")
        .render(d=digest, db=db_path or "DB_PATH", recipient=recipient)
    )


def render_html(
    digest: Digest, chart_src: str | None = None, *, db_path: str | None = None, recipient: str | None = None
) -> str:
    """The HTML part; `chart_src` is the trend picture's URL (`cid:...` in mail, `data:` in a file)."""
    return (
        _environment()
        .get_template("digest.html.j2")
        .render(d=digest, chart_src=chart_src, db=db_path or "DB_PATH", recipient=recipient)
    )
