"""Lesson pending-rollback: one failed flush poisons every later row (bad), PostgreSQL's 25P02 against
SQLite carrying on (bad/aborted), a SAVEPOINT per row stores every good row and names the bad one
(fixed), all or nothing stores none (fixed/all-or-nothing); SQLite's SAVEPOINT recipe; both engines."""

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy import exc as sa_exc
from sqlmodel import Session

from heroes.lessons.pending_rollback import batch, lesson, lesson_engine
from heroes.models import Team
from heroes.seed import seed_demo

from support import assert_problem, scratch_rows

URL = "/lessons/pending-rollback"
PENDING = "This Session's transaction has been rolled back due to a previous exception during flush."
ABORTED = (
    "InFailedSqlTransaction: current transaction is aborted, commands ignored until end of transaction block"
)


def unique(engine_name: str, name: str) -> str:
    if engine_name == "sqlite":
        return "IntegrityError: UNIQUE constraint failed: team.name"
    return (
        'UniqueViolation: duplicate key value violates unique constraint "uq_team_name" '
        f"DETAIL: Key (name)=({name}) already exists."
    )


def imported(app) -> list[str]:
    return [
        name
        for (name,) in scratch_rows(app, "pending_rollback", "SELECT name FROM team WHERE id > 5 ORDER BY id")
    ]


def post(client, route: str, rows: int = 10, repeat: int = 4) -> dict:
    response = client.post(f"{URL}/{route}", json=batch("Import", rows, repeat))
    assert response.status_code == 200, response.text
    return response.json()


def test_bad_one_failed_flush_loses_every_row_after_it(client, seeded, app, engine_name):
    body = post(client, "bad")
    assert (body["rows"], body["stored"]) == (10, 3)
    first, *rest = body["failed"]
    assert first == {"row": 4, "exception": "IntegrityError", "error": unique(engine_name, "Import 1")}
    assert [f["row"] for f in rest] == [5, 6, 7, 8, 9, 10]  # good rows, refused all the same
    assert {f["exception"] for f in rest} == {"PendingRollbackError"}
    assert all(f["error"].startswith(PENDING) for f in rest)
    assert imported(app) == ["Import 1", "Import 2", "Import 3"]


def test_bad_aborted_postgresql_refuses_the_rest_sqlite_carries_on(client, seeded, app, engine_name):
    """The myth: a failed statement is not a failed flush. No PendingRollbackError on either engine."""
    body = post(client, "bad/aborted")
    first, *rest = body["failed"]
    assert first == {"row": 4, "exception": "IntegrityError", "error": unique(engine_name, "Import 1")}
    if engine_name == "sqlite":
        assert (body["stored"], rest) == (9, [])  # SQLite: the transaction goes on
        assert imported(app) == [f"Import {n}" for n in (1, 2, 3, 5, 6, 7, 8, 9, 10)]
    else:
        assert body["stored"] == 0  # PostgreSQL: 25P02 for every later row, and COMMIT is a ROLLBACK
        assert [(f["row"], f["exception"], f["error"]) for f in rest] == [
            (n, "InternalError", ABORTED) for n in range(5, 11)
        ]
        assert imported(app) == []


def test_fixed_a_savepoint_per_row_stores_every_good_row_and_names_the_bad_one(
    client, seeded, app, engine_name
):
    body = post(client, "fixed")
    assert body == {
        "rows": 10,
        "stored": 9,
        "failed": [{"row": 4, "exception": "IntegrityError", "error": unique(engine_name, "Import 1")}],
    }
    assert imported(app) == [f"Import {n}" for n in (1, 2, 3, 5, 6, 7, 8, 9, 10)]


def test_fixed_all_or_nothing_stores_none_and_names_the_row(client, seeded, app, engine_name):
    body = post(client, "fixed/all-or-nothing")
    assert body == {
        "rows": 10,
        "stored": 0,
        "failed": [{"row": 4, "exception": "IntegrityError", "error": unique(engine_name, "Import 1")}],
    }
    assert imported(app) == []
    assert post(client, "fixed/all-or-nothing", rows=3, repeat=2)["stored"] == 0
    clean = client.post(f"{URL}/fixed/all-or-nothing", json=[{"name": "Clean", "headquarters": "-"}]).json()
    assert (clean["stored"], clean["failed"]) == (1, [])


