"""Build, train, evaluate and apply the taxonomy classifier; save and load it with skops.

The model is TF-IDF over title + abstract plus one "rule fired" column per tag (the taxonomy's keyword
rules as evidence), and one linear SVM (Platt-calibrated) per tag that has enough curated examples. Each
tag's threshold is chosen by cross-validation on the training data, where the unlabelled real corpus supplies
the negatives: "no tag" is the commonest right answer for a nightly stream, and the thresholds are
picked on exactly that mix. Tags with too few curated examples (architecture, paradigm, task) are
assigned by their keyword rules alone, and the survey's named systems (CLIP, BLIP-2, LLaVA, ...) by
their facts. Every file this module writes is a skops file plus a JSON sidecar: never pickle.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import multiprocessing
import os
import platform
import re
import shlex
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import sklearn
import skops
import skops.io as sio
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sqlite_utils import Database

from tracker import store
from tracker.config import DATA_DIR, model_paths, rules_dir
from tracker.errors import ModelError
from tracker.rules import Labels, NamedSystem, Taxonomy, load_rules

# The six tags the quality targets of issue 3 are measured on.
CORE_TAGS = ("MIT", "M-ICL", "M-CoT", "LAVR", "hallucination", "evaluation")
# A tag needs this many curated positives before a model is trained for it; below, its rules decide.
MIN_POSITIVES = 8
RANDOM_STATE = 20240613
CV_FOLDS = 5
INNER_FOLDS = 3
CHUNK_SIZE = 2000
MAX_WORKERS = 4
# Reviewed list of the types a model file may contain (skops refuses anything else on load).
# They are the estimators this module builds and the plain containers around them; nothing here can run
# code at load time. Adding an estimator to the model means adding its type here after review.
# The model is saved as plain arrays (vocabulary, idf, weights), not as fitted scikit-learn objects: skops
# writes a fitted TfidfVectorizer's vocabulary as one array per term, which took 190 s to save and 22 s to
# load for 126k terms. Plain arrays save in under a second, and the reviewed list stays tiny.
TRUSTED_TYPES = [
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "builtins.float",
    "builtins.int",
    "builtins.bool",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
]

DEFAULT_PARAMS: dict[str, Any] = {
    "tfidf__ngram_range": (1, 2),
    "tfidf__min_df": 3,
    "tfidf__max_df": 0.5,
    "tfidf__max_features": 50_000,
    "clf__C": 0.5,
    "clf__class_weight": "balanced",
    "rule_weight": 1.0,
    # Thresholds maximise F-beta on cross-validated scores; beta < 1 favours precision, because a false
    # tag in a nightly stream of mostly untagged papers costs the reader more than a missed one.
    "threshold_beta": 0.7,
    # ... but no tag's threshold may let it claim more than this share of the corpus (the stream's stand-in)
    # in cross-validation. With a dozen positives the F-beta optimum is set by one or two papers and can
    # fall low enough to tag 1 % of the stream on its own (M-ICL, LAVR); the six core tags x 0.3 % keeps
    # their sum under the 2 % stream budget. Measured on three outer seeds: macro-F1 +0.01 to +0.02, stream
    # share 1.7-2.7 % -> 1.1-1.3 %.
    "max_stream_rate": 0.003,
    # "words": `tokenize` below; models saved before it existed used scikit-learn's regex, TOKEN_PATTERN.
    "tokenizer": "words",
}
# How each model tag is decided, chosen per tag by cross-validation in `fit`: by its model score; by the
# model or the tag's keyword rule firing on the title; or by that title rule alone. A title that says
# "multimodal in-context learning" is strong evidence the model cannot learn from ten examples.
MODES = ("model", "model+title", "title")
# Tokens start with a letter (arxiv-sanity-lite compute.py) and keep inner hyphens: "chain-of-thought".
# The regex of models saved before `tokenize`; still used to load those exactly as they were trained.
TOKEN_PATTERN = r"(?u)\b[^\W\d_]\w*(?:-\w+)*"
# Every ASCII character but letters, digits, "_" and "-" separates tokens; other characters are handled
# by `_NON_TOKEN` when a text still has a non-word character after the table.
_TOKEN_TABLE = {i: " " for i in range(128) if not (chr(i).isalnum() or chr(i) in "_-")} | {
    ord(c): " " for c in "‘’‚“”„…′″•·×→←↔≤≥±∼≈°§¶†‡"
}
_NON_TOKEN = re.compile(r"[^\w-]+")
_ODD_CHAR = re.compile(r"[^\w\s-]")


def tokenize(text: str) -> list[str]:
    """The words of a (lowercased) text, English stop words left out: runs of letters, digits, "_" and
    inner "-" that start with a letter ("chain-of-thought" is one token).

    A translate table and str.split instead of scikit-learn's regex scan (TOKEN_PATTERN): 1.5x faster
    (21,000 vs 14,000 abstracts/s), and tokenising is the largest part of classify's time per paper. The
    tokens are the regex's for 94 % of the corpus abstracts; the differences: a word that starts with a
    digit is dropped whole ("3d-printing"; the regex kept "printing"), and "a--b" stays one token.
    """
    spaced = text.translate(_TOKEN_TABLE)
    if not spaced.isascii() and _ODD_CHAR.search(spaced):
        spaced = _NON_TOKEN.sub(" ", spaced)
    # Stop words go here rather than in a second pass (scikit-learn's own filter then finds none).
    return [t for w in spaced.split() if (t := w.strip("-")) and t[0].isalpha() and t not in ENGLISH_STOP_WORDS]


def paper_text(title: str | None, abstract: str | None) -> str:
    """The one text training and prediction both read: title (twice: it is the densest signal) + abstract."""
    title = " ".join((title or "").split())
    return f"{title}. {title}. {' '.join((abstract or '').split())}"


# -- rules ------------------------------------------------------------------------------------------------


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


# Every character that is not a word character becomes a space. A translate table over the characters
# abstracts use (ASCII and common Unicode punctuation) is about 4x faster than re.sub(r"[\W_]+"), and
# the classify hot path normalises every paper; rarer symbols fall back to the regex.
_NON_WORD = re.compile(r"[\W_]+")
_SPACE_TABLE = {
    ord(c): " "
    for c in "".join(chr(i) for i in range(128) if not chr(i).isalnum()) + "–—‐‑‒―‘’‚“”„…′″•·×→←↔≤≥±∼≈°§¶†‡"
}


def _normalise(text: str) -> str:
    # Lowercase words separated by single spaces, padded: a phrase " a b " found in it matches whole words,
    # and "chain-of-thought" equals "chain of thought".
    return _normalised_words(text)[0]


def _normalised_words(text: str) -> tuple[str, list[str]]:
    """`_normalise(text)` and its words (the hot path needs both; splitting twice costs 5 % of a paper)."""
    spaced = text.lower().translate(_SPACE_TABLE)
    if not spaced.isascii() and _NON_WORD.search(spaced.replace(" ", "")):
        spaced = _NON_WORD.sub(" ", spaced)
    words = spaced.split()
    return " " + " ".join(words) + " ", words


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

    def fired(self, text: str, slugs: Sequence[str]) -> list[str]:
        """The tags among `slugs` whose rule fires on `text`."""
        norm = _normalise(text)
        words = set(norm.split())
        return [slug for slug in slugs if self._fires(slug, norm, words)]

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


# -- the model --------------------------------------------------------------------------------------------


def build_vectorizer(params: dict[str, Any]) -> TfidfVectorizer:
    tokenizer = params.get("tokenizer")
    if tokenizer not in ("words", "regex"):
        raise ModelError(f"unknown tokenizer {tokenizer!r} in the model's parameters (known: words, regex)")
    words = tokenizer == "words"
    return TfidfVectorizer(
        lowercase=True,
        stop_words="english",
        tokenizer=tokenize if words else None,
        token_pattern=None if words else TOKEN_PATTERN,
        ngram_range=tuple(params["tfidf__ngram_range"]),
        min_df=params["tfidf__min_df"],
        max_df=params["tfidf__max_df"],
        max_features=params["tfidf__max_features"],
        sublinear_tf=True,
        dtype=np.float32,
    )


def build_pipeline(params: dict[str, Any] | None = None) -> Pipeline:
    """The text half of one tag's model as a Pipeline (`tfidf`, `clf`), for grid keys `tfidf__*` / `clf__*`."""
    params = {**DEFAULT_PARAMS, **(params or {})}
    return Pipeline([("tfidf", build_vectorizer(params)), ("clf", _svm(params))])


