"""heroes bench evidence: requests/s of GET /heroes/{id} with the evidence headers on and off, in-process.

Requests go straight through the ASGI app by heroes.lab.asgi.serve (no client, no sockets), so the figure
is the app's own cost per request; rounds alternate the cases, so drift hits them alike.
`recorder_cost` times the recorder alone, without the app around it.
"""

import asyncio
import contextlib
import statistics
import time
import timeit
from dataclasses import dataclass

from fastapi import FastAPI

from heroes.bench.registry import Case, case, cases, slowest_first
from heroes.config import Settings, get_settings
from heroes.db import create_db_engine
from heroes.evidence import EvidenceMiddleware, request_timer
from heroes.lab.asgi import serve
from heroes.main import create_app


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


async def _rate(app: FastAPI, path: str, requests: int) -> tuple[float, float]:
    """(requests per wall-clock second, CPU seconds per request: this process, every thread)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(requests):
        if (status := (await serve(app, "GET", path)).status) != 200:
            raise RuntimeError(f"GET {path} answered {status}: is the database migrated and seeded?")
    return requests / (time.perf_counter() - started), (time.process_time() - cpu_started) / requests


@dataclass
class Result:
    case: Case
    rate: float  # requests/s, median of the rounds
    cpu: float  # CPU seconds per request, median of the rounds


def run(path: str, requests: int, rounds: int, url: str | None = None) -> list[Result]:
    """Median requests/s and CPU/request of every case, rounds interleaved so drift hits all alike."""
    url = url or get_settings().database_url
    apps = [(c, c.run(url)) for c in cases("evidence")]
    runs: dict[str, list[tuple[float, float]]] = {c.name: [] for c, _ in apps}
    try:
        for _, app in apps:  # warm up: connections, compiled-statement cache
            asyncio.run(_rate(app, path, max(requests // 10, 10)))
        for round_ in range(rounds):
            for c, app in apps if round_ % 2 else apps[::-1]:  # alternate, so going first favours none
                runs[c.name].append(asyncio.run(_rate(app, path, requests)))
    finally:
        for _, app in apps:
            app.state.engine.dispose()
    results = [
        Result(
            c, statistics.median(r for r, _ in runs[c.name]), statistics.median(u for _, u in runs[c.name])
        )
        for c, _ in apps
    ]
    return slowest_first(results, lambda result: result.rate)


def recorder_cost(repeat: int = 200_000) -> tuple[float, float]:
    """The evidence work alone, without the app around it: (seconds per statement, per response)."""

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
        request_timer.before(conn, None, "SELECT 1", None, None, False)
        request_timer.after(conn, None, "SELECT 1", None, None, False)

    def best(func) -> float:
        return min(timeit.repeat(func, number=repeat, repeat=5)) / repeat

    middleware = EvidenceMiddleware(app)
    return best(statement), best(lambda: respond(middleware)) - best(lambda: respond(app))
