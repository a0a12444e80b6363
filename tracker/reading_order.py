"""What readers see first: the facet order and the MLLM gate that the digest, the markdown export and Datasette share.

The taxonomy file lists its facets in the order the surveys introduce them (paradigm first), but a
multimodal-LLM researcher reads the `mllm` and `topic` tags first, paradigm and architecture next, and
the classic vision tasks last (issue 12). The classic tasks (classification, detection, ...) also tag
a great many papers that have nothing to do with multimodal LLMs, so by default their sections list
only papers the relevance score calls MLLM work (`papers.mllm = 1`). A paper with `mllm` NULL was
classified before the relevance score existed: it counts as not MLLM, since nothing says it is.

Datasette's YAML cannot import this module: tracker/defaults/db/metadata.yml spells the same order in
SQL, and tests/test_datasette.py checks that it matches READER_FACET_ORDER.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

READER_FACET_ORDER = ("mllm", "topic", "paradigm", "architecture", "task")
TASK_FACET = "task"
# Facets whose sections list only MLLM work unless the reader asks for all of them.
MLLM_GATED_FACETS = frozenset({TASK_FACET})


def facet_rank(facet: str) -> float:
    """Sort key of a facet: its place in READER_FACET_ORDER; a facet not listed there goes just before `task`."""
    if facet in READER_FACET_ORDER:
        return float(READER_FACET_ORDER.index(facet))
    return READER_FACET_ORDER.index(TASK_FACET) - 0.5


def sort_facets(facets: Iterable[str]) -> list[str]:
    """The facets in reader order (a stable sort: unlisted facets keep their relative order)."""
    return sorted(facets, key=facet_rank)


def is_mllm(row: Mapping[str, Any]) -> bool:
    """The relevance score's verdict on a paper row; NULL (not scored yet) or missing counts as not MLLM."""
    return row.get("mllm") == 1


def gated(facet: str, tag: str, *, all_tasks: bool = False, chosen: Iterable[str] = ()) -> bool:
    """Whether `tag`'s section lists only MLLM work: a task-facet tag, unless all tasks are asked for or the
    reader chose that tag by name (a subscriber to `detection` wants detection papers, MLLM or not)."""
    return facet in MLLM_GATED_FACETS and not all_tasks and tag not in set(chosen)


def shown(
    facet: str, tag: str, row: Mapping[str, Any], *, all_tasks: bool = False, chosen: Iterable[str] = ()
) -> bool:
    """Whether paper `row` is listed under `tag` (of `facet`) for this reader."""
    return is_mllm(row) or not gated(facet, tag, all_tasks=all_tasks, chosen=chosen)