def _svm(params: dict[str, Any]) -> LinearSVC:
    # LinearSVC rather than LogisticRegression: measured 20x faster to fit on this data (0.14 s vs 2.8 s a
    # tag), which keeps training with nested threshold selection under a minute; Platt scaling on
    # cross-validated margins turns its margins into probabilities.
    return LinearSVC(C=params["clf__C"], class_weight=params["clf__class_weight"], random_state=RANDOM_STATE)


@dataclass
class Model:
    """A trained classifier: vectorizer, one linear scorer per model tag, calibration, thresholds, rules."""

    tfidf: TfidfVectorizer
    W: np.ndarray  # (n_features, n_tags): TF-IDF terms then one rule column per model tag
    b: np.ndarray  # (n_tags,)
    platt: np.ndarray  # (n_tags, 2): score = sigmoid(a * margin + b)
    model_tags: list[str]
    thresholds: np.ndarray
    modes: list[str]  # per model tag, one of MODES
    rules: RuleSet
    rule_tags: list[str]  # tags assigned by rules alone
    systems: list[NamedSystem]
    facets: dict[str, str]  # tag -> facet, taxonomy order
    params: dict[str, Any]
    _names: np.ndarray | None = field(default=None, repr=False)
    _systems: SystemIndex | None = field(default=None, repr=False)

    @property
    def system_index(self) -> SystemIndex:
        if self._systems is None:
            self._systems = SystemIndex(self.systems)
        return self._systems

    def features(self, texts: Sequence[str], fired: Sequence[set[str]] | None = None) -> sp.csr_matrix:
        tf = tfidf_transform(self.tfidf, texts)
        rules = self.rules.hits(texts, self.model_tags, fired) * self.params["rule_weight"]
        return sp.hstack([tf, rules], format="csr")

    def scores(self, texts: Sequence[str], fired: Sequence[set[str]] | None = None) -> np.ndarray:
        """Calibrated score of every model tag for every text (rows = texts)."""
        if not texts:
            return np.zeros((0, len(self.model_tags)))
        return _calibrate(np.asarray(self.features(texts, fired) @ self.W) + self.b, self.platt)

    def weights(self) -> np.ndarray:
        """(n_features, n_tags) coefficients, for `explain`."""
        return self.W

    def feature_names(self) -> np.ndarray:
        if self._names is None:
            self._names = np.concatenate(
                [self.tfidf.get_feature_names_out(), np.array([f"rule:{t}" for t in self.model_tags])]
            )
        return self._names


def tfidf_transform(vec: TfidfVectorizer, texts: Sequence[str]) -> sp.csr_matrix:
    """Exactly `vec.transform(texts)`, a quarter faster (4,500 vs 3,700 abstracts/s): the classify hot path.

    scikit-learn builds every word pair of an abstract as a string and looks each up inside try/except,
    and most pairs are not in the vocabulary, so it pays for a join and an exception per miss. Here a
    paper's n-grams are counted as tuples of tokens (zip, in C), and one set intersection with the
    vocabulary's keys (also in C) finds the few that count. Tokenising is the vectorizer's own (`tokenize`,
    or the regex of older models, plus scikit-learn's stop-word filter), and so are the TF-IDF weighting
    and normalisation (tests/test_classify.py checks the matrices are equal).
    """
    lookup = _ngram_lookup(vec)
    if not texts:  # scikit-learn's transformer refuses zero rows
        return sp.csr_matrix((0, len(vec.vocabulary_)), dtype=vec.dtype)
    preprocess, split_words = vec.build_preprocessor(), vec.build_tokenizer()
    # `tokenize` leaves stop words out itself; models using the regex need the filter.
    stop = frozenset() if vec.tokenizer is tokenize else vec.get_stop_words() or frozenset()
    min_n, max_n = vec.ngram_range
    keys, index_of = lookup.keys(), lookup.__getitem__
    indptr: list[int] = [0]
    indices: list[int] = []
    counts: list[int] = []
    for text in texts:
        tokens = split_words(preprocess(text))
        if stop:
            tokens = [w for w in tokens if w not in stop]
        grams: Counter[Any] = Counter(tokens) if min_n == 1 else Counter()
        for n in range(max(min_n, 2), max_n + 1):
            grams.update(zip(*(tokens[i:] for i in range(n)), strict=False))  # shifted copies: n-grams
        found = grams.keys() & keys
        # map() runs the lookups in C: no Python bytecode per n-gram found.
        indices.extend(map(index_of, found))
        counts.extend(map(grams.__getitem__, found))
        indptr.append(len(indices))
    X = sp.csr_matrix(
        (np.asarray(counts, dtype=vec.dtype), np.asarray(indices, dtype=np.int32), np.asarray(indptr, dtype=np.int64)),
        shape=(len(texts), len(vec.vocabulary_)),
    )
    X.sort_indices()
    return vec._tfidf.transform(X, copy=False)


