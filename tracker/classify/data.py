"""The training data: curated labels and their texts (bundled, else the database's) plus corpus negatives."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence
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
