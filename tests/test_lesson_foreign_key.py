"""The foreign-key lesson: SQLite without the pragma stores orphans, PostgreSQL answers a raw 500; fixed
validates the team, maps the race to 422, and never leaves an orphan on either engine."""

import sqlite3

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError

from heroes.lessons.foreign_key import ORPHAN, scratch
from heroes.models import Hero, Team
from heroes.problems import PROBLEM_JSON
from heroes.seed import count_rows

from support import assert_problem, once_after

URL = "/lessons/foreign-key"
SECRET = ORPHAN["secret_name"]
ORPHAN_HERO = {"id": 16, "name": "Orphan", "age": 30, "team_id": 99, "version": 1}
PG_INSERT_VIOLATION = (
    'ForeignKeyViolation: insert or update on table "hero" violates foreign key constraint '
    '"fk_hero_team_id_team" DETAIL: Key (team_id)=(99) is not present in table "team".'
)
PG_DELETE_VIOLATION = (
    'ForeignKeyViolation: update or delete on table "team" violates foreign key constraint '
    '"fk_hero_team_id_team" on table "hero" DETAIL: Key (id)=(1) is still referenced from table "hero".'
)


@pytest.fixture
def lesson_db(app, client) -> Engine:
    """The lesson's scratch database (the demo data: 5 teams, 15 heroes), as the app's Lab built it."""
    return scratch(app.state.lab)


def rows(engine: Engine, sql: str) -> list[tuple]:
    """Read the scratch database through a connection of its own (a plain sqlite3 one on SQLite)."""
    if engine.url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(engine.url.database)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql)]


def orphans(engine: Engine) -> list[tuple]:
    """Heroes whose team_id names no team (the portable form of PRAGMA foreign_key_check)."""
    return rows(
        engine,
        "SELECT hero.id, hero.team_id FROM hero LEFT JOIN team ON team.id = hero.team_id "
        "WHERE hero.team_id IS NOT NULL AND team.id IS NULL ORDER BY hero.id",
    )


def assert_private(response) -> None:
    assert "secret_name" not in response.text and SECRET not in response.text


def assert_lesson_500(response, detail: str) -> None:
    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == "/lessons/foreign-key"
    assert body["exception"] == "IntegrityError"
    assert body["detail"] == detail


# ---- bad: the orphan, or the raw violation ------------------------------------------------------------


@pytest.mark.sqlite_only(reason="only SQLite stores the orphan: its foreign keys are off per connection")
def test_bad_stores_an_orphan_on_sqlite(client, seeded, engine, lesson_db):
    response = client.post(f"{URL}/bad", json=ORPHAN)

    assert response.status_code == 201, response.text
    assert response.json() == ORPHAN_HERO
    assert response.headers["x-orphans"] == "1"
    assert response.headers["x-query-count"] == "4"  # PRAGMA foreign_key_check, INSERT, SELECT, PRAGMA again
    assert_private(response)
    assert rows(lesson_db, "SELECT id, name, team_id FROM hero WHERE id = 16") == [(16, "Orphan", 99)]
    assert rows(lesson_db, "PRAGMA foreign_key_check") == [("hero", 16, "team", 0)]
    assert rows(lesson_db, "PRAGMA foreign_keys") == [(0,)]  # a plain connection: SQLite's default
    for app_engine in (engine, lesson_db):  # the app's own engines still enforce them
        with app_engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert count_rows(engine) == (5, 15)  # the reference data has no new hero


@pytest.mark.postgres_only(reason="PostgreSQL always enforces foreign keys: the bad route's symptom is a 500")
def test_bad_is_the_raw_violation_on_postgresql(client, seeded, engine, lesson_db):
    response = client.post(f"{URL}/bad", json=ORPHAN)

    assert_lesson_500(response, PG_INSERT_VIOLATION)
    assert response.headers["x-query-count"] == "1"  # the INSERT, refused
    assert "x-orphans" not in response.headers
    assert_private(response)
    assert count_rows(lesson_db) == (5, 15)
    assert orphans(lesson_db) == []
    assert count_rows(engine) == (5, 15)


@pytest.mark.sqlite_only(reason="deleting the parent without the pragma orphans its children on SQLite only")
def test_bad_delete_team_orphans_its_heroes_on_sqlite(client, seeded, engine, lesson_db):
    response = client.delete(f"{URL}/bad/teams/1")

    assert response.status_code == 204, response.text
    assert response.headers["x-orphans"] == "3"
    assert response.headers["x-query-count"] == "3"  # PRAGMA foreign_key_check before and after the DELETE
    assert rows(lesson_db, "SELECT id FROM team WHERE id = 1") == []
    assert orphans(lesson_db) == [(2, 1), (3, 1), (4, 1)]
    assert count_rows(engine) == (5, 15)


@pytest.mark.postgres_only(reason="PostgreSQL refuses to delete a referenced team: the symptom is a 500")
def test_bad_delete_team_is_the_raw_violation_on_postgresql(client, seeded, engine, lesson_db):
    response = client.delete(f"{URL}/bad/teams/1")

    assert_lesson_500(response, PG_DELETE_VIOLATION)
    assert count_rows(lesson_db) == (5, 15)
    assert orphans(lesson_db) == []


# ---- fixed: 422 naming team_id, never an orphan ---------------------------------------------------------


def test_fixed_unknown_team_is_422_naming_team_id(client, lesson_db):
    response = client.post(f"{URL}/fixed", json=ORPHAN)

    body = assert_problem(response, 422, "team_id", "body")
    assert body["detail"] == "No team with id 99."
    assert response.headers["x-query-count"] == "1"  # the team's SELECT; no INSERT attempted
    assert "x-orphans" not in response.headers
    assert_private(response)
    assert count_rows(lesson_db) == (5, 15)
    assert orphans(lesson_db) == []


