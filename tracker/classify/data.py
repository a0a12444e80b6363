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

    @property
    def texts(self) -> list[str]:
        return [paper_text(t, a) for t, a in zip(self.titles, self.abstracts, strict=True)]

    def subset(self, rows: np.ndarray) -> TrainingSet:
        """The rows at these indices (an outer cross-validation fold)."""
        pick = rows.tolist()
        return TrainingSet(
            [self.ids[i] for i in pick], [self.titles[i] for i in pick], [self.abstracts[i] for i in pick],
            [self.tags[i] for i in pick], self.mllm[rows], self.stream[rows],
        )  # fmt: skip

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

    A paper's `mllm` label is the one labels.csv gives; where it gives none (curated-only rows, manual
    labels), a paper carrying a tag that requires MLLM work (`gated`) is MLLM work, and others are not.
    A person's "add" of a gated tag makes the paper MLLM work.

    :param db_texts: looks up (title, abstract) of ids in the database, for papers not bundled
    :param labelled: records with the labelled papers' texts (default: the bundled ones)
    :param corpus: the bundled corpus: texts of reviewed papers, and negatives for the rest
    """
    tags: dict[str, set[str]] = {lab.arxiv_id: set(lab.tags) for lab in labels.labels}
    said: dict[str, bool | None] = {lab.arxiv_id: lab.mllm for lab in labels.labels}
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
    mllm = [m if (m := said.get(i)) is not None else bool(tags[i] & set(gated)) for i in ids]
    negatives = [r for r in stream if r["id"] not in tags and (r["abstract"] or "").strip()]
    return TrainingSet(
        ids + [r["id"] for r in negatives],
        [texts[i][0] or "" for i in ids] + [r["title"] or "" for r in negatives],
        [texts[i][1] or "" for i in ids] + [r["abstract"] or "" for r in negatives],
        [tags[i] for i in ids] + [set() for _ in negatives],
        np.array(mllm + [False] * len(negatives), dtype=bool),
        np.r_[np.zeros(len(ids), bool), np.ones(len(negatives), bool)],
    )


def model_tags_for(taxonomy: Taxonomy, data: TrainingSet) -> list[str]:
    """Tags with at least MIN_POSITIVES labelled examples, in taxonomy order."""
    return [t for t in taxonomy.slugs if sum(t in s for s in data.tags) >= MIN_POSITIVES]
