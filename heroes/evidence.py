"""Evidence: count the statements a request (or a block of code) executes, and time them.

Two recorders share one `QueryLog`:

- per request: `EvidenceMiddleware` puts a fresh log in a context variable, every instrumented
  engine adds to the log of the context it runs in, and the response gets
  `X-Query-Count: N` and `Server-Timing: db;dur=<ms>;desc="N queries", app;dur=<ms>`.
  Context variables follow the request into the threadpool, so concurrent requests never mix.
- in your own code and tests: `with count_queries(engine) as queries: ...; assert queries.count == 2`
  counts every statement that engine runs while the block is open, from any thread.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import re
import sys
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from threading import Lock
from time import perf_counter

from sqlalchemy import event
from sqlalchemy.engine import Engine
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SHAPES_MAX = 40  # distinct statement shapes a log keeps; the rest are counted as "other"
_PLACEHOLDER = re.compile(r"(?:%\(\w+\)s|%s|\$\d+|(?<![:\w]):\w+|\?)(?:::\w+(?:\(\d+\))?)?")
_LITERAL = re.compile(r"'(?:[^']|'')*'")


def sql_shape(statement: str) -> str:
    """A statement as text only, its shape: one line, every placeholder a `?`, long lists folded.

    `WHERE ? = hero.team_id` is the same shape for every team, as debug toolbars group "similar" queries
    (and on both engines: psycopg's `%(param_1)s::INTEGER` is a `?` too).
    Parameters are never part of a statement's text. The private column is named `<private>` (nothing
    the lab shows says its name), and in a statement that touches it, every literal is hidden too.
    """
    shape = _PLACEHOLDER.sub("?", " ".join(statement.split()))
    shape = re.sub(r"\?(?:, \?){9,}", lambda m: f"?, ... ({m[0].count('?')} values)", shape)
    shape = re.sub(r"(\((?:\?, )*\?\))(?:, \1){2,}", lambda m: f"{m[1]}, ... ({m[0].count('(')} rows)", shape)
    if "secret_name" in shape:
        shape = _LITERAL.sub("'…'", shape).replace("secret_name", "<private>")
    return shape


@dataclass
class QueryLog:
    """The statements seen, how many, and the seconds the database spent on them.

    `statements` keeps each statement (count_queries, for tests); `shapes` keeps each distinct shape with
    its count, at most SHAPES_MAX of them (compare: a million-row run stays small).
    """

    count: int = 0
    db_seconds: float = 0.0
    statements: list[str] = field(default_factory=list)
    keep_statements: bool = True
    shapes: dict[str, int] | None = None  # {} to keep them
    other_statements: int = 0  # statements beyond SHAPES_MAX distinct shapes
    label: str | None = None  # the request it belongs to: "GET /teams/1"
    parent: QueryLog | None = field(default=None, repr=False, compare=False)
    _lock: Lock = field(default_factory=Lock, repr=False, compare=False)

    def record(self, statement: str, seconds: float) -> None:
        with self._lock:  # count_queries may hear from many threads at once
            self.count += 1
            self.db_seconds += seconds
            if self.keep_statements:
                self.statements.append(statement)
            if self.shapes is not None:
                shape = sql_shape(statement)
                if shape in self.shapes or len(self.shapes) < SHAPES_MAX:
                    self.shapes[shape] = self.shapes.get(shape, 0) + 1
                else:
                    self.other_statements += 1
        if self.parent is not None:  # a request served inside another (compare) counts there too
            self.parent.record(statement, seconds)

    def grouped(self) -> list[tuple[str, int]]:
        """(shape, count), most frequent first, then in the order first seen."""
        shapes = list((self.shapes or {}).items())
        return sorted(shapes, key=lambda item: -item[1])

    def server_timing(self, app_seconds: float) -> str:
        db_ms, app_ms = self.db_seconds * 1000, app_seconds * 1000
        return f'db;dur={db_ms:.2f};desc="{self.count} queries", app;dur={app_ms:.2f}'


_request_log: ContextVar[QueryLog | None] = ContextVar("heroes_request_log", default=None)


class _Timer:
    """Times each statement on a connection (a stack in `conn.info`, as events may nest)."""

    def __init__(self, on_statement) -> None:
        self.on_statement = on_statement
        self.key = object()

    def before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info.setdefault(self.key, []).append(perf_counter())

    def _finish(self, conn, statement: str) -> None:
        stack = conn.info.get(self.key)
        if not stack:  # it started before we listened (count_queries opened meanwhile): not ours
            return
        seconds = perf_counter() - stack.pop()
        if not stack:  # conn.info outlives us (pooled connections): leave nothing behind
            del conn.info[self.key]
        self.on_statement(statement, seconds)

    def after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self._finish(conn, statement)

    def failed(self, context) -> None:
        """A statement that failed was still executed (a unique violation costs a round trip too)."""
        if context.connection is not None and context.statement is not None:
            self._finish(context.connection, context.statement)

    def listen(self, target) -> None:
        event.listen(target, "before_cursor_execute", self.before)
        event.listen(target, "after_cursor_execute", self.after)
        event.listen(target, "handle_error", self.failed)

    def remove(self, target) -> None:
        event.remove(target, "before_cursor_execute", self.before)
        event.remove(target, "after_cursor_execute", self.after)
        event.remove(target, "handle_error", self.failed)


def _record_in_request(statement: str, seconds: float) -> None:
    log = _request_log.get()
    if log is not None:
        log.record(statement, seconds)


sql_logger = logging.getLogger("heroes.sql")


def _echo(conn, cursor, statement, parameters, context, executemany) -> None:
    """HEROES_ECHO_SQL: each statement once, as text (never its parameters), with the request that ran it."""
    label = next((log.label for log in _logs() if log.label), "outside a request")
    sql_logger.info("%s | %s", label, " ".join(statement.split()))


def _logs() -> Iterator[QueryLog]:
    log = _request_log.get()
    while log is not None:
        yield log
        log = log.parent


def echo_statements(engine: Engine) -> Engine:
    """Log every statement `engine` runs, labelled with its request, to stderr (idempotent)."""
    if not any(getattr(handler, "heroes_echo", False) for handler in sql_logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("SQL %(message)s"))
        handler.heroes_echo = True
        sql_logger.addHandler(handler)
    sql_logger.setLevel(logging.INFO)
    sql_logger.propagate = False
    if not event.contains(engine, "before_cursor_execute", _echo):
        event.listen(engine, "before_cursor_execute", _echo)
    return engine


request_timer = _Timer(_record_in_request)  # the one every instrumented engine reports to


def instrument(engine: Engine) -> Engine:
    """Make `engine` report its statements to the request being served (idempotent)."""
    if not event.contains(engine, "after_cursor_execute", request_timer.after):
        request_timer.listen(engine)
    return engine


@contextmanager
def count_queries(
    engine: Engine | type[Engine] = Engine, *, keep_statements: bool = True
) -> Iterator[QueryLog]:
    """Count (and keep) every statement `engine` executes inside the block, whichever thread runs it.

    With no engine it listens to every engine. Copy this function into your own project's tests:

        with count_queries(engine) as queries:
            client.get("/teams/1")
        assert queries.count == 2, queries.statements
    """
    log = QueryLog(keep_statements=keep_statements)
    timer = _Timer(log.record)
    timer.listen(engine)
    try:
        yield log
    finally:
        timer.remove(engine)


@contextmanager
def request_log(
    *, keep_statements: bool = True, keep_shapes: bool = False, label: str | None = None
) -> Iterator[QueryLog]:
    """Record into a fresh log what the current context executes (what the middleware does per request).

    Logs nest: an enclosing log (a `compare` run that serves requests in-process) sees every statement too.
    """
    log = QueryLog(
        keep_statements=keep_statements,
        shapes={} if keep_shapes else None,
        label=label,
        parent=_request_log.get(),
    )
    token = _request_log.set(log)
    try:
        yield log
    finally:
        _request_log.reset(token)


@contextmanager
def not_recorded() -> Iterator[None]:
    """Statements run inside are nobody's evidence (a lesson building its scratch data, say)."""
    token = _request_log.set(None)
    try:
        yield
    finally:
        _request_log.reset(token)


