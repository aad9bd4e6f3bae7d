"""Statement documents: the PDF (WeasyPrint), the CSV, and all statements of a month as a ZIP.

A PDF is rendered from plain data (a ``Statement`` dataclass and the practice's
letterhead), never from ORM objects, so the same function runs in a thread for
one download and in worker processes for a month's ZIP. WeasyPrint is imported
only when a PDF is rendered, and the fetcher it gets serves the app's own
static files and nothing else: no ``file://``, no network.

Long jobs (a month's ZIP, e-mailing a month's statements) are ``DocumentJob``
rows: the worker that runs one writes its progress and result to the database,
so any worker can show the progress and serve the download.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import io
import logging
import mimetypes
import multiprocessing
import os
import threading
import time
import urllib.request
import zipfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

from jinja2 import Environment
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.services import PracticeSettings
from app.auth.models import User
from app.clients.models import Client
from app.collecting.services import month_bounds, month_name
from app.config import ROOT
from app.db import begin_write, write_session
from app.exports import csvfmt
from app.ledger.models import Entry
from app.statements.models import DocumentJob
from app.statements.services import Statement, statement
from app.web import i18n
from app.web.i18n import Formatting, _
from app.web.templating import build_environment

log = logging.getLogger("saldo.documents")

T = TypeVar("T")

STATIC_DIR = ROOT / "static"
# The PDF's HTML resolves relative URLs against this address, which is never
# fetched: the fetcher maps ``/static/…`` under it to STATIC_DIR and refuses the rest.
BASE_URL = "https://saldo.invalid/"
PDF_STYLESHEET = "/static/css/statement-pdf.css"
# WeasyPrint's own user-agent stylesheet cut down to what a statement uses (see _html_class).
PDF_USER_AGENT = "/static/css/statement-pdf-ua.css"
PDF_THREADS = 2  # single PDFs rendered at once by one app process

# --- what a statement document is made of -------------------------------------------------


@dataclass(frozen=True)
class Letterhead:
    """What every statement of the practice carries, and how it formats money and dates."""

    practice_name: str
    practice_address: str
    payment_instructions: str
    logo: str | None
    formatting: Formatting

    @classmethod
    def of(cls, practice: PracticeSettings) -> Letterhead:
        """The practice's letterhead, in the practice's own language (the client reads it)."""
        logo = getattr(practice, "logo", None) or None  # a setting a later issue may add
        if logo is not None and not (logo.startswith("/static/") or logo.startswith("data:image/")):
            logo = None
        return cls(
            practice_name=practice.practice_name,
            practice_address=practice.practice_address,
            payment_instructions=practice.payment_instructions,
            logo=logo,
            formatting=practice.formatting,
        )


@dataclass(frozen=True)
class StatementDocument:
    statement: Statement
    letterhead: Letterhead
    generated_at: datetime

    @property
    def number(self) -> str:
        """The same statement (client and period) always has the same number."""
        st = self.statement
        return f"{st.client_id}-{st.start:%Y%m%d}-{st.end:%Y%m%d}"

    def filename(self, extension: str) -> str:
        st = self.statement
        return (
            f"statement-{st.client_id}-{slug(st.client_name, 'client')}"
            f"-{st.start.isoformat()}-{st.end.isoformat()}.{extension}"
        )


def slug(text: str, fallback: str) -> str:
    """ASCII letters, digits and dashes only (at most 40): safe in a file name and a header."""
    return csvfmt.slug(text)[:40].strip("-") or fallback


def period_label(start: date, end: date, fmt: Formatting | None = None) -> str:
    """ "February 2026" for a whole month, otherwise "Feb 3, 2026 – Mar 10, 2026"."""
    fmt = fmt or i18n.current()
    first, nxt = month_bounds(f"{start:%Y-%m}")
    if start == first and end == nxt - timedelta(days=1):
        return month_name(f"{start:%Y-%m}", fmt.language)
    return f"{i18n.format_day(start, fmt=fmt)} – {i18n.format_day(end, fmt=fmt)}"


def kind_labels() -> dict[str, str]:
    """What a line is, when its entry has no description of its own."""
    return {
        "charge": _("Charge"),
        "payment": _("Payment"),
        "payment_reversed": _("Payment reversed"),
        "void": _("Cancelled charge"),
        "refund": _("Refund"),
    }


def in_formatting(fmt: Formatting, fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn`` with ``fmt`` as the current language and locale, leaving the caller's alone."""

    def call() -> T:
        i18n.use(fmt)
        return fn(*args)

    return contextvars.copy_context().run(call)


# --- HTML and PDF -------------------------------------------------------------------------