# Per vectorizer: its vocabulary keyed by token (unigrams) or tuple of tokens (n-grams), built once, and
# the vocabulary it was built from (a refitted vectorizer has a new one, and gets a new lookup).
_LOOKUPS: weakref.WeakKeyDictionary[TfidfVectorizer, tuple[dict[str, int], dict[Any, int]]] = (
    weakref.WeakKeyDictionary()
)


def _ngram_lookup(vec: TfidfVectorizer) -> dict[Any, int]:
    cached = _LOOKUPS.get(vec)
    if cached is None or cached[0] is not vec.vocabulary_:
        # Tokens never contain a space, so splitting an n-gram on spaces gives its tokens.
        lookup = {(tuple(term.split(" ")) if " " in term else term): j for term, j in vec.vocabulary_.items()}
        cached = _LOOKUPS[vec] = (vec.vocabulary_, lookup)
    return cached[1]


def margins(estimators: Sequence[LinearSVC], X: sp.csr_matrix) -> np.ndarray:
    # One sparse product for all tags instead of one call per tag: the classify hot path.
    W = np.stack([e.coef_.ravel() for e in estimators], axis=1)
    b = np.array([e.intercept_[0] for e in estimators])
    return np.asarray(X @ W) + b


def _calibrate(m: np.ndarray, platt: np.ndarray) -> np.ndarray:
    z = m * platt[:, 0] + platt[:, 1]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _fit_platt(m: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if y.min() == y.max():
        return 1.0, 0.0
    lr = LogisticRegression(C=1e4, solver="lbfgs").fit(m.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _fit_estimators(X: sp.csr_matrix, Y: np.ndarray, params: dict[str, Any]) -> list[LinearSVC]:
    estimators = []
    for j in range(Y.shape[1]):
        if Y[:, j].min() == Y[:, j].max():
            raise ModelError(f"cannot train: a fold has no positive example of tag column {j}")
        estimators.append(_svm(params).fit(X, Y[:, j]))
    return estimators


def _strata(Y: np.ndarray) -> np.ndarray:
    """A stratification key per row: its rarest tag (or -1), so every fold gets some of each rare tag."""
    counts = Y.sum(axis=0)
    key = np.full(Y.shape[0], -1)
    for i in np.flatnonzero(Y.any(axis=1)):
        present = np.flatnonzero(Y[i])
        key[i] = present[np.argmin(counts[present])]
    return key


def best_threshold(scores: np.ndarray, truth: np.ndarray, beta: float = 1.0) -> tuple[float, float]:
    """The threshold maximising F-beta of `scores >= t` against `truth`, and that F-beta."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth[order].astype(bool)
    tp = np.cumsum(t)
    fp = np.cumsum(~t)
    pos = max(int(t.sum()), 1)
    precision = tp / (tp + fp)
    recall = tp / pos
    b2 = beta * beta
    denom = np.maximum(b2 * precision + recall, 1e-12)
    f = np.where(precision + recall > 0, (1 + b2) * precision * recall / denom, 0.0)
    distinct = np.r_[s[1:] != s[:-1], True]  # only cut between distinct scores
    f = np.where(distinct, f, -1.0)
    k = int(np.argmax(f))
    if f[k] <= 0:
        return 1.0, 0.0
    nxt = s[k + 1] if k + 1 < len(s) else 0.0
    return float((s[k] + nxt) / 2), float(f[k])


def _uses(modes: Sequence[str], part: str) -> np.ndarray:
    """Per tag: does its mode use `part` ("model" or "title")?"""
    return np.array([part in mode.split("+") for mode in modes], dtype=bool)


def title_rule_hits(rules: RuleSet, titles: Sequence[str], tags: Sequence[str]) -> np.ndarray:
    """titles x tags: does the tag's keyword rule fire on the title."""
    return rules.hits([title or "" for title in titles], tags).toarray().astype(bool)


def decide(above: np.ndarray, title_hits: np.ndarray, modes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which (paper, tag) pairs the model gives and which the title rule gives, under each tag's mode.

    :param above: papers x model tags, score >= threshold
    :param title_hits: papers x model tags, the tag's keyword rule fires on the title
    :returns: (by model, by title rule); disjoint, their union is the tags given
    """
    by_model = above & _uses(modes, "model")
    by_title = title_hits & _uses(modes, "title") & ~by_model
    return by_model, by_title


def choose_mode(
    above: np.ndarray, title_hits: np.ndarray, truth: np.ndarray, stream: np.ndarray | None, rate: float
) -> str:  # fmt: skip
    """The mode (see MODES) with the best F1 on one tag's cross-validated predictions.

    A mode using the title rule is only eligible if what it tags covers at most `rate` of the corpus
    rows: the same stream budget the thresholds are held to (MIT's rule, "MLLM" in a title, is too broad).
    F1 is measured on the training rows: the model's part from its cross-validated scores, the title
    rule's as is (it has nothing to fit).
    """
    # Simplest first, so a tie keeps the model, or the title rule alone when the model adds nothing to it.
    candidates = {"model": above, "title": title_hits, "model+title": above | title_hits}
    budget = stream is not None and stream.any() and rate > 0  # as for the thresholds: rate 0 = no cap
    best, best_f1 = "model", -1.0
    for mode, pred in candidates.items():
        if mode != "model" and budget and pred[stream].mean() > rate:
            continue  # the stream budget holds for what the mode tags in all, not for each part alone
        f1 = _prf(truth, pred)["f1"]
        if f1 > best_f1 + 1e-9:
            best, best_f1 = mode, f1
    return best


@dataclass
class Fitted:
    estimators: list[LinearSVC]
    tfidf: TfidfVectorizer
    platt: np.ndarray
    thresholds: np.ndarray
    oof: np.ndarray  # cross-validated scores of the training rows
    modes: list[str]  # per model tag, one of MODES
    title_hits: np.ndarray  # training rows x model tags: the tag's rule fires on the title


def fit(
    texts: Sequence[str], Y: np.ndarray, model_tags: Sequence[str], rules: RuleSet, params: dict[str, Any],
    stream: np.ndarray | None = None, title_hits: np.ndarray | None = None,
) -> Fitted:  # fmt: skip
    """Fit vectorizer + estimators; calibrate, choose thresholds and modes on inner cross-validated margins.

    :param stream: marks the rows from the unlabelled corpus; each threshold is raised, if needed, so that
        at most `max_stream_rate` of them score above it
    :param title_hits: rows x model tags, `title_rule_hits` of the rows' titles; without them every tag is
        decided by its model alone

    The vectorizer is fitted once on all of `texts` and its matrix sliced for the inner folds: its
    vocabulary and IDF are label-free statistics, so nothing of a held-out paper's tags leaks, and it
    saves three of four vectorizer fits (the slowest part of training). Outer evaluation folds
    (`evaluate`) still fit the vectorizer on their training part only.
    """
    if title_hits is not None and title_hits.shape != Y.shape:
        raise ValueError(f"title hits of shape {title_hits.shape} for labels of shape {Y.shape}")
    rule_cols = rules.hits(texts, model_tags) * params["rule_weight"]
    vec = build_vectorizer(params)
    X = sp.hstack([vec.fit_transform(np.asarray(texts, dtype=object)), rule_cols], format="csr")
    oof_margin = np.zeros(Y.shape, dtype=np.float64)
    folds = StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=RANDOM_STATE)
    for train_idx, test_idx in folds.split(np.zeros(len(texts)), _strata(Y)):
        oof_margin[test_idx] = margins(_fit_estimators(X[train_idx], Y[train_idx], params), X[test_idx])
    platt = np.array([_fit_platt(oof_margin[:, j], Y[:, j]) for j in range(Y.shape[1])])
    oof = _calibrate(oof_margin, platt)
    beta = params["threshold_beta"]
    thresholds = np.array([best_threshold(oof[:, j], Y[:, j], beta)[0] for j in range(Y.shape[1])])
    rate = params["max_stream_rate"]
    if stream is not None and stream.any() and rate > 0:
        thresholds = np.maximum(thresholds, np.quantile(oof[stream], 1 - rate, axis=0))
    if title_hits is None:
        title_hits = np.zeros(Y.shape, dtype=bool)
        modes = ["model"] * Y.shape[1]
    else:
        modes = [
            choose_mode(oof[:, j] >= thresholds[j], title_hits[:, j], Y[:, j].astype(bool), stream, rate)
            for j in range(Y.shape[1])
        ]
    return Fitted(_fit_estimators(X, Y, params), vec, platt, thresholds, oof, modes, title_hits)


# -- data -------------------------------------------------------------------------------------------------


def load_bundled(name: str) -> list[dict[str, Any]]:
    """Records of a bundled JSONL file under tracker/data (corpus, labelled, exemplars)."""
    path = DATA_DIR / f"{name}.jsonl.gz"
    if not path.exists():
        raise ModelError(f"{path}: bundled data missing; run scripts/bundle_data.py")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@dataclass
class TrainingSet:
    """Texts and tag sets of the curated papers (plus manual labels) and of the corpus negatives."""

    ids: list[str]
    texts: list[str]
    tags: list[set[str]]
    stream: np.ndarray  # True for rows from the unlabelled corpus (negatives)
    titles: list[str]  # the rows' titles, for the title rules and named systems

    def matrix(self, tags: Sequence[str]) -> np.ndarray:
        return np.array([[t in s for t in tags] for s in self.tags], dtype=np.int8).reshape(
            len(self.tags), len(tags)
        )


def training_set(
    labels: Labels,
    manual: Sequence[tuple[str, str, str]],
    db_texts: Callable[[Sequence[str]], dict[str, tuple[str, str]]],
    *,
    labelled: Sequence[dict[str, Any]] | None = None,
    corpus: Sequence[dict[str, Any]] | None = None,
) -> TrainingSet:
    """Curated labels (bundled abstracts, else the database's), corrected by manual labels, + corpus negatives.

    :param db_texts: looks up (title, abstract) of ids in the database, for papers not bundled
    :param labelled: records with the labelled papers' texts (default: the bundled ones)
    :param corpus: unlabelled records used as negatives (default: the bundled corpus)
    """
    tags: dict[str, set[str]] = {lab.arxiv_id: set(lab.tags) for lab in labels.labels}
    for arxiv_id, tag, action in manual:
        if action == "add":
            tags.setdefault(arxiv_id, set()).add(tag)
        else:
            tags.setdefault(arxiv_id, set()).discard(tag)
    records = load_bundled("labelled") if labelled is None else labelled
    bundled = {r["id"]: (r["title"], r["abstract"]) for r in records}
    texts = {i: bundled[i] for i in tags if i in bundled}
    missing = [i for i in tags if i not in texts]
    if missing:
        texts.update(db_texts(missing))
    ids = [i for i in sorted(tags) if i in texts and (texts[i][1] or "").strip()]
    out = TrainingSet(
        ids, [paper_text(*texts[i]) for i in ids], [tags[i] for i in ids], np.zeros(len(ids), bool),
        [texts[i][0] or "" for i in ids],
    )  # fmt: skip
    negatives = [r for r in (load_bundled("corpus") if corpus is None else corpus) if r["id"] not in tags]
    out.ids += [r["id"] for r in negatives]
    out.texts += [paper_text(r["title"], r["abstract"]) for r in negatives]
    out.titles += [r["title"] or "" for r in negatives]
    out.tags += [set() for _ in negatives]
    out.stream = np.r_[out.stream, np.ones(len(negatives), bool)]
    return out


def model_tags_for(taxonomy: Taxonomy, data: TrainingSet) -> list[str]:
    """Tags with at least MIN_POSITIVES curated examples, in taxonomy order."""
    return [t for t in taxonomy.slugs if sum(t in s for s in data.tags) >= MIN_POSITIVES]


@dataclass
class TrainReport:
    model_id: str
    papers: int
    positives: dict[str, int]
    cv: dict[str, dict[str, Any]]
    seconds: float
    model_path: Path
    model: Model | None = None


def train(
    taxonomy: Taxonomy, data: TrainingSet, model_path: Path, meta_path: Path, label_hash: str,
    params: dict[str, Any] | None = None,
) -> TrainReport:  # fmt: skip
    """Train on `data`, save the model (skops) and its sidecar, and report cross-validated scores per tag."""
    started = time.monotonic()
    params = {**DEFAULT_PARAMS, **(params or {})}
    rules = RuleSet.from_taxonomy(taxonomy)
    tags = model_tags_for(taxonomy, data)
    if not tags:
        raise ModelError(
            f"no tag has {MIN_POSITIVES} labelled papers with an abstract; add labels and retrain"
        )
    Y = data.matrix(tags)
    fitted = fit(data.texts, Y, tags, rules, params, data.stream, title_rule_hits(rules, data.titles, tags))
    by_model, by_title = decide(fitted.oof >= fitted.thresholds, fitted.title_hits, fitted.modes)
    cv: dict[str, dict[str, Any]] = {}
    for j, tag in enumerate(tags):
        cv[tag] = _prf(Y[:, j].astype(bool), by_model[:, j] | by_title[:, j]) | {
            "threshold": round(float(fitted.thresholds[j]), 4), "mode": fitted.modes[j]}  # fmt: skip
    vocabulary = fitted.tfidf.vocabulary_
    terms = sorted(vocabulary, key=vocabulary.__getitem__)
    obj = {
        "terms": np.array(terms, dtype=str),
        "idf": np.asarray(fitted.tfidf.idf_, dtype=np.float64),
        "W": np.stack([e.coef_.ravel() for e in fitted.estimators], axis=1).astype(np.float64),
        "b": np.array([float(e.intercept_[0]) for e in fitted.estimators]),
        "platt": fitted.platt,
        "model_tags": list(tags),
        "thresholds": fitted.thresholds,
        "modes": list(fitted.modes),
        "rules": {
            k: {"keywords": list(v["keywords"]), "context": list(v["context"])} for k, v in rules.spec.items()
        },
        "rule_tags": [t.slug for t in taxonomy.tags if t.slug not in tags and t.keywords],
        "systems": [
            {"name": s.name, "tags": list(s.tags), "arxiv_id": s.arxiv_id or "", "title": s.title or ""}
            for s in taxonomy.named_systems
        ],
        "facets": {t.slug: t.facet for t in taxonomy.tags},
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
    }
    model_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = model_path.with_suffix(".tmp")
    sio.dump(obj, tmp)
    model_id = content_id(obj)
    meta = {
        "model_id": model_id,
        # The file's own hash, checked on load; the id above names what the model computes, so the same
        # training gives the same id (the zip file's timestamps differ from one dump to the next).
        "file_sha256": hashlib.sha256(tmp.read_bytes()).hexdigest(),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sklearn": sklearn.__version__,
        "skops": skops.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "label_hash": label_hash,
        "papers": len(data.ids),
        "labelled": int((~data.stream).sum()),
        "model_tags": list(tags),
        "rule_tags": obj["rule_tags"],
        "positives": {t: int(Y[:, j].sum()) for j, t in enumerate(tags)},
        "modes": dict(zip(tags, fitted.modes, strict=True)),
        "cv": cv,
        "params": obj["params"],
        "git_commit": _git_commit(),
    }
    # Sidecar first, then the model: a reader never finds a model without its matching sidecar.
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(model_path)
    seconds = time.monotonic() - started
    return TrainReport(
        model_id, len(data.ids), meta["positives"], cv, seconds, model_path, _model_from_obj(obj)
    )


def content_id(obj: dict[str, Any]) -> str:
    """A short hash of a saved model's contents (arrays by dtype, shape and bytes; the rest as JSON).

    This module's own source is hashed in too: it turns the saved arrays into tags (text building, rule
    matching, thresholds), so after an upgrade that changes it, a retrain gives a new id and `classify`
    re-tags every paper even if the trained numbers came out the same.
    """
    h = hashlib.sha256(Path(__file__).read_bytes())
    for key in sorted(obj):
        value = obj[key]
        h.update(key.encode())
        if isinstance(value, np.ndarray):
            h.update(f"{value.dtype.str}{value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(json.dumps(value, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


def _prf(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    tp = int((truth & pred).sum())
    p = tp / max(int(pred.sum()), 1)
    r = tp / max(int(truth.sum()), 1)
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "support": int(truth.sum())}


def _git_commit() -> str | None:
    head = Path(__file__).resolve().parent.parent / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (head.parent / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None


def _model_from_obj(obj: dict[str, Any]) -> Model:
    systems = [
        NamedSystem(s["name"], tuple(s["tags"]), s["arxiv_id"] or None, s["title"] or None)
        for s in obj["systems"]
    ]
    params = {**DEFAULT_PARAMS, "tokenizer": "regex", **obj["params"]}  # saved before `tokenize`: regex
    tfidf = build_vectorizer(params)
    # A vectorizer with a fixed vocabulary and idf transforms exactly like the fitted one (tested).
    tfidf.vocabulary_ = {str(term): i for i, term in enumerate(obj["terms"])}
    tfidf.idf_ = np.asarray(obj["idf"])
    return Model(
        tfidf=tfidf,
        W=np.asarray(obj["W"], dtype=np.float64),
        b=np.asarray(obj["b"], dtype=np.float64),
        platt=np.asarray(obj["platt"]),
        model_tags=list(obj["model_tags"]),
        thresholds=np.asarray(obj["thresholds"]),
        # Model files saved before modes existed decide every tag by the model.
        modes=list(obj.get("modes") or ["model"] * len(obj["model_tags"])),
        rules=RuleSet(obj["rules"]),
        rule_tags=list(obj["rule_tags"]),
        systems=systems,
        facets=dict(obj["facets"]),
        params=params,
    )


def load_model(
    model_path: Path, meta_path: Path, db_path: Path | None = None
) -> tuple[Model, dict[str, Any]]:
    """Load a model this machine trained; refuse one from another scikit-learn version or a tampered file.

    :param db_path: the database the model belongs to, named in the "run: tracker train ..." advice
    """
    retrain = f"run: tracker train {shlex.quote(str(db_path)) if db_path else 'DB_PATH'}"
    if not model_path.exists() or not meta_path.exists():
        raise ModelError(f"{model_path}: no model yet; {retrain}")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelError(f"{meta_path}: sidecar is not valid JSON; {retrain}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{meta_path}: sidecar is not a JSON object; {retrain}")
    if meta.get("sklearn") != sklearn.__version__:
        raise ModelError(
            f"{model_path} was trained with scikit-learn {meta.get('sklearn')}, this is {sklearn.__version__}; "
            + retrain
        )
    raw = model_path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    # Sidecars written before file_sha256 existed used the first 12 hex digits of the file's hash as the id.
    expected = meta.get("file_sha256")
    if (digest != expected) if expected else (digest[:12] != meta.get("model_id")):
        raise ModelError(
            f"{model_path} does not match its sidecar {meta_path.name}; {retrain}"
        )
    untrusted = set(sio.get_untrusted_types(data=raw)) - set(TRUSTED_TYPES)
    if untrusted:
        raise ModelError(
            f"{model_path} holds types outside the reviewed list: {', '.join(sorted(untrusted))}"
        )
    obj = sio.loads(raw, trusted=TRUSTED_TYPES)
    model = _model_from_obj(obj)
    return model, meta


# -- classifying ------------------------------------------------------------------------------------------


@dataclass
class Tagging:
    """What the tracker concludes for one paper: tags with (score, source) and the model scores worth keeping."""

    arxiv_id: str
    tags: dict[str, tuple[float, str]]  # tag -> (score, source)
    # model tag -> (score, threshold), where the score reaches half the threshold (tagged or a near miss)
    scores: dict[str, tuple[float, float]]


def predict(
    model: Model, papers: Sequence[tuple[str, str, str]], manual: dict[str, dict[str, str]] | None = None
) -> list[Tagging]:
    """Tag (arxiv_id, title, abstract) papers: model (or title rule, by each tag's mode), then keyword rules,
    then named systems; manual labels last.

    :param manual: {arxiv_id: {tag: 'add' | 'remove'}}: a person's word wins over everything else
    """
    texts = [paper_text(title, abstract) for _, title, abstract in papers]
    fired = [model.rules.fired_all(text) for text in texts]  # once per paper: features and rule tags
    S = model.scores(texts, fired)
    titled = np.zeros(S.shape, dtype=bool)
    if _uses(model.modes, "title").any():  # else no tag looks at titles: skip matching them
        titled = title_rule_hits(model.rules, [title for _, title, _ in papers], model.model_tags)
    by_model, by_title = decide(model.thresholds <= S, titled, model.modes)
    # A tag decided by its title rule alone has no model verdict to be near: no score is kept for it.
    kept = (model.thresholds / 2 <= S) & _uses(model.modes, "model")
    # Whole-matrix work in numpy, then plain lists per paper: per-row numpy calls cost more than the rest.
    scores, thresholds, tag_names = S.tolist(), model.thresholds.tolist(), model.model_tags
    model_rows, title_rows, kept_rows = _row_lists(by_model), _row_lists(by_title), _row_lists(kept)
    rule_tags = set(model.rule_tags)
    out = []
    for i, (arxiv_id, title, _) in enumerate(papers):
        tags: dict[str, tuple[float, str]] = {}
        row = scores[i]
        for j in model_rows[i]:
            tags[tag_names[j]] = (row[j], "model")
        for j in title_rows[i]:
            tags[tag_names[j]] = (1.0, "rule")
        for tag in sorted(fired[i] & rule_tags):
            tags.setdefault(tag, (1.0, "rule"))
        for tag, _name in model.system_index.tags(arxiv_id, title):
            tags[tag] = (1.0, "rule")
        for tag, action in (manual or {}).get(arxiv_id, {}).items():
            if action == "add":
                tags[tag] = (1.0, "manual")
            else:
                tags.pop(tag, None)
        out.append(Tagging(arxiv_id, tags, {tag_names[j]: (row[j], thresholds[j]) for j in kept_rows[i]}))
    return out


def _row_lists(mask: np.ndarray) -> list[list[int]]:
    """For each row of a boolean matrix, the columns that are True, in order."""
    rows: list[list[int]] = [[] for _ in range(mask.shape[0])]
    for i, j in zip(*np.nonzero(mask), strict=True):
        rows[i].append(int(j))
    return rows


@dataclass
class ClassifyReport:
    papers: int
    tagged: int
    model_id: str
    trained: bool = False
    seconds: float = 0.0


def train_from_db(
    db: Database,
    db_path: Path,
    taxonomy: Taxonomy,
    labels: Labels,
    params: dict[str, Any] | None = None,
    **records: Sequence[dict[str, Any]],
) -> TrainReport:
    """Train from the bundled labels plus the database's manual labels; save beside the database.

    `records` may pass `labelled=` / `corpus=` record lists instead of the bundled data (tests, small runs).
    """
    data = training_set(labels, store.manual_labels(db), lambda ids: store.paper_texts(db, ids), **records)  # type: ignore[arg-type]
    manual_hash = hashlib.sha256(json.dumps(store.manual_labels(db)).encode()).hexdigest()[:8]
    model_path, meta_path = model_paths(db_path)
    return train(taxonomy, data, model_path, meta_path, f"{labels.content_hash}+{manual_hash}", params)


def _manual_map(db: Database) -> dict[str, dict[str, str]]:
    manual: dict[str, dict[str, str]] = {}
    for arxiv_id, tag, action in store.manual_labels(db):
        manual.setdefault(arxiv_id, {})[tag] = action
    return manual


@dataclass
class ChunkRows:
    """The rows one chunk of papers writes: paper_tags, tag_scores and papers (tags JSON, tagged_by)."""

    tags: list[tuple[str, str, str, float, str, str | None]]
    scores: list[tuple[str, str, float, float, str]]
    papers: list[tuple[str, str, str]]
    tagged: int


def chunk_rows(
    model: Model, model_id: str, chunk: Sequence[tuple[str, str, str]], manual: dict[str, dict[str, str]]
) -> ChunkRows:
    """Tag one chunk and turn the result into database rows.

    `tag_scores` keeps a model tag's score only when it reaches half the threshold: enough to list the
    papers near a threshold (what to label next) without writing a row per paper and tag.
    """
    order = {t: i for i, t in enumerate(model.facets)}
    out = ChunkRows([], [], [], 0)
    for r in predict(model, chunk, manual):
        for tag, (score, source) in r.tags.items():
            owner = model_id if source != "manual" else None
            out.tags.append((r.arxiv_id, tag, model.facets.get(tag, ""), round(score, 4), source, owner))
        out.scores += [(r.arxiv_id, t, round(s, 4), round(th, 4), model_id) for t, (s, th) in r.scores.items()]
        slugs = sorted(r.tags, key=lambda t: order.get(t, len(order)))
        out.papers.append((r.arxiv_id, json.dumps(slugs), model_id))
        out.tagged += bool(r.tags)
    return out


# The model a classify worker process uses: set in the parent just before the pool forks, so each worker
# inherits it instead of unpickling a copy per chunk.
_WORKER_STATE: tuple[Model, str, dict[str, dict[str, str]]] | None = None


def _worker_chunk_rows(chunk: Sequence[tuple[str, str, str]]) -> ChunkRows:
    assert _WORKER_STATE is not None
    model, model_id, manual = _WORKER_STATE
    return chunk_rows(model, model_id, chunk, manual)


def _tagged_chunks(
    db: Database, model: Model, model_id: str, manual: dict[str, dict[str, str]], all_papers: bool, total: int
) -> Iterator[ChunkRows]:
    """ChunkRows for every paper to (re)tag, in order; on several cores, tagged by worker processes.

    TF-IDF and rules are pure Python per paper, so one process tops out near 2,000 papers/s; forked
    workers use every core while this process reads chunks and writes results. At most two chunks per
    worker are in flight, so memory stays flat however many papers there are.

    :param total: how many papers there are to tag (`store.count_untagged`)
    """
    global _WORKER_STATE
    chunks = store.iter_untagged(db, model_id, all_papers, CHUNK_SIZE)
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if workers < 2 or total <= CHUNK_SIZE:
        for chunk in chunks:
            yield chunk_rows(model, model_id, chunk, manual)
        return
    _WORKER_STATE = (model, model_id, manual)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pending: deque[Any] = deque()
            for chunk in chunks:
                pending.append(pool.apply_async(_worker_chunk_rows, (chunk,)))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
    finally:
        _WORKER_STATE = None


def run_classify(
    db: Database, db_path: Path, *, all_papers: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ClassifyReport:  # fmt: skip
    """Tag papers not yet tagged by the current model (or all), training first if there is no model.

    Streams CHUNK_SIZE papers at a time, each chunk written in one transaction, so memory stays flat and
    an interrupted run keeps every finished chunk.

    :param progress: called after each chunk with (papers done, papers to do in all)
    """
    started = time.monotonic()
    model_path, meta_path = model_paths(db_path)
    trained = False
    if not model_path.exists():
        taxonomy, labels = load_rules(rules_dir())
        train_from_db(db, db_path, taxonomy, labels)
        trained = True
    model, meta = load_model(model_path, meta_path, db_path)
    model_id = meta["model_id"]
    manual = _manual_map(db)
    papers = tagged = 0
    # Counted once: it decides whether to start workers and is the progress bar's 100 %.
    total = store.count_untagged(db, model_id, all_papers)
    for rows in _tagged_chunks(db, model, model_id, manual, all_papers, total):
        store.save_tagging(db, rows.tags, rows.scores, rows.papers)
        papers += len(rows.papers)
        tagged += rows.tagged
        if progress:
            progress(papers, max(total, papers))
    return ClassifyReport(papers, tagged, model_id, trained, time.monotonic() - started)


# -- explaining -------------------------------------------------------------------------------------------


@dataclass
class TagExplanation:
    tag: str
    score: float
    threshold: float
    carried: bool
    up: list[tuple[str, float]]
    down: list[tuple[str, float]]
    mode: str = "model"  # how the tag is decided, one of MODES
    title_rule: list[str] = field(default_factory=list)  # phrases of the tag's rule found in the title


@dataclass
class Explanation:
    arxiv_id: str
    title: str
    model_id: str
    tags: list[dict[str, Any]]  # what the database says the paper carries
    model: list[TagExplanation]
    rules: dict[str, list[str]]  # tag -> phrases that fired
    systems: list[tuple[str, str]]  # (tag, system name)
    manual: dict[str, str]


def explain(db: Database, db_path: Path, arxiv_id: str, terms: int = 6) -> Explanation:
    """Why a paper carries (or nearly carries) each tag: scores, thresholds, terms, rules and facts."""
    texts = store.paper_texts(db, [arxiv_id])
    if arxiv_id not in texts:
        raise ModelError(f"{arxiv_id}: not in the database")
    title, abstract = texts[arxiv_id]
    model, meta = load_model(*model_paths(db_path), db_path)
    text = paper_text(title, abstract)
    X = model.features([text])
    S = model.scores([text])[0]
    W = model.weights()
    names = model.feature_names()
    carried = {r["tag"] for r in store.paper_tag_rows(db, arxiv_id)}
    title_fired = model.rules.fired_all(title or "")
    out = []
    for j, tag in enumerate(model.model_tags):
        th = float(model.thresholds[j])
        mode = model.modes[j]
        # The same test `predict` uses; `matched` only finds the phrases to show.
        fired_in_title = mode != "model" and tag in title_fired
        in_title = (model.rules.matched(tag, title or "") or ["fired"]) if fired_in_title else []
        near = S[j] >= th / 2 and mode != "title"  # a tag its title rule alone decides has no near misses
        if tag not in carried and not near and not fired_in_title:
            continue
        contrib = X.data * W[X.indices, j]
        order = np.argsort(-contrib)
        up = [(str(names[X.indices[k]]), float(contrib[k])) for k in order[:terms] if contrib[k] > 0]
        down = [(str(names[X.indices[k]]), float(contrib[k])) for k in order[::-1][:terms] if contrib[k] < 0]
        out.append(TagExplanation(tag, float(S[j]), th, tag in carried, up, down, mode, in_title))
    out.sort(key=lambda e: -e.score / max(e.threshold, 1e-9))
    rules = {t: m for t in model.facets if (m := model.rules.matched(t, text))}
    return Explanation(
        arxiv_id, title, meta["model_id"], store.paper_tag_rows(db, arxiv_id), out, rules,
        system_tags(model.systems, arxiv_id, title), _manual_map(db).get(arxiv_id, {}),
    )  # fmt: skip


# -- evaluating -------------------------------------------------------------------------------------------


def _svc_baseline(train_texts: Sequence[str], Y: np.ndarray, test_texts: Sequence[str]) -> np.ndarray:
    """arxiv-sanity style: plain TF-IDF + LinearSVC per tag, default C, decision > 0."""
    vec = TfidfVectorizer(stop_words="english", ngram_range=(1, 2), min_df=3, max_df=0.5, sublinear_tf=True)
    X_tr, X_te = vec.fit_transform(train_texts), vec.transform(test_texts)
    return np.stack([LinearSVC(random_state=RANDOM_STATE).fit(X_tr, Y[:, j]).decision_function(X_te) > 0
                     for j in range(Y.shape[1])], axis=1)  # fmt: skip


def _report(Y: np.ndarray, pred: np.ndarray, tags: Sequence[str], stream: np.ndarray) -> dict[str, Any]:
    per_tag = {t: _prf(Y[:, j].astype(bool), pred[:, j]) for j, t in enumerate(tags)}
    core = [j for j, t in enumerate(tags) if t in CORE_TAGS]
    labelled = ~stream
    truth_core, pred_core = Y[:, core].astype(bool), pred[:, core]
    micro = _prf(truth_core.ravel(), pred_core.ravel())
    return {
        "per_tag": per_tag,
        "macro_f1": round(float(np.mean([per_tag[tags[j]]["f1"] for j in core])), 4) if core else 0.0,
        "micro_f1": micro["f1"],
        # Of all core tags given (curated papers and corpus stream together), the share that is right, and
        # of all core tags the curated papers carry, the share found.
        "micro_precision": micro["precision"],
        "micro_recall": micro["recall"],
        # F1 among the curated papers only (each other's negatives), without the corpus negatives.
        "macro_f1_labelled": round(float(np.mean([
            _prf(Y[labelled, j].astype(bool), pred[labelled, j])["f1"] for j in core])), 4) if core else 0.0,
        "stream_tagged": round(float(pred_core[stream].any(axis=1).mean()), 4) if stream.any() else 0.0,
    }  # fmt: skip


def evaluate(
    taxonomy: Taxonomy, data: TrainingSet, params: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Cross-validate the product and two baselines on the same folds; figures per tag and macro/micro.

    Every paper is scored by a model that never saw it (outer folds); the product's thresholds come from
    inner folds of each training part. `stream_tagged` is the share of held-out corpus papers given any
    core tag: the corpus is a sample of the real nightly stream.
    """
    params = {**DEFAULT_PARAMS, **(params or {})}
    started = time.monotonic()
    rules = RuleSet.from_taxonomy(taxonomy)
    tags = model_tags_for(taxonomy, data)
    if not tags:
        raise ModelError(
            f"nothing to evaluate: no tag has {MIN_POSITIVES} labelled papers with an abstract in these labels"
        )
    Y = data.matrix(tags)
    texts = np.asarray(data.texts, dtype=object)
    title_rule = title_rule_hits(rules, data.titles, tags)
    product = np.zeros(Y.shape, dtype=bool)
    svc = np.zeros(Y.shape, dtype=bool)
    folds = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=RANDOM_STATE + 1)
    for k, (tr, te) in enumerate(folds.split(texts, _strata(Y))):
        if progress:
            progress(f"fold {k + 1}/{CV_FOLDS}")
        fitted = fit(list(texts[tr]), Y[tr], tags, rules, params, data.stream[tr], title_rule[tr])
        X = sp.hstack(
            [fitted.tfidf.transform(texts[te]), rules.hits(list(texts[te]), tags) * params["rule_weight"]],
            format="csr",
        )
        above = _calibrate(margins(fitted.estimators, X), fitted.platt) >= fitted.thresholds
        by_model, by_title = decide(above, title_rule[te], fitted.modes)
        product[te] = by_model | by_title
        svc[te] = _svc_baseline(list(texts[tr]), Y[tr], list(texts[te]))
    col = {t: j for j, t in enumerate(tags)}
    for i, arxiv_id in enumerate(data.ids):  # the named-system facts are part of the product
        for tag, _ in system_tags(taxonomy.named_systems, arxiv_id, data.titles[i]):
            if tag in col:
                product[i, col[tag]] = True
    keyword = rules.hits(list(texts), tags).toarray().astype(bool)
    return {
        "tags": tags,
        "papers": len(data.ids),
        "labelled": int((~data.stream).sum()),
        "stream": int(data.stream.sum()),
        "folds": CV_FOLDS,
        "seconds": round(time.monotonic() - started, 1),
        "systems": {
            "product": _report(Y, product, tags, data.stream),
            "keyword": _report(Y, keyword, tags, data.stream),
            "tfidf_svc": _report(Y, svc, tags, data.stream),
        },
    }


# -- reports as text --------------------------------------------------------------------------------------


def render_train(report: TrainReport) -> str:
    lines = [f"trained model {report.model_id} on {report.papers} papers in {report.seconds:.1f}s -> {report.model_path}",
             f"{'tag':15} {'support':>7} {'P':>5} {'R':>5} {'F1':>5} {'threshold':>9}  decided by (cross-validated)"]  # fmt: skip
    for tag, m in report.cv.items():
        lines.append(
            f"{tag:15} {m['support']:>7} {m['precision']:>5.2f} {m['recall']:>5.2f} {m['f1']:>5.2f} {m['threshold']:>9.3f}"
            f"  {m['mode']}"
        )
    return "\n".join(lines)


def render_explanation(e: Explanation) -> str:
    lines = [f"{e.arxiv_id}  {e.title}", f"model {e.model_id}"]
    carried = ", ".join(f"{t['tag']} ({t['source']} {t['score']:.2f})" for t in e.tags) or "none"
    lines.append(f"tags: {carried}")
    for x in e.model:
        above = x.score >= x.threshold and x.mode != "title"
        verdict = "TAGGED" if above else "TAGGED by its title rule" if x.title_rule else "near miss"
        if x.mode == "title" and not x.title_rule:
            verdict = "not tagged: its title rule did not fire"
        if x.tag in e.manual:  # a person's label wins over the model: say so next to the model's view
            side = "above" if above or x.title_rule else "below"
            person = "added" if e.manual[x.tag] == "add" else "removed"
            verdict = f"model: {side}; a person {person} this tag: {'TAGGED' if person == 'added' else 'NOT TAGGED'}"
        lines.append(f"\n{x.tag}: score {x.score:.3f} vs threshold {x.threshold:.3f} ({verdict})")
        if x.mode != "model":  # cross-validation chose the title rule as (part of) how this tag is decided
            how = "its keyword rule on the title alone" if x.mode == "title" else "the model, or its keyword rule on the title"
            found = ", ".join(x.title_rule) if x.title_rule else "did not fire"
            lines.append(f"  decided by {how} (title rule: {found})")
        lines.append("  up:   " + (", ".join(f"{t} (+{c:.3f})" for t, c in x.up) or "-"))
        lines.append("  down: " + (", ".join(f"{t} ({c:.3f})" for t, c in x.down) or "-"))
    if e.rules:
        lines.append("\nrules fired:")
        lines += [f"  {tag}: {', '.join(found)}" for tag, found in e.rules.items()]
    if e.systems:
        lines.append("\nnamed systems:")
        lines += [f"  {name} -> {tag} (rule named-system:{name})" for tag, name in e.systems]
    if e.manual:
        lines.append("\nmanual labels: " + ", ".join(f"{a} {t}" for t, a in e.manual.items()))
    return "\n".join(lines)


def render_evaluation(report: dict[str, Any]) -> str:
    systems = report["systems"]
    names = {"product": "tracker", "keyword": "keyword OR-query", "tfidf_svc": "TF-IDF + LinearSVC"}
    lines = [
        f"{report['folds']}-fold cross-validation on {report['labelled']} labelled papers + {report['stream']} "
        f"unlabelled corpus papers (negatives), {report['seconds']}s",
        "",
        f"{'tag':15} {'support':>7}  " + "  ".join(f"{names[s]:>20}" for s in systems),
        f"{'':15} {'':>7}  " + "  ".join(f"{'P    R    F1':>20}" for _ in systems),
    ]
    for tag in report["tags"]:
        cells = []
        for s in systems:
            m = systems[s]["per_tag"][tag]
            cells.append(f"{m['precision']:.2f} {m['recall']:.2f} {m['f1']:.2f}".rjust(20))
        support = systems["product"]["per_tag"][tag]["support"]
        lines.append(f"{tag:15} {support:>7}  " + "  ".join(cells))
    lines.append("")
    for key, title in (("macro_f1", "macro-F1 (core tags)"), ("micro_f1", "micro-F1 (core tags)"),
                       ("micro_precision", "micro-precision (core)"), ("micro_recall", "micro-recall (core)"),
                       ("macro_f1_labelled", "macro-F1, curated only"), ("stream_tagged", "stream share tagged")):  # fmt: skip
        lines.append(f"{title:24}" + "  ".join(f"{systems[s][key]:>20.3f}" for s in systems))
    lines.append(f"core tags: {', '.join(CORE_TAGS)}")
    return "\n".join(lines)
