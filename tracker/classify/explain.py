"""Why a paper carries (or nearly carries) each tag: scores, thresholds, the terms behind them, rules, facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlite_utils import Database

from tracker import store
from tracker.classify.matching import system_tags
from tracker.classify.modelfile import load_model
from tracker.classify.pipeline import _manual_map
from tracker.classify.text import paper_text
from tracker.config import model_paths
from tracker.errors import ModelError


@dataclass
class TagExplanation:
    tag: str
    score: float
    threshold: float
    carried: bool
    up: list[tuple[str, float]]
    down: list[tuple[str, float]]
    blocked: str = ""  # why a score above the threshold does not give the tag (the MLLM gate, `requires`)


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
    relevance: float = 0.0
    relevance_threshold: float = 0.0
    relevance_terms: list[tuple[str, float]] = field(default_factory=list)


def explain(db: Database, db_path: str | Path, arxiv_id: str, terms: int = 6) -> Explanation:
    """Why a paper carries (or nearly carries) each tag: scores, thresholds, terms, rules and facts."""
    texts = store.paper_texts(db, [arxiv_id])
    if arxiv_id not in texts:
        raise ModelError(f"{arxiv_id}: not in the database")
    title, abstract = texts[arxiv_id]
    model, meta = load_model(*model_paths(db_path), db_path)
    text = paper_text(title, abstract)
    match = model.rules.match(title, abstract)
    X = model.features([text], [match.fired])
    S = model.scores([text], [match.fired])
    given = model.given(S, [match])[0]
    S = S[0]
    W = model.weights()
    names = model.feature_names()
    carried = {r["tag"] for r in store.paper_tag_rows(db, arxiv_id)}

    def contributions(j: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        contrib = X.data * W[X.indices, j]
        order = np.argsort(-contrib)
        up = [(str(names[X.indices[k]]), float(contrib[k])) for k in order[:terms] if contrib[k] > 0]
        down = [(str(names[X.indices[k]]), float(contrib[k])) for k in order[::-1][:terms] if contrib[k] < 0]
        return up, down

    relevance, gate = float(S[-1]), model.relevance_threshold
    out = []
    for j, tag in enumerate(model.model_tags):
        th = float(model.thresholds[j])
        if tag not in carried and S[j] < th / 2:
            continue
        blocked = ""
        if S[j] >= th and not given[j]:
            blocked = (
                f"needs MLLM work; relevance {relevance:.3f} < {gate:.3f}"
                if tag in model.gated and relevance < gate
                else "needs one of its `requires` phrases, and the paper has none"
            )
        out.append(TagExplanation(tag, float(S[j]), th, tag in carried, *contributions(j), blocked))
    out.sort(key=lambda e: -e.score / max(e.threshold, 1e-9))
    rules = {t: m for t in model.facets if (m := model.rules.matched(t, title, abstract))}
    return Explanation(
        arxiv_id,
        title,
        meta["model_id"],
        store.paper_tag_rows(db, arxiv_id),
        out,
        rules,
        system_tags(model.systems, arxiv_id, title),
        _manual_map(db).get(arxiv_id, {}),
        relevance,
        gate,
        contributions(len(model.model_tags))[0],
    )
