"""Browser fixtures: the real app under uvicorn, and Debian's Chromium driven by Playwright.

- ``live_server`` (per module): a fresh migrated SQLite database, the app served
  by ``python -m uvicorn`` in a subprocess, an admin from ADMIN_USER /
  ADMIN_PASS_HASH. ``live_server.create_user(...)`` adds logins through the CLI.
- ``tablet`` (per test, twice: 1024x768 and 768x1024): a fresh browser page
  whose relative URLs go to the live server.
- ``sign_in(page, username, password)`` and ``screenshot(name)`` helpers.

Playwright's sync API is used from plain ``def`` tests: while it is active the
thread counts as running an event loop, so e2e tests must not be ``async`` nor
use the async fixtures (``client``, ``maker``…). The browser lives for one
module, which keeps it away from the async tests of other modules.
Browsers are never downloaded: Debian's /usr/bin/chromium is used, or the tests
are skipped (CI=true: failed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.auth.services import hash_password
from tests.conftest import free_port, wait_for_health

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORTS = {"1024x768": (1024, 768), "768x1024": (768, 1024)}
ADMIN_USER = "admin"
DEFAULT_PASSWORD = "correct horse battery"  # the same default as the make_user fixture
IN_CI = os.environ.get("CI", "").strip().lower() == "true"


@dataclass
class LiveServer:
    """The app as a browser sees it: a real uvicorn process on 127.0.0.1."""

    url: str
    database_url: str
    username: str
    password: str
    data_dir: Path
    env: dict[str, str] = field(repr=False)
    log: Path = field(repr=False)

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Run ``python -m app ARGS`` against this server's database."""
        return subprocess.run(
            [sys.executable, "-m", "app", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=120,
            check=False,
        )

    def create_user(
        self,
        username: str,
        role: str,
        password: str = DEFAULT_PASSWORD,
        display_name: str | None = None,
    ) -> None:
        """Create a login with ``python -m app users create`` (password on standard input)."""
        args = ["users", "create", username, "--role", role]
        if display_name:
            args += ["--name", display_name]
        done = self.cli(*args, stdin=password + "\n")
        assert done.returncode == 0, f"users create failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[LiveServer]:
    """A fresh migrated SQLite database and the app served by uvicorn, for one test module."""
    data_dir = tmp_path_factory.mktemp("live")
    db_path = data_dir / "saldo.db"
    shutil.copyfile(sqlite_template, db_path)
    database_url = f"sqlite+aiosqlite:///{db_path}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SALDO_", "SMTP_", "ADMIN_"))
        and key not in {"DATABASE_URL", "SECRET_KEY", "SLOW_QUERY_MS"}
    }
    env.update(
        DATABASE_URL=database_url,
        SALDO_DATA_DIR=str(data_dir),
        SECRET_KEY="e2e-secret-" + os.urandom(8).hex(),
        ADMIN_USER=ADMIN_USER,
        ADMIN_PASS_HASH=hash_password(DEFAULT_PASSWORD),
        PYTHONUNBUFFERED="1",
    )
    log = data_dir / "server.log"
    for attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "app.main:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_health(url, process, log)
            break
        except RuntimeError:
            process.kill()
            process.wait()
            if attempt == 2 or "address already in use" not in log.read_text().lower():
                raise
    server = LiveServer(
        url=url,
        database_url=database_url,
        username=ADMIN_USER,
        password=DEFAULT_PASSWORD,
        data_dir=data_dir,
        env=env,
        log=log,
    )
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; never a downloaded browser."""
    if not CHROMIUM.exists():
        reason = f"[no-chromium] {CHROMIUM} not found: install Debian's chromium"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: missing tools fail the run)", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Kept on the item so that ``tablet`` can save a screenshot of a failed test.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _artifact(request: pytest.FixtureRequest, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test = request.node.name.replace("[", "-").replace("]", "").replace("/", "_")
    return ARTIFACTS / f"{test}-{name}.png"


@pytest.fixture(params=list(VIEWPORTS))
def tablet(
    request: pytest.FixtureRequest, browser: Browser, live_server: LiveServer
) -> Iterator[Page]:
    """A fresh page (own cookies) at a tablet's size, landscape and portrait."""
    width, height = VIEWPORTS[request.param]
    context = browser.new_context(
        viewport={"width": width, "height": height},
        base_url=live_server.url,
        has_touch=True,
        locale="en-US",
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        failed = getattr(request.node, "report_call", None)
        if failed is not None and failed.failed:
            page.screenshot(path=_artifact(request, "FAILED"), full_page=True)
        context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, tablet: Page) -> Callable[[str], Path]:
    """``screenshot("dashboard")``: save the tablet's page under tests/artifacts/; its path."""

    def take(name: str) -> Path:
        path = _artifact(request, name)
        tablet.screenshot(path=path, full_page=True)
        return path

    return take


@pytest.fixture
def sign_in() -> Callable[[Page, str, str], None]:
    """``sign_in(page, username, password)``: log in through the form and land on the dashboard."""

    def do(page: Page, username: str, password: str = DEFAULT_PASSWORD) -> None:
        page.goto("/login")
        page.fill("#f-username", username)
        page.fill("#f-password", password)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/login" not in url)

    return do