@cache
def environment() -> Environment:
    """The app's Jinja environment (autoescaped, gettext, money filters), one per process."""
    return build_environment()


def template_context(doc: StatementDocument) -> dict[str, Any]:
    fmt = doc.letterhead.formatting
    return {
        "doc": doc,
        "st": doc.statement,
        "letterhead": doc.letterhead,
        "period": period_label(doc.statement.start, doc.statement.end, fmt),
        "kinds": kind_labels(),
        "lang": fmt.language.replace("_", "-"),
    }


def _pdf_html(doc: StatementDocument) -> str:
    return environment().get_template("statements/pdf.html").render(template_context(doc))


def pdf_html(doc: StatementDocument) -> str:
    """The HTML WeasyPrint lays out, in the letterhead's language and locale."""
    return in_formatting(doc.letterhead.formatting, _pdf_html, doc)


class RefusedURL(ValueError):
    """The PDF asked for something that is not one of the app's static files."""


def fetch_static(url: str) -> tuple[bytes, str]:
    """The bytes and media type of the static file ``url`` names; refuses any other URL.

    Accepted: ``BASE_URL`` + ``static/…`` naming a file under STATIC_DIR, and
    ``data:`` URLs (decoded in memory). Refused: ``file://``, other hosts and
    schemes, paths that climb out of STATIC_DIR, missing files.
    """
    parts = urlsplit(url)
    if parts.scheme == "data":
        # Only the data: handler, so nothing is opened whatever the URL says.
        with urllib.request.DataHandler().data_open(urllib.request.Request(url)) as response:  # noqa: S310
            return response.read(), response.headers.get_content_type()
    base = urlsplit(BASE_URL)
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or not parts.path.startswith(
        "/static/"
    ):
        raise RefusedURL(url)
    root = STATIC_DIR.resolve()
    path = (root / unquote(parts.path.removeprefix("/static/"))).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise RefusedURL(url)
    return path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@cache
def _fetcher_class() -> type:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticFilesOnly(URLFetcher):
        """WeasyPrint's fetcher, answering from ``fetch_static`` instead of opening URLs."""

        def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
            try:
                body, media_type = fetch_static(url)
            except RefusedURL:
                log.warning("statement PDF: refused to fetch %.200s", url)
                raise
            return URLFetcherResponse(url, body, {"Content-Type": media_type})

    return StaticFilesOnly


@cache
def _html_class() -> type:
    import cssselect2
    from weasyprint import HTML

    class StatementHTML(HTML):
        """WeasyPrint's HTML, parsed by expat and styled by the statement's own UA sheet.

        Both were a sixth of a one-page render, for nothing a statement uses:

        - pdf.html is well-formed XML, which the C parser of ``xml.etree``
          reads in a tenth of a millisecond; WeasyPrint's HTML5 parser, in
          Python, took 3.6 ms. HTML that is not XML (a control character
          in a client's name) still goes to WeasyPrint's parser.
        - WeasyPrint matches its whole HTML5 sheet (forms, lists, bidi,
          presentational attributes) against every element. The statement's
          sheet holds WeasyPrint's rules for the few tags statements use.
          WeasyPrint's own tests swap their sheet the same way.

        A test lays statements out both ways and finds every box and every
        computed value the same. Statements have no form fields, so
        ``forms`` changes nothing.
        """

        def __init__(self, string: str, **options: Any) -> None:
            try:
                # Our template's output: autoescaped, so no client's text can open a
                # tag, let alone declare an entity.
                root = ElementTree.fromstring(string)  # noqa: S314
            except ElementTree.ParseError:
                super().__init__(string=string, **options)
                return
            # WeasyPrint's own set-up (base URL, fetcher, media type) on an empty
            # document, then the tree expat read in place of the one it parsed.
            super().__init__(string="", **options)
            self.wrapper_element = cssselect2.ElementWrapper.from_html_root(
                root, content_language=None
            )
            self.etree_element = self.wrapper_element.etree_element

        def _ua_stylesheets(self, forms: bool = False) -> list[Any]:
            return [_weasyprint_setup().user_agent]

    return StatementHTML


@dataclass(frozen=True)
class _Setup:
    font_config: Any
    stylesheet: Any
    user_agent: Any


_per_thread = threading.local()


