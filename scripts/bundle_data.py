"""Copy the real recorded data the project needs from ../shared/data into the package (run from the repo root).

    python scripts/bundle_data.py [SHARED_DATA_DIR]

Writes tracker/data/corpus.jsonl.gz (the unlabelled real abstracts: classifier negatives and the demo's
snapshot), tracker/data/labelled.jsonl.gz (abstracts of the curated-list papers) and
tracker/data/exemplars.jsonl.gz (the survey's named systems). Only the fields the tracker uses are kept.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

FIELDS = (
    "id",
    "title",
    "abstract",
    "authors",
    "categories",
    "primary_category",
    "published",
    "updated",
    "version",
    "comment",
    "announced",
    "announce_type",
    "abstract_truncated",
)


def _write(path: Path, records: list[dict]) -> None:
    records.sort(key=lambda r: r["id"])
    # mtime=0 keeps the gzip bytes identical across runs, so git sees no change when nothing changed.
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        for rec in records:
            fh.write((json.dumps({k: rec.get(k) for k in FIELDS}, ensure_ascii=False) + "\n").encode())
    print(f"{path}: {len(records)} records")


def main() -> None:
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    out = Path("tracker/data")
    out.mkdir(parents=True, exist_ok=True)
    corpus = sorted((shared / "corpus").glob("arxiv_cs_*.jsonl"))
    records = [json.loads(line) for f in corpus for line in f.read_text().splitlines() if line.strip()]
    _write(out / "corpus.jsonl.gz", records)
    labelled = [
        json.loads(x)
        for x in (shared / "corpus/labelled_papers_abstracts.jsonl").read_text().splitlines()
        if x
    ]
    _write(out / "labelled.jsonl.gz", labelled)
    ex = [json.loads(x) for x in (shared / "corpus/paradigm_exemplars.jsonl").read_text().splitlines() if x]
    _write(out / "exemplars.jsonl.gz", ex)


if __name__ == "__main__":
    main()
