"""Lesson connection-leak: bad empties the lesson's own pool of 2 (then 503 after the 1 s timeout), fixed
never keeps a connection; the main pool is untouched; the myths (pre-ping, the garbage collector)."""

import gc
import time
import weakref

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlmodel import Session

from heroes.lessons.connection_leak import BAD, COUNT, FIXED, POOL, lesson, lesson_engine
from heroes.seed import seed_demo

URL = "/lessons/connection-leak"
TIMEOUT = "QueuePool limit of size 2 overflow 0 reached, connection timed out, timeout 1.00"


def pool_of(app, key: str):
    return lesson_engine(app.state.lab, key).pool


def test_bad_keeps_a_connection_per_call_then_answers_503_within_the_pool_timeout(client, seeded, app):
    for k in (1, 2):
        response = client.get(f"{URL}/bad")
        assert response.status_code == 200, response.text
        assert response.json() == {"heroes": 15, "checked_out": k, "pool_size": 2}
        assert pool_of(app, BAD).checkedout() == k
    for _ in range(2):  # every call after them, until reset
        started = time.monotonic()
        response = client.get(f"{URL}/bad")
        took = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert took < POOL["pool_timeout"] + 1  # a bounded wait, never a hang
        body = response.json()
        assert (body["type"], body["exception"]) == (URL, "TimeoutError")
        assert body["detail"].startswith(TIMEOUT)
        assert response.headers["retry-after"]
        assert response.headers["x-query-count"] == "0"  # it never got a connection to send anything
    assert pool_of(app, BAD).checkedout() == 2


def test_while_the_lesson_pool_is_empty_the_reference_api_answers(client, seeded, app, engine):
    for _ in range(3):
        client.get(f"{URL}/bad")
    assert pool_of(app, BAD).checkedout() == 2
    for _ in range(12):  # more than the main pool holds (5 + 5): its sessions are closed per request
        response = client.get("/heroes/1")
        assert response.status_code == 200
        assert response.json()["name"] == "Deadpond"
    assert engine.pool.checkedout() == 0
    assert (
        client.get(f"{URL}/fixed").status_code == 200
    )  # fixed has its own engine: bad's leaks never reach it


def test_reset_gives_the_leaked_connections_back(client, seeded, app):
    for _ in range(3):
        client.get(f"{URL}/bad")
    response = client.post(f"{URL}/reset")
    assert response.status_code == 200, response.text
    assert response.json()["lessons"] == ["connection-leak"]
    again = client.get(f"{URL}/bad")
    assert (again.status_code, again.json()["checked_out"]) == (200, 1)


@pytest.mark.parametrize(("route", "during"), [("fixed", 0), ("fixed/dependency", 1)])
def test_fixed_never_keeps_a_connection(client, seeded, app, route, during):
    for _ in range(5):  # more calls than the pool has connections
        response = client.get(f"{URL}/{route}")
        assert response.status_code == 200, response.text
        assert response.json() == {"heroes": 15, "checked_out": during, "pool_size": 2}  # 1: its own, for now
    assert pool_of(app, FIXED).checkedout() == 0
    assert pool_of(app, BAD).checkedout() == 0


def test_the_app_stopping_closes_what_bad_leaked(app, seeded, engine_name):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        client.get(f"{URL}/bad")
        client.get(f"{URL}/bad")
        leaked = pool_of(app, BAD)
        assert leaked.checkedout() == 2
    assert leaked.checkedout() == 0  # Lab.close() released them before dropping the scratch databases
    if engine_name == "postgresql":
        with app.state.engine.connect() as connection:
            query = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'heroes_connection%'"
            assert connection.scalar(text(query)) == 0


# ---- the myths ----------------------------------------------------------------------------------------


def test_myth_pool_pre_ping_does_not_fix_a_leak(app, seeded):
    lab = app.state.lab
    engine = lab.own_engine("connection_leak_myth", lesson.name, seed_demo, pool_pre_ping=True, **POOL)
    try:
        leaked = [Session(engine) for _ in range(2)]
        for session in leaked:
            assert session.exec(COUNT).one() == 15
        with pytest.raises(sa_exc.TimeoutError, match="QueuePool limit of size 2 overflow 0 reached"):
            Session(engine).exec(COUNT).one()
    finally:
        for session in leaked:
            session.close()
        lab.release("connection_leak_myth")


def test_myth_an_unreferenced_session_is_returned_by_the_garbage_collector_whenever_it_runs(app, seeded):
    """Not a memory leak: the object is freed. A connection leak until the collector runs: intermittent."""
    engine = lesson_engine(app.state.lab, FIXED)
    gc.collect()
    gc.disable()  # the collector runs when allocations say so; here, only when we say so
    try:
        session = Session(engine)
        session.exec(COUNT).one()
        alive = weakref.ref(session)
        del session  # nobody references it any more, and nobody closed it
        assert alive() is not None  # a reference cycle keeps it until the collector runs
        assert engine.pool.checkedout() == 1  # its connection is still out
        gc.collect()
        assert alive() is None  # the object is gone: no memory leak
        assert engine.pool.checkedout() == 0  # and the connection came back, when the collector ran
    finally:
        gc.enable()


# ---- the reference API --------------------------------------------------------------------------------


def test_the_reference_api_closes_its_sessions(client, seeded, engine):
    size = engine.pool.size() + engine.pool._max_overflow
    for _ in range(size * 2):
        assert client.get("/heroes/1").status_code == 200
    assert engine.pool.checkedout() == 0


# ---- compare ------------------------------------------------------------------------------------------


def test_compare(client, seeded, engine_name):
    for _ in range(2):  # compare starts from a reset pool every time
        response = client.get(f"{URL}/compare")
        assert response.status_code == 200, response.text
        variants = response.json()["variants"]
        assert [v["variant"] for v in variants] == [
            "bad", "bad, 2nd", "bad, 3rd", "fixed", "fixed, 2nd", "fixed, 3rd", "fixed/dependency",
        ]  # fmt: skip
        outcomes = [v["outcome"] for v in variants]
        assert outcomes[:2] == [
            "200 OK: 1 of 2 connections checked out",
            "200 OK: 2 of 2 connections checked out",
        ]
        assert outcomes[2].startswith(f"503: {TIMEOUT}")
        assert outcomes[3:6] == ["200 OK: 0 of 2 connections checked out"] * 3
        assert outcomes[6] == "200 OK: 1 of 2 connections checked out"
        assert [v["statements"] for v in variants] == [1, 1, 0, 1, 1, 1, 1]