def _weasyprint_setup() -> _Setup:
    """WeasyPrint's font configuration and the parsed PDF stylesheets, made once per thread.

    Reusing them saves about a third of each render; they are not shared
    between threads.
    """
    setup = getattr(_per_thread, "setup", None)
    if setup is None:
        from weasyprint import CSS
        from weasyprint.text.fonts import FontConfiguration

        fetcher = _fetcher_class()()
        font_config = FontConfiguration()
        setup = _per_thread.setup = _Setup(
            font_config=font_config,
            stylesheet=CSS(
                url=BASE_URL + PDF_STYLESHEET.removeprefix("/"),
                url_fetcher=fetcher,
                font_config=font_config,
            ),
            user_agent=CSS(url=BASE_URL + PDF_USER_AGENT.removeprefix("/"), url_fetcher=fetcher),
        )
    return setup


_gc_lock = threading.Lock()
_gc_pausers = 0


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while at least one render is running.

    A render allocates some hundred thousand layout objects; the collector
    walking them (and the whole worker heap, in its oldest generation) again
    and again took a quarter of the render time. The few cycles a render
    leaves are collected once it ends. Counted, because renders run in threads.
    """
    global _gc_pausers
    with _gc_lock:
        _gc_pausers += 1
        if _gc_pausers == 1:
            gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0:
                gc.enable()
                gc.collect(0)


def render_pdf(doc: StatementDocument) -> bytes:
    """The statement as an A4 PDF. Blocking and CPU-bound: call it off the event loop."""
    setup, fetcher = _weasyprint_setup(), _fetcher_class()()
    with _gc_paused():
        html = _html_class()(string=pdf_html(doc), base_url=BASE_URL, url_fetcher=fetcher)
        return html.write_pdf(stylesheets=[setup.stylesheet], font_config=setup.font_config)


_threads: ThreadPoolExecutor | None = None


async def pdf(doc: StatementDocument) -> bytes:
    """Render one PDF in the process's small thread pool, never on the event loop."""
    global _threads
    if _threads is None:
        _threads = ThreadPoolExecutor(max_workers=PDF_THREADS, thread_name_prefix="saldo-pdf")
    return await asyncio.get_running_loop().run_in_executor(_threads, render_pdf, doc)


_bulk_pool: ProcessPoolExecutor | None = None
_bulk_users = 0


def _warm_up() -> None:
    """Import WeasyPrint and parse the stylesheet in a new worker before its first statement."""
    _weasyprint_setup()


@contextlib.contextmanager
def bulk_renderer() -> Iterator[Executor]:
    """Worker processes, one per core, while at least one month job needs them.

    Fresh interpreters (spawn), not forks of a process running an event loop and
    database connections. The pool is shut down when the last job using it ends,
    so an idle app holds no extra processes.
    """
    global _bulk_pool, _bulk_users
    if _bulk_pool is None:
        _bulk_pool = ProcessPoolExecutor(
            max_workers=os.cpu_count() or 1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm_up,
        )
    pool = _bulk_pool
    _bulk_users += 1
    try:
        yield pool
    finally:
        _bulk_users -= 1
        if _bulk_users == 0 and _bulk_pool is pool:
            _bulk_pool = None
            pool.shutdown(wait=False, cancel_futures=True)


# --- CSV ----------------------------------------------------------------------------------

CSV_COLUMNS = ("date", "kind", "description", "charged", "credited", "balance", "currency")
# Plain numbers with a '.' decimal point and ',' between cells, UTF-8 with a BOM.
STATEMENT_CSV = csvfmt.CsvFormat()


def statement_csv(st: Statement, currency: str) -> bytes:
    """The statement as CSV: one header row, ISO dates, raw numbers, text safe from formulas.

    The first row carries the opening balance and the last the closing
    balance; in between, one row per line with what it charged or credited
    and the running balance.
    """
    fmt = STATEMENT_CSV
    labels = kind_labels()

    def row(
        day: date, kind: str, text: str, charged: str, credited: str, balance: int
    ) -> list[str]:
        return [
            csvfmt.iso(day),
            kind,
            csvfmt.safe_text(text),
            charged,
            credited,
            csvfmt.amount(balance, fmt),
            currency,
        ]

    rows = [list(CSV_COLUMNS)]
    rows.append(row(st.start, "opening_balance", _("Opening balance"), "", "", st.opening_cents))
    for line in st.lines:
        amount = line.amount_cents
        rows.append(
            row(
                line.date,
                line.kind,
                line.description or labels.get(line.kind, line.kind),
                csvfmt.amount(-amount, fmt) if amount < 0 else "",
                csvfmt.amount(amount, fmt) if amount > 0 else "",
                line.balance_cents,
            )
        )
    rows.append(row(st.end, "closing_balance", _("Closing balance"), "", "", st.closing_cents))
    return csvfmt.CsvEncoder(fmt).encode(rows)


# --- month jobs: every statement of a month -----------------------------------------------

