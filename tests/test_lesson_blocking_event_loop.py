"""blocking-event-loop: a sync Session in `async def` serves K clients one after another and keeps
/health/live waiting; an AsyncSession, or a plain def route, serves them side by side.

Timings are the evidence here, so every assertion is a ratio of the same run: the query time each
route measured (pg_sleep(0.2), on SQLite the lesson's own) against the wall time of K clients at once.
"""

import gc
import inspect
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import httpx2
import pytest

from heroes.lab.crowd import DB_MS
from heroes.lessons import blocking_event_loop

URL = "/lessons/blocking-event-loop"
K = 8
HEROES = 12
HEALTH_AFTER = 0.05  # /health/live is sent that long after the clients, once their queries run


def fire(base_url: str, path: str, clients: int) -> tuple[list, float, float]:
    """`clients` real HTTP clients at once on `path`, and /health/live sent HEALTH_AFTER later:
    (responses, total seconds, health latency seconds)."""
    start = threading.Barrier(clients + 1, timeout=20)

    def client(_: int):
        with httpx2.Client(base_url=base_url, timeout=30, trust_env=False) as http:
            start.wait()
            began = time.perf_counter()
            response = http.get(path)
            return response, began, time.perf_counter()

    def health() -> float:
        with httpx2.Client(base_url=base_url, timeout=30, trust_env=False) as http:
            start.wait()
            time.sleep(HEALTH_AFTER)
            sent = time.perf_counter()
            assert http.get("/health/live").status_code == 200
            return time.perf_counter() - sent

    gc.collect()  # the server runs in this process: its collection pauses would land in the timing
    with ThreadPoolExecutor(clients + 1) as pool:
        probe = pool.submit(health)
        answers = list(pool.map(client, range(clients)))
        latency = probe.result()
    total = max(end for _, _, end in answers) - min(began for _, began, _ in answers)
    return [response for response, _, _ in answers], total, latency


def query_seconds(responses) -> float:
    """One request's time in the database (Server-Timing's db, the median): the ~200 ms it should be."""
    assert [r.status_code for r in responses] == [200] * len(responses), responses[0].text
    assert {r.json()["heroes"] for r in responses} == {HEROES}  # the query really ran, whole
    assert {r.headers["x-query-count"] for r in responses} == {"1"}  # one statement each, counted per request
    seconds = statistics.median(float(DB_MS.search(r.headers["server-timing"])[1]) for r in responses) / 1000
    assert seconds >= 0.9 * blocking_event_loop.SECONDS
    return seconds


def warm(base_url: str, variant: str, clients: int) -> None:
    """The scratch database built and `clients` connections in the route's pool, before anything is timed
    (opening a connection is not what the lesson measures; bad uses one at a time)."""
    with httpx2.Client(base_url=base_url, timeout=60, trust_env=False) as http:
        assert http.get(f"{URL}/{variant}").status_code == 200
    if clients > 1:
        fire(base_url, f"{URL}/{variant}", clients)


def test_bad_k_clients_finish_one_after_another_and_health_waits(live_server):
    warm(live_server, "bad", 1)
    responses, total, health = fire(live_server, f"{URL}/bad", K)
    query = query_seconds(responses)
    assert total >= 0.8 * K * query, (total, query)  # serial: about K queries end to end
    assert health >= 3 * query, (health, query)  # /health/live queued behind them


@pytest.mark.parametrize("variant", ["fixed", "fixed/threadpool"])
def test_fixed_k_clients_side_by_side_and_health_answers_at_once(live_server, variant):
    warm(live_server, variant, K)
    responses, total, health = fire(live_server, f"{URL}/{variant}", K)
    query = query_seconds(responses)
    assert total <= 3 * query, (total, query)  # side by side: about one query end to end
    assert health < 0.1, health


def test_myth_async_def_is_not_concurrent_by_itself(client):
    """bad is `async def` and serial; the threadpool variant is a plain `def` and concurrent."""
    assert inspect.iscoroutinefunction(blocking_event_loop.bad)
    assert not inspect.iscoroutinefunction(blocking_event_loop.fixed_threadpool)
    serial = client.get(f"{URL}/race/bad", params={"clients": 4}).json()
    threads = client.get(f"{URL}/race/threadpool", params={"clients": 4}).json()
    for race in (serial, threads):  # the crowd fired inside the app, on its event loop (TestClient's here)
        assert (race["statuses"], race["answers"], race["clients"]) == ({"200": 4}, [{"heroes": HEROES}], 4)
        assert race["db_ms"] >= 0.9 * blocking_event_loop.SECONDS * 1000 and race["probe"] == "/health/live"
    assert serial["total_ms"] >= 0.8 * 4 * serial["db_ms"] and serial["probe_ms"] >= serial["db_ms"]
    assert threads["total_ms"] <= 3 * threads["db_ms"] and threads["probe_ms"] < threads["db_ms"]


def test_fastapi_threadpool_is_anyio_default_limiter_of_40():
    async def tokens() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    assert anyio.run(tokens) == 40


def test_compare_races_each_variant(client):
    response = client.get(f"{URL}/compare", params={"size": 3})
    assert response.status_code == 200, response.text
    variants = response.json()["variants"]
    assert [v["variant"] for v in variants] == ["bad", "fixed", "fixed/threadpool"]
    for variant in variants:
        assert variant["statuses"] == {"200": 1} and variant["statements"] == 3  # 3 clients, 1 query each
        assert variant["outcome"].startswith("3 clients {'200': 3}: all answered in ")
    assert response.json()["size"] == 3


def test_race_refuses_an_unknown_variant_and_too_many_clients(client):
    assert client.get(f"{URL}/race/worst").status_code == 422
    assert client.get(f"{URL}/race/bad", params={"clients": 65}).status_code == 422
