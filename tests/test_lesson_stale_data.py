"""Lesson stale-data: the identity map answers the old name (get(): no SELECT; select(): a SELECT, old
name all the same), every fixed variant the new one for one more SELECT; autoflush=False misses a
pending row; autocommit=True raises; REPEATABLE READ keeps even refresh() on the old row (PostgreSQL)."""

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text, update
from sqlmodel import Session, select

from heroes.lessons.stale_data import scratch
from heroes.models import Hero

from support import assert_problem, scratch_rows

URL = "/lessons/stale-data"
NAMES = {1: "Deadpond", 2: "Rusty-Man", 3: "Spider-Boy", 4: "Tarantula"}


@pytest.mark.parametrize(
    ("route", "statements", "stale"),
    [
        ("bad", 2, True),  # get() twice: the second from the identity map, no SELECT
        ("bad/select", 3, True),  # a SELECT that gets the new row, and keeps the object's old name
        ("fixed", 3, False),  # refresh: one SELECT
        ("fixed/expire", 3, False),
        ("fixed/populate-existing", 3, False),
        ("fixed/new-session", 3, False),
    ],
)
def test_the_second_read_after_another_client_renamed(client, seeded, app, route, statements, stale):
    response = client.post(f"{URL}/{route}", json={"hero_id": 2, "name": "Iron Rust"})
    assert response.status_code == 200, response.text
    again = "Rusty-Man" if stale else "Iron Rust"
    assert response.json() == {"read_first": "Rusty-Man", "renamed_to": "Iron Rust", "read_again": again}
    assert response.headers["x-query-count"] == str(statements)
    assert scratch_rows(app, "stale_data", "SELECT name FROM hero WHERE id = 2") == [("Iron Rust",)]
    assert client.get("/heroes/2").json()["name"] == "Rusty-Man"  # the reference data is not the lesson's


def test_an_unknown_hero_is_404(client, seeded):
    assert_problem(client.post(f"{URL}/bad", json={"hero_id": 99, "name": "X"}), 404, "hero_id")


def test_myth_autoflush_off_misses_the_sessions_own_pending_row(client, seeded, app):
    response = client.post(f"{URL}/bad/autoflush-off", json={"name": "Newcomer"})
    assert response.status_code == 200, response.text
    assert response.json() == {"added": "Newcomer", "found": None}
    assert response.headers["x-query-count"] == "1"  # the SELECT only: nothing was flushed
    assert scratch_rows(app, "stale_data", "SELECT count(*) FROM hero WHERE name = 'Newcomer'") == [(0,)]
    with Session(scratch(app.state.lab)) as session:  # the default, autoflush=True: found
        session.add(Hero(name="Newcomer", secret_name="-"))
        assert session.exec(select(Hero.name).where(Hero.name == "Newcomer")).first() == "Newcomer"
        session.rollback()


def test_myth_autocommit_true_no_longer_exists(engine):
    with pytest.raises(sa_exc.ArgumentError, match="autocommit=True is no longer supported"):
        Session(engine, autocommit=True)


@pytest.mark.postgres_only(reason="REPEATABLE READ snapshots are PostgreSQL's (SQLite has no such level)")
def test_under_repeatable_read_even_refresh_sees_the_old_row_until_the_transaction_ends(app, seeded):
    engine = scratch(app.state.lab)
    with Session(engine) as session:
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        hero = session.get(Hero, 1)
        with engine.begin() as other:
            other.execute(update(Hero).where(Hero.id == 1).values(name="Deadpond II"))
        session.refresh(hero)
        assert hero.name == "Deadpond"  # the transaction's snapshot
        session.commit()  # the transaction ends: the next read is a new snapshot
        assert hero.name == "Deadpond II"


def test_the_reference_api_reads_each_request_afresh(client, seeded, engine):
    assert client.get("/heroes/1").json()["name"] == "Deadpond"
    with engine.begin() as other:  # another client renames hero 1
        other.execute(text("UPDATE hero SET name = 'Deadpond II' WHERE id = 1"))
    assert client.get("/heroes/1").json()["name"] == "Deadpond II"  # a session per request


def test_compare(client, seeded, engine_name):
    for _ in range(2):  # every run starts from the demo names
        response = client.get(f"{URL}/compare")
        assert response.status_code == 200, response.text
        variants = response.json()["variants"]
        table = [(v["variant"], v["statements"], v["outcome"]) for v in variants]
        committed = "read {!r}, another client committed 'Renamed {}', read again: {!r} ({})"
        assert table == [
            ("bad", 2, committed.format("Deadpond", 1, "Deadpond", "stale")),
            ("bad/select", 3, committed.format("Rusty-Man", 2, "Rusty-Man", "stale")),
            ("fixed", 3, committed.format("Spider-Boy", 3, "Renamed 3", "fresh")),
            ("fixed/expire", 3, committed.format("Tarantula", 4, "Renamed 4", "fresh")),
            ("fixed/populate-existing", 3, committed.format("Black Lion", 5, "Renamed 5", "fresh")),
            ("fixed/new-session", 3, committed.format("Dr. Weird", 6, "Renamed 6", "fresh")),
            ("bad/autoflush-off", 1, "added 'Newcomer', a query by that name found None"),
        ]
