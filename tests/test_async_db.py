"""The async engine beside the sync one: same database, same set-up, counted per request, disposed."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import func, select

from heroes.async_db import AsyncSessionDep, async_url, create_async_db_engine
from heroes.config import Settings
from heroes.evidence import count_queries
from heroes.main import create_app
from heroes.models import Hero

probe = APIRouter(prefix="/async-probe")


@probe.get("/{n}")
async def run_statements(n: int, session: AsyncSessionDep) -> dict[str, int]:
    """`n` statements, with a pause between them, so concurrent requests interleave on the loop."""
    for _ in range(n):
        await session.exec(select(func.count()).select_from(Hero))
        await asyncio.sleep(0.002)
    return {"n": n}


@pytest.fixture
def app(settings, engine):
    """The lab, plus an async route of the test's own."""
    app = create_app(settings=settings, engine=engine)
    app.include_router(probe)
    return app


def test_async_url_keeps_the_database_and_picks_the_async_driver():
    assert async_url("sqlite:///./heroes.db") == "sqlite+aiosqlite:///./heroes.db"
    pg = "postgresql+psycopg://u:pw@127.0.0.1:5432/heroes"
    assert async_url(pg) == pg  # psycopg 3 is both: create_async_engine picks its async mode
    assert async_url("postgresql://u:pw@127.0.0.1/heroes") == "postgresql+psycopg://u:pw@127.0.0.1/heroes"


def test_the_async_engine_is_set_up_like_the_sync_one(database_url, engine_name):
    settings = Settings(database_url=database_url, pool_size=3, max_overflow=2)

    async def settings_seen() -> tuple:
        engine = create_async_db_engine(settings=settings)
        try:
            async with engine.connect() as connection:
                if engine_name == "sqlite":
                    seen = [(await connection.execute(text(f"PRAGMA {name}"))).scalar() for name in PRAGMAS]
                    seen.append((await connection.execute(text("SELECT lower('É')"))).scalar())
                else:
                    seen = [(await connection.execute(text(f"SHOW {name}"))).scalar() for name in SETTINGS]
            return (
                engine.dialect.driver,
                engine.pool.size(),
                engine.pool._max_overflow,
                engine.pool._pre_ping,
                seen,
            )
        finally:
            await engine.dispose()

    driver, size, overflow, pre_ping, seen = asyncio.run(settings_seen())
    assert (size, overflow) == (3, 2)
    if engine_name == "sqlite":  # foreign keys on, WAL, and Python's lower() (the sync connect hook)
        assert (driver, seen) == ("aiosqlite", [1, "wal", 1, "é"])
    else:  # the statement and lock timeouts, pre-ping
        assert (driver, pre_ping, seen) == ("psycopg", True, ["15s", "2s", "heroes"])


PRAGMAS = ("foreign_keys", "journal_mode", "synchronous")
SETTINGS = ("statement_timeout", "lock_timeout", "application_name")


def test_a_foreign_key_violation_is_refused_on_the_async_engine(database_url):
    async def orphan() -> str:
        engine = create_async_db_engine(settings=Settings(database_url=database_url))
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text("INSERT INTO hero (name, secret_name, team_id) VALUES ('x', 'y', 999)")
                )
        except Exception as exc:
            return type(exc).__name__
        finally:
            await engine.dispose()
        return "stored"

    assert asyncio.run(orphan()) == "IntegrityError"


THREADS, PER_THREAD = 8, 5


def test_40_concurrent_async_requests_each_count_their_own_statements(live_server, seeded):
    """40 requests from 8 threads at once to an async route: X-Query-Count is each request's own."""
    start = threading.Barrier(THREADS, timeout=10)

    def worker(index: int) -> list[tuple[int, int, str]]:
        results = []
        with httpx2.Client(base_url=live_server, timeout=20, trust_env=False) as http:
            start.wait()
            for i in range(PER_THREAD):
                n = (index + i) % 4 + 1
                response = http.get(f"/async-probe/{n}")
                results.append((n, response.status_code, response.headers.get("x-query-count")))
        return results

    with count_queries() as every_engine, ThreadPoolExecutor(THREADS) as pool_:
        results = [r for rs in pool_.map(worker, range(THREADS)) for r in rs]

    assert len(results) == THREADS * PER_THREAD
    assert [r for r in results if r[1:] != (200, str(r[0]))] == []
    assert every_engine.count == sum(n for n, _, _ in results)  # nothing ran uncounted


def test_one_async_engine_per_app_disposed_when_it_stops(app, seeded):
    with TestClient(app) as client:
        assert client.get("/async-probe/2").headers["x-query-count"] == "2"
        engine = app.state.lab.async_engines._engines["main"][1]
        assert client.get("/async-probe/1").status_code == 200
        assert app.state.lab.async_engines._engines["main"][1] is engine  # made once, on first use
        assert engine.pool.checkedin() == 1
    assert app.state.lab.async_engines._engines == {}  # the lifespan disposed it
    assert engine.pool.checkedin() == 0


def test_a_new_event_loop_gets_a_new_engine_and_the_old_one_is_closed(app, seeded):
    """`heroes lesson` and the workshop run each compare in an asyncio.run of its own."""
    from heroes.lab.asgi import serve

    async def once():
        response = await serve(app, "GET", "/async-probe/1")
        return response.status, app.state.lab.async_engines._engines["main"][1]

    status, first = asyncio.run(once())
    status_again, second = asyncio.run(once())
    assert (status, status_again) == (200, 200) and first is not second
    assert first.pool.checkedin() == 0  # disposed by the second loop
    app.state.lab.close()
    assert second.pool.checkedin() == 0 and app.state.lab.async_engines._engines == {}


def test_a_lesson_scratch_database_through_the_async_driver(app, engine_name):
    """Lab.async_engine: the scratch file or schema of Lab.engine, what one wrote the other reads."""
    lab = app.state.lab

    def populate(engine) -> None:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO team (name, headquarters) VALUES ('Async', 'Loop')"))

    async def read() -> list:
        engine = await lab.async_engine("async_probe", populate, pool_size=2)
        async with engine.connect() as connection:
            return list((await connection.execute(text("SELECT name FROM team"))).scalars())

    assert asyncio.run(read()) == ["Async"]
    with app.state.engine.connect() as connection:  # the reference API's data is not the scratch one
        assert connection.execute(text("SELECT count(*) FROM team WHERE name = 'Async'")).scalar() == 0
    lab.drop("async_probe")  # the scratch database dropped: its async engine disposed with it
    assert lab.async_engines._engines == {}
    lab.close()
