"""The training data: curated labels and their texts (bundled, else the database's) plus corpus negatives."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tracker.classify.text import paper_text
from tracker.config import DATA_DIR
from tracker.errors import ModelError
from tracker.rules import Labels, Taxonomy

# A tag needs this many curated positives before a model is trained for it; below, its rules decide.
MIN_POSITIVES = 8


def load_bundled(name: str) -> list[dict[str, Any]]:
    """Records of a bundled JSONL file under tracker/data (corpus, labelled, exemplars)."""
    path = DATA_DIR / f"{name}.jsonl.gz"
    if not path.exists():
        raise ModelError(f"{path}: bundled data missing; run scripts/bundle_data.py")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@dataclass
class TrainingSet:
    """The papers to learn from: labelled ones (reviewed, curated, manual) and the corpus negatives."""

    ids: list[str]
    titles: list[str]
    abstracts: list[str]
    tags: list[set[str]]
    mllm: np.ndarray  # per row: is the paper about multimodal LLMs (the relevance score's label)
    stream: np.ndarray  # True for rows from the unlabelled corpus (negatives for everything)
    # per row: is `mllm` known; False for a paper only a person's "remove" speaks of (see training_set)
    mllm_known: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mllm_known is None:
            self.mllm_known = np.ones(len(self.ids), dtype=bool)

    @property
    def texts(self) -> list[str]:
        return [paper_text(t, a) for t, a in zip(self.titles, self.abstracts, strict=True)]

    def subset(self, rows: np.ndarray) -> TrainingSet:
        """The rows at these indices (an outer cross-validation fold)."""
        pick = rows.tolist()
        return TrainingSet(
            [self.ids[i] for i in pick],
            [self.titles[i] for i in pick],
            [self.abstracts[i] for i in pick],
            [self.tags[i] for i in pick],
            self.mllm[rows],
            self.stream[rows],
            self.known[rows],
        )

    @property
    def known(self) -> np.ndarray:
        assert self.mllm_known is not None  # set by __post_init__
        return self.mllm_known

    def matrix(self, tags: Sequence[str]) -> np.ndarray:
        return np.array([[t in s for t in tags] for s in self.tags], dtype=np.int8).reshape(
            len(self.tags), len(tags)
        )


def training_set(
    labels: Labels,
    manual: Sequence[tuple[str, str, str]],
    db_texts: Callable[[Sequence[str]], dict[str, tuple[str, str]]],
    *,
    gated: Collection[str] = (),
    labelled: Sequence[dict[str, Any]] | None = None,
    corpus: Sequence[dict[str, Any]] | None = None,
) -> TrainingSet:
    """Labels (texts bundled, else the database's), corrected by manual labels, + corpus negatives.

    A paper's `mllm` label is the one labels.csv gives; where it gives none (curated-only rows), a paper
    whose labels carry a tag that requires MLLM work (`gated`) is MLLM work, and others are not. A
    person's "add" of a gated tag makes the paper MLLM work; a "remove" says nothing about it: a paper
    known only through removes (most of them answers to `tracker review` near a gated tag's threshold)
    has an unknown `mllm`, is left out of the relevance score's training and kept, as a negative of the
    removed tag, in the gated tags' training.

    :param db_texts: looks up (title, abstract) of ids in the database, for papers not bundled
    :param labelled: records with the labelled papers' texts (default: the bundled ones)
    :param corpus: the bundled corpus: texts of reviewed papers, and negatives for the rest
    """
    tags: dict[str, set[str]] = {lab.arxiv_id: set(lab.tags) for lab in labels.labels}
    said: dict[str, bool | None] = {lab.arxiv_id: lab.mllm for lab in labels.labels}
    for lab in labels.labels:
        if lab.mllm is None and set(lab.tags) & set(gated):
            said[lab.arxiv_id] = True
    for arxiv_id, tag, action in manual:
        if action == "add":
            tags.setdefault(arxiv_id, set()).add(tag)
            if tag in gated:
                said[arxiv_id] = True
        else:
            tags.setdefault(arxiv_id, set()).discard(tag)
    records = list(load_bundled("labelled") if labelled is None else labelled)
    stream = list(load_bundled("corpus") if corpus is None else corpus)
    bundled = {r["id"]: (r["title"] or "", r["abstract"] or "") for r in records + stream}
    texts = {i: bundled[i] for i in tags if i in bundled}
    missing = [i for i in tags if i not in texts]
    if missing:
        texts.update(db_texts(missing))
    ids = [i for i in sorted(tags) if i in texts and (texts[i][1] or "").strip()]
    # Not said and not in labels.csv: only a person's removes speak of the paper. In labels.csv without
    # a gated tag: a curated paper of another kind, not MLLM work.
    mllm = [said.get(i) if said.get(i) is not None else (False if i in labels.by_id else None) for i in ids]
    negatives = [r for r in stream if r["id"] not in tags and (r["abstract"] or "").strip()]
    return TrainingSet(
        ids + [r["id"] for r in negatives],
        [texts[i][0] or "" for i in ids] + [r["title"] or "" for r in negatives],
        [texts[i][1] or "" for i in ids] + [r["abstract"] or "" for r in negatives],
        [tags[i] for i in ids] + [set() for _ in negatives],
        np.array([bool(m) for m in mllm] + [False] * len(negatives), dtype=bool),
        np.r_[np.zeros(len(ids), bool), np.ones(len(negatives), bool)],
        np.array([m is not None for m in mllm] + [True] * len(negatives), dtype=bool),
    )


def model_tags_for(taxonomy: Taxonomy, data: TrainingSet) -> list[str]:
    """Tags with at least MIN_POSITIVES labelled examples, in taxonomy order."""
    return [t for t in taxonomy.slugs if sum(t in s for s in data.tags) >= MIN_POSITIVES]
