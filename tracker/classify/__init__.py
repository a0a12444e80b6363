"""Build, train, evaluate and apply the taxonomy classifier; save and load it with skops.

The model is TF-IDF over title + abstract plus one "rule fired" column per tag (the taxonomy's keyword
rules as evidence), and one linear SVM (Platt-calibrated) per tag that has enough curated examples. Each
tag's threshold is chosen by cross-validation on the training data, where the unlabelled real corpus supplies
the negatives: "no tag" is the commonest right answer for a nightly stream, and the thresholds are
picked on exactly that mix. Tags with too few curated examples (architecture, paradigm, task) are
assigned by their keyword rules alone, and the survey's named systems (CLIP, BLIP-2, LLaVA, ...) by
their facts. Every file this package writes is a skops file plus a JSON sidecar: never pickle.

The modules, each importing only those above it:

- `text`: the text the classifier reads (`paper_text`, `tokenize`, normalising for rules)
- `matching`: the keyword rules compiled (`RuleSet`) and the named-system facts
- `features`: the TF-IDF vectorizer and its fast exact `tfidf_transform`
- `fitting`: one calibrated linear SVM per tag, thresholds and modes by cross-validation
- `data`: the training set (bundled curated labels, manual labels, corpus negatives)
- `modelfile`: `Model`; `train` saves it, `load_model` checks and loads it
- `predict`: tags for papers, and the database rows for a chunk of them
- `pipeline`: training and tagging against the database (`run_classify`, worker processes)
- `explain`: why a paper carries each tag
- `evaluation`: cross-validated figures for the product and two baselines
- `render`: the reports as text

This module re-exports the names the rest of the tracker uses: `from tracker import classify`.
"""

from tracker.classify.data import MIN_POSITIVES, TrainingSet, load_bundled, model_tags_for, training_set
from tracker.classify.evaluation import CORE_TAGS, evaluate
from tracker.classify.explain import Explanation, TagExplanation, explain
from tracker.classify.features import build_vectorizer, tfidf_transform
from tracker.classify.fitting import DEFAULT_PARAMS, decide, fit
from tracker.classify.matching import RuleSet, SystemIndex, system_tags
from tracker.classify.modelfile import TRUSTED_TYPES, Model, TrainReport, fit_model, load_model, train
from tracker.classify.pipeline import CHUNK_SIZE, ClassifyReport, run_classify, train_from_db, training_data
from tracker.classify.predict import Tagging, predict
from tracker.classify.render import render_evaluation, render_explanation, render_train
from tracker.classify.text import TOKEN_PATTERN, paper_text, tokenize

__all__ = [
    "CHUNK_SIZE",
    "CORE_TAGS",
    "DEFAULT_PARAMS",
    "MIN_POSITIVES",
    "TOKEN_PATTERN",
    "TRUSTED_TYPES",
    "ClassifyReport",
    "Explanation",
    "Model",
    "RuleSet",
    "SystemIndex",
    "TagExplanation",
    "Tagging",
    "TrainReport",
    "TrainingSet",
    "build_vectorizer",
    "decide",
    "evaluate",
    "explain",
    "fit",
    "fit_model",
    "load_bundled",
    "load_model",
    "model_tags_for",
    "paper_text",
    "predict",
    "render_evaluation",
    "render_explanation",
    "render_train",
    "run_classify",
    "system_tags",
    "tfidf_transform",
    "tokenize",
    "train",
    "train_from_db",
    "training_data",
    "training_set",
]
