"""Benchmarks: the same task done several ways, each a function registered by `@case`, its docstring
its label, reported slowest to fastest (the shape of SQLAlchemy's examples/performance).

    heroes bench evidence     requests/s of GET /heroes/{id} with the evidence headers on and off

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
