"""arXiv's endpoints and the politeness its terms ask for: the one place the CLI, the fetchers and the demo read them.

Kept free of imports so `tracker --help` can show these defaults without loading requests and arxiv.
"""

from __future__ import annotations

DEFAULT_API_URL = "https://export.arxiv.org/api/query"
DEFAULT_RSS_URL = "https://rss.arxiv.org/rss"
DEFAULT_OAI_URL = "https://oaipmh.arxiv.org/oai"

# arXiv's API terms of use: "make no more than one request every three seconds" (info.arxiv.org/help/api/tou.html).
DEFAULT_DELAY = 3.0
DEFAULT_TIMEOUT = 30.0  # seconds per read of an API page or feed
DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 5.0  # first retry wait in seconds, doubled each retry (a server's Retry-After wins)
DEADLINE_TIMEOUTS = 4  # default total time of one attempt, in multiples of the per-read timeout
# A full arXiv ListRecords page is several MB and the server can take a while to build it.
DEFAULT_OAI_TIMEOUT = 180.0


def abs_url(arxiv_id: str) -> str:
    """The paper's abstract page (unversioned: it always shows the latest version)."""
    return f"https://arxiv.org/abs/{arxiv_id}"


def pdf_url(arxiv_id: str, version: int | None = None) -> str:
    """The PDF of `version`, or of the latest version when it is not known."""
    return f"https://arxiv.org/pdf/{arxiv_id}" + (f"v{version}" if version else "")