class EvidenceMiddleware:
    """Pure ASGI middleware: adds X-Query-Count and Server-Timing to every HTTP response.

    The headers leave with the response start, so a streamed response reports what ran before
    its first byte (the statements of its own generator come later and are not in them).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        label = f"{scope.get('method', '')} {scope.get('path', '')}"
        with request_log(keep_statements=False, label=label) as log:

            async def send_with_evidence(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = MutableHeaders(scope=message)
                    headers["X-Query-Count"] = str(log.count)
                    headers.append("Server-Timing", log.server_timing(perf_counter() - started))
                await send(message)

            await self.app(scope, receive, send_with_evidence)


@dataclass
class Peak:
    bytes: int = 0  # Python allocations at their highest inside the block, above what was there before


@contextmanager
def peak_memory() -> Iterator[Peak]:
    """The peak of Python allocations inside the block (tracemalloc: not C buffers, not libpq's or SQLite's).

    Collects first and gives freed heap back to the system after (gc, then glibc's malloc_trim), so a
    memory-heavy block leaves the process's resident memory where it found it as far as it can.
    """
    give_memory_back()
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    peak = Peak()
    try:
        yield peak
    finally:
        peak.bytes = tracemalloc.get_traced_memory()[1] - baseline
        if not tracing:
            tracemalloc.stop()
        give_memory_back()


def give_memory_back() -> None:
    """Collect, and ask glibc to return its free heap to the system."""
    gc.collect()
    with suppress(OSError, AttributeError):  # not glibc: the next request reuses the memory instead
        ctypes.CDLL("libc.so.6").malloc_trim(0)