ACTIVE_STATUSES = ("queued", "running")
PROGRESS_EVERY = 10  # statements between progress writes …
PROGRESS_SECONDS = 1.0  # … or seconds, whichever comes first
JOB_STALE_AFTER = timedelta(hours=2)  # still "running" after this: its worker went away
KEEP_FILES_FOR = timedelta(days=7)


class JobError(ValueError):
    status_code = 422


def _with_entries(month: str) -> Any:
    first, nxt = month_bounds(month)
    return (
        select(Entry.client_id)
        .where(Entry.effective_date >= first, Entry.effective_date < nxt)
        .distinct()
    )


async def active_clients(session: AsyncSession, month: str) -> list[Client]:
    """Clients with an entry dated in ``month`` (the clients a month close snapshots), by name."""
    in_month = Client.id.in_(_with_entries(month))
    return list(
        await session.scalars(select(Client).where(in_month).order_by(Client.name_key, Client.id))
    )


async def active_client_counts(session: AsyncSession, month: str) -> tuple[int, int]:
    """How many clients ``active_clients`` gives, and how many of them have an e-mail address.

    Counted in SQL: a large practice has some 13,000 clients in a month.
    """
    has_address = func.trim(func.coalesce(Client.email, "")) != ""
    counted = select(func.count(), func.count().filter(has_address)).where(
        Client.id.in_(_with_entries(month))
    )
    total, with_address = (await session.execute(counted)).one()
    return int(total), int(with_address)


