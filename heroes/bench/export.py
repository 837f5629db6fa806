"""heroes bench export: rows/s and memory of every way to export heroes, beside the raw driver.

Every case reads all the heroes of the streaming-export lesson's scratch database once, each in a
fresh process of its own (so the memory figures are the case's):

    in-process   the lesson's routes, served through the ASGI app by heroes.lab.asgi.serve
    http         the real server (uvicorn on 127.0.0.1, one worker, a subprocess of the case's process)
                 and a client reading the whole body from the socket; memory is the server's (VmHWM)
    ceilings     the driver alone: no ORM, no lines, no HTTP

The scratch database is built once per size and dropped at the end; DATABASE_URL's data is untouched.
"""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy import Engine

from heroes import export
from heroes.bench.registry import Case, case, cases, slowest_first
from heroes.bench.server import SEARCH_PATH, Server, reset_peak, status_bytes, uvicorn_server
from heroes.config import Settings, get_settings
from heroes.db import create_db_engine
from heroes.lab.asgi import serve
from heroes.main import create_app

LESSON = "/lessons/streaming-export"


@dataclass
class ExportTarget:
    """What a case runs against, in its own process: the app on the scratch database, and its engine."""

    app: FastAPI
    engine: Engine
    format: str
    env: dict[str, str]  # what a real server needs to serve the same database
    server: Server | None = None
    seconds: float | None = None  # an HTTP case's download, timed by the client (the server's start-up not)
    server_peak: int | None = None  # the server's VmHWM after the download
    server_growth: int | None = None  # ... minus its resident memory before it
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def download(self, variant: str) -> int:
        """GET the lesson's variant through the ASGI app, counting lines and keeping none; returns rows."""
        lines = 0

        def count(chunk: bytes) -> None:
            nonlocal lines
            lines += chunk.count(b"\n")

        path = f"{LESSON}/{variant}"
        params = {"format": self.format}
        response = asyncio.run(serve(self.app, "GET", path, params=params, keep=0, on_chunk=count))
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
        return lines - (self.format == "csv")  # the CSV header row is not a hero

    def over_http(self, path: str) -> int:
        """GET `path` from the real server (started on first use), reading every byte; returns rows."""
        if self.server is None:
            app = "heroes.bench.server:lab_on_schema"
            self.server = self._stack.enter_context(uvicorn_server(app, self.env, ready_path="/health/live"))
        can_reset = self.server.reset_peak()
        before, _ = self.server.memory()
        status, lines, self.seconds = self.server.download(path, {"format": self.format})
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        _, self.server_peak = self.server.memory()
        if can_reset and before is not None and self.server_peak is not None:
            self.server_growth = self.server_peak - before
        return lines - (self.format == "csv")

    def close(self) -> None:
        self._stack.close()  # the server, if one was started


@case("export")
def bad(target: ExportTarget) -> int:
    """bad: .all() as ORM objects, then the whole document in memory"""
    return target.download("bad")


@case("export", max_size=100_000)
def bad_offset(target: ExportTarget) -> int:
    """bad/offset: streamed, by OFFSET pages of 1000"""
    return target.download("bad/offset")


@case("export")
def fixed(target: ExportTarget) -> int:
    """fixed: ORM rows from a server-side cursor (yield_per), a generator owning its session"""
    return target.download("fixed")


@case("export")
def fixed_copy(target: ExportTarget) -> int:
    """fastest: the database writes the lines, 2,000 to a row (PostgreSQL COPY; SQLite one query)"""
    return target.download("fixed/copy")


@case("export")
def http_fixed(target: ExportTarget) -> int:
    """over HTTP, the lesson's /fixed (the reference's way before): uvicorn, a client reading it all"""
    return target.over_http(f"{LESSON}/fixed")


@case("export")
def http_export(target: ExportTarget) -> int:
    """over HTTP, the reference GET /heroes/export (the fastest way): uvicorn, a client reading it all"""
    return target.over_http("/heroes/export")


@case("export")
def raw_driver(target: ExportTarget) -> int:
    """ceiling: the driver's cursor, rows as tuples, fetchmany(2000); no ORM, no HTTP, no lines"""
    connection = target.engine.raw_connection()
    try:
        postgres = target.engine.dialect.name == "postgresql"
        cursor = connection.driver_connection.cursor(**({"name": "bench"} if postgres else {}))
        cursor.execute(
            f"SELECT {', '.join(export.COLUMNS)} FROM hero ORDER BY id"
        )  # server-side on PostgreSQL
        rows = 0
        while batch := cursor.fetchmany(export.BATCH):
            rows += len(batch)
        cursor.close()
        return rows
    finally:
        connection.rollback()
        connection.close()


