"""Measure the precision of the tags a reader sees beyond the core six, against verdicts people wrote down.

    python scripts/audit_facets.py [--sample N] [--facets paradigm,architecture,task,topic]

Trains a model on the bundled data (as `tracker train` would, in a temporary folder), tags every bundled
paper, and joins the (paper, tag) pairs it gives with rules/audits/facet_precision.csv (`arxiv_id,tag,
verdict,reason,title`; verdict y/n, judged by reading title + abstract against docs/labelling.md and
the taxonomy's descriptions). It prints per-tag precision over the judged pairs that are still given,
and writes the given pairs nobody has judged yet (up to N per tag, a fixed random sample) to
rules/audits/to_judge.csv: judge them, append them to facet_precision.csv, and run again. Verdicts are
keyed by (paper, tag), so every change to the rules or the model is measured on the same pairs plus
its new ones.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracker import classify, store  # noqa: E402
from tracker.config import DEFAULT_RULES_DIR, model_paths  # noqa: E402
from tracker.rules import load_rules  # noqa: E402

AUDITS = Path("rules/audits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", type=int, default=20, help="unjudged pairs to list per tag")
    parser.add_argument("--facets", default="paradigm,architecture,task", help="facets to audit")
    args = parser.parse_args()
    taxonomy, labels = load_rules(DEFAULT_RULES_DIR)
    facets = set(args.facets.split(","))
    audited = [t.slug for t in taxonomy.tags if t.facet in facets]
    records = {r["id"]: r for r in classify.load_bundled("corpus") + classify.load_bundled("labelled")}
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "audit.db"
        db = store.open_db(db_path)
        classify.train_from_db(db, db_path, taxonomy, labels)
        model, _ = classify.load_model(*model_paths(db_path))
    papers = [(i, r["title"] or "", r["abstract"] or "") for i, r in sorted(records.items())]
    given: dict[str, list[str]] = defaultdict(list)
    for tagging in classify.predict(model, papers):
        for tag in tagging.tags:
            if tag in audited:
                given[tag].append(tagging.arxiv_id)
    verdicts = {}
    with (AUDITS / "facet_precision.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            verdicts[(row["arxiv_id"], row["tag"])] = row["verdict"].strip().lower() == "y"
    rng = random.Random(20240613)
    todo = []
    right_all = judged_all = 0
    print(f"{'tag':20} {'given':>6} {'judged':>6} {'right':>6} {'precision':>9}")
    for tag in audited:
        ids = given.get(tag, [])
        judged = [verdicts[(i, tag)] for i in ids if (i, tag) in verdicts]
        right = sum(judged)
        right_all += right
        judged_all += len(judged)
        precision = f"{right / len(judged):.2f}" if judged else "-"
        print(f"{tag:20} {len(ids):>6} {len(judged):>6} {right:>6} {precision:>9}")
        unjudged = [i for i in ids if (i, tag) not in verdicts]
        todo += [(i, tag) for i in rng.sample(unjudged, min(args.sample, len(unjudged)))]
    print(
        f"{'all':20} {sum(map(len, given.values())):>6} {judged_all:>6} {right_all:>6} "
        f"{right_all / max(judged_all, 1):>9.2f}"
    )
    with (AUDITS / "to_judge.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["arxiv_id", "tag", "verdict", "reason", "title", "abstract"])
        for arxiv_id, tag in todo:
            r = records[arxiv_id]
            writer.writerow([arxiv_id, tag, "", "", r["title"], r["abstract"]])
    print(f"{len(todo)} given pairs not judged yet -> {AUDITS / 'to_judge.csv'}")


if __name__ == "__main__":
    main()
