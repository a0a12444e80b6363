"""The digest's trend picture: papers per week for each tag, drawn as small multiples into a PNG.

matplotlib runs with the Agg backend (no display on a server; cron has none). Only this module
imports matplotlib, and only when a chart is drawn, so commands without a chart stay quick to start.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import date

MAX_PANELS = 16  # beyond this the panels get too small to read in a 600-px mail column
COLUMNS = 3
TITLE_CHARS = 26


def render_trend_png(mondays: Sequence[date], series: Sequence[tuple[str, Sequence[int]]]) -> bytes:
    """One small bar chart per (title, weekly counts); the last bar (the digest's week) is highlighted.

    All panels are drawn in one Axes as one PolyCollection: a grid of real subplots costs ~50 ms per
    panel in matplotlib's layout machinery, and the digest of a 10,000-paper week must stay under 2 s.
    """
    # The object API with the Agg canvas: no pyplot, so no global figure state and a lighter import.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    panels = list(series)[:MAX_PANELS]
    if not panels:
        raise ValueError("no series to draw")
    rows = math.ceil(len(panels) / COLUMNS)
    fig = Figure(figsize=(6.4, 0.95 * rows + 0.35), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.01, 0.02, 0.98, 1 - 0.35 / (0.95 * rows + 0.35) - 0.02))
    ax.set_xlim(0, COLUMNS)
    ax.set_ylim(0, rows)
    ax.axis("off")
    weeks = len(mondays)
    step = 0.86 / max(weeks, 1)
    polygons, colours, baselines = [], [], []
    for i, (title, counts) in enumerate(panels):
        x0, y0 = i % COLUMNS + 0.04, rows - 1 - i // COLUMNS + 0.12
        top = max(counts, default=0)
        for j, count in enumerate(counts):
            height = 0.5 * count / top if top else 0.0
            left = x0 + j * step
            polygons.append(
                [(left, y0), (left + step * 0.8, y0), (left + step * 0.8, y0 + height), (left, y0 + height)]
            )
            colours.append("#0b57d0" if j == len(counts) - 1 else "#9ab8e6")
        baselines.append([(x0, y0), (x0 + 0.88, y0)])
        short = title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…"
        this_week = counts[-1] if counts else 0
        ax.text(x0, y0 + 0.62, f"{short}: {this_week}", fontsize=7.5, va="bottom", color="#1f2328")
        ax.text(x0 + 0.88, y0 + 0.5, f"max {top}", fontsize=6, ha="right", va="bottom", color="#59636e")
    ax.add_collection(PolyCollection(polygons, facecolors=colours, edgecolors="none"))
    ax.add_collection(
        PolyCollection(baselines, closed=False, facecolors="none", edgecolors="#999999", linewidths=0.6)
    )
    span = f"{mondays[0]:%d %b} – {mondays[-1]:%d %b %Y}" if mondays else ""
    fig.text(0.01, 0.985, f"Papers per week, {weeks} weeks ({span}); this week dark", fontsize=8, va="top")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
