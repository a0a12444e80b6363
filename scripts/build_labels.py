"""Build tracker/defaults/rules/labels.csv, the shipped classifier's training labels (run from the repo root).

    python scripts/build_labels.py

Two inputs, both in rules/ (sources kept in the repository, not shipped in the package):
- `reviewed.csv`: papers read one by one (title + abstract) against docs/labelling.md, with `mllm`
  (is the paper about multimodal LLMs) and the tags that apply. These are the primary labels.
- `curated_sections.csv`: the curated lists' rows (`arxiv_id,title,section,source_repo`). A section maps
  to tags by the `sections` globs of the shipped taxonomy.yml (never by id). Used only for papers that were
  not reviewed: they train the model once the database holds their abstracts.

The output is deterministic (sorted by id), so a rebuild after editing either input shows as a clean diff.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracker.config import DEFAULT_RULES_DIR  # noqa: E402
from tracker.rules import load_taxonomy  # noqa: E402

RULES = Path("rules")


def main() -> None:
    taxonomy = load_taxonomy(DEFAULT_RULES_DIR / "taxonomy.yml")
    order = {slug: i for i, slug in enumerate(taxonomy.slugs)}
    rows: dict[str, list[str]] = {}
    with (RULES / "reviewed.csv").open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            tags = [t for t in r["tags"].split("|") if t]
            unknown = [t for t in tags if t not in order]
            if unknown:
                sys.exit(f"reviewed.csv: {r['arxiv_id']}: unknown tag(s) {', '.join(unknown)}")
            rows[r["arxiv_id"]] = [
                r["arxiv_id"],
                " ".join(sorted(tags, key=order.__getitem__)),
                r["mllm"],
                "reviewed",
                r["note"],
                "",
            ]
    curated: dict[str, set[str]] = {}
    titles: dict[str, str] = {}
    with (RULES / "curated_sections.csv").open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            arxiv_id = r["arxiv_id"].strip()
            curated.setdefault(arxiv_id, set()).update(
                taxonomy.tags_for_section(r["source_repo"], r["section"])
            )
            titles.setdefault(arxiv_id, " ".join(r["title"].split()))
    for arxiv_id, tags in curated.items():
        if arxiv_id in rows or not tags:  # a reviewed row wins; a section that maps to no tag says nothing
            continue
        rows[arxiv_id] = [
            arxiv_id,
            " ".join(sorted(tags, key=order.__getitem__)),
            "",
            "curated",
            "",
            titles[arxiv_id],
        ]
    out = DEFAULT_RULES_DIR / "labels.csv"
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["arxiv_id", "tags", "mllm", "source", "note", "title"])
        writer.writerows(rows[i] for i in sorted(rows))
    reviewed = sum(r[3] == "reviewed" for r in rows.values())
    counts = {s: sum(s in r[1].split() for r in rows.values()) for s in taxonomy.slugs}
    print(
        f"{out}: {len(rows)} papers ({reviewed} reviewed, {len(rows) - reviewed} curated only); "
        + ", ".join(f"{s} {n}" for s, n in counts.items() if n)
    )


if __name__ == "__main__":
    main()
