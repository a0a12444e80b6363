"""arXiv identifiers: the one pattern of a bare id, and `parse_arxiv_id` for ids as people paste them.

Per arXiv's "Understanding the arXiv identifier" (reference/arxiv-docs/arxiv_identifier.md): new-style ids
(0704.0001 onwards, 4+4 or 4+5 digits) and old-style archive[.SUBJ]/YYMMNNN ids, each with an optional
version suffix.
"""

from __future__ import annotations

import re

NEW_ID = re.compile(r"^\d{4}\.\d{4,5}$")
OLD_ID = re.compile(r"^[a-z][a-z\-]*(\.[A-Z]{2})?/\d{7}$")
VERSION_SUFFIX = re.compile(r"v(\d{1,6})$")  # no paper has a million versions; more is garbage
# What may stand before an id in what people paste: arXiv's abs/pdf pages on any of its hosts, an
# "arXiv:" citation prefix, an OAI identifier.
_PASTED = re.compile(
    r"^(?:(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/|arxiv:|oai:arxiv\.org:)", re.IGNORECASE
)


def is_arxiv_id(arxiv_id: str) -> bool:
    """True for a bare (unversioned) new- or old-style arXiv identifier."""
    # fullmatch: "$" also matches before a final newline, and "2301.01234\n" is no id.
    return bool(NEW_ID.fullmatch(arxiv_id) or OLD_ID.fullmatch(arxiv_id))


def parse_arxiv_id(text: str) -> str | None:
    """The bare id in what a person pasted, or None: `2506.04039v2`, `arXiv:2506.04039`,
    `https://arxiv.org/abs/2506.04039v2`, `https://arxiv.org/pdf/2506.04039v2.pdf`, `hep-th/9901001v1`."""
    rest = _PASTED.sub("", text.strip(), count=1)
    rest = rest.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    rest = rest.removesuffix(".pdf")
    match = VERSION_SUFFIX.search(rest)
    if match:
        rest = rest[: match.start()]
    return rest if is_arxiv_id(rest) else None
