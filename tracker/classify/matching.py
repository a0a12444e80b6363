"""Rule matching: the taxonomy's keyword rules compiled into a `RuleSet`, and the named-system facts.

Not to be confused with `tracker.rules`, which loads and validates the rules files; this module applies
them to paper texts.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from tracker.classify.text import _normalise, _normalised_words
from tracker.rules import NamedSystem, Taxonomy


def _phrase_regex(phrases: Sequence[str]) -> str:
    parts = []
    for phrase in phrases:
        # Words may be separated by anything `_normalise` turns into a space ("in‐context", "in_context"),
        # so that a phrase the rules matched is also found here to be shown.
        words = [re.escape(w) for w in re.split(r"[\W_]+", phrase.strip()) if w]
        parts.append(r"[\W_]*".join(words))
    # Longest first so a report names the most specific phrase that matched.
    parts.sort(key=len, reverse=True)
    return r"(?<![\w-])(?:" + "|".join(parts) + r")(?![\w])"


# The phrase lists a rule may have (rules/taxonomy.yml documents each).
PHRASE_KINDS = ("keywords", "title_keywords", "context", "exclude", "requires")


@dataclass
class Match:
    """What the rules find in one paper: tags whose rule fires, and tags whose `requires` phrases occur."""

    fired: set[str]
    met: set[str]


@dataclass
class RuleSet:
    """The taxonomy's keyword rules, compiled. `spec` is plain data, saved inside the model file.

    A tag's rule fires when a `title_keywords` phrase is in the title, or a `keywords` phrase is in
    title or abstract and, if the rule has `focus: N`, the paper is about it (a keyword in the title, or
    keywords N times in the abstract); and one `context` phrase occurs (if it has any), and no `exclude`
    phrase does. A bare word in an abstract is weak evidence: the focus test and vetoes took the rule
    tags a reader sees from 57 % to 91 % right (rules/audits/facet_precision.csv).

    Matching uses plain substring search on normalised text, gated by a set of the text's words: a
    regex alternation of all phrases was measured 50x slower, too slow for 5,000 papers a second.
    """

    spec: dict[str, dict[str, Any]]
    _phrases: dict[str, dict[str, list[str]]] = field(default_factory=dict, repr=False)
    _focus: dict[str, int] = field(default_factory=dict, repr=False)
    _counted: set[tuple[str, str]] = field(default_factory=set, repr=False)
    _regex: dict[str, re.Pattern[str]] = field(default_factory=dict, repr=False)
    _by_first: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for slug, rule in self.spec.items():
            lists = self._phrases[slug] = {}
            for kind in PHRASE_KINDS:
                phrases = [p for p in (_normalise(x) for x in rule.get(kind) or []) if p.strip()]
                lists[kind] = phrases
                for phrase in phrases:
                    self._by_first.setdefault(phrase.split()[0], []).append((slug, kind, phrase))
            self._focus[slug] = int(rule.get("focus") or 0)
            # The focus count counts places, not phrases: "instance segmentation" once is one mention of
            # "segmentation", so a keyword holding a shorter keyword of the tag is left to the shorter one.
            keywords = lists["keywords"]
            self._counted |= {(slug, p) for p in keywords if not any(q != p and q in p for q in keywords)}
            shown = list(rule.get("keywords") or []) + list(rule.get("title_keywords") or [])
            if shown:
                self._regex[slug] = re.compile(_phrase_regex(shown), re.IGNORECASE)
        self._first_words = frozenset(self._by_first)

    def match(self, title: str, abstract: str) -> Match:
        """Every tag whose rule fires on the paper, and every tag whose `requires` phrases occur, in one pass.

        Only phrases whose first word occurs in the paper are tried (a set intersection in C), so the
        cost does not grow with the number of phrases: the classify hot path runs this once per paper.
        """
        norm_t, words_t = _normalised_words(title or "")
        norm_a, words_a = _normalised_words(abstract or "")
        keyword: set[str] = set()
        in_title: set[str] = set()
        context: set[str] = set()
        excluded: set[str] = set()
        met: set[str] = set()
        counts: dict[str, int] = {}
        for word in self._first_words.intersection(words_t + words_a):
            for slug, kind, phrase in self._by_first[word]:
                t = phrase in norm_t
                if kind == "title_keywords":
                    if t:
                        in_title.add(slug)
                    continue
                a = phrase in norm_a
                if not (t or a):
                    continue
                if kind == "keywords":
                    keyword.add(slug)
                    if t:
                        in_title.add(slug)
                    elif self._focus[slug] and (slug, phrase) in self._counted:
                        counts[slug] = counts.get(slug, 0) + norm_a.count(phrase)
                elif kind == "context":
                    context.add(slug)
                elif kind == "exclude":
                    excluded.add(slug)
                else:
                    met.add(slug)
        fired = {
            slug
            for slug in keyword | in_title
            if (slug in in_title or counts.get(slug, 0) >= self._focus[slug])
            and (slug in context or not self._phrases[slug]["context"])
            and slug not in excluded
        }
        return Match(fired, met)

    def fired_all(self, title: str, abstract: str = "") -> set[str]:
        """The tags whose rule fires on the paper."""
        return self.match(title, abstract).fired

    def has_requires(self, slug: str) -> bool:
        return bool(self._phrases.get(slug, {}).get("requires"))

    def matched(self, slug: str, title: str, abstract: str = "") -> list[str]:
        """The keyword (and context) phrases of `slug` found in the paper, for `explain`."""
        if slug not in self.fired_all(title, abstract):
            return []
        text = f"{title}\n{abstract}"
        found = sorted({m.group(0).lower() for m in self._regex[slug].finditer(text)})
        norm = _normalise(text)
        context = [p.strip() for p in self._phrases[slug]["context"] if p in norm]
        return found + ([f"(context: {context[0]})"] if context else [])

    @staticmethod
    def hits(fired: Sequence[set[str]], slugs: Sequence[str]) -> sp.csr_matrix:
        """0/1 matrix: papers x `slugs`, from each paper's fired set (`match(...).fired`)."""
        rows, cols = [], []
        index = {slug: j for j, slug in enumerate(slugs)}
        for i, tags in enumerate(fired):
            for slug in tags:
                if slug in index:
                    rows.append(i)
                    cols.append(index[slug])
        data = np.ones(len(rows), dtype=np.float64)
        return sp.csr_matrix((data, (rows, cols)), shape=(len(fired), len(slugs)))

    @classmethod
    def from_taxonomy(cls, taxonomy: Taxonomy) -> RuleSet:
        return cls(
            {
                t.slug: {
                    "keywords": list(t.keywords),
                    "title_keywords": list(t.title_keywords),
                    "context": list(t.context),
                    "exclude": list(t.exclude),
                    "requires": list(t.requires),
                    "focus": t.focus,
                }
                for t in taxonomy.tags
            }
        )


