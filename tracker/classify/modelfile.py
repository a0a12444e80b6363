"""The trained model: `train` saves it as a skops file of plain arrays plus a JSON sidecar; `load_model`
checks and loads it. Never pickle.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import sklearn
import skops
import skops.io as sio
from sklearn.feature_extraction.text import TfidfVectorizer

from tracker.classify.data import MIN_POSITIVES, TrainingSet, model_tags_for
from tracker.classify.features import build_vectorizer, tfidf_transform
from tracker.classify.fitting import DEFAULT_PARAMS, _calibrate, _prf, decide, fit
from tracker.classify.matching import Match, RuleSet, SystemIndex, requires_met
from tracker.errors import ModelError
from tracker.rules import NamedSystem, Taxonomy

# The version of how a saved model's arrays turn into tags: text building, tokenizing, rule matching,
# calibration, thresholds and modes (text, matching, features, fitting, predict). Bump it when that changes,
# so a retrain gets a new model id and `classify` re-tags every paper even if the trained numbers came out
# the same; a model of another format is refused on load. Comments, refactors and speed-ups that give the
# same tags leave it alone (an id hashing the source made a comment edit re-tag every paper).
# Format 1: models saved before this number existed.
# Format 2: one SVM per tag chosen by title-rule modes and stream caps (issue 3).
# Format 3: reviewed labels, the MLLM relevance head and its gate, rules with focus/exclude (issue 12).
MODEL_FORMAT = 3
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


@dataclass
class Model:
    """A trained classifier: vectorizer, one linear scorer per model tag plus the MLLM relevance head,
    calibration, thresholds, rules and facts."""

    tfidf: TfidfVectorizer
    W: np.ndarray  # (n_features, n_tags + 1): TF-IDF terms then one rule row per model tag; relevance last
    b: np.ndarray  # (n_tags + 1,)
    platt: np.ndarray  # (n_tags + 1, 2): score = sigmoid(a * margin + b)
    model_tags: list[str]
    thresholds: np.ndarray  # (n_tags + 1,): the relevance head's last
    gated: frozenset[str]  # tags (model or rule) given only to MLLM work
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

    @property
    def relevance_threshold(self) -> float:
        return float(self.thresholds[-1])

    def features(
        self, texts: Sequence[str], fired: Sequence[set[str]], tfidf: sp.csr_matrix | None = None
    ) -> sp.csr_matrix:
        """TF-IDF of the texts, then one 0/1 column per model tag: did its rule fire (`Match.fired`).

        :param tfidf: the texts' TF-IDF rows when the caller has them already (`tfidf_transform`)
        """
        X_text = tfidf_transform(self.tfidf, texts) if tfidf is None else tfidf
        return sp.hstack([X_text, RuleSet.hits(fired, self.model_tags)], format="csr")

    def scores(
        self, texts: Sequence[str], fired: Sequence[set[str]], tfidf: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """Calibrated scores, rows = texts: one column per model tag, then the relevance score."""
        if not texts:
            return np.zeros((0, len(self.model_tags) + 1))
        return _calibrate(np.asarray(self.features(texts, fired, tfidf) @ self.W) + self.b, self.platt)

    @property
    def n_terms(self) -> int:
        """Size of the TF-IDF vocabulary: the length of a paper vector under this model."""
        return len(self.tfidf.vocabulary_)

    def given(self, S: np.ndarray, matches: Sequence[Match]) -> np.ndarray:
        """papers x model tags: which model tags the papers get (`fitting.decide`)."""
        gated = np.array([t in self.gated for t in self.model_tags], dtype=bool)
        met = requires_met(self.rules, matches, self.model_tags)
        return decide(S[:, :-1], S[:, -1], self.thresholds[:-1], self.relevance_threshold, gated, met)

    def weights(self) -> np.ndarray:
        """(n_features, n_tags + 1) coefficients, for `explain`."""
        return self.W

    def feature_names(self) -> np.ndarray:
        if self._names is None:
            self._names = np.concatenate(
                [self.tfidf.get_feature_names_out(), np.array([f"rule:{t}" for t in self.model_tags])]
            )
        return self._names


@dataclass
class TrainReport:
    model_id: str
    papers: int
    positives: dict[str, int]
    cv: dict[str, dict[str, Any]]  # per model tag, and "relevance" for the relevance head
    seconds: float
    model_path: Path
    model: Model | None = None


def fit_model(
    taxonomy: Taxonomy,
    data: TrainingSet,
    params: dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
) -> tuple[Model, dict[str, Any], dict[str, dict[str, Any]]]:
    """Fit a model on `data`: the model, the plain object `train` saves, and inner cross-validated figures.

    `train` saves what this returns; `evaluate` calls it on each outer fold's training part, with the
    model tags of the whole set (`tags`; default: those with MIN_POSITIVES examples in `data`).
    """
    params = {**DEFAULT_PARAMS, **(params or {})}
    rules = RuleSet.from_taxonomy(taxonomy)
    tags = list(tags) if tags is not None else model_tags_for(taxonomy, data)
    if not tags:
        raise ModelError(
            f"no tag has {MIN_POSITIVES} labelled papers with an abstract; add labels and retrain"
        )
    if data.mllm.all() or not data.mllm.any():
        raise ModelError(
            "cannot train the relevance score: the labels need papers about MLLMs and papers not"
        )
    Y = data.matrix(tags)
    matches = [rules.match(t, a) for t, a in zip(data.titles, data.abstracts, strict=True)]
    vec = build_vectorizer(params)
    X_text = vec.fit_transform(np.asarray(data.texts, dtype=object))
    gated = frozenset(t.slug for t in taxonomy.tags if t.requires_mllm)
    gated_cols = np.array([t in gated for t in tags], dtype=bool)
    fitted = fit(
        X_text, RuleSet.hits([m.fired for m in matches], tags), Y, data.mllm, gated_cols, params, data.known
    )
    vocabulary = vec.vocabulary_
    obj = {
        "terms": np.array(sorted(vocabulary, key=vocabulary.__getitem__), dtype=str),
        "idf": np.asarray(vec.idf_, dtype=np.float64),
        "W": fitted.W,
        "b": fitted.b,
        "platt": fitted.platt,
        "model_tags": list(tags),
        "thresholds": fitted.thresholds,
        "gated": sorted(gated),
        "rules": {k: dict(v) for k, v in rules.spec.items()},
        "rule_tags": [
            t.slug for t in taxonomy.tags if t.slug not in tags and (t.keywords or t.title_keywords)
        ],
        "systems": [
            {"name": s.name, "tags": list(s.tags), "arxiv_id": s.arxiv_id or "", "title": s.title or ""}
            for s in taxonomy.named_systems
        ],
        "facets": {t.slug: t.facet for t in taxonomy.tags},
        "format": MODEL_FORMAT,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
    }
    model = _model_from_obj(obj)
    oof = np.nan_to_num(fitted.oof, nan=0.0)  # a gated tag's head never scored non-MLLM rows: not given
    pred = model.given(oof, matches)
    cv: dict[str, dict[str, Any]] = {}
    for j, tag in enumerate(tags):
        cv[tag] = _prf(Y[:, j].astype(bool), pred[:, j]) | {
            "threshold": round(float(fitted.thresholds[j]), 4)
        }
    known = data.known
    cv["relevance"] = _prf(data.mllm[known], oof[known, -1] >= fitted.thresholds[-1]) | {
        "threshold": round(float(fitted.thresholds[-1]), 4)
    }
    return model, obj, cv


def train(
    taxonomy: Taxonomy,
    data: TrainingSet,
    model_path: Path,
    meta_path: Path,
    label_hash: str,
    params: dict[str, Any] | None = None,
) -> TrainReport:
    """Train on `data`, save the model (skops) and its sidecar, and report cross-validated scores per tag."""
    started = time.monotonic()
    model, obj, cv = fit_model(taxonomy, data, params)
    tags = model.model_tags
    Y = data.matrix(tags)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = model_path.with_suffix(".tmp")
    sio.dump(obj, tmp)
    model_id = content_id(obj)
    meta = {
        "model_id": model_id,
        "format": MODEL_FORMAT,
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
        "mllm_papers": int(data.mllm.sum()),
        "model_tags": list(tags),
        "rule_tags": obj["rule_tags"],
        "positives": {t: int(Y[:, j].sum()) for j, t in enumerate(tags)},
        "cv": cv,
        "params": obj["params"],
        "git_commit": _git_commit(),
    }
    # Sidecar first, then the model: a reader never finds a model without its matching sidecar.
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(model_path)
    seconds = time.monotonic() - started
    return TrainReport(model_id, len(data.ids), meta["positives"], cv, seconds, model_path, model)


def content_id(obj: dict[str, Any]) -> str:
    """A short hash of a saved model's contents (arrays by dtype, shape and bytes; the rest as JSON).

    The object's "format" (MODEL_FORMAT) is hashed with the rest: after an upgrade that changes how the
    arrays turn into tags, a retrain gives a new id and `classify` re-tags every paper even if the trained
    numbers came out the same.
    """
    h = hashlib.sha256()
    for key in sorted(obj):
        value = obj[key]
        h.update(key.encode())
        if isinstance(value, np.ndarray):
            h.update(f"{value.dtype.str}{value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(json.dumps(value, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


def _git_commit() -> str | None:
    head = Path(__file__).resolve().parents[2] / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (head.parent / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None


def _model_from_obj(obj: dict[str, Any]) -> Model:
    try:
        systems = [
            NamedSystem(s["name"], tuple(s["tags"]), s["arxiv_id"] or None, s["title"] or None)
            for s in obj["systems"]
        ]
        params = {**DEFAULT_PARAMS, "tokenizer": "regex", **obj["params"]}  # saved before `tokenize`: regex
        tfidf = build_vectorizer(params)
        # A vectorizer with a fixed vocabulary and idf transforms exactly like the fitted one (tested).
        tfidf.vocabulary_ = {str(term): i for i, term in enumerate(obj["terms"])}
        tfidf.idf_ = np.asarray(obj["idf"])
        model = Model(
            tfidf=tfidf,
            W=np.asarray(obj["W"], dtype=np.float64),
            b=np.asarray(obj["b"], dtype=np.float64),
            platt=np.asarray(obj["platt"], dtype=np.float64),
            model_tags=list(obj["model_tags"]),
            thresholds=np.asarray(obj["thresholds"], dtype=np.float64),
            gated=frozenset(obj["gated"]),
            rules=RuleSet(obj["rules"]),
            rule_tags=list(obj["rule_tags"]),
            systems=systems,
            facets=dict(obj["facets"]),
            params=params,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"the model file is not a tracker model ({type(exc).__name__}: {exc})") from None
    n_tags = len(model.model_tags)
    shapes = (model.W.shape, model.b.shape, model.platt.shape, model.thresholds.shape)
    if shapes != (
        (len(model.tfidf.vocabulary_) + n_tags, n_tags + 1),
        (n_tags + 1,),
        (n_tags + 1, 2),
        (n_tags + 1,),
    ):
        raise ModelError(f"the model file is not a tracker model (arrays of shapes {shapes})")
    return model


def load_model(
    model_path: Path, meta_path: Path, db_path: str | Path | None = None
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
    if meta.get("format", 1) != MODEL_FORMAT:
        raise ModelError(_format_advice(model_path, meta.get("format", 1), retrain))
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
        raise ModelError(f"{model_path} does not match its sidecar {meta_path.name}; {retrain}")
    untrusted = set(sio.get_untrusted_types(data=raw)) - set(TRUSTED_TYPES)
    if untrusted:
        raise ModelError(
            f"{model_path} holds types outside the reviewed list: {', '.join(sorted(untrusted))}"
        )
    obj = sio.loads(raw, trusted=TRUSTED_TYPES)
    if not isinstance(obj, dict):
        raise ModelError(f"{model_path} is not a tracker model; {retrain}")
    if obj.get("format", 1) != MODEL_FORMAT:
        raise ModelError(_format_advice(model_path, obj.get("format", 1), retrain))
    try:
        model = _model_from_obj(obj)
    except ModelError as exc:
        raise ModelError(f"{model_path}: {exc}; {retrain}") from None
    return model, meta


def _format_advice(model_path: Path, found: Any, retrain: str) -> str:
    return f"{model_path} is a model of format {found}; this tracker reads format {MODEL_FORMAT}; {retrain}"
