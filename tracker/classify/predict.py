"""Applying a loaded model: `predict` tags papers, `chunk_rows` turns a chunk's tags into database rows.

Pure: the rows are written by `tracker.classify.pipeline` through `store`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tracker.classify.features import tfidf_transform
from tracker.classify.modelfile import Model
from tracker.classify.text import paper_text


@dataclass
class Tagging:
    """What the tracker concludes for one paper: tags with (score, source), the model scores worth keeping,
    and the MLLM relevance score with its verdict."""

    arxiv_id: str
    tags: dict[str, tuple[float, str]]  # tag -> (score, source)
    # model tag -> (score, threshold), where the score reaches half the threshold (tagged or a near miss)
    scores: dict[str, tuple[float, float]]
    relevance: float = 0.0
    mllm: bool = False


def predict(
    model: Model,
    papers: Sequence[tuple[str, str, str]],
    manual: dict[str, dict[str, str]] | None = None,
    tfidf: sp.csr_matrix | None = None,
) -> list[Tagging]:
    """Tag (arxiv_id, title, abstract) papers: the model's tags, then keyword rules, then named systems;
    manual labels last. Tags that require MLLM work go only to papers the relevance score passes.

    :param manual: {arxiv_id: {tag: 'add' | 'remove'}}: a person's word wins over everything else
    :param tfidf: the papers' TF-IDF rows (`tfidf_transform` of their `paper_text`), if already computed
    """
    matches = [model.rules.match(title, abstract) for _, title, abstract in papers]  # once per paper
    texts = [paper_text(title, abstract) for _, title, abstract in papers]
    S = model.scores(texts, [m.fired for m in matches], tfidf)
    given = model.given(S, matches)
    relevance = S[:, -1] if len(papers) else np.zeros(0)
    is_mllm = (relevance >= model.relevance_threshold).tolist()
    kept = model.thresholds[:-1] / 2 <= S[:, :-1]
    # Whole-matrix work in numpy, then plain lists per paper: per-row numpy calls cost more than the rest.
    scores, thresholds, tag_names = S.tolist(), model.thresholds.tolist(), model.model_tags
    given_rows, kept_rows = _row_lists(given), _row_lists(kept)
    rule_tags, gated = set(model.rule_tags), model.gated
    out = []
    for i, (arxiv_id, title, _) in enumerate(papers):
        tags: dict[str, tuple[float, str]] = {}
        row = scores[i]
        for j in given_rows[i]:
            tags[tag_names[j]] = (row[j], "model")
        for tag in sorted(matches[i].fired & rule_tags):
            if (is_mllm[i] or tag not in gated) and (
                tag in matches[i].met or not model.rules.has_requires(tag)
            ):
                tags.setdefault(tag, (1.0, "rule"))
        for tag, _name in model.system_index.tags(arxiv_id, title):
            tags[tag] = (1.0, "rule")
        for tag, action in (manual or {}).get(arxiv_id, {}).items():
            if action == "add":
                tags[tag] = (1.0, "manual")
            else:
                tags.pop(tag, None)
        near = {tag_names[j]: (row[j], thresholds[j]) for j in kept_rows[i]}
        out.append(Tagging(arxiv_id, tags, near, row[-1], is_mllm[i]))
    return out


def _row_lists(mask: np.ndarray) -> list[list[int]]:
    """For each row of a boolean matrix, the columns that are True, in order."""
    rows: list[list[int]] = [[] for _ in range(mask.shape[0])]
    for i, j in zip(*np.nonzero(mask), strict=True):
        rows[i].append(int(j))
    return rows


@dataclass
class ChunkRows:
    """The rows one chunk of papers writes: paper_tags, tag_scores and papers (tags JSON, tagged_by,
    relevance, mllm)."""

    tags: list[tuple[str, str, str, float, str, str | None]]
    scores: list[tuple[str, str, float, float, str]]
    papers: list[tuple[str, str, str, float, int]]
    tagged: int
    # the chunk's TF-IDF rows, in chunk order: the papers' vectors for `paper_vectors`
    tfidf: sp.csr_matrix | None = None


def chunk_rows(
    model: Model, model_id: str, chunk: Sequence[tuple[str, str, str]], manual: dict[str, dict[str, str]]
) -> ChunkRows:
    """Tag one chunk and turn the result into database rows.

    `tag_scores` keeps a model tag's score only when it reaches half the threshold: enough to list the
    papers near a threshold (what to label next) without writing a row per paper and tag.
    """
    order = {t: i for i, t in enumerate(model.facets)}
    out = ChunkRows([], [], [], 0)
    # One TF-IDF pass serves the tags and the stored vectors (neighbours, reader models).
    X = tfidf_transform(model.tfidf, [paper_text(title, abstract) for _, title, abstract in chunk])
    out.tfidf = X
    for r in predict(model, chunk, manual, X):
        for tag, (score, source) in r.tags.items():
            owner = model_id if source != "manual" else None
            out.tags.append((r.arxiv_id, tag, model.facets.get(tag, ""), round(score, 4), source, owner))
        out.scores += [
            (r.arxiv_id, t, round(s, 4), round(th, 4), model_id) for t, (s, th) in r.scores.items()
        ]
        slugs = sorted(r.tags, key=lambda t: order.get(t, len(order)))
        out.papers.append((r.arxiv_id, json.dumps(slugs), model_id, round(r.relevance, 4), int(r.mllm)))
        out.tagged += bool(r.tags)
    return out