def test_a_batch_with_no_bad_row_is_stored_whole_by_every_route(client, seeded, app):
    for n, route in enumerate(["bad", "bad/aborted", "fixed", "fixed/all-or-nothing"]):
        good = [{"name": f"Good {n} {i}", "headquarters": "-"} for i in range(3)]
        body = client.post(f"{URL}/{route}", json=good).json()
        assert (body["stored"], body["failed"]) == (3, [])
    assert len(imported(app)) == 12


@pytest.mark.sqlite_only(reason="the recipe is for pysqlite: PostgreSQL's driver sends BEGIN itself")
def test_without_the_recipe_a_sqlite_savepoint_commits_each_row(app, seeded):
    lab = app.state.lab
    plain = lesson.scratch(lab, populate=seed_demo)  # the scratch engine, without the recipe
    recipe = lesson_engine(lab)
    for engine, name, kept in ((plain, "Plain", 3), (recipe, "Recipe", 0)):
        statements: list[str] = []

        def record(conn, cursor, sql, *args, statements=statements) -> None:
            statements.append(sql)

        event.listen(engine, "before_cursor_execute", record)
        with Session(engine) as session:
            for i in range(3):
                with session.begin_nested():
                    session.add(Team(name=f"{name} {i}", headquarters="-"))
            session.rollback()  # the whole import undone... or not
        event.remove(engine, "before_cursor_execute", record)
        assert scratch_rows(
            app, "pending_rollback", f"SELECT count(*) FROM team WHERE name LIKE '{name}%'"
        ) == [(kept,)]
        assert (statements[0] == "BEGIN") is (engine is recipe)  # without it, SAVEPOINT opens the transaction


def test_myth_a_failed_execute_is_not_a_pending_rollback(app, seeded, engine_name):
    with Session(lesson_engine(app.state.lab)) as session:
        with pytest.raises(sa_exc.IntegrityError):
            session.execute(insert(Team).values(name="Preventers", headquarters="-"))
        if engine_name == "sqlite":
            assert session.execute(text("SELECT count(*) FROM team")).scalar() == 5  # it carries on
        else:
            with pytest.raises(sa_exc.InternalError, match="current transaction is aborted"):
                session.execute(text("SELECT count(*) FROM team"))
        session.rollback()
        assert session.execute(text("SELECT count(*) FROM team")).scalar() == 5


def test_the_reference_api_rolls_back_a_failed_request(client, seeded):
    assert_problem(client.post("/teams", json={"name": "Preventers", "headquarters": "-"}), 409, "name")
    after = client.post(
        "/teams", json={"name": "Sinister Six", "headquarters": "-"}
    )  # the next request works
    assert after.status_code == 201, after.text


def test_an_empty_batch_is_422(client, seeded):
    assert client.post(f"{URL}/fixed", json=[]).status_code == 422


def test_compare(client, seeded, engine_name):
    for _ in range(2):  # every run starts from a fresh copy of the demo teams
        response = client.get(f"{URL}/compare")
        assert response.status_code == 200, response.text
        outcomes = [(v["variant"], v["outcome"]) for v in response.json()["variants"]]
        rest = "row 5, 6, 7, 8, 9, 10"
        aborted = "9 of 10 rows stored; IntegrityError at row 4"
        if engine_name == "postgresql":
            aborted = f"0 of 10 rows stored; IntegrityError at row 4; InternalError at {rest}"
        assert outcomes == [
            ("bad", f"3 of 10 rows stored; IntegrityError at row 4; PendingRollbackError at {rest}"),
            ("bad/aborted", aborted),
            ("fixed", "9 of 10 rows stored; IntegrityError at row 4"),
            ("fixed/all-or-nothing", "0 of 10 rows stored; IntegrityError at row 4"),
        ]
