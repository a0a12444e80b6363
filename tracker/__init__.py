"""tracker: a literature tracker for multimodal-LLM research on arXiv.

Nightly sync into SQLite, taxonomy tags from a TF-IDF classifier, a weekly digest
email, and Datasette for exploring. Nothing runs at import time.
"""

__version__ = "0.1.0"
