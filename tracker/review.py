"""The labelling loop of `tracker review`: show one paper at a time and turn the reader's answers into labels.

Pure: the caller passes the candidates (papers whose score lies nearest a tag's threshold, where one
answer teaches the model most), a function that asks for an answer, one that shows text, and one that
stores a label. So the loop runs the same on a terminal, on piped input and in tests.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tracker.endpoints import abs_url
from tracker.store import ReviewCandidate

# Each answer and what it means; a manual label's action is "add" or "remove" (store.save_manual_label).
ANSWERS = {
    "y": "add",
    "yes": "add",
    "n": "remove",
    "no": "remove",
    "s": "skip",
    "skip": "skip",
    "q": "quit",
    "quit": "quit",
}
WIDTH = 78


@dataclass
class ReviewCounts:
    yes: int = 0
    no: int = 0
    skipped: int = 0

    @property
    def labelled(self) -> int:
        return self.yes + self.no

    def summary(self, db_path: str) -> str:
        """The closing line: what was stored, and how the model learns from it."""
        line = f"review: {self.labelled} labelled ({self.yes} yes, {self.no} no), {self.skipped} skipped"
        return line + (f"; run tracker train {db_path} to learn from them" if self.labelled else "")


def render_candidate(c: ReviewCandidate, position: int, total: int, width: int = WIDTH) -> str:
    """A paper as the reader sees it: id, tag and score against threshold, title, current tags, abstract."""
    model_says = "tagged" if c.score >= c.threshold else "not tagged"
    head = f"[{position}/{total}] {c.arxiv_id}  {c.tag}: score {c.score:.3f} vs threshold {c.threshold:.3f} ({model_says})"
    return "\n".join(
        [
            "",
            head,
            textwrap.fill(c.title or "(no title)", width),
            abs_url(c.arxiv_id),
            f"current tags: {', '.join(c.tags) or 'none'}",
            "",
            textwrap.fill(c.abstract or "(no abstract)", width, initial_indent="  ", subsequent_indent="  "),
            "",
        ]
    )


def read_answer(c: ReviewCandidate, ask: Callable[[str], str], echo: Callable[[str], None]) -> str:
    """The answer's meaning: add, remove, skip or quit; another answer is asked again, the end of input quits."""
    prompt = f"Does {c.arxiv_id} carry {c.tag}? [y]es, [n]o, [s]kip, [q]uit:"
    while True:
        try:
            line = ask(prompt)
        except EOFError:
            return "quit"
        answer = ANSWERS.get(line.strip().lower())
        if answer:
            return answer
        echo(f"{line.strip()!r} is not an answer: type y, n, s or q")


def review(
    candidates: Sequence[ReviewCandidate],
    ask: Callable[[str], str],
    echo: Callable[[str], None],
    save: Callable[[ReviewCandidate, str], None],
    width: int = WIDTH,
) -> ReviewCounts:
    """Offer each candidate in turn and `save(candidate, "add" | "remove")` each y / n answer at once.

    :param ask: shows a prompt and returns the answer line; raises EOFError at the end of input (= quit)
    :param save: stores one manual label; called before the next paper is shown, so quitting loses nothing
    """
    counts = ReviewCounts()
    for position, c in enumerate(candidates, 1):
        echo(render_candidate(c, position, len(candidates), width))
        answer = read_answer(c, ask, echo)
        if answer == "quit":
            break
        if answer == "skip":
            counts.skipped += 1
            continue
        save(c, answer)
        if answer == "add":
            counts.yes += 1
        else:
            counts.no += 1
    return counts


def nothing_to_review(tag: str | None, scored: Sequence[str], db_path: str) -> str:
    """The one line for an empty review, saying why: nothing scored yet, a tag the model does not score, or all done."""
    what = f"nothing to review for {tag}" if tag else "nothing to review"
    if not scored:
        return f"{what}: no model scores yet; run tracker classify {db_path} first"
    if tag and tag not in scored:
        return f"{what}: the model does not score it (its rules decide it); scored tags: {', '.join(scored)}"
    return f"{what}: every paper near the threshold is already labelled by hand"
