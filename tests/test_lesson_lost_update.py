"""Lesson lost-update: 20 clients adding one to a counter at once, every client reading before any writes:
bad (and the version compared in Python) ends at 1, every fixed variant at 20; both engines."""

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session

from heroes.lab.clients import count_up, race_engine
from heroes.lessons.lost_update import Counter, LessonModel, VersionedCounter
from heroes.models import Hero
from heroes.seed import count_rows

from support import assert_problem, once_before

URL = "/lessons/lost-update"
K = 20
FIXED = ["fixed", "fixed/for-update", "fixed/version"]


def lesson_engine(app):
    return race_engine(app.state.lab, "lost_update", LessonModel.metadata)


def test_bad_loses_every_increment_but_one_and_every_fixed_variant_counts_them_all(
    client, seeded, engine, engine_name
):
    """Every client read 0 before any wrote: bad writes 1, twenty times over, and no error tells anyone."""
    for route, reads in (("bad", 1), ("bad/version-check", 2)):  # version-check reads the version again
        response = client.post(f"{URL}/{route}")  # 20 clients by default
        assert response.json() == {"clients": K, "final": 1, "lost": K - 1, "retries": 0, "errors": {}}
        assert response.headers["x-query-count"] == str(K * (reads + 1))  # each client's reads and UPDATE

    for route in FIXED:
        response = client.post(f"{URL}/{route}", params={"clients": K})
        body = response.json()
        assert (body["clients"], body["final"], body["lost"], body["errors"]) == (K, K, 0, {}), route
        statements = int(response.headers["x-query-count"])
        if route == "fixed":
            assert (body["retries"], statements) == (0, K)  # one UPDATE each, no read
        elif route == "fixed/for-update":  # SELECT ... FOR UPDATE and UPDATE; SQLite's BEGIN IMMEDIATE first
            assert (body["retries"], statements) == (0, K * (3 if engine_name == "sqlite" else 2))
        else:  # every client read version 1 before any wrote: one UPDATE matched, the other 19 retried
            assert body["retries"] >= K - 1
            assert statements == 2 * (K + body["retries"])  # a read and an UPDATE per attempt
    assert count_rows(engine) == (5, 15)  # the reference API's rows untouched


def test_one_client_alone_loses_nothing_and_clients_are_bounded(client, seeded):
    """Alone, read-add-write is right: that is why it survives code review."""
    assert client.post(f"{URL}/bad", params={"clients": 1}).json()["final"] == 1
    for clients in (0, 201, "x"):
        assert_problem(client.post(f"{URL}/bad", params={"clients": clients}), 422, "clients", "query")


# ---- the version column: version_id_col, its StaleDataError, and the myth ----------------------------


def test_version_id_col_refuses_the_stale_writer_that_a_python_compare_lets_through(app, seeded):
    """version_id_col (a sa_column) puts the version in the UPDATE's WHERE: the second writer fails with
    StaleDataError. The myth: comparing the version in Python first passes for both writers, one lost."""
    assert VersionedCounter.__mapper__.version_id_col is VersionedCounter.__table__.c.version
    engine = lesson_engine(app)
    with Session(engine) as setup:
        setup.add(counter := VersionedCounter(n=0))
        setup.commit()
        assert (counter.id, counter.version) == (1, 1)  # the mapper set the first version
    with Session(engine) as a, Session(engine) as b:
        first, second = a.get(VersionedCounter, 1), b.get(VersionedCounter, 1)
        first.n += 1
        a.commit()  # UPDATE ... SET n=1, version=2 WHERE id = 1 AND version = 1
        second.n += 1
        with pytest.raises(StaleDataError, match="expected to update 1 row"):
            b.commit()  # the same WHERE version = 1 matches no row now

    def compare_then_write(session, counter_id):
        counter = session.get(VersionedCounter, counter_id)
        now = session.scalar(select(VersionedCounter.version).where(VersionedCounter.id == counter_id))
        assert now == counter.version  # the check passes: nobody has written yet
        values = {"n": counter.n + 1, "version": counter.version + 1}
        session.execute(update(VersionedCounter).where(VersionedCounter.id == counter_id).values(**values))
        session.commit()

    assert count_up(engine, 2, VersionedCounter, compare_then_write) == (1, 0, {})  # 2 clients: 1


