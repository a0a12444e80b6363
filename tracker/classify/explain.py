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
