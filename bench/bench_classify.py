"""Print the classifier's speed figures: training time on the bundled labels, classify papers/second, peak memory.

    python bench/bench_classify.py [N_PAPERS]

Builds a scratch database of N_PAPERS (default 20,000) real corpus abstracts (repeated under fresh ids when
N exceeds the corpus), trains on the bundled labels, then times `run_classify` over all of them.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from tracker import classify, store
from tracker.config import DEFAULT_RULES_DIR
from tracker.rules import load_rules


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    corpus = classify.load_bundled("corpus")
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        db = store.open_db(db_path)
        rows = []
        for i in range(n):
            r = corpus[i % len(corpus)]
            rows.append(
                {
                    "arxiv_id": f"{9000 + i // 99999:04d}.{i % 99999:05d}",
                    "version": 1,
                    "title": r["title"],
                    "abstract": r["abstract"],
                }
            )
        for start in range(0, n, 5000):
            store.save_papers(db, rows[start : start + 5000])  # type: ignore[arg-type]
        taxonomy, labels = load_rules(DEFAULT_RULES_DIR)
        started = time.monotonic()
        report = classify.train_from_db(db, db_path, taxonomy, labels)
        print(
            f"train: {time.monotonic() - started:.1f} s on {report.papers} papers ({len(report.model.model_tags) if report.model else 0} model tags + the relevance score)"
        )
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        result = classify.run_classify(db, db_path, all_papers=True)
        seconds = time.monotonic() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(
            f"classify: {result.papers} papers in {seconds:.1f} s = {result.papers / seconds:,.0f} papers/s; "
            f"{result.tagged} tagged"
        )
        print(
            f"peak RSS: {rss_before / 1024:.0f} MiB before classify, {rss_after / 1024:.0f} MiB after "
            f"(chunks of {classify.CHUNK_SIZE}: flat in N)"
        )


if __name__ == "__main__":
    main()
