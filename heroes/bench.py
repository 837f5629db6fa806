"""Benchmarks: the same task done several ways, each a function registered by `@case`, its docstring
its label, reported slowest to fastest (the shape of SQLAlchemy's examples/performance).

    heroes bench evidence     requests/s of GET /heroes/{id} with the evidence headers on and off

Requests are driven straight through the ASGI app (no client, no sockets), so the figure is the
app's own cost per request and the difference is the recorder's, not the HTTP client's.
"""

import asyncio
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


async def _rate(app: FastAPI, path: str, requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        if (status := await _get(app, path)) != 200:
            raise RuntimeError(f"GET {path} answered {status}: is the database migrated and seeded?")
    return requests / (time.perf_counter() - started)


def run_suite(
    suite: str, path: str, requests: int, rounds: int, url: str | None = None
) -> list[tuple[Case, float]]:
    """Median requests/s of every case, rounds interleaved so drift hits all cases alike; slowest first."""
    url = url or get_settings().database_url
    apps = [(c, c.build(url)) for c in SUITES[suite]]
    rates: dict[str, list[float]] = {c.name: [] for c, _ in apps}
    for _, app in apps:  # warm up: connections, compiled-statement cache
        asyncio.run(_rate(app, path, max(requests // 10, 10)))
    for _ in range(rounds):
        for app_case, app in apps:
            rates[app_case.name].append(asyncio.run(_rate(app, path, requests)))
    for _, app in apps:
        app.state.engine.dispose()
    return sorted(((c, statistics.median(rates[c.name])) for c, _ in apps), key=lambda pair: pair[1])
