"""Health: live without the database, ready with it, and 503 + Retry-After whenever it cannot serve."""

import sqlite3

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from heroes.config import Settings
from heroes.db import create_db_engine
from heroes.main import create_app
from heroes.migrate import head_revision
from heroes.problems import PROBLEM_JSON

HEAD = head_revision()  # test_migrations checks there is one head


def assert_unavailable(response, detail_part: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "2"
    body = response.json()
    assert body["status"] == 503
    assert body["title"] == "Service Unavailable"
    assert detail_part in body["detail"]


def test_live_answers_without_the_database(client, queries):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-query-count"] == "0"
    assert queries.count == 0


def test_ready_reports_backend_revision_and_pool(client, engine_name):
    response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"backend": engine_name, "revision": HEAD}
    pool = body["pool"]
    assert pool["class"] == "QueuePool"
    assert pool["size"] == 5
    assert pool["timeout"] == 5.0
    # the one connection this request opened is back in the pool before the stats are read
    assert (pool["checkedout"], pool["checkedin"], pool["overflow"]) == (0, 1, 0)


def test_ready_on_a_database_at_base_names_the_fix(empty_database_url):
    settings = Settings(database_url=empty_database_url)
    engine = create_db_engine(settings=settings)
    try:
        with TestClient(create_app(settings=settings, engine=engine)) as client:
            response = client.get("/health/ready")
            assert_unavailable(response, "run `heroes db upgrade`")
            assert f"expects {HEAD}" in response.json()["detail"]
            # a data route on the same database says the same, not a 500
            assert_unavailable(client.get("/teams"), "`heroes db upgrade`")
    finally:
        engine.dispose()


def unreachable_url(engine_name: str, tmp_path) -> str:
    if engine_name == "sqlite":
        return f"sqlite:///{tmp_path / 'missing-dir' / 'heroes.db'}"
    return f"postgresql+psycopg://heroes@/heroes?host={tmp_path / 'no-socket-here'}"


def test_unreachable_database_answers_503(engine_name, tmp_path):
    url = unreachable_url(engine_name, tmp_path)
    settings = Settings(database_url=url)
    engine = create_db_engine(settings=settings)
    try:
        with TestClient(create_app(settings=settings, engine=engine)) as client:
            for path in ("/health/ready", "/teams", "/heroes/1"):
                assert_unavailable(client.get(path), "database is unavailable")
            assert client.get("/health/live").status_code == 200
    finally:
        engine.dispose()


def test_exhausted_pool_answers_503_then_recovers(database_url, seeded):
    settings = Settings(database_url=database_url)
    engine = create_db_engine(database_url, settings, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        with TestClient(create_app(settings=settings, engine=engine)) as client:
            held = engine.connect()
            try:
                held.exec_driver_sql("SELECT 1")  # really checked out, not just promised
                for path in ("/teams/1", "/health/ready"):
                    assert_unavailable(client.get(path), "Every database connection is in use")
            finally:
                held.close()
            response = client.get("/teams/1")
            assert response.status_code == 200, response.text
            assert response.json()["name"] == "Preventers"
            assert client.get("/health/ready").json()["pool"]["size"] == 1
    finally:
        engine.dispose()


@pytest.mark.sqlite_only(
    reason="SQLite refuses a second writer with `database is locked`; PostgreSQL queues it"
)
def test_locked_sqlite_database_answers_503(database_url, seeded):
    settings = Settings(database_url=database_url, sqlite_busy_timeout_ms=0)
    engine = create_db_engine(settings=settings)
    writer = sqlite3.connect(make_url(database_url).database, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # holds the write lock
        with TestClient(create_app(settings=settings, engine=engine)) as client:
            response = client.post("/teams", json={"name": "Blocked", "headquarters": "Nowhere"})
            assert_unavailable(response, "held a lock this request needed past the lock timeout")  # busy
            assert client.get("/teams/1").status_code == 200  # WAL: readers are not blocked
            writer.rollback()
            response = client.post("/teams", json={"name": "Blocked", "headquarters": "Nowhere"})
            assert response.status_code == 201, response.text
    finally:
        writer.close()
        engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_builds_an_app(url):
    """An in-memory database lives in one connection: the engine shares it (and has no schema yet)."""
    engine = create_db_engine(url, Settings(database_url=url))
    try:
        assert type(engine.pool).__name__ == "StaticPool"
        with TestClient(create_app(settings=Settings(database_url=url), engine=engine)) as client:
            assert_unavailable(client.get("/health/ready"), "run `heroes db upgrade`")
    finally:
        engine.dispose()
