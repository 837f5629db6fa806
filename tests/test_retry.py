"""The reference API's writes under contention. Each write is one unit of work, run again when PostgreSQL
aborts it for a deadlock (40P01) or a serialization failure (40001), 3 attempts at most, then 503 +
Retry-After; a request waiting for another transaction's lock gives up at the lock timeout (SQLite: its
busy timeout) with 503 + Retry-After, and the API keeps answering meanwhile.

The conflicts are real: another client, on a connection of its own, writes at the moment that makes the
database itself abort the request's transaction. Nothing here raises a made-up exception.
"""

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, event, pool, text
from sqlalchemy.engine import make_url

from heroes.config import Settings
from heroes.db import WRITE_ATTEMPTS, create_db_engine
from heroes.main import create_app
from heroes.problems import LOCKED, PROBLEM_JSON, write_conflict_detail
from heroes.seed import seed_demo

from support import assert_problem, rows

RUSTY_MAN = {"id": 2, "name": "Rusty-Man", "age": 48, "team_id": 1, "version": 1}
PREVENTERS = {"id": 1, "name": "Preventers", "headquarters": "Sharp Tower"}
HERO_2 = "SELECT name, age, team_id, version FROM hero WHERE id = 2"
PG_ONLY = "SQLite has no 40001 or 40P01: one writer at a time, the others wait (its busy timeout)"


@contextmanager
def serving(settings: Settings, **engine_options) -> Iterator[tuple[TestClient, Engine]]:
    """The lab on its database seeded with the demo cast, its engine built with `engine_options`."""
    engine = create_db_engine(settings=settings, **engine_options)
    seed_demo(engine)
    try:
        with TestClient(create_app(settings=settings, engine=engine)) as client:
            yield client, engine
    finally:
        engine.dispose()


@contextmanager
def attempts(engine: Engine, prefix: str) -> Iterator[list[str]]:
    """Every statement starting with `prefix` the app sends, the ones that fail included: one per attempt."""
    sent: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith(prefix):
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", before)


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# ---- (1) a real deadlock, at the API's own isolation level (READ COMMITTED): retried, then 200 --------