def job_is_stale(job: DocumentJob, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    return job.status in ACTIVE_STATUSES and now - job.created_at > JOB_STALE_AFTER


def job_state(job: DocumentJob) -> str:
    """queued, running, done, failed — or stale: still "running" long after its worker went away."""
    return "stale" if job_is_stale(job) else job.status


def job_labels() -> tuple[dict[str, str], dict[str, str]]:
    """What each kind of job and each state is called on the pages."""
    kinds = {"zip": _("All statements as ZIP"), "email": _("All statements by e-mail")}
    states = {
        "queued": _("Waiting to start"),
        "running": _("Working"),
        "done": _("Done"),
        "failed": _("Failed"),
        "stale": _("Stopped"),
    }
    return kinds, states


async def start_job(
    session: AsyncSession, kind: str, month: str, total: int, actor: User
) -> tuple[DocumentJob, bool]:
    """A queued job for ``month`` (new: True), or the same one already under way (False).

    Also forgets the files of jobs finished more than KEEP_FILES_FOR ago, so
    the table does not grow a ZIP every month forever. Refuses a month with
    nothing to do.
    """
    if total == 0:
        if kind == "email":
            raise JobError(_("No client with entries in this month has an e-mail address."))
        raise JobError(_("No client has entries in this month."))
    now = datetime.now(UTC)
    # On SQLite the write lock from here on keeps two clicks from both starting a job.
    await begin_write(session)
    running = await session.scalar(
        select(DocumentJob)
        .where(
            DocumentJob.kind == kind,
            DocumentJob.month == month,
            DocumentJob.status.in_(ACTIVE_STATUSES),
            DocumentJob.created_at > now - JOB_STALE_AFTER,
        )
        .order_by(DocumentJob.id.desc())
        .limit(1)
    )
    if running is not None:
        await session.commit()
        return running, False
    await session.execute(
        update(DocumentJob)
        .where(DocumentJob.finished_at < now - KEEP_FILES_FOR, DocumentJob.content.is_not(None))
        .values(content=None)
    )
    job = DocumentJob(
        kind=kind,
        month=month,
        status="queued",
        total=total,
        done=0,
        created_by_id=actor.id,
        created_at=now,
    )
    session.add(job)
    await session.commit()
    return job, True


async def get_job(session: AsyncSession, job_id: int) -> DocumentJob | None:
    return await session.get(DocumentJob, job_id)


async def recent_jobs(session: AsyncSession, limit: int = 20) -> list[tuple[DocumentJob, str]]:
    """The newest jobs and who started each."""
    rows = await session.execute(
        select(DocumentJob, func.coalesce(User.display_name, ""))
        .outerjoin(User, User.id == DocumentJob.created_by_id)
        .order_by(DocumentJob.id.desc())
        .limit(limit)
    )
    return [(job, name) for job, name in rows]


async def job_file(session: AsyncSession, job_id: int) -> tuple[str, bytes] | None:
    """The finished job's file name and bytes, if it has a file still."""
    row = (
        await session.execute(
            select(DocumentJob.filename, DocumentJob.content).where(
                DocumentJob.id == job_id, DocumentJob.status == "done"
            )
        )
    ).first()
    if row is None or row.content is None:
        return None
    return row.filename or f"job-{job_id}.zip", row.content


class JobRun:
    """The running side of a job: marks it running, writes progress in batches, ends it."""

    def __init__(self, maker: async_sessionmaker[AsyncSession], job_id: int) -> None:
        self.maker = maker
        self.job_id = job_id
        self.done = 0
        self.saved = 0
        self.saved_at = time.monotonic()
        self.pending_audit: list[Callable[[AsyncSession], None]] = []

    async def _update(self, **values: Any) -> None:
        async with write_session(self.maker) as session:
            await session.execute(
                update(DocumentJob).where(DocumentJob.id == self.job_id).values(**values)
            )
            for add in self.pending_audit:
                add(session)
        self.pending_audit = []

    async def start(self, total: int) -> None:
        """Running, over ``total`` statements (who has entries may have changed since queued)."""
        await self._update(status="running", total=total)

    async def advance(self, audit: Callable[[AsyncSession], None] | None = None) -> None:
        """One more statement done; written every PROGRESS_EVERY or PROGRESS_SECONDS."""
        self.done += 1
        if audit is not None:
            self.pending_audit.append(audit)
        now = time.monotonic()
        if self.done - self.saved >= PROGRESS_EVERY or now - self.saved_at >= PROGRESS_SECONDS:
            await self._update(done=self.done)
            self.saved, self.saved_at = self.done, now

    async def finish(
        self, *, filename: str | None = None, content: bytes | None = None, error: str | None = None
    ) -> None:
        await self._update(
            status="done",
            done=self.done,
            filename=filename,
            content=content,
            error=error,
            finished_at=datetime.now(UTC),
        )

    async def fail(self, error: str) -> None:
        await self._update(status="failed", error=error[:2000], finished_at=datetime.now(UTC))


async def month_documents(
    maker: async_sessionmaker[AsyncSession],
    month: str,
    letterhead: Letterhead,
    clients: list[Client],
    pool: Executor,
) -> AsyncIterator[tuple[StatementDocument, bytes]]:
    """Each client's statement of ``month`` with its PDF, in the order the PDFs are ready.

    Statements are read on the event loop and handed to ``pool`` one by one,
    so the first PDFs are ready (and counted) while later statements are
    still being read.
    """
    loop = asyncio.get_running_loop()
    first, nxt = month_bounds(month)
    generated_at = datetime.now(UTC)
    ready: asyncio.Queue[tuple[StatementDocument, bytes] | Exception] = asyncio.Queue()
    renders: list[asyncio.Task[None]] = []

    async def render(doc: StatementDocument) -> None:
        try:
            ready.put_nowait((doc, await loop.run_in_executor(pool, render_pdf, doc)))
        except Exception as exc:
            ready.put_nowait(exc)

    async def read_statements() -> None:
        try:
            async with maker() as session:
                for client in clients:
                    st = await statement(session, client.id, first, nxt - timedelta(days=1))
                    await session.commit()  # end the read transaction between clients
                    doc = StatementDocument(st, letterhead, generated_at)
                    renders.append(asyncio.create_task(render(doc)))
        except Exception as exc:
            ready.put_nowait(exc)

    reader = asyncio.create_task(read_statements())
    try:
        for _client in clients:
            item = await ready.get()
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        reader.cancel()
        for task in renders:
            task.cancel()


async def run_zip_job(
    maker: async_sessionmaker[AsyncSession], job_id: int, letterhead: Letterhead
) -> None:
    """Render every statement of the job's month on all cores into one ZIP stored with the job."""
    run = JobRun(maker, job_id)
    try:
        async with maker() as session:
            job = await session.get(DocumentJob, job_id)
            assert job is not None
            month = job.month
            clients = await active_clients(session, month)
        await run.start(total=len(clients))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, bulk_renderer() as pool:
            async for doc, content in month_documents(maker, month, letterhead, clients, pool):
                archive.writestr(doc.filename("pdf"), content)
                await run.advance()
        filename = f"statements-{slug(letterhead.practice_name, 'practice')}-{month}.zip"
        await run.finish(filename=filename, content=buffer.getvalue())
    except Exception as exc:
        log.exception("statement ZIP job %s failed", job_id)
        await run.fail(f"{type(exc).__name__}: {exc}")


_background: set[asyncio.Task[None]] = set()


def launch(work: Coroutine[Any, Any, None], name: str) -> None:
    """Run ``work`` in the background of this worker; keep a reference until it ends."""
    task = asyncio.create_task(work, name=name)
    _background.add(task)
    task.add_done_callback(_background.discard)
