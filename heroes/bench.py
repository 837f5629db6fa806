"""Benchmarks: the same task done several ways, each a function registered by `@case`, its docstring
its label, reported slowest to fastest (the shape of SQLAlchemy's examples/performance).

    heroes bench evidence     requests/s of GET /heroes/{id} with the evidence headers on and off
    run_export_bench(url, rows)   the streaming-export lesson: rows/s and peak memory of bad, bad/offset,
                              fixed, fixed/copy and the raw driver (the ceiling), each in its own process

Requests are driven straight through the ASGI app (no client, no sockets), so the figure is the
app's own cost per request and the difference is the recorder's, not the HTTP client's.
"""

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy import Engine

from heroes.config import Settings, get_settings
from heroes.db import create_db_engine
from heroes.main import create_app


@dataclass
class Case:
    name: str
    label: str
    build: Callable[[str], FastAPI]


SUITES: dict[str, list[Case]] = {}


def case(suite: str):
    def register(build: Callable[[str], FastAPI]) -> Callable[[str], FastAPI]:
        SUITES.setdefault(suite, []).append(
            Case(build.__name__, (build.__doc__ or build.__name__).strip(), build)
        )
        return build

    return register


def _app(url: str, evidence: bool) -> FastAPI:
    settings = Settings(database_url=url, evidence=evidence)
    return create_app(settings=settings, engine=create_db_engine(settings=settings))


@case("evidence")
def evidence_on(url: str) -> FastAPI:
    """evidence on: X-Query-Count and Server-Timing on every response"""
    return _app(url, evidence=True)


@case("evidence")
def evidence_off(url: str) -> FastAPI:
    """evidence off (HEROES_EVIDENCE=false): no listeners, no middleware"""
    return _app(url, evidence=False)


async def _get(app: FastAPI, path: str) -> int:
    """One GET straight through the ASGI app; returns the status."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    status = 0

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _rate(app: FastAPI, path: str, requests: int) -> tuple[float, float]:
    """(requests per wall-clock second, CPU seconds per request: this process, every thread)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(requests):
        if (status := await _get(app, path)) != 200:
            raise RuntimeError(f"GET {path} answered {status}: is the database migrated and seeded?")
    return requests / (time.perf_counter() - started), (time.process_time() - cpu_started) / requests


@dataclass
class Result:
    case: Case
    rate: float  # requests/s, median of the rounds
    cpu: float  # CPU seconds per request, median of the rounds


