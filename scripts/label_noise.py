"""Count "negatives" that are not negatives: corpus papers whose title alone states a core tag.

    python scripts/label_noise.py [--titles]

`tracker evaluate` counts every unlabelled corpus paper as a negative for every tag, because nobody
curated it. But the corpus is a sample of real cs.CV/CL/AI/LG papers, and some of its titles say
outright what they are ("Improve Vision Language Model Chain-of-thought Reasoning"). This script applies
each core tag's own keyword rule (rules/taxonomy.yml, keywords plus context) to titles only, a strict
test, and counts where it fires: on the tag's curated papers, on other curated papers, on the corpus.
A classifier that tags such a corpus paper correctly is scored as wrong on it. Where the listed titles
really are members of the tag (read them: `--titles`; for M-ICL and M-CoT they are, for broad rules such
as MIT's "MLLM" many are not), the last column is the best precision, and 2P / (1 + P) the best F1, that
`tracker evaluate` can report even for an exactly right classifier.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracker import classify  # noqa: E402
from tracker.config import REPO_DIR  # noqa: E402
from tracker.rules import load_rules  # noqa: E402


def main() -> None:
    show_titles = "--titles" in sys.argv[1:]
    taxonomy, labels = load_rules(REPO_DIR / "rules")
    data = classify.training_set(labels, [], lambda ids: {})
    rules = classify.RuleSet.from_taxonomy(taxonomy)
    by_id = {r["id"]: r["title"] for name in ("labelled", "corpus") for r in classify.load_bundled(name)}
    titles = [" ".join(by_id[arxiv_id].split()) for arxiv_id in data.ids]
    fired = [rules.fired_all(title) for title in titles]
    print("core tag: curated papers; title rule fires on: those / other curated / corpus papers")
    print("(if the corpus hits are true members: best precision = curated / (curated + corpus hits), best F1)")
    for tag in classify.CORE_TAGS:
        positives = sum(tag in tags for tags in data.tags)
        hits = [i for i, f in enumerate(fired) if tag in f]
        own = sum(tag in data.tags[i] for i in hits)
        other = sum(not data.stream[i] and tag not in data.tags[i] for i in hits)
        corpus = [i for i in hits if data.stream[i]]
        if not positives:
            print(f"{tag:14s} no curated papers")
            continue
        bound = positives / (positives + len(corpus))
        print(
            f"{tag:14s} {positives:4d}; fires on {own:3d} / {other:3d} / {len(corpus):4d}"
            f"   (P <= {bound:.2f}, F1 <= {2 * bound / (1 + bound):.2f})"
        )
        if show_titles:
            for i in corpus:
                print(f"      {data.ids[i]}  {titles[i][:110]}")


if __name__ == "__main__":
    main()
