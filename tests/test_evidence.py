"""Evidence: X-Query-Count and Server-Timing are right, per request, even under concurrent load."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, pool, text

from heroes.config import Settings
from heroes.evidence import count_queries
from heroes.main import create_app

SERVER_TIMING = re.compile(r'^db;dur=(\d+\.\d{2});desc="(\d+) queries", app;dur=(\d+\.\d{2})$')


def test_headers_match_what_the_engine_ran(client, seeded, queries):
    response = client.get("/teams/1")
    assert response.status_code == 200
    match = SERVER_TIMING.match(response.headers["server-timing"])
    assert match, response.headers["server-timing"]
    assert match[2] == response.headers["x-query-count"] == "2"
    assert queries.count == 2
    assert float(match[1]) <= float(match[3])  # the database time is part of the request's time
    assert [s.split()[0].upper() for s in queries.statements] == ["SELECT", "SELECT"]


def test_headers_on_a_response_without_statements(client, queries):
    response = client.get("/health/live")
    assert response.headers["x-query-count"] == "0"
    match = SERVER_TIMING.match(response.headers["server-timing"])
    assert match and match[1] == "0.00" and match[2] == "0"
    assert queries.count == 0


def test_a_failed_statement_is_counted(client, seeded, queries):
    response = client.post("/teams", json={"name": "Preventers", "headquarters": "Elsewhere"})
    assert response.status_code == 409, response.text
    assert queries.count == 1, queries.statements
    assert queries.statements[0].lstrip().upper().startswith("INSERT INTO TEAM")
    assert response.headers["x-query-count"] == "1"
    assert SERVER_TIMING.match(response.headers["server-timing"])[2] == "1"


def test_count_queries_without_an_engine_counts_every_engine(engine):
    other = create_engine("sqlite://", poolclass=pool.StaticPool)  # never instrumented
    try:
        with count_queries() as everywhere, count_queries(engine) as only_ours:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            with other.connect() as connection:
                connection.execute(text("SELECT 2"))
                connection.execute(text("SELECT 3"))
        assert everywhere.count == 3, everywhere.statements
        assert only_ours.count == 1
        with other.connect() as connection:  # the listeners left with the block
            connection.execute(text("SELECT 4"))
        assert everywhere.count == 3
    finally:
        other.dispose()


@pytest.mark.sqlite_only(reason="a statement that waits for the test needs a Python function inside SQLite")
def test_count_queries_opened_while_a_statement_runs(engine):
    """A statement already running when the block opens is not counted, and does not break."""
    running, release = threading.Event(), threading.Event()

    def wait_for_test() -> int:
        running.set()
        return int(release.wait(timeout=10))

    @event.listens_for(engine, "connect")
    def add_function(dbapi_connection, record) -> None:
        dbapi_connection.create_function("wait_for_test", 0, wait_for_test)

    def slow() -> int:
        with engine.connect() as connection:
            return connection.execute(text("SELECT wait_for_test()")).scalar_one()

    with ThreadPoolExecutor(1) as executor:
        result = executor.submit(slow)
        assert running.wait(timeout=10)
        with count_queries(engine) as queries:
            release.set()
            assert result.result(timeout=10) == 1  # the statement finished without an error
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
    assert queries.statements == ["SELECT 1"]


def test_no_headers_when_evidence_is_off(database_url, engine, seeded):
    app = create_app(settings=Settings(database_url=database_url, evidence=False), engine=engine)
    with TestClient(app) as client:
        response = client.get("/teams/1")
    assert response.status_code == 200
    assert "x-query-count" not in response.headers
    assert "server-timing" not in response.headers


ROUTES = {"/teams/1": 2, "/heroes/2": 1, "/health/live": 0}
THREADS, PER_THREAD = 8, 5


def test_concurrent_requests_never_mix_their_counts(live_server, seeded, queries):
    """40 requests from 8 threads at once: each response counts its own statements, no one else's."""
    paths = list(ROUTES)
    start = threading.Barrier(THREADS, timeout=10)

    def worker(index: int) -> list[tuple[str, int, str]]:
        results = []
        with httpx2.Client(base_url=live_server, timeout=10, trust_env=False) as http:
            start.wait()  # every thread fires at the same moment
            for i in range(PER_THREAD):
                path = paths[(index + i) % len(paths)]
                response = http.get(path)
                results.append((path, response.status_code, response.headers.get("x-query-count")))
        return results

    with ThreadPoolExecutor(THREADS) as pool_:
        results = [r for rs in pool_.map(worker, range(THREADS)) for r in rs]

    assert len(results) == THREADS * PER_THREAD
    assert {path for path, _, _ in results} == set(ROUTES)
    wrong = [
        (path, status, count)
        for path, status, count in results
        if (status, count) != (200, str(ROUTES[path]))
    ]
    assert wrong == []
    assert queries.count == sum(ROUTES[path] for path, _, _ in results)  # nothing ran uncounted
