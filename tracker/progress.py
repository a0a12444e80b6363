"""A one-line progress display on stderr (count, rate, ETA) for long runs, silent when stderr is not a terminal.

Cron mails whatever a job prints, so the display exists only on a terminal; `for_terminal()` returns
None elsewhere and callers skip the updates.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


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
        self.started = time.monotonic()
        self._shown = 0.0
        self._width = 0

    def update(self, fraction: float, count: int, note: str = "", *, force: bool = False) -> None:
        """Show progress: `fraction` of the work done (0..1), `count` items so far, and a short note."""
        now = time.monotonic()
        if not force and now - self._shown < self.interval:
            return
        self._shown = now
        elapsed = now - self.started
        rate = count / elapsed if elapsed > 0 else 0.0
        fraction = min(max(fraction, 0.0), 1.0)
        eta = _duration(elapsed * (1 - fraction) / fraction) if 0 < fraction < 1 else "--"
        line = (
            f"{self.label} {fraction * 100:5.1f}% {count:,} {self.unit} {rate:,.0f}/s ETA {eta} {note}".rstrip()
        )
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        """End the progress line so later output starts on a fresh line."""
        if self._width:
            self.stream.write("\n")
            self.stream.flush()


def for_terminal(label: str, unit: str = "records") -> TerminalProgress | None:
    """A TerminalProgress when stderr is a terminal, else None (quiet under cron and in pipes)."""
    return TerminalProgress(label, unit=unit) if sys.stderr.isatty() else None