@case("export", engines=("postgresql",))
def raw_copy(target: ExportTarget) -> int:
    """ceiling for COPY: the driver reads the export's COPY (chunks of lines) and drops them; no HTTP"""
    connection = target.engine.raw_connection()
    try:
        rows = 0
        statement = export.COPY_STATEMENTS[target.format]
        with connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(["bytea"])
            for (chunk,) in copy.rows():
                rows += chunk.count(b"\n") if chunk else 0
        return rows
    finally:
        connection.rollback()
        connection.close()


@dataclass
class ExportResult:
    case: Case
    engine: str
    rows: int
    seconds: float | None = None  # best untraced run (the first is cold, so up to 100,000 rows a second runs)
    rows_per_second: float | None = None
    rss_growth_bytes: int | None = None  # resident high-water mark minus resident memory before: C included
    traced_peak_bytes: int | None = None  # tracemalloc's peak during a run: Python allocations only
    server_peak_bytes: int | None = None  # HTTP cases: the server process's VmHWM
    refused: str | None = None  # why the case did not run at this size


def child(arguments: str) -> None:
    """In a fresh process: run one case on the scratch database and print its figures as JSON."""
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))  # stop the server on the way
    args = json.loads(arguments)
    settings = Settings(database_url=args["url"])
    engine = create_db_engine(settings=settings, search_path=args["schema"])
    env = {"DATABASE_URL": args["url"], SEARCH_PATH: args["schema"] or ""}
    target = ExportTarget(create_app(settings=settings, engine=engine), engine, args["format"], env)
    run = next(c for c in cases("export") if c.name == args["case"]).run
    me = os.getpid()
    with engine.connect():  # the pool's first connection is not the export's cost
        pass
    try:
        can_reset = reset_peak(me)
        before = status_bytes(me, "VmRSS")
        started = time.perf_counter()
        rows = run(target)  # the first run, cold: its resident-memory peak is the honest one
        times = [target.seconds or time.perf_counter() - started]
        rss = (status_bytes(me, "VmHWM") or 0) - before if can_reset and before is not None else None
        if (
            args["rows"] <= 100_000
        ):  # small tables: a warm run too, so the first request's set-up is not timed
            started = time.perf_counter()
            run(target)
            times.append(target.seconds or time.perf_counter() - started)
        traced = None
        if target.server is None:  # in this process: tracemalloc's peak, from a third run
            tracemalloc.start()
            tracemalloc.reset_peak()
            baseline = tracemalloc.get_traced_memory()[0]
            run(target)
            traced = tracemalloc.get_traced_memory()[1] - baseline
            tracemalloc.stop()
        else:  # over HTTP: the memory that matters is the server's
            rss = target.server_growth
    finally:
        target.close()
        engine.dispose()
    if rows != args["rows"]:
        raise RuntimeError(f"{args['case']} read {rows} rows, expected {args['rows']}")
    figures = {"seconds": min(times), "rss": rss, "traced": traced, "server_peak": target.server_peak}
    print(json.dumps(figures))


_CHILD = "import sys; from heroes.bench.export import child; child(sys.argv[1])"


def run(
    url: str | None = None, rows: int = 10_000, format: str = "ndjson", names: list[str] | None = None
) -> list[ExportResult]:
    """Every export case on a scratch database of `rows` heroes, each in its own process; slowest first.

    The scratch database is the lesson's own (`heroes.lessons.streaming_export.scratch`), built once
    and dropped at the end; DATABASE_URL's data is not touched.
    """
    from heroes.lab import Lab
    from heroes.lessons.streaming_export import scratch

    url = url or get_settings().database_url
    settings = Settings(database_url=url, statement_timeout_ms=0)  # a million heroes' COPY may take a while
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
        for c in cases("export", dialect, names):
            result = ExportResult(c, dialect, rows, refused=c.refuses(rows))
            results.append(result)
            if result.refused:
                continue
            arguments = {"case": c.name, "url": scratch_url, "schema": schema, "rows": rows, "format": format}
            process = subprocess.run(
                [sys.executable, "-c", _CHILD, json.dumps(arguments)], capture_output=True, text=True
            )
            if process.returncode != 0:
                raise RuntimeError(f"export case {c.name} failed:\n{process.stderr[-2000:]}")
            figures = json.loads(process.stdout.strip().splitlines()[-1])
            result.seconds = figures["seconds"]
            result.rows_per_second = rows / figures["seconds"]
            result.rss_growth_bytes = figures["rss"]
            result.traced_peak_bytes = figures["traced"]
            result.server_peak_bytes = figures["server_peak"]
    finally:
        lab.close()
        main.dispose()
    return slowest_first(results, lambda r: r.rows_per_second)