@pytest.mark.postgres_only(reason=PG_ONLY)
def test_a_deadlock_is_retried_and_the_write_goes_through(settings, database_url, caplog):
    """PATCH /heroes/2 moving the hero to team 2 locks the row of hero 2, then (its foreign key) team 2.
    Another client holds team 2 and, once the request waits for it, updates hero 2: a deadlock.
    PostgreSQL aborts the request's transaction (it waited first); the second attempt goes through."""
    other = psycopg.connect(libpq(database_url))  # a transaction of its own, left open until it commits
    observer = psycopg.connect(libpq(database_url), autocommit=True)
    other.execute("SET deadlock_timeout = '10s'")  # the request's check (1 s) finds the cycle first
    errors: list[BaseException] = []

    def update_hero_2_once_the_request_waits(request_pid: int) -> None:
        try:
            query = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s"
            deadline = time.monotonic() + 10
            while not observer.execute(query, (request_pid,)).fetchone()[0]:  # waiting for team 2
                assert time.monotonic() < deadline, "the request never waited for team 2"
                time.sleep(0.01)
            other.execute("UPDATE hero SET age = age + 1, version = version + 1 WHERE id = 2")  # the cycle
            other.commit()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads: list[threading.Thread] = []

    def lock_team_2_first(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("UPDATE hero") and not threads:
            other.execute("SELECT id FROM team WHERE id = 2 FOR UPDATE")
            pid = conn.connection.driver_connection.info.backend_pid
            threads.append(threading.Thread(target=update_hero_2_once_the_request_waits, args=(pid,)))
            threads[0].start()

    with serving(settings) as (client, engine):
        event.listen(engine, "before_cursor_execute", lock_team_2_first)
        try:
            with attempts(engine, "UPDATE hero") as sent, caplog.at_level(logging.INFO, "heroes"):
                response = client.patch("/heroes/2", json={"team_id": 2})
        finally:
            event.remove(engine, "before_cursor_execute", lock_team_2_first)
            for thread in threads:
                thread.join(10)
            other.close()
            observer.close()
    assert not errors, errors
    assert response.status_code == 200, response.text
    assert response.json() == RUSTY_MAN | {"age": 49, "team_id": 2, "version": 3}  # both writes kept
    assert len(sent) == 2  # the attempt PostgreSQL aborted, the one that committed
    assert "write retried: deadlock_detected (attempt 1 of 3)" in caplog.text
    assert rows(database_url, HERO_2) == [("Rusty-Man", 49, 2, 3)]


# ---- (1) and (2): serialization failures, the request's transaction made SERIALIZABLE for the test ------


@contextmanager
def another_client_writes_after(engine: Engine, url: str, read: str, write: str, times: int):
    """Right after each of the request's first `times` statements starting with `read`, another client
    commits `write` on a connection of its own: what the request read is stale before it writes."""
    other = create_engine(url, poolclass=pool.NullPool)
    wrote: list[str] = []

    def after(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith(read) and len(wrote) < times:
            with other.begin() as connection:
                connection.execute(text(write))
            wrote.append(write)

    event.listen(engine, "after_cursor_execute", after)
    try:
        yield wrote
    finally:
        event.remove(engine, "after_cursor_execute", after)
        other.dispose()


WRITES = {  # route, body, what it reads, what another client writes meanwhile, its status, the row after
    "PATCH hero": (
        ("PATCH", "/heroes/2", {"name": "Rusty-Man II"}),
        ("SELECT hero", "UPDATE hero SET age = age + 1, version = version + 1 WHERE id = 2", "UPDATE hero"),
        (200, HERO_2, [("Rusty-Man II", 49, 1, 3)]),
    ),
    "DELETE hero": (
        ("DELETE", "/heroes/2", None),
        (
            "SELECT hero",
            "UPDATE hero SET age = age + 1, version = version + 1 WHERE id = 2",
            "DELETE FROM hero",
        ),
        (204, HERO_2, []),
    ),
    "PATCH team": (
        ("PATCH", "/teams/1", {"headquarters": "Moon Base"}),
        ("SELECT team", "UPDATE team SET name = 'Preventers II' WHERE id = 1", "UPDATE team"),
        (200, "SELECT name, headquarters FROM team WHERE id = 1", [("Preventers II", "Moon Base")]),
    ),
}


@pytest.mark.postgres_only(reason=PG_ONLY)
@pytest.mark.parametrize("case", list(WRITES))
def test_a_serialization_failure_is_retried_and_the_write_goes_through(settings, database_url, caplog, case):
    (method, path, body), (read, write, sends), (status, query, after) = WRITES[case]
    with (
        serving(settings, isolation_level="SERIALIZABLE") as (client, engine),
        another_client_writes_after(engine, database_url, read, write, times=1) as wrote,
        attempts(engine, sends) as sent,
        caplog.at_level(logging.INFO, "heroes"),
    ):
        response = client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert (len(wrote), len(sent)) == (1, 2)  # the attempt PostgreSQL aborted (40001), the one that committed
    assert "write retried: serialization_failure (attempt 1 of 3)" in caplog.text
    assert rows(database_url, query) == after  # the other client's write kept, the request's applied


@pytest.mark.postgres_only(reason=PG_ONLY)
def test_retries_run_out_503_with_retry_after(settings, database_url, caplog):
    """Another client writes hero 2 between the request's read and its write on every attempt."""
    write = "UPDATE hero SET age = age + 1, version = version + 1 WHERE id = 2"
    with serving(settings, isolation_level="SERIALIZABLE") as (client, engine):
        with (
            another_client_writes_after(engine, database_url, "SELECT hero", write, times=10) as wrote,
            attempts(engine, "UPDATE hero") as sent,
            caplog.at_level(logging.INFO, "heroes"),
        ):
            response = client.patch("/heroes/2", json={"name": "Rusty-Man II"})
        body = assert_problem(response, 503)
        assert response.headers["retry-after"] == "2"
        assert (
            body["detail"]
            == write_conflict_detail(3)
            == (
                "This write conflicted with concurrent transactions (a serialization failure or a deadlock) "
                "and was tried 3 times; try again shortly."
            )
        )
        assert len(wrote) == len(sent) == WRITE_ATTEMPTS == 3  # the bound, no more
        documented = client.app.openapi()["paths"]["/heroes/{hero_id}"]["patch"]["responses"]["503"]
        assert documented["content"][PROBLEM_JSON]["example"]["detail"] == body["detail"]  # /docs shows it
        assert "write gave up after 3 attempts: serialization_failure" in caplog.text
        assert rows(database_url, HERO_2) == [("Rusty-Man", 51, 1, 4)]  # the request changed nothing
        assert client.get("/heroes/2").json() == RUSTY_MAN | {
            "age": 51,
            "version": 4,
            "team": PREVENTERS,
        }  # and the API answers


# ---- (3) a row lock held by another transaction: 503 at the lock timeout (SQLite: the busy timeout) -----


@contextmanager
def another_client_holds_hero_2(engine_name: str, database_url: str) -> Iterator[None]:
    """PostgreSQL: SELECT ... FOR UPDATE of hero 2 in an open transaction. SQLite has no row locks: a
    write transaction (BEGIN IMMEDIATE) holds the whole database's write lock."""
    if engine_name == "postgresql":
        holder = psycopg.connect(libpq(database_url))
        holder.execute("SELECT id FROM hero WHERE id = 2 FOR UPDATE")
    else:
        holder = sqlite3.connect(make_url(database_url).database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.close()  # its transaction ends with it


def test_a_write_waiting_for_a_lock_answers_503_at_the_lock_timeout(engine_name, database_url):
    settings = Settings(database_url=database_url, lock_timeout_ms=300, sqlite_busy_timeout_ms=300)
    with serving(settings) as (client, engine):
        with another_client_holds_hero_2(engine_name, database_url), attempts(engine, "UPDATE hero") as sent:
            response = client.patch("/heroes/2", json={"name": "Rusty-Man II"})
            body = assert_problem(response, 503)
            assert response.headers["retry-after"] == "2"
            assert body["detail"] == LOCKED
            assert len(sent) == 1  # a lock wait is not retried: the client is told when to come back
            assert client.get("/heroes/2").json() == RUSTY_MAN | {
                "team": PREVENTERS
            }  # readers are not blocked
            assert client.get("/teams/1").status_code == 200
            other = client.patch("/heroes/3", json={"age": 19})  # another row: free on PostgreSQL
            assert other.status_code == (200 if engine_name == "postgresql" else 503), other.text
        response = client.patch("/heroes/2", json={"name": "Rusty-Man II"})  # the lock is gone
        assert response.status_code == 200, response.text
        assert response.json() == RUSTY_MAN | {"name": "Rusty-Man II", "version": 2}