def test_the_reference_patch_puts_if_match_in_the_where_and_answers_412(client, seeded, engine):
    """The HTTP face: ETag "1" read, If-Match "1" checked in Python, another client writes before the
    UPDATE: the Python check passed, the WHERE version = 1 refuses it: 412, nothing changed."""
    read = client.get("/heroes/1")
    assert read.headers["etag"] == '"1"'
    bump = update(Hero).where(Hero.id == 1).values(age=99, version=Hero.version + 1)
    with once_before(engine, "UPDATE hero", lambda other: other.execute(bump)):
        response = client.patch("/heroes/1", json={"age": 50}, headers={"If-Match": read.headers["etag"]})
    assert response.status_code == 412, response.text
    assert "changed by someone else meanwhile" in response.json()["detail"]
    again = client.get("/heroes/1")
    assert (again.headers["etag"], again.json()["age"]) == ('"2"', 99)
    ok = client.patch("/heroes/1", json={"age": 50}, headers={"If-Match": '"2"'})
    assert (ok.status_code, ok.headers["etag"]) == (200, '"3"')
    assert client.patch("/heroes/1", json={"age": 51}, headers={"If-Match": '"2"'}).status_code == 412


# ---- the engines: FOR UPDATE, BEGIN IMMEDIATE, "database is locked" -----------------------------------


def test_sqlalchemy_renders_for_update_on_postgresql_only():
    query = select(Counter).where(Counter.id == 1).with_for_update()
    assert str(query.compile(dialect=postgresql.dialect())).endswith("FOR UPDATE")
    assert "FOR UPDATE" not in str(query.compile(dialect=sqlite.dialect()))


@pytest.mark.sqlite_only(reason="SQLite's whole-database write lock: a stale reader may not write")
def test_sqlite_refuses_stale_writers_when_the_read_is_in_a_transaction(app, seeded):
    """BEGIN before the read (a deferred transaction): the first writer commits, the 19 others read an
    older snapshot and are refused at once, "database is locked", though the busy timeout is 20 s."""

    def read_in_a_transaction(session, counter_id):
        session.execute(text("BEGIN"))
        counter = session.get(Counter, counter_id)
        counter.n = counter.n + 1
        session.commit()

    final, retries, errors = count_up(lesson_engine(app), K, Counter, read_in_a_transaction)
    assert (final, retries, errors) == (1, 0, {"OperationalError: database is locked": K - 1})


# ---- compare, reset -----------------------------------------------------------------------------------


def test_compare_then_reset(client, seeded, app, engine_name):
    response = client.get(f"{URL}/compare")
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["engine"], result["size"]) == (engine_name, 20)
    outcomes = {v["variant"]: v["outcome"] for v in result["variants"]}
    assert list(outcomes) == ["bad", "bad/version-check", "fixed", "fixed/for-update", "fixed/version"]
    assert outcomes["bad"] == outcomes["bad/version-check"] == "counter 1 of 20: 19 lost, 0 retries"
    assert outcomes["fixed"] == outcomes["fixed/for-update"] == "counter 20 of 20: 0 lost, 0 retries"
    assert outcomes["fixed/version"].startswith("counter 20 of 20: 0 lost, ")

    assert client.post(f"{URL}/reset").status_code == 200  # the engine disposed, the tables dropped
    assert client.post(f"{URL}/fixed", params={"clients": 3}).json()["final"] == 3
    with Session(lesson_engine(app)) as session:
        assert session.scalar(text("SELECT count(*) FROM counter")) == 1  # a new database: one counter