def requires_met(rules: RuleSet, matches: Sequence[Match], tags: Sequence[str]) -> np.ndarray:
    """papers x tags: True where the tag has no `requires` phrases or one of them occurs in the paper."""
    met = np.array([[t in m.met for t in tags] for m in matches], dtype=bool).reshape(len(matches), len(tags))
    free = np.array([not rules.has_requires(t) for t in tags], dtype=bool)
    return met | free


def system_tags(systems: Iterable[NamedSystem], arxiv_id: str, title: str) -> list[tuple[str, str]]:
    """(tag, system name) facts for the paper that introduces a named system."""
    return [(tag, s.name) for s in systems if s.matches(arxiv_id, title) for tag in s.tags]


class SystemIndex:
    """`system_tags` for many papers: a dict lookup by id and one combined regex over the title globs."""

    def __init__(self, systems: Sequence[NamedSystem]) -> None:
        self.systems = list(systems)
        self.by_id = {s.arxiv_id for s in systems if s.arxiv_id}
        globs = [fnmatch.translate(s.title.lower()) for s in systems if s.title]
        self.any_title = re.compile("|".join(f"(?:{g})" for g in globs)) if globs else None

    def tags(self, arxiv_id: str, title: str) -> list[tuple[str, str]]:
        clean = " ".join(title.split()).lower()
        if arxiv_id in self.by_id or (self.any_title is not None and self.any_title.match(clean)):
            return system_tags(self.systems, arxiv_id, title)
        return []