def test_fixed_valid_team_is_201_in_3_statements(client, seeded, engine, lesson_db):
    response = client.post(f"{URL}/fixed", json={**ORPHAN, "team_id": 2})

    assert response.status_code == 201, response.text
    assert response.json() == {**ORPHAN_HERO, "team_id": 2}
    assert response.headers["x-query-count"] == "3"  # SELECT team, INSERT, SELECT (refresh)
    assert_private(response)
    assert rows(lesson_db, "SELECT id, name, team_id FROM hero WHERE id = 16") == [(16, "Orphan", 2)]
    assert count_rows(engine) == (5, 15)


@pytest.mark.parametrize("variant", ["bad", "fixed"])
@pytest.mark.parametrize("team_id", [2**31, 0, True])
def test_team_id_out_of_range_is_422_before_the_database(client, lesson_db, variant, team_id):
    response = client.post(f"{URL}/{variant}", json={**ORPHAN, "team_id": team_id})

    assert_problem(response, 422, "team_id", "body")
    assert response.headers["x-query-count"] == "0"
    assert_private(response)
    assert count_rows(lesson_db) == (5, 15)


def test_bad_delete_team_id_out_of_range_is_422(client, lesson_db):
    response = client.delete(f"{URL}/bad/teams/{2**31}")

    assert_problem(response, 422, "team_id", "path")
    assert count_rows(lesson_db) == (5, 15)


def test_fixed_maps_a_team_deleted_after_the_check_to_422(client, lesson_db):
    def delete_team_5(other) -> None:  # another client empties and deletes the team meanwhile
        other.execute(delete(Hero).where(Hero.team_id == 5))
        other.execute(delete(Team).where(Team.id == 5))

    with once_after(lesson_db, "FROM team", delete_team_5):
        response = client.post(f"{URL}/fixed", json={**ORPHAN, "team_id": 5})

    body = assert_problem(response, 422, "team_id", "body")
    assert body["detail"] == "No team with id 5 (just deleted)."
    assert_private(response)
    assert count_rows(lesson_db) == (4, 13)  # the other client's delete, and nothing of ours
    assert orphans(lesson_db) == []
    if lesson_db.url.get_backend_name() == "sqlite":
        assert rows(lesson_db, "PRAGMA foreign_key_check") == []


def test_deleting_a_team_with_heroes_has_one_behaviour(client, seeded, engine):
    """The fix's other side: the reference API answers 409, and the app's engine itself refuses."""
    response = client.delete("/teams/1")

    body = assert_problem(response, 409)
    assert body["detail"] == "Team 1 still has 3 hero(es): move or delete them first."
    with pytest.raises(IntegrityError), engine.begin() as connection:  # foreign keys on, on both engines
        connection.execute(delete(Team).where(Team.id == 1))
    assert count_rows(engine) == (5, 15)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Hero).where(Hero.team_id == 1)) == 3


# ---- reset and compare --------------------------------------------------------------------------------


def test_reset_starts_from_fresh_demo_data(app, client, lesson_db):
    assert client.post(f"{URL}/bad", json={**ORPHAN, "team_id": 1}).status_code == 201
    assert count_rows(lesson_db) == (5, 16)

    response = client.post(f"{URL}/reset")

    assert response.status_code == 200
    assert response.json() == {"lessons": ["foreign-key"], "dropped": ["foreign_key"]}
    fresh = scratch(app.state.lab)
    assert fresh is not lesson_db
    assert count_rows(fresh) == (5, 15)
    assert orphans(fresh) == []


def outcomes(client) -> list[tuple[str, str, int]]:
    response = client.get(f"{URL}/compare")
    assert response.status_code == 200, response.text
    assert_private(response)
    return [(v["variant"], v["outcome"], v["statements"]) for v in response.json()["variants"]]


@pytest.mark.sqlite_only(reason="the SQLite outcomes: bad stores the orphan")
def test_compare_on_sqlite(client, seeded, engine):
    expected = [
        ("bad", "201 Created: hero 16 stored with team_id 99, which does not exist", 4),  # 2 orphan counts
        ("fixed", "422 Unprocessable Entity: No team with id 99.", 1),
        ("bad/delete-team", "204 No Content", 3),
    ]
    assert outcomes(client) == expected
    assert outcomes(client) == expected  # each compare starts from a fresh copy: the same ids again
    assert count_rows(engine) == (5, 15)


@pytest.mark.postgres_only(reason="the PostgreSQL outcomes: bad is the raw violation")
def test_compare_on_postgresql(client, seeded, engine):
    expected = [
        ("bad", f"500 Internal Server Error: {PG_INSERT_VIOLATION}", 1),
        ("fixed", "422 Unprocessable Entity: No team with id 99.", 1),
        ("bad/delete-team", f"500 Internal Server Error: {PG_DELETE_VIOLATION}", 1),
    ]
    assert outcomes(client) == expected
    assert outcomes(client) == expected
    assert count_rows(engine) == (5, 15)


def test_the_lesson_is_in_the_catalogue(client):
    response = client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "Foreign keys: a hero whose team does not exist"
    assert body["engines"] == ["sqlite", "postgresql"]
    assert list(body["more"]) == ["Data"]  # no stray "section" from a colon in the text
    paths = {(route["method"], route["path"]) for route in body["routes"]}
    assert paths == {
        ("POST", f"{URL}/bad"),
        ("POST", f"{URL}/fixed"),
        ("DELETE", f"{URL}/bad/teams/{{team_id}}"),
    }
    assert body["reset"] == f"{URL}/reset"  # the catalogue's reset, for every lesson
