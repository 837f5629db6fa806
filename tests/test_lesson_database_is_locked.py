"""Lesson database-is-locked: on SQLite every bad variant fails every writer and its fix none, on PostgreSQL
nothing fails; the reference API's SQLite engine holds K concurrent writers without an error."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from heroes.db import create_db_engine
from heroes.lab.check import all_reach
from heroes.models import Hero

from support import assert_problem

URL = "/lessons/database-is-locked"
K = 20
LOCKED = "OperationalError: database is locked"
VARIANTS = ["bad", "fixed", "bad/reader", "fixed/wal", "bad/read-then-write", "fixed/immediate"]
# variant: writers that failed, on SQLite. Statements: the other transaction's BEGIN and its statement, then
# each writer's BEGIN and UPDATE (a SELECT too, read-then-write), counted whether it failed or not.
SQLITE = {
    "bad": K,
    "fixed": 0,
    "bad/reader": K,
    "fixed/wal": 0,
    "bad/read-then-write": K,
    "fixed/immediate": 0,
}


def statements(variant: str, engine_name: str) -> int:
    per_writer = 2 if variant.endswith("read-then-write") or variant == "fixed/immediate" else 1
    if engine_name == "sqlite":  # SQLAlchemy's BEGIN is a statement there (pysqlite's own is off)
        return 2 + (per_writer + 1) * K
    return 1 + per_writer * K


@pytest.mark.sqlite_only(reason="SQLite's write lock, busy timeout, journal modes, BEGIN IMMEDIATE")
def test_sqlite_each_bad_fails_every_writer_and_its_fix_none(client, engine_name):
    """bad/read-then-write has /fixed's fix (a 5 s busy timeout) and still fails every writer: the upgrade's
    error comes without the busy handler, so no timeout helps; BEGIN IMMEDIATE does."""
    for variant in VARIANTS:
        response = client.post(f"{URL}/{variant}", params={"writers": K})
        assert response.status_code == 200, response.text
        errors = SQLITE[variant]
        error = LOCKED if errors else None
        assert response.json() == {"writers": K, "errors": errors, "stored": K - errors, "error": error}, (
            variant
        )
        assert response.headers["x-query-count"] == str(statements(variant, engine_name)), variant


@pytest.mark.postgres_only(
    reason="on PostgreSQL the same routes show why it does not happen: row locks, MVCC"
)
def test_postgresql_no_variant_fails(client, engine_name):
    for variant in VARIANTS:
        response = client.post(f"{URL}/{variant}", params={"writers": K})
        assert response.status_code == 200, response.text
        assert response.json() == {"writers": K, "errors": 0, "stored": K, "error": None}, variant
        assert response.headers["x-query-count"] == str(statements(variant, engine_name)), variant


@pytest.mark.sqlite_only(reason="the reference API's SQLite settings")
def test_the_reference_sqlite_engine_holds_k_concurrent_read_then_writes(settings, seeded):
    """WAL, a 5 s busy timeout, synchronous=NORMAL. K sessions each read a hero; when all have read, they
    all write while another session holds the write lock: they wait for it and none fails (pysqlite's
    BEGIN comes with the UPDATE, so no read is upgraded). With the timeout at 0 they would all fail."""
    engine = create_db_engine(settings=settings, pool_size=K + 1, max_overflow=0)  # the API's engine
    with engine.connect() as connection:
        pragmas = [
            connection.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "busy_timeout")
        ]
        assert pragmas + [connection.exec_driver_sql("PRAGMA synchronous").scalar()] == ["wal", 5000, 1]
    with Session(engine) as session:
        hero_id, before = session.exec(select(Hero.id, Hero.age).where(Hero.age.is_not(None))).first()

    def writer(_: int) -> str | None:
        try:
            with Session(engine) as session:
                session.exec(select(Hero.age).where(Hero.id == hero_id)).one()  # read first
                session.exec(update(Hero).where(Hero.id == hero_id).values(age=Hero.age + 1))
                session.commit()
        except OperationalError as exc:
            return str(exc.orig)

    with Session(engine) as other:
        other.exec(update(Hero).where(Hero.id != hero_id).values(age=Hero.age))  # holds the write lock
        with all_reach(engine, "UPDATE hero", K) as held, ThreadPoolExecutor(K) as pool:
            futures = [pool.submit(writer, i) for i in range(K)]
            deadline = time.monotonic() + 10
            while len(held) < K and time.monotonic() < deadline:  # every session has read, all now write
                time.sleep(0.01)
            time.sleep(0.3)  # ... and find the lock taken
            other.commit()
            outcomes = [future.result() for future in futures]
    assert len(held) == K
    assert outcomes == [None] * K
    with Session(engine) as session:
        assert session.exec(select(Hero.age).where(Hero.id == hero_id)).one() == before + K
    engine.dispose()


@pytest.mark.sqlite_only(reason="the journal modes are SQLite's")
def test_the_lesson_files_journal_modes(client, app):
    """/bad/reader runs on a rollback-journal file of its own; every other variant on a WAL file."""
    for variant in ("bad/reader", "fixed/wal"):
        assert client.post(f"{URL}/{variant}", params={"writers": 1}).status_code == 200
    lab = app.state.lab
    modes = {}
    for name in ("database_is_locked_delete", "database_is_locked_wal"):
        with lab.engine(name).connect() as connection:
            modes[name] = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert modes == {"database_is_locked_delete": "delete", "database_is_locked_wal": "wal"}


def test_writers_out_of_range_is_422(client, engine_name):
    for writers in (0, 31, "many"):
        response = client.post(f"{URL}/bad", params={"writers": writers})
        assert_problem(response, 422, "writers", "query")
        assert response.headers["x-query-count"] == "0"


def test_reset_drops_the_lesson_files_and_the_routes_build_them_again(client, engine_name):
    stored = (
        0 if engine_name == "sqlite" else 1
    )  # a rollback journal's reader on SQLite; nothing on PostgreSQL
    assert client.post(f"{URL}/bad/reader", params={"writers": 1}).json()["stored"] == stored
    reset = client.post(f"{URL}/reset")
    dropped = "database_is_locked_delete" if engine_name == "sqlite" else "database_is_locked"
    assert reset.json()["dropped"] == [dropped]
    assert client.post(f"{URL}/fixed/wal", params={"writers": 1}).json()["stored"] == 1


def test_compare(client, engine_name):
    response = client.get(f"{URL}/compare", params={"size": 5})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["engine"], result["size"]) == (engine_name, 5)
    outcomes = {v["variant"]: v["outcome"] for v in result["variants"]}
    assert list(outcomes) == VARIANTS
    for variant, outcome in outcomes.items():
        failed = 5 if engine_name == "sqlite" and SQLITE[variant] else 0
        detail = f" ({LOCKED})" if failed else ""
        assert outcome == f"{failed} of 5 writers failed{detail}, {5 - failed} stored", variant


def test_catalogue(client):
    lesson = client.get(URL).json()
    assert [(r["method"], r["path"]) for r in lesson["routes"]] == [("POST", f"{URL}/{v}") for v in VARIANTS]
    assert lesson["engines"] == ["sqlite", "postgresql"]
    assert list(lesson["more"]) == ["Postgres", "Data"]
