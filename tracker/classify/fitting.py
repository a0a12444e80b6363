"""Fitting one linear SVM per model tag: calibration, thresholds and modes chosen by cross-validation.

Pure numpy / scikit-learn on texts and label matrices: no files and no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from tracker.classify.features import build_vectorizer
from tracker.classify.matching import RuleSet
from tracker.errors import ModelError

RANDOM_STATE = 20240613
INNER_FOLDS = 3

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


def _svm(params: dict[str, Any]) -> LinearSVC:
    # LinearSVC rather than LogisticRegression: measured 20x faster to fit on this data (0.14 s vs 2.8 s a
    # tag), which keeps training with nested threshold selection under a minute; Platt scaling on
    # cross-validated margins turns its margins into probabilities.
    return LinearSVC(C=params["clf__C"], class_weight=params["clf__class_weight"], random_state=RANDOM_STATE)


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


def _prf(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    tp = int((truth & pred).sum())
    p = tp / max(int(pred.sum()), 1)
    r = tp / max(int(truth.sum()), 1)
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "support": int(truth.sum())}
