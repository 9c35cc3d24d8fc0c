"""The admin's charts, drawn on the server as SVG bars: jobs per minute on the stats and
metrics pages, and the metrics page's histograms.

Failures get a strip of their own under the processed bars, on their own scale: on one
scale, a minute with one failure among a hundred jobs would be a sliver no one sees. The
strips are stretched to the page's width, so their labels are HTML around them, readable at
any size, and never text inside the SVG.
"""

from dataclasses import dataclass
from datetime import datetime

from blog.job_stats import Minute

WIDTH = 600  # the SVG's own units; the page stretches it
PROCESSED_HEIGHT = 120
FAILED_HEIGHT = 40
MIN_HEIGHT = 2  # a minute with any job gets at least this, so that it never vanishes


@dataclass
class Bar:
    x: float
    width: float
    height: float  # in the strip's units; the bar stands on the strip's bottom edge
    label: str


@dataclass
class Strip:
    """One row of bars, one a minute, on a scale from 0 to ``top`` jobs a minute."""

    bars: list[Bar]
    top: int
    height: int
    width: int = WIDTH


@dataclass
class Mark:
    """A vertical line across a strip: a deploy, on the metrics page."""

    x: float
    label: str


@dataclass
class Chart:
    processed: Strip
    failed: Strip


def round_up(count: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, 100 ... that is at least ``count``."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= count:
                return step * scale
        scale *= 10


def bars(counts: list[int], labels: list[str], height: int) -> Strip:
    """A strip of one bar per count, side by side, each with its label."""
    top = round_up(max(counts))
    slot = WIDTH / len(counts)
    return Strip(
        [
            Bar(
                x=i * slot + 1,
                width=slot - 2,
                height=max(height * count / top, MIN_HEIGHT) if count else 0,
                label=label,
            )
            for i, (count, label) in enumerate(zip(counts, labels, strict=True))
        ],
        top,
        height,
    )


def strip(minutes: list[Minute], field: str, height: int) -> Strip:
    labels = [f"{m.start:%H:%M} UTC: {m.processed} processed, {m.failed} failed" for m in minutes]
    return bars([getattr(m, field) for m in minutes], labels, height)


def per_minute(minutes: list[Minute]) -> Chart:
    return Chart(
        processed=strip(minutes, "processed", PROCESSED_HEIGHT),
        failed=strip(minutes, "failed", FAILED_HEIGHT),
    )


def marks(events: list[tuple[datetime, str]], start: datetime, end: datetime) -> list[Mark]:
    """Where each event falls on a chart from ``start`` to ``end``; those outside are left out."""
    span = (end - start).total_seconds()
    return [
        Mark(WIDTH * (moment - start).total_seconds() / span, label)
        for moment, label in events
        if start <= moment <= end
    ]
