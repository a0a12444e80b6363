"""Build rules/labels.csv from the curated lists' labelled_papers.csv (run from the repo root).

    python scripts/build_labels.py [LABELLED_PAPERS_CSV] [--all]

Each row of the input names an arXiv id, a list (`owner/name@branch`) and the list's section heading.
The section is mapped to tags by the `sections` globs in rules/taxonomy.yml (never by id), and an id's
tags are the union over all its rows. Ids none of whose sections map to a tag are left out: they are
MLLM papers of some other kind, so they are neither positives nor trustworthy negatives.
By default only ids with a bundled abstract (tracker/data/labelled.jsonl.gz) are written, since the
classifier can only learn from papers it can read; `--all` keeps the rest too.
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracker.rules import load_taxonomy  # noqa: E402


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    source = Path(args[0] if args else "../shared/data/labels/labelled_papers.csv")
    taxonomy = load_taxonomy("rules/taxonomy.yml")
    with gzip.open("tracker/data/labelled.jsonl.gz", "rt", encoding="utf-8") as fh:
        readable = {json.loads(line)["id"] for line in fh if line.strip()}
    tags: dict[str, set[str]] = {}
    titles: dict[str, str] = {}
    with source.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            arxiv_id = row["arxiv_id"].strip()
            found = taxonomy.tags_for_section(row["source_repo"], row["section"])
            tags.setdefault(arxiv_id, set()).update(found)
            titles.setdefault(arxiv_id, " ".join(row["title"].split()))
    order = {slug: i for i, slug in enumerate(taxonomy.slugs)}
    out = Path("rules/labels.csv")
    kept = 0
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["arxiv_id", "tags", "title"])
        for arxiv_id in sorted(tags):
            if not tags[arxiv_id] or ("--all" not in sys.argv and arxiv_id not in readable):
                continue
            writer.writerow(
                [arxiv_id, " ".join(sorted(tags[arxiv_id], key=order.__getitem__)), titles[arxiv_id]]
            )
            kept += 1
    counts = {
        s: sum(s in t for a, t in tags.items() if a in readable or "--all" in sys.argv)
        for s in taxonomy.slugs
    }
    print(f"{out}: {kept} labelled papers; " + ", ".join(f"{s} {n}" for s, n in counts.items() if n))


if __name__ == "__main__":
    main()
