"""The owner opens the dashboard on a tablet, reads the month and follows a figure to its report."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def practice(live_server: Any) -> Any:
    """A small believable practice (the demo seed, through the real services)."""
    done = live_server.cli("seed-demo", "--clients", "12")
    assert done.returncode == 0, done.stderr
    return live_server


def test_owner_reads_the_dashboard_and_opens_the_report_behind_a_figure(
    tablet: Page,
    practice: Any,
    sign_in: Callable[..., None],
    screenshot: Callable[[str], Path],
) -> None:
    sign_in(tablet, practice.username, practice.password)
    tablet.goto("/")

    expect(tablet.get_by_role("heading", name="Dashboard")).to_be_visible()
    for testid in ("received-today", "overdue", "to-collect", "received-month", "owed", "credit"):
        expect(tablet.get_by_test_id(testid)).to_be_visible()
    chart = tablet.locator("#chart-dashboard svg[role=img]")
    expect(chart).to_be_visible()
    assert chart.locator("rect.bar").count() == 12
    # The chart's values are text too, for screen readers and print.
    expect(tablet.locator("#chart-dashboard .chart-data table tbody tr")).to_have_count(12)
    # Nothing spills sideways on a tablet.
    assert tablet.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert screenshot("dashboard").stat().st_size > 0

    tablet.get_by_test_id("owed").click()
    expect(tablet).to_have_url(re.compile(r"/charges\?status=unpaid$"))
    tablet.go_back()
    tablet.get_by_test_id("received-month").click()
    expect(tablet.get_by_role("heading", name="Money received")).to_be_visible()
    assert screenshot("received").stat().st_size > 0
