"""Server-drawn charts: round axis steps, bars in proportion, nothing drawn below zero."""

from __future__ import annotations

from app.reports.charts import HEIGHT, bar_chart, nice_step


def test_axis_steps_are_round_amounts_that_cover_the_top() -> None:
    assert nice_step(0) == 100  # an empty chart still has a 1.00 step
    assert nice_step(40_000) == 10_000  # 400.00 in 4 steps of 100.00
    assert nice_step(41_000) == 20_000
    assert nice_step(1_234_567) == 500_000
    for top in (1, 99, 12_345, 999_999, 7_000_001):
        assert nice_step(top) * 4 >= top


def test_bars_are_in_proportion_and_grouped_by_category() -> None:
    series = [("Billed", [40_000, 20_000]), ("Received", [10_000, -5_000])]
    chart = bar_chart("Billed and received", ["Jan", "Feb"], series)
    billed_jan, billed_feb, got_jan, got_feb = chart.bars
    assert billed_jan.height == 2 * billed_feb.height
    assert got_jan.height * 4 == billed_jan.height
    assert got_feb.height == 0 and got_feb.value_cents == -5_000  # the table keeps the real value
    assert billed_jan.x < got_jan.x < billed_feb.x < got_feb.x
    assert all(b.y + b.height == chart.baseline for b in chart.bars)
    assert chart.baseline < HEIGHT
    assert chart.ticks[0].label.startswith("$0")
    assert not chart.empty
    assert bar_chart("Nothing", ["Jan"], [("Received", [0])]).empty
