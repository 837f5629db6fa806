"""Lesson stale-connection (PostgreSQL): after the server drops the pool's connections, without pre-ping
exactly the first request fails (the pool is invalidated whole), with pre-ping none; a connection
dropped mid-transaction fails even with pre-ping and poisons its session until rolled back; the
reference API's engine pre-pings; on SQLite, the lesson answers 409 and says how to start PostgreSQL."""

import pytest
from sqlalchemy import text

from heroes.lessons.stale_connection import drop_connections, lesson_engine, name_of

URL = "/lessons/stale-connection"
DROPPED = "OperationalError: AdminShutdown: terminating connection due to administrator command"
RECONNECT = "PendingRollbackError: Can't reconnect until invalid transaction is rolled back."
OK = "200 OK"


def post(client, route: str, requests: int = 4) -> dict:
    response = client.post(f"{URL}/{route}", params={"requests": requests})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.postgres_only(reason="pg_terminate_backend: a server that drops connections")
def test_bad_only_the_first_request_after_the_drop_fails(client, seeded):
    for _ in range(2):  # and again: the pool refills with connections the server drops once more
        body = post(client, "bad", requests=5)
        assert (body["dropped"], body["failed"]) == (3, 1)  # 3 dead connections, 1 failure
        assert body["requests"] == [DROPPED] + [OK] * 4


@pytest.mark.postgres_only(reason="pg_terminate_backend: a server that drops connections")
def test_fixed_pre_ping_hides_the_drop(client, seeded):
    for _ in range(2):
        assert post(client, "fixed") == {"dropped": 3, "failed": 0, "requests": [OK] * 4}


@pytest.mark.postgres_only(reason="pg_terminate_backend: a server that drops connections")
def test_myth_pre_ping_does_not_save_a_connection_dropped_mid_transaction(client, seeded, app):
    assert lesson_engine(app.state.lab, "mid").pool._pre_ping  # the engine pings, and it does not help
    body = post(client, "bad/mid-transaction")
    assert (body["dropped"], body["failed"]) == (1, 4)
    assert body["requests"][0] == DROPPED
    assert all(outcome.startswith(RECONNECT) for outcome in body["requests"][1:])


@pytest.mark.postgres_only(reason="pg_terminate_backend: a server that drops connections")
def test_fixed_mid_transaction_rolls_back_and_the_next_requests_work(client, seeded):
    body = post(client, "fixed/mid-transaction")
    assert body == {"dropped": 1, "failed": 1, "requests": [DROPPED, OK, OK, OK]}  # the one in flight fails


@pytest.mark.postgres_only(reason="pg_terminate_backend: a server that drops connections")
def test_the_lesson_drops_its_own_connections_only(client, seeded, app, engine):
    with engine.connect() as mine:  # a connection of the reference API's engine, open throughout
        post(client, "bad")
        assert mine.execute(text("SELECT 1")).scalar() == 1
    lab = app.state.lab
    assert drop_connections(lab, "fixed") == 3  # its 3, not the "heroes" connections
    assert name_of(lab, "fixed").startswith("heroes_stale_connection_p")


@pytest.mark.postgres_only(reason="pg_terminate_backend: a server that drops connections")
def test_the_reference_api_survives_its_connections_being_dropped(client, seeded, engine):
    pooled = [engine.connect() for _ in range(3)]  # the reference API's pool holds 3 connections
    for connection in pooled:
        connection.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
        pids = admin.execute(text("SELECT pg_backend_pid()")).scalar()
        query = (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'heroes' "
            "AND datname = current_database() AND pid <> :me"
        )
        assert admin.execute(text(query), {"me": pids}).scalar() == 2  # the pool's other 2
    for _ in range(engine.pool.size() + 2):
        response = client.get("/heroes/1")
        assert response.status_code == 200, response.text  # pre-ping: every request succeeds
        assert response.json()["name"] == "Deadpond"


@pytest.mark.postgres_only(reason="pg_terminate_backend: a server that drops connections")
def test_compare(client, seeded):
    for _ in range(2):
        response = client.get(f"{URL}/compare")
        assert response.status_code == 200, response.text
        outcomes = [(v["variant"], v["outcome"]) for v in response.json()["variants"]]
        assert outcomes == [
            ("bad", f"connections dropped: 3, 1 of 4 requests failed, first: {DROPPED}"),
            ("fixed", "connections dropped: 3, 0 of 4 requests failed"),
            ("bad/mid-transaction", f"connections dropped: 1, 4 of 4 requests failed, first: {DROPPED}"),
            ("fixed/mid-transaction", f"connections dropped: 1, 1 of 4 requests failed, first: {DROPPED}"),
        ]


@pytest.mark.sqlite_only(reason="the lesson needs a server that drops connections: on SQLite, a 409")
def test_on_sqlite_every_route_and_compare_answer_409(client, seeded):
    for route in ("bad", "fixed", "bad/mid-transaction", "fixed/mid-transaction"):
        response = client.post(f"{URL}/{route}")
        assert response.status_code == 409
        assert "heroes lesson stale-connection --postgres" in response.json()["detail"]
    assert client.get(f"{URL}/compare").status_code == 409
