"""Loads and validates `rules/queries.yml` (what the sync follows) and arXiv category codes.

Category codes are checked against arXiv's category taxonomy so that a typo (`cs.CVV`) fails loudly
instead of silently matching nothing every night.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from tracker.config import rules_dir
from tracker.errors import ConfigError

# arXiv's category taxonomy (https://arxiv.org/category_taxonomy), subject classes per archive.
_SUBJECTS = {
    "cs": "AI AR CC CE CG CL CR CV CY DB DC DL DM DS ET FL GL GR GT HC IR IT LG LO MA MM MS NA NE NI OH OS PF "
    "PL RO SC SD SE SI SY",
    "econ": "EM GN TH",
    "eess": "AS IV SP SY",
    "math": "AC AG AP AT CA CO CT CV DG DS FA GM GN GR GT HO IT KT LO MG MP NA NT OA OC PR QA RA RT SG SP ST",
    "astro-ph": "CO EP GA HE IM SR",
    "cond-mat": "dis-nn mes-hall mtrl-sci other quant-gas soft stat-mech str-el supr-con",
    "nlin": "AO CD CG PS SI",
    "physics": "acc-ph ao-ph app-ph atm-clus atom-ph bio-ph chem-ph class-ph comp-ph data-an ed-ph flu-dyn "
    "gen-ph geo-ph hist-ph ins-det med-ph optics plasm-ph pop-ph soc-ph space-ph",
    "q-bio": "BM CB GN MN NC OT PE QM SC TO",
    "q-fin": "CP EC GN MF PM PR RM ST TR",
    "stat": "AP CO ME ML OT TH",
}
_WHOLE_ARCHIVES = {
    "astro-ph",
    "cond-mat",
    "gr-qc",
    "hep-ex",
    "hep-lat",
    "hep-ph",
    "hep-th",
    "math-ph",
    "nlin",
    "nucl-ex",
    "nucl-th",
    "physics",
    "quant-ph",
    "cs",
    "econ",
    "eess",
    "math",
    "q-bio",
    "q-fin",
    "stat",
}
KNOWN_CATEGORIES = frozenset(
    {f"{archive}.{s}" for archive, subjects in _SUBJECTS.items() for s in subjects.split()} | _WHOLE_ARCHIVES
)


@dataclass(frozen=True)
class Queries:
    """The sync's configuration."""

    categories: tuple[str, ...]
    overlap_days: float = 2.0
    initial_days: float = 3.0


def check_categories(categories: list[str] | tuple[str, ...], source: str = "--category") -> tuple[str, ...]:
    """Return the categories, or raise ConfigError naming the first one arXiv does not have."""
    if not categories:
        raise ConfigError(f"{source}: no categories given")
    for cat in categories:
        if cat not in KNOWN_CATEGORIES:
            close = sorted(c for c in KNOWN_CATEGORIES if c.lower() == cat.lower())
            hint = f" (did you mean {close[0]}?)" if close else " (see https://arxiv.org/category_taxonomy)"
            raise ConfigError(f"{source}: unknown arXiv category {cat!r}{hint}")
    return tuple(dict.fromkeys(categories))


def load_queries(path: Path | None = None) -> Queries:
    """Read rules/queries.yml; errors name the file and, for YAML syntax, the line."""
    path = path or rules_dir() / "queries.yml"
    if not path.exists():
        return Queries(("cs.CV", "cs.CL", "cs.AI", "cs.LG", "cs.MM"))
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'categories' list")
    unknown = set(data) - {"categories", "overlap_days", "initial_days"}
    if unknown:
        raise ConfigError(f"{path}: unknown key {min(map(str, unknown))!r}")  # keys may be numbers too
    cats = data.get("categories") or []
    if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
        raise ConfigError(f"{path}: 'categories' must be a list of arXiv category codes")
    try:
        overlap = float(data.get("overlap_days", 2))
        initial = float(data.get("initial_days", 3))
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: overlap_days and initial_days must be numbers") from None
    # Bounded (this also refuses nan): arXiv's API starts in 1991, and a negative overlap would leave gaps.
    if not 0 <= overlap <= 30:
        raise ConfigError(f"{path}: overlap_days {overlap:g} must be between 0 and 30")
    if not 0 < initial <= 366:
        raise ConfigError(
            f"{path}: initial_days {initial:g} must be between 0 and 366 (use backfill for more)"
        )
    return Queries(check_categories(cats, str(path)), overlap, initial)
