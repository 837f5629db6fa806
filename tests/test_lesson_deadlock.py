"""Lesson deadlock (PostgreSQL): opposite transfers in the request's lock order deadlock on every run (one
40P01), in id order never; the victim retried goes through; a row lock held during slow work makes a
writer give up at lock_timeout (55P03), slow work outside the transaction does not; a plain
session.get() in sorted order locks nothing (the Myth); on SQLite, a 409, and SQLite's own face of
it ("database is locked" at once with a busy timeout of 0)."""

import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from heroes.lessons.deadlock import Account, lesson_engine, pair
from heroes.seed import count_rows

URL = "/lessons/deadlock"
DEADLOCK = "DeadlockDetected (40P01)"
PG = pytest.mark.postgres_only(reason="row locks, deadlock detection, lock_timeout: a PostgreSQL server")


def transfer(client, route: str, body: list[dict]) -> dict:
    response = client.post(f"{URL}/{route}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def balances(body: dict) -> dict[int, int]:
    return {int(k): v for k, v in body["balances"].items()}


@PG
def test_bad_opposite_transfers_deadlock_on_every_run(client, seeded, engine):
    start = {1: 100, 2: 100, 3: 100, 4: 100}
    for _ in range(3):  # the barrier: every run, one of the two dies with 40P01
        body = transfer(client, "bad", pair(1, 2, 30, 10))
        assert sorted(body["outcomes"]) == [DEADLOCK, "done"]
        survivor = body["outcomes"].index("done")  # only its transfer happened
        moved = (-30, 30) if survivor == 0 else (10, -10)
        start = {**start, 1: start[1] + moved[0], 2: start[2] + moved[1]}
        assert balances(body) == start
        assert sum(body["balances"].values()) == 400
    assert count_rows(engine) == (5, 15)  # the reference API's rows untouched


@PG
def test_fixed_locks_in_id_order_and_both_transfers_go_through(client, seeded):
    for n in range(1, 4):
        body = transfer(client, "fixed", pair(2, 1, 12, 4))
        assert body["outcomes"] == ["done", "done"]
        assert balances(body) == {1: 100 + 8 * n, 2: 100 - 8 * n, 3: 100, 4: 100}


@PG
def test_fixed_retry_runs_the_victim_again(client, seeded):
    body = transfer(client, "fixed/retry", pair(3, 4, 7, 5))
    assert sorted(body["outcomes"]) == ["done", "done after 1 retries"]  # the bad order, and 1 retry
    assert balances(body) == {1: 100, 2: 100, 3: 98, 4: 102}


@PG
@pytest.mark.parametrize(
    ("route", "writer", "balance"),
    [("bad/slow-work", "LockNotAvailable (55P03)", 90), ("fixed/slow-work", "done", 91)],
)
def test_a_row_lock_held_during_slow_work_makes_the_writer_give_up(
    client, seeded, app, route, writer, balance
):
    response = client.post(f"{URL}/{route}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["writer"] == writer
    if route.startswith("bad"):
        assert (
            body["waited_ms"] >= 300
        )  # it waited lock_timeout (a lower bound PostgreSQL keeps), then gave up
    with Session(lesson_engine(app.state.lab)) as session:
        assert session.get(Account, 1).balance == balance  # the deposit lost (bad) or kept (fixed)


@PG
def test_myth_sorting_ids_before_get_takes_no_lock(client, seeded, app):
    lab_engine = lesson_engine(app.state.lab)
    nowait = text("SELECT id FROM account WHERE id IN (1, 2) FOR UPDATE NOWAIT")
    for lock, blocked in ((False, False), (True, True)):
        with Session(lab_engine) as first, lab_engine.connect() as other:
            for account_id in sorted((2, 1)):
                first.get(Account, account_id, with_for_update=lock)
            try:
                other.execute(nowait)
                outcome = False
            except OperationalError as exc:
                outcome = exc.orig.sqlstate == "55P03"  # lock_not_available
            assert outcome is blocked  # a plain get() leaves both rows free for anyone to lock


@PG
def test_myth_a_deadlock_does_not_hang_it_is_aborted_after_deadlock_timeout(client, seeded, app, engine):
    with engine.connect() as plain:
        assert plain.execute(text("SHOW deadlock_timeout")).scalar() == "1s"  # PostgreSQL's default
    with lesson_engine(app.state.lab).connect() as lessons:
        assert lessons.execute(text("SHOW deadlock_timeout")).scalar() == "100ms"
        assert lessons.execute(text("SHOW lock_timeout")).scalar() == "300ms"
    assert DEADLOCK in transfer(client, "bad", pair(4, 3, 5, 5))["outcomes"]


@PG
def test_reset_puts_every_account_back(client, seeded, app):
    transfer(client, "fixed", pair(1, 3, 50, 1))
    assert client.post(f"{URL}/reset").status_code == 200
    assert balances(transfer(client, "fixed", pair(1, 2, 1, 1))) == {1: 100, 2: 100, 3: 100, 4: 100}


@PG
def test_compare(client, seeded):
    response = client.get(f"{URL}/compare")
    assert response.status_code == 200, response.text
    outcomes = [(v["variant"], v["outcome"]) for v in response.json()["variants"]]
    assert outcomes == [
        ("bad", f"{DEADLOCK}, done; total 400"),
        ("fixed", "done, done; total 400"),
        ("fixed/retry", "done, done after 1 retries; total 400"),
        ("bad/slow-work", "the deposit: LockNotAvailable (55P03)"),
        ("fixed/slow-work", "the deposit: done"),
    ]


@pytest.mark.sqlite_only(reason="the lesson needs PostgreSQL's row locks: on SQLite, a 409")
def test_on_sqlite_every_route_and_compare_answer_409(client, seeded):
    for route in ("bad", "fixed", "fixed/retry", "bad/slow-work", "fixed/slow-work"):
        response = client.post(f"{URL}/{route}", json=pair(1, 2, 3, 4))
        assert response.status_code == 409
        assert "heroes lesson deadlock --postgres" in response.json()["detail"]
    assert client.get(f"{URL}/compare").status_code == 409


def test_sqlites_face_is_database_is_locked_at_once_with_a_busy_timeout_of_0(tmp_path):
    """SQLite has no row locks: two read-then-write transactions, and the second writer fails at once."""
    path = tmp_path / "bank.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER)")
        setup.execute("INSERT INTO account VALUES (1, 100), (2, 100)")
    first, second = (sqlite3.connect(path, timeout=0, isolation_level=None) for _ in range(2))
    try:
        for connection in (first, second):  # both read (deferred BEGIN: a read lock each)
            connection.execute("BEGIN")
            connection.execute("SELECT balance FROM account WHERE id = 1").fetchone()
        first.execute("UPDATE account SET balance = balance - 30 WHERE id = 1")
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            second.execute("UPDATE account SET balance = balance + 10 WHERE id = 2")
    finally:
        first.close()
        second.close()
