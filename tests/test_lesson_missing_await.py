"""missing-await: a commit without await answers 201 and stores nothing; a read without await is a 500."""

import asyncio
import gc
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from sqlmodel import select

from heroes.async_db import create_async_db_engine
from heroes.config import Settings
from heroes.evidence import count_queries
from heroes.lessons.missing_await import READ
from heroes.models import Hero

from support import scratch_rows

URL = "/lessons/missing-await"


def hero(name: str) -> dict:
    return {"name": name, "secret_name": "Unawaited", "age": 30}


def stored(app, name: str) -> int:
    return scratch_rows(app, "missing_await", f"SELECT count(*) FROM hero WHERE name = '{name}'")[0][0]


def test_bad_answers_201_and_stores_nothing_with_the_warning(client, app):
    with pytest.warns(RuntimeWarning, match="coroutine 'AsyncSession.commit' was never awaited"):
        response = client.post(f"{URL}/bad", json=hero("Lost Write"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["name"], body["stored"], body["id"] > len(READ)) == ("Lost Write", 0, True)
    assert response.headers["x-query-count"] == "1"  # the INSERT; the COMMIT never ran
    assert stored(app, "Lost Write") == 0


def test_fixed_stores_the_hero_without_a_warning(client, app, recwarn):
    response = client.post(f"{URL}/fixed", json=hero("Kept Write"))
    assert response.status_code == 201, response.text
    assert (response.json()["stored"], response.headers["x-query-count"]) == (1, "1")
    assert stored(app, "Kept Write") == 1
    gc.collect()
    assert [str(w.message) for w in recwarn if "never awaited" in str(w.message)] == []


def test_a_read_without_await_is_a_500_naming_the_coroutine(client):
    with pytest.warns(RuntimeWarning, match="coroutine 'AsyncSession.exec' was never awaited"):
        response = client.get(f"{URL}/bad/read")
        gc.collect()  # the coroutine lives in the traceback's frame until then
    assert response.status_code == 500
    body = response.json()
    assert (body["type"], body["exception"]) == (URL, "AttributeError")
    assert body["detail"] == "'coroutine' object has no attribute 'all'"
    assert response.headers["x-query-count"] == "0"


def test_fixed_read_answers_the_heroes(client):
    response = client.get(f"{URL}/fixed/read")
    assert response.status_code == 200, response.text
    assert [h["name"] for h in response.json()] == [name for name, _ in READ]
    assert "secret_name" not in response.text
    assert response.headers["x-query-count"] == "1"


def test_myth_a_missing_await_does_not_block_it_returns_a_coroutine(database_url):
    """No statement runs, nothing waits: a coroutine comes back; `query` is no "blocking call" but missing."""
    from sqlmodel.ext.asyncio.session import AsyncSession

    async def without_await() -> tuple:
        engine = create_async_db_engine(settings=Settings(database_url=database_url))
        try:
            async with AsyncSession(engine) as session:
                with count_queries(engine.sync_engine) as queries:
                    commit, read, one = session.commit(), session.exec(select(Hero)), session.get(Hero, 1)
                kinds = [inspect.iscoroutine(c) for c in (commit, read, one)]
                errors = []
                for attempt in (lambda: read.all(), lambda: one.name, lambda: session.query(Hero)):
                    with pytest.raises(AttributeError) as error:
                        attempt()
                    errors.append(str(error.value))
                for c in (commit, read, one):
                    c.close()  # never run: closed here, so nothing warns
                return kinds, queries.count, errors
        finally:
            await engine.dispose()

    kinds, count, errors = asyncio.run(without_await())
    assert (kinds, count) == ([True, True, True], 0)
    assert errors == [
        "'coroutine' object has no attribute 'all'",
        "'coroutine' object has no attribute 'name'",
        "'AsyncSession' object has no attribute 'query'",
    ]


def test_concurrent_requests_each_count_their_own_statements(live_server, app):
    """20 async requests at once, three routes: X-Query-Count is each one's own (0, 1, 1)."""
    expected = {"GET bad/read": "0", "GET fixed/read": "1", "POST fixed": "1"}
    start = threading.Barrier(20, timeout=10)

    def one(i: int) -> tuple[str, int, str]:
        key = list(expected)[i % 3]
        method, variant = key.split()
        with httpx2.Client(base_url=live_server, timeout=20, trust_env=False) as http:
            start.wait()
            json = hero(f"Racer {i}") if method == "POST" else None
            response = http.request(method, f"{URL}/{variant}", json=json)
        return key, response.status_code, response.headers["x-query-count"]

    with pytest.warns(RuntimeWarning), ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
        gc.collect()
    assert [(key, count) for key, _, count in results if count != expected[key]] == []
    assert sorted({(key, status) for key, status, _ in results}) == [
        ("GET bad/read", 500),
        ("GET fixed/read", 200),
        ("POST fixed", 201),
    ]
    assert scratch_rows(app, "missing_await", "SELECT count(*) FROM hero WHERE name LIKE 'Racer %'") == [(6,)]


def test_compare(client):
    with pytest.warns(RuntimeWarning, match="never awaited"):
        response = client.get(f"{URL}/compare")
        gc.collect()
    assert response.status_code == 200, response.text
    outcomes = {v["variant"]: v["outcome"] for v in response.json()["variants"]}
    assert outcomes["bad"].startswith("201 Created") and outcomes["bad"].endswith("stored: 0")
    assert outcomes["fixed"].endswith("stored: 1")
    assert outcomes["bad/read"] == "500: 'coroutine' object has no attribute 'all'"
    assert outcomes["fixed/read"] == "200 OK: 4 heroes"  # the 3, and the one fixed stored


def test_reset_drops_the_scratch_database_and_its_async_engine(client, app):
    """POST .../reset while the lesson's async engine holds connections: the 3 heroes again, a new engine."""
    assert client.post(f"{URL}/fixed", json=hero("Before Reset")).status_code == 201
    engines = app.state.lab.async_engines._engines
    before = next(engine for key, (_, engine) in engines.items() if key.startswith("missing_await:"))
    assert client.post(f"{URL}/reset").status_code == 200
    assert before.pool.checkedin() == 0  # disposed with its database
    assert [h["name"] for h in client.get(f"{URL}/fixed/read").json()] == [name for name, _ in READ]
