"""The stats page's chart of jobs per minute, drawn on the server as SVG bars."""

from dataclasses import dataclass

from blog.job_stats import Minute

WIDTH = 600
HEIGHT = 150


@dataclass
class Bar:
    x: float
    width: float
    processed: float  # heights, in the chart's units
    failed: float
    label: str


@dataclass
class Chart:
    bars: list[Bar]
    top: int  # the count at the top of the chart
    width: int = WIDTH
    height: int = HEIGHT


def round_up(count: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, 100 ... that is at least ``count``."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= count:
                return step * scale
        scale *= 10


def per_minute(minutes: list[Minute]) -> Chart:
    top = round_up(max(m.processed for m in minutes))
    slot = WIDTH / len(minutes)
    bars = [
        Bar(
            x=i * slot + 1,
            width=slot - 2,
            processed=HEIGHT * m.processed / top,
            failed=HEIGHT * m.failed / top,
            label=f"{m.start:%H:%M} UTC: {m.processed} processed, {m.failed} failed",
        )
        for i, m in enumerate(minutes)
    ]
    return Chart(bars, top)
