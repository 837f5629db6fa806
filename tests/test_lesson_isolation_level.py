"""Lesson isolation-level: count-then-insert under READ COMMITTED lets a team past 5 heroes; FOR UPDATE,
SQLite's BEGIN IMMEDIATE and SERIALIZABLE with a retry keep it at 5; SERIALIZABLE set too late does not."""

import sqlite3
import warnings

import pytest
from sqlalchemy import func, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from heroes.lessons.isolation_level import SSI_ONLY, lesson
from heroes.models import Hero
from heroes.seed import count_rows

from support import assert_problem

URL = "/lessons/isolation-level"
CLIENTS = 20
IGNORED = "Connection is already established for the given bind; execution_options ignored"
PG_ONLY = "SERIALIZABLE (SSI) and its 40001 are PostgreSQL's; SQLite answers 409 (tested below)"


def recruit(client, route: str, clients: int = CLIENTS, heroes: int = 4) -> dict:
    response = client.post(f"{URL}/{route}", params={"clients": clients, "heroes": heroes})
    assert response.status_code == 200, response.text
    return response.json()


def test_bad_lets_every_client_in(client, seeded, engine):
    """Every client counted 4 before any inserted (the lab's gate): all 20 join, 19 over the limit."""
    body = recruit(client, "bad")
    assert body == {
        "clients": 20,
        "joined": 20,
        "refused": 0,
        "failed": [],
        "retries": 0,
        "heroes": 24,
        "over_limit": 19,
        "warnings": [],
    }
    assert count_rows(engine) == (5, 15)  # the reference API's rows: untouched


def test_fixed_locks_and_keeps_the_team_at_five(client):
    body = recruit(client, "fixed")
    assert body == {
        "clients": 20,
        "joined": 1,
        "refused": 19,
        "failed": [],
        "retries": 0,
        "heroes": 5,
        "over_limit": 0,
        "warnings": [],
    }


def test_fixed_statements_and_an_empty_team(client, engine_name):
    """A lock each (FOR UPDATE; SQLite: BEGIN IMMEDIATE), a count each, one INSERT; from 0, 5 get in."""
    response = client.post(f"{URL}/fixed", params={"clients": 3, "heroes": 4})
    assert response.json()["heroes"] == 5
    assert response.headers["x-query-count"] == "7"  # 3 locks, 3 counts, 1 INSERT
    body = recruit(client, "fixed", clients=9, heroes=0)
    assert (body["joined"], body["refused"], body["heroes"], body["over_limit"]) == (5, 4, 5, 0)


@pytest.mark.postgres_only(reason=PG_ONLY)
def test_fixed_serializable_retries_the_losers_and_keeps_five(client):
    body = recruit(client, "fixed/serializable")
    assert (body["joined"], body["refused"], body["failed"], body["heroes"], body["over_limit"]) == (
        1,
        19,
        [],
        5,
        0,
    )
    assert body["retries"] >= CLIENTS - 1  # every loser ran again at least once (40001), then counted 5


@pytest.mark.postgres_only(reason=PG_ONLY)
def test_myth_serializable_set_after_the_first_statement_is_ignored(client):
    body = recruit(client, "bad/serializable-too-late")
    assert (body["joined"], body["heroes"], body["over_limit"], body["retries"]) == (20, 24, 19, 0)
    assert body["warnings"] == [
        "Connection is already established for the given bind; execution_options ignored"
    ]


@pytest.mark.postgres_only(reason=PG_ONLY)
def test_myth_sqlalchemy_warns_and_the_transaction_stays_read_committed(app, seeded):
    """The pinned SQLAlchemy: a warning, not an error, and the level of the transaction in flight unchanged;
    asked before the first statement, the same call does give SERIALIZABLE."""
    level = text("SHOW transaction_isolation")
    with Session(seeded) as session:
        session.exec(select(func.count()).select_from(Hero)).one()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session.connection(execution_options={"isolation_level": "SERIALIZABLE"})
        assert [str(w.message) for w in caught] == [IGNORED]
        assert session.execute(level).scalar() == "read committed"
    with Session(seeded) as session:
        session.connection(execution_options={"isolation_level": "SERIALIZABLE"})
        assert session.execute(level).scalar() == "serializable"


@pytest.mark.sqlite_only(reason="the SSI variants are PostgreSQL's: SQLite answers 409 and points at /fixed")
def test_sqlite_answers_409_for_the_serializable_variants(client):
    for route in ("fixed/serializable", "bad/serializable-too-late"):
        response = client.post(f"{URL}/{route}", params={"clients": 2})
        assert response.status_code == 409
        assert (response.json()["detail"], response.json()["type"]) == (SSI_ONLY, URL)


@pytest.mark.sqlite_only(reason="BEGIN IMMEDIATE is SQLite's: what its database-wide write lock costs")
def test_sqlite_begin_immediate_locks_every_writer_out(app, tmp_path):
    """While one transaction holds BEGIN IMMEDIATE, a write to another team (another table would do) waits,
    and after its busy timeout fails: "database is locked"."""
    path = make_url(str(lesson.scratch(app.state.lab).url)).database
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    other = sqlite3.connect(path, isolation_level=None, timeout=0.2)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.execute("INSERT INTO team (name, headquarters) VALUES ('Elsewhere', 'Far away')")
        holder.execute("ROLLBACK")
        other.execute("INSERT INTO team (name, headquarters) VALUES ('Elsewhere', 'Far away')")
    finally:
        holder.close()
        other.close()


def test_out_of_range_is_422(client):
    for params in ({"clients": 0}, {"clients": 26}, {"heroes": 6}, {"heroes": -1}):
        assert_problem(client.post(f"{URL}/bad", params=params), 422, next(iter(params)), "query")


def test_compare(client, engine_name):
    response = client.get(f"{URL}/compare", params={"size": 10})
    assert response.status_code == 200, response.text
    outcomes = {v["variant"]: v["outcome"] for v in response.json()["variants"]}
    assert outcomes["bad"] == "14 heroes (9 over the limit), 0 refused, 0 failed, 0 retries"
    assert outcomes["fixed"] == "5 heroes (0 over the limit), 9 refused, 0 failed, 0 retries"
    if engine_name == "sqlite":
        assert outcomes["fixed/serializable"] == outcomes["bad/serializable-too-late"] == f"409: {SSI_ONLY}"
    else:
        assert outcomes["bad/serializable-too-late"] == f"{outcomes['bad']}; SQLAlchemy warned: {IGNORED}"
        assert outcomes["fixed/serializable"].startswith("5 heroes (0 over the limit), 9 refused, 0 failed, ")
    assert list(outcomes) == ["bad", "bad/serializable-too-late", "fixed", "fixed/serializable"]
