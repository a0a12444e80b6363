"""Reports as text for the CLI: a training report, an explanation, an evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracker.classify.evaluation import CORE_TAGS, OTHER_MODEL_TAGS

if TYPE_CHECKING:
    from tracker.classify.explain import Explanation
    from tracker.classify.modelfile import TrainReport


def render_train(report: TrainReport) -> str:
    lines = [
        f"trained model {report.model_id} on {report.papers} papers in {report.seconds:.1f}s -> {report.model_path}",
        f"{'tag':15} {'support':>7} {'P':>5} {'R':>5} {'F1':>5} {'threshold':>9}   (inner cross-validation)",
    ]
    for tag, m in report.cv.items():
        name = "MLLM relevance" if tag == "relevance" else tag
        lines.append(
            f"{name:15} {m['support']:>7} {m['precision']:>5.2f} {m['recall']:>5.2f} {m['f1']:>5.2f} {m['threshold']:>9.3f}"
        )
    return "\n".join(lines)


def render_explanation(e: Explanation) -> str:
    lines = [f"{e.arxiv_id}  {e.title}", f"model {e.model_id}"]
    carried = ", ".join(f"{t['tag']} ({t['source']} {t['score']:.2f})" for t in e.tags) or "none"
    lines.append(f"tags: {carried}")
    verdict = "MLLM work" if e.relevance >= e.relevance_threshold else "not MLLM work"
    lines.append(f"MLLM relevance: {e.relevance:.3f} vs threshold {e.relevance_threshold:.3f} ({verdict})")
    lines.append("  up:   " + (", ".join(f"{t} (+{c:.3f})" for t, c in e.relevance_terms) or "-"))
    for x in e.model:
        above = x.score >= x.threshold
        verdict = (
            "TAGGED" if above and not x.blocked else f"not tagged: {x.blocked}" if above else "near miss"
        )
        if x.tag in e.manual:  # a person's label wins over the model: say so next to the model's view
            side = "above" if above else "below"
            person = "added" if e.manual[x.tag] == "add" else "removed"
            verdict = f"model: {side}; a person {person} this tag: {'TAGGED' if person == 'added' else 'NOT TAGGED'}"
        lines.append(f"\n{x.tag}: score {x.score:.3f} vs threshold {x.threshold:.3f} ({verdict})")
        lines.append("  up:   " + (", ".join(f"{t} (+{c:.3f})" for t, c in x.up) or "-"))
        lines.append("  down: " + (", ".join(f"{t} ({c:.3f})" for t, c in x.down) or "-"))
    if e.rules:
        lines.append("\nrules fired:")
        lines += [f"  {tag}: {', '.join(found)}" for tag, found in e.rules.items()]
    if e.systems:
        lines.append("\nnamed systems:")
        lines += [f"  {name} -> {tag} (rule named-system:{name})" for tag, name in e.systems]
    if e.manual:
        lines.append("\nmanual labels: " + ", ".join(f"{a} {t}" for t, a in e.manual.items()))
    return "\n".join(lines)


def render_evaluation(report: dict[str, Any]) -> str:
    systems = report["systems"]
    names = {"product": "tracker", "keyword": "keyword OR-query", "tfidf_svc": "TF-IDF + LinearSVC"}
    lines = [
        f"{report['folds']}-fold cross-validation on {report['labelled']} labelled papers + {report['stream']} "
        f"unlabelled corpus papers (negatives), {report['seconds']}s",
        "",
        f"{'tag':15} {'support':>7}  " + "  ".join(f"{names[s]:>20}" for s in systems),
        f"{'':15} {'':>7}  " + "  ".join(f"{'P    R    F1':>20}" for _ in systems),
    ]
    for tag in report["tags"]:
        cells = []
        for s in systems:
            m = systems[s]["per_tag"][tag]
            cells.append(f"{m['precision']:.2f} {m['recall']:.2f} {m['f1']:.2f}".rjust(20))
        support = systems["product"]["per_tag"][tag]["support"]
        lines.append(f"{tag:15} {support:>7}  " + "  ".join(cells))
    lines.append("")
    for key, title in (
        ("macro_f1", "macro-F1 (core tags)"),
        ("macro_f1_other", "macro-F1 (alignment..)"),
        ("micro_f1", "micro-F1 (core tags)"),
        ("micro_precision", "micro-precision (core)"),
        ("micro_recall", "micro-recall (core)"),
        ("no_core_tagged", "no-core papers tagged"),
        ("stream_tagged", "unread corpus tagged"),
    ):
        lines.append(f"{title:24}" + "  ".join(f"{systems[s][key]:>20.3f}" for s in systems))
    rel = report["relevance"]
    lines.append(
        f"MLLM relevance score: precision {rel['precision']:.3f}, recall {rel['recall']:.3f}, F1 {rel['f1']:.3f}"
        f" ({rel['support']} MLLM papers)"
    )
    lines.append(f"core tags: {', '.join(CORE_TAGS)}; alignment..: {', '.join(OTHER_MODEL_TAGS)}")
    return "\n".join(lines)
