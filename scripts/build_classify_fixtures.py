"""Write the classifier test fixtures from the bundled data (run from the repo root).

    python scripts/build_classify_fixtures.py

tests/fixtures/classify/papers.jsonl: a few dozen real abstracts, chosen deterministically: the labelled
papers of the rare tags (M-ICL, M-CoT, LAVR), the first ten (by id) of MIT, hallucination and evaluation,
every 150th corpus paper (negatives) and the survey's exemplars. labels.csv: their rows of tracker/defaults/rules/labels.csv.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

OUT = Path("tests/fixtures/classify")
FIELDS = ("id", "title", "abstract")


def _read(name: str) -> list[dict]:
    with gzip.open(f"tracker/data/{name}.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main() -> None:
    labelled = {r["id"]: r for r in _read("labelled")}
    with open("tracker/defaults/rules/labels.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["arxiv_id"] in labelled]
    chosen: dict[str, dict] = {}
    for tag, limit in (
        ("M-ICL", 99),
        ("M-CoT", 99),
        ("LAVR", 99),
        ("MIT", 10),
        ("hallucination", 10),
        ("evaluation", 10),
    ):
        for r in [r for r in rows if tag in r["tags"].split()][:limit]:
            chosen[r["arxiv_id"]] = r
    records = [dict({k: labelled[i][k] for k in FIELDS}, kind="labelled") for i in sorted(chosen)]
    records += [dict({k: r[k] for k in FIELDS}, kind="corpus") for r in _read("corpus")[::150]]
    records += [dict({k: r[k] for k in FIELDS}, kind="exemplar") for r in _read("exemplars")]
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "papers.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    with (OUT / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["arxiv_id", "tags", "title"])
        writer.writerows([i, chosen[i]["tags"], chosen[i]["title"]] for i in sorted(chosen))
    print(f"{OUT}: {len(records)} papers, {len(chosen)} labelled")


if __name__ == "__main__":
    main()
