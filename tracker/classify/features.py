"""TF-IDF features: the vectorizer a model uses, and a faster exact `transform` for the classify hot path."""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from tracker.classify.text import TOKEN_PATTERN, tokenize
from tracker.errors import ModelError


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
        (
            np.asarray(counts, dtype=vec.dtype),
            np.asarray(indices, dtype=np.int32),
            np.asarray(indptr, dtype=np.int64),
        ),
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
