"""Bar charts drawn on the server as SVG geometry: no script, prints as it shows.

``bar_chart`` turns labelled values (integer cents, one or more series) into
rectangles, axis ticks and labels in a fixed viewBox; the template
``reports/_chart.html`` draws them and puts the same values in a table beside
the picture for screen readers and print.
"""

from __future__ import annotations

from dataclasses import dataclass

from babel.numbers import format_compact_currency

from app.web import i18n

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 40  # room for the value axis and the category labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int  # which series (colour) it belongs to
    label: str  # category label, for the bar's tooltip
    value_cents: int


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    categories: list[str]
    short: list[tuple[str, str]]  # the axis labels: (line 1, line 2) under each category
    series: list[str]
    values: list[list[int]]  # values[series][category], cents
    bars: list[Bar]
    ticks: list[Tick]
    label_x: list[float]  # centre of each category
    baseline: float
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def empty(self) -> bool:
        return not any(any(v) for v in self.values)


def nice_step(top_cents: int, steps: int = 4) -> int:
    """A round step (1, 2 or 5 × 10ⁿ whole units) so that ``steps`` of them cover ``top_cents``."""
    raw = max(top_cents, 100) / steps
    magnitude = 100
    while magnitude * 10 <= raw:
        magnitude *= 10
    for factor in (1, 2, 5, 10):
        if magnitude * factor >= raw:
            return magnitude * factor
    return magnitude * 10  # pragma: no cover - the loop always returns


def _tick_label(cents: int) -> str:
    fmt = i18n.current()
    return format_compact_currency(
        cents / 100, fmt.currency, locale=fmt.locale, fraction_digits=1
    ).replace(".0", "")


def bar_chart(
    title: str,
    categories: list[str],
    series: list[tuple[str, list[int]]],
    steps: int = 4,
    short: list[tuple[str, str]] | None = None,
) -> Chart:
    """Grouped vertical bars: one group per category, one bar per series in each group.

    ``short`` are the axis labels when the categories' names are too long for it.

    Negative values (a month of reversals) are drawn as zero-height bars; their
    real value stays in the table beside the chart.
    """
    names = [name for name, _values in series]
    values = [list(vals) for _name, vals in series]
    top = max((v for vals in values for v in vals), default=0)
    step = nice_step(top, steps)
    scale_top = step * steps
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_h
    group_w = plot_w / max(len(categories), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    bars = []
    for s, vals in enumerate(values):
        for c, value in enumerate(vals):
            h = plot_h * max(value, 0) / scale_top
            x = LEFT + c * group_w + group_w * 0.1 + s * bar_w
            bars.append(
                Bar(
                    round(x, 1),
                    round(baseline - h, 1),
                    round(bar_w, 1),
                    round(h, 1),
                    s,
                    categories[c],
                    value,
                )
            )
    ticks = [
        Tick(round(baseline - plot_h * i / steps, 1), _tick_label(step * i))
        for i in range(steps + 1)
    ]
    label_x = [round(LEFT + (c + 0.5) * group_w, 1) for c in range(len(categories))]
    axis = short or [(c, "") for c in categories]
    return Chart(title, categories, axis, names, values, bars, ticks, label_x, baseline)
