"""Rule matching: the taxonomy's keyword rules compiled into a `RuleSet`, and the named-system facts.

Not to be confused with `tracker.rules`, which loads and validates the rules files; this module applies
them to paper texts.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

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


@dataclass
class RuleSet:
    """The taxonomy's keyword rules, compiled. `spec` is plain data, saved inside the model file.

    Matching uses plain substring search on normalised text, gated by a set of the text's words: a
    regex alternation of all phrases was measured 50x slower, too slow for 5,000 papers a second.
    """

    spec: dict[str, dict[str, list[str]]]
    _keyword: dict[str, list[tuple[str, str]]] = field(default_factory=dict, repr=False)
    _context: dict[str, list[tuple[str, str]]] = field(default_factory=dict, repr=False)
    _regex: dict[str, re.Pattern[str]] = field(default_factory=dict, repr=False)

    _by_first: dict[str, list[tuple[str, bool, str]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for slug, rule in self.spec.items():
            for key, target in (("keywords", self._keyword), ("context", self._context)):
                phrases = [_normalise(p) for p in rule.get(key) or []]
                target[slug] = [(p, p.split()[0]) for p in phrases if p.strip()]
                for phrase, first in target[slug]:
                    self._by_first.setdefault(first, []).append((slug, key == "context", phrase))
            if rule.get("keywords"):
                self._regex[slug] = re.compile(_phrase_regex(rule["keywords"]), re.IGNORECASE)
        self._first_words = frozenset(self._by_first)

    def fired_all(self, text: str) -> set[str]:
        """Every tag whose rule fires on `text`, in one pass.

        Only phrases whose first word occurs in the text are tried (a set intersection in C), so the
        cost does not grow with the number of phrases: the classify hot path runs this once per paper.
        """
        norm, words = _normalised_words(text)
        keyword_hits: set[str] = set()
        context_hits: set[str] = set()
        for word in self._first_words.intersection(words):
            for slug, is_context, phrase in self._by_first[word]:
                if phrase in norm:
                    (context_hits if is_context else keyword_hits).add(slug)
        return {slug for slug in keyword_hits if not self._context.get(slug) or slug in context_hits}

    @staticmethod
    def _any(phrases: list[tuple[str, str]], norm: str, words: set[str]) -> bool:
        return any(first in words and phrase in norm for phrase, first in phrases)

    def _fires(self, slug: str, norm: str, words: set[str]) -> bool:
        keywords = self._keyword.get(slug)
        if not keywords or not self._any(keywords, norm, words):
            return False
        context = self._context.get(slug)
        return not context or self._any(context, norm, words)

    def fires(self, slug: str, text: str) -> bool:
        norm = _normalise(text)
        return self._fires(slug, norm, set(norm.split()))

    def matched(self, slug: str, text: str) -> list[str]:
        """The keyword (and context) phrases of `slug` found in `text`, for `explain`."""
        if not self.fires(slug, text):
            return []
        found = sorted({m.group(0).lower() for m in self._regex[slug].finditer(text)})
        norm = _normalise(text)
        context = [p.strip() for p, _ in self._context.get(slug) or [] if p in norm]
        return found + ([f"(context: {context[0]})"] if context else [])

    def hits(
        self, texts: Sequence[str], slugs: Sequence[str], fired: Sequence[set[str]] | None = None
    ) -> sp.csr_matrix:
        """0/1 matrix: does each tag's rule fire on each text (`fired`: precomputed `fired_all` sets)."""
        rows, cols = [], []
        index = {slug: j for j, slug in enumerate(slugs)}
        for i, text in enumerate(texts):
            for slug in fired[i] if fired is not None else self.fired_all(text):
                if slug in index:
                    rows.append(i)
                    cols.append(index[slug])
        data = np.ones(len(rows), dtype=np.float64)
        return sp.csr_matrix((data, (rows, cols)), shape=(len(texts), len(slugs)))

    @classmethod
    def from_taxonomy(cls, taxonomy: Taxonomy) -> RuleSet:
        return cls(
            {t.slug: {"keywords": list(t.keywords), "context": list(t.context)} for t in taxonomy.tags}
        )


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