def run_suite(suite: str, path: str, requests: int, rounds: int, url: str | None = None) -> list[Result]:
    """Median requests/s and CPU/request of every case, rounds interleaved so drift hits all alike."""
    url = url or get_settings().database_url
    apps = [(c, c.build(url)) for c in SUITES[suite]]
    runs: dict[str, list[tuple[float, float]]] = {c.name: [] for c, _ in apps}
    for _, app in apps:  # warm up: connections, compiled-statement cache
        asyncio.run(_rate(app, path, max(requests // 10, 10)))
    for round_ in range(rounds):
        for app_case, app in apps if round_ % 2 else apps[::-1]:  # alternate, so going first favours none
            runs[app_case.name].append(asyncio.run(_rate(app, path, requests)))
    for _, app in apps:
        app.state.engine.dispose()
    results = [
        Result(
            c, statistics.median(r for r, _ in runs[c.name]), statistics.median(u for _, u in runs[c.name])
        )
        for c, _ in apps
    ]
    return sorted(results, key=lambda result: result.rate)  # slowest first


def recorder_cost(repeat: int = 200_000) -> tuple[float, float]:
    """The evidence work alone, without the app around it: (seconds per statement, per response)."""
    import timeit

    from heroes.evidence import EvidenceMiddleware, _request_timer

    class Connection:  # what the listeners touch of a SQLAlchemy Connection
        info: dict = {}

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message) -> None:
        pass

    def respond(asgi) -> None:
        with contextlib.suppress(StopIteration):  # the coroutine finishes in one step
            asgi({"type": "http"}, None, send).send(None)

    def statement(conn=Connection()) -> None:
        _request_timer.before(conn, None, "SELECT 1", None, None, False)
        _request_timer.after(conn, None, "SELECT 1", None, None, False)

    def best(func) -> float:
        return min(timeit.repeat(func, number=repeat, repeat=5)) / repeat

    middleware = EvidenceMiddleware(app)
    return best(statement), best(lambda: respond(middleware)) - best(lambda: respond(app))


# ---- export: the streaming-export lesson's routes, and the raw driver as the ceiling -----------------


@dataclass
class ExportCase:
    name: str
    label: str
    run: Callable[["ExportTarget"], int]  # reads every row once; returns how many it read
    engines: tuple[str, ...] = ("sqlite", "postgresql")
    max_rows: int | None = None  # beyond this the case refuses (bad/offset answers 422)


EXPORT_CASES: list[ExportCase] = []


def export_case(*, engines: tuple[str, ...] = ("sqlite", "postgresql"), max_rows: int | None = None):
    def register(run: Callable[["ExportTarget"], int]) -> Callable[["ExportTarget"], int]:
        label = (run.__doc__ or run.__name__).strip()
        EXPORT_CASES.append(ExportCase(run.__name__, label, run, engines, max_rows))
        return run

    return register


@dataclass
class ExportTarget:
    """What a case runs against, in the child process: the app on the scratch database, its engine."""

    app: FastAPI
    engine: Engine
    format: str

    def download(self, variant: str) -> int:
        """GET the lesson's variant through the ASGI app, dropping the body as it comes; returns rows."""
        path = f"/lessons/streaming-export/{variant}"
        status, lines = asyncio.run(_download(self.app, path, f"format={self.format}"))
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        return lines - (self.format == "csv")  # the CSV header row is not a hero


async def _download(app: FastAPI, path: str, query: str) -> tuple[int, int]:
    """(status, lines) of a GET served in-process; chunks are counted and dropped, never kept."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    status, lines, sent = 0, 0, False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # a client that keeps listening until the body ends
        sent = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status, lines
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            lines += bytes(message.get("body", b"")).count(b"\n")

    await app(scope, receive, send)
    return status, lines


@export_case()
def bad(target: ExportTarget) -> int:
    """bad: .all() as ORM objects, then the whole document in memory"""
    return target.download("bad")


@export_case(max_rows=100_000)
def bad_offset(target: ExportTarget) -> int:
    """bad/offset: streamed, by OFFSET pages of 1000"""
    return target.download("bad/offset")


@export_case()
def fixed(target: ExportTarget) -> int:
    """fixed: streamed from a server-side cursor (yield_per), a generator owning its session"""
    return target.download("fixed")


@export_case()
def fixed_copy(target: ExportTarget) -> int:
    """fastest: the database writes the lines (PostgreSQL COPY TO STDOUT; SQLite json_object)"""
    return target.download("fixed/copy")


@export_case()
def raw_driver(target: ExportTarget) -> int:
    """ceiling: the driver's cursor, rows as tuples, fetchmany(2000); no ORM, no HTTP, no lines"""
    from heroes.export import BATCH, COLUMNS

    connection = target.engine.raw_connection()
    try:
        postgres = target.engine.dialect.name == "postgresql"
        cursor = connection.driver_connection.cursor(**({"name": "bench"} if postgres else {}))
        cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM hero ORDER BY id")  # server-side on PostgreSQL
        rows = 0
        while batch := cursor.fetchmany(BATCH):
            rows += len(batch)
        cursor.close()
        return rows
    finally:
        connection.rollback()
        connection.close()


@export_case(engines=("postgresql",))
def raw_copy(target: ExportTarget) -> int:
    """ceiling for COPY: the driver reads COPY ... TO STDOUT and drops the bytes; no HTTP"""
    from heroes.export import _COPY

    connection = target.engine.raw_connection()
    try:
        blocks = 0
        with connection.driver_connection.cursor() as cursor, cursor.copy(_COPY[target.format]) as copy:
            for _block in copy:  # libpq hands COPY data over one row per block
                blocks += 1
        return blocks - (target.format == "csv")
    finally:
        connection.rollback()
        connection.close()


@dataclass
class ExportResult:
    case: str
    label: str
    engine: str
    rows: int
    seconds: float | None  # best untraced run (the first is cold, so up to 100,000 rows a second runs)
    rows_per_second: float | None
    rss_growth_bytes: int | None  # resident memory high-water mark minus resident memory before: C included
    traced_peak_bytes: int | None  # tracemalloc's peak during a run: Python allocations only
    refused: str | None = None  # why the case did not run at this size


def _status_kib(field: str) -> int | None:
    """VmRSS / VmHWM of this process in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_rss_peak() -> bool:
    """Linux: reset this process's resident high-water mark (VmHWM), so the next peak is the run's own."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _export_child(arguments: str) -> None:
    """In a fresh process: run one case on the scratch database and print its figures as JSON."""
    import json
    import tracemalloc

    args = json.loads(arguments)
    settings = Settings(database_url=args["url"])
    engine = create_db_engine(settings=settings, search_path=args["schema"])
    target = ExportTarget(create_app(settings=settings, engine=engine), engine, args["format"])
    run = next(c for c in EXPORT_CASES if c.name == args["case"]).run
    with engine.connect():  # the pool's first connection is not the export's cost
        pass
    rss = None
    can_reset = _reset_rss_peak()
    before = _status_kib("VmRSS")
    times = []
    started = time.perf_counter()
    rows = run(target)  # the first run, cold: its resident-memory peak is the honest one
    times.append(time.perf_counter() - started)
    if can_reset and before is not None:
        rss = (_status_kib("VmHWM") or 0) - before
    if args["rows"] <= 100_000:  # small tables: a warm run too, so the first request's set-up is not timed
        started = time.perf_counter()
        run(target)
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    run(target)
    traced = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    engine.dispose()
    if rows != args["rows"]:
        raise RuntimeError(f"{args['case']} read {rows} rows, expected {args['rows']}")
    print(json.dumps({"seconds": min(times), "rss": rss, "traced": traced}))


_CHILD = "import sys; from heroes.bench import _export_child; _export_child(sys.argv[1])"


def run_export_bench(
    url: str | None = None, rows: int = 10_000, format: str = "ndjson", cases: list[str] | None = None
) -> list[ExportResult]:
    """Every export case on a scratch database of `rows` heroes, each in its own process; slowest first.

    The scratch database is the lesson's own (`heroes.lessons.streaming_export.scratch`), built once
    and dropped at the end; DATABASE_URL's data is not touched.
    """
    import json
    import subprocess
    import sys

    from heroes.lab import Lab
    from heroes.lessons.streaming_export import scratch

    url = url or get_settings().database_url
    settings = Settings(database_url=url)
    main = create_db_engine(settings=settings)
    lab = Lab(main, settings)
    dialect = main.dialect.name
    results = []
    try:
        engine = scratch(lab, rows)
        scratch_url = engine.url.render_as_string(hide_password=False)
        schema = None
        if dialect == "postgresql":
            with engine.connect() as connection:
                schema = connection.exec_driver_sql("SELECT current_schema()").scalar()
        for c in EXPORT_CASES:
            if dialect not in c.engines or (cases and c.name not in cases):
                continue
            result = ExportResult(c.name, c.label, dialect, rows, None, None, None, None)
            if c.max_rows is not None and rows > c.max_rows:
                result.refused = f"refuses more than {c.max_rows:,} rows"
                results.append(result)
                continue
            arguments = {"case": c.name, "url": scratch_url, "schema": schema, "rows": rows, "format": format}
            child = subprocess.run(
                [sys.executable, "-c", _CHILD, json.dumps(arguments)], capture_output=True, text=True
            )
            if child.returncode != 0:
                raise RuntimeError(f"export case {c.name} failed:\n{child.stderr[-2000:]}")
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            result.seconds = figures["seconds"]
            result.rows_per_second = rows / figures["seconds"]
            result.rss_growth_bytes = figures["rss"]
            result.traced_peak_bytes = figures["traced"]
            results.append(result)
    finally:
        lab.close()
        main.dispose()
    return sorted(results, key=lambda r: r.rows_per_second or 0)  # slowest first, refused before them
