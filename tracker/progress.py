"""A one-line progress display on stderr (count, rate, ETA) for long runs, silent when stderr is not a terminal.

Cron mails whatever a job prints, so the display exists only on a terminal; `for_terminal()` returns
None elsewhere and callers skip the updates.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    """Where a long run reports how far it got: the one progress type sync, backfill and classify take.

    `fraction` is the share of the work done (0..1; 0 while the total is unknown), `count` the items so far
    and `note` what the run is doing; `force` shows the update even if the last one was moments ago.
    """

    def update(self, fraction: float, count: int, note: str = "", *, force: bool = False) -> None: ...


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class TerminalProgress:
    """Rewrites one stderr line at most every `interval` seconds: done fraction, count, rate, ETA."""

    def __init__(
        self, label: str, stream: TextIO | None = None, interval: float = 0.5, unit: str = "records"
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.interval = interval
        # The clock starts at the first update, not at creation: a bar made before an earlier step
        # finishes (classify's "similar" after its tagging) must not count that step in its rate.
        self.started: float | None = None
        self._shown = 0.0
        self._width = 0

    def update(self, fraction: float, count: int, note: str = "", *, force: bool = False) -> None:
        """Show progress: `fraction` of the work done (0..1), `count` items so far, and a short note."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if not force and now - self._shown < self.interval:
            return
        self._shown = now
        elapsed = now - self.started
        rate = count / elapsed if elapsed > 0 else 0.0
        fraction = min(max(fraction, 0.0), 1.0)
        eta = _duration(elapsed * (1 - fraction) / fraction) if 0 < fraction < 1 else "--"
        line = f"{self.label} {fraction * 100:5.1f}% {count:,} {self.unit} {rate:,.0f}/s ETA {eta} {note}".rstrip()
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        """End the progress line so later output starts on a fresh line (once: closing again is a no-op)."""
        if self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


class StatusLine:
    """A Progress that shows only the note, rewritten in place: for steps whose total is unknown (sync)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def update(self, fraction: float, count: int, note: str = "", *, force: bool = False) -> None:
        self.stream.write(f"\r\033[K{note}")
        self.stream.flush()


def for_terminal(label: str, unit: str = "records") -> TerminalProgress | None:
    """A TerminalProgress when stderr is a terminal, else None (quiet under cron and in pipes)."""
    return TerminalProgress(label, unit=unit) if sys.stderr.isatty() else None


def status_line() -> StatusLine | None:
    """A StatusLine when stderr is a terminal, else None."""
    return StatusLine() if sys.stderr.isatty() else None
