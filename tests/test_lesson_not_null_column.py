"""not-null-column: one ADD COLUMN ... NOT NULL fails on a populated table on both engines and changes
nothing; expand, backfill in batches, contract (0003-0005) succeeds and keeps every hero."""

import pytest
from sqlalchemy import Engine, inspect

from heroes.evidence import count_queries
from heroes.lessons.not_null_column import one_revision
from heroes.seed import _hero_rows

from support import assert_problem, report, scratch_rows

LESSON = "/lessons/not-null-column"
FAILURE = {
    "sqlite": "OperationalError: Cannot add a NOT NULL column with default value NULL",
    "postgresql": 'NotNullViolation: column "created_at" of relation "hero" contains null values',
}
KEPT = "SELECT name, secret_name, age, team_id, version FROM hero ORDER BY id"


def hero_columns(app, name: str) -> dict[str, dict]:
    with app.state.lab.engine(name).connect() as connection:
        return {c["name"]: c for c in inspect(connection).get_columns("hero")}


def test_bad_fails_on_a_populated_table_and_changes_nothing(client, app, engine_name):
    body = report(client.post(f"{LESSON}/bad", params={"heroes": 1000}))
    assert body["error"] == FAILURE[engine_name]
    assert [step["outcome"] for step in body["steps"]] == [f"failed: {FAILURE[engine_name]}"]
    assert (body["revision_from"], body["revision_to"]) == ("0002", "0002")
    assert (body["rows_before"], body["rows_after"]) == (1000, 1000)
    assert body["engine"] == engine_name
    assert body["squawk"] == ["adding-required-field"]  # the linter names it before any database does
    assert "created_at" not in hero_columns(app, "not_null_column_bad")  # rolled back: nothing changed
    assert scratch_rows(app, "not_null_column_bad", KEPT) == list(_hero_rows([1], 1000))


def test_the_same_revision_passes_on_an_empty_table(app):
    """Which is how it reaches production: on the developer's empty database it works."""
    empty = app.state.lab.engine("not_null_column_empty", revision="0002")
    assert one_revision(empty) == "created_at added"
    with empty.connect() as connection:
        created_at = next(c for c in inspect(connection).get_columns("hero") if c["name"] == "created_at")
    assert created_at["nullable"] is False


def test_fixed_expands_backfills_and_contracts_keeping_every_hero(client, app, engine_name):
    body = report(client.post(f"{LESSON}/fixed", params={"heroes": 1000}))
    assert body["error"] is None
    assert [step["action"][:4] for step in body["steps"]] == ["0003", "0004", "0005"]
    assert [step["outcome"] for step in body["steps"]] == [
        "ok: 1000 heroes without created_at",  # expand: the old rows wait for the backfill
        "ok: 0 heroes without created_at",
        "ok: 0 heroes without created_at",
    ]
    assert (body["revision_from"], body["revision_to"]) == ("0002", "0005")
    assert body["squawk"] == []  # 0003, 0004 and 0005 as heroes db lint renders them
    assert (body["rows_before"], body["rows_after"]) == (1000, 1000)
    assert scratch_rows(app, "not_null_column_fixed", KEPT) == list(_hero_rows([1], 1000))  # every value
    assert scratch_rows(app, "not_null_column_fixed", "SELECT count(created_at) FROM hero") == [(1000,)]
    created_at = hero_columns(app, "not_null_column_fixed")["created_at"]
    assert created_at["nullable"] is False
    assert "CURRENT_TIMESTAMP" in str(created_at["default"])


@pytest.mark.parametrize(("heroes", "batches"), [(1000, 1), (2500, 3)])
def test_the_backfill_updates_in_batches_of_1000(client, heroes, batches):
    with count_queries(Engine) as everything:
        body = report(client.post(f"{LESSON}/fixed", params={"heroes": heroes}))
    updates = [s for s in everything.statements if s.startswith("UPDATE hero SET created_at")]
    assert len(updates) == batches
    assert all("hero.id BETWEEN" in s and "hero.created_at IS NULL" in s for s in updates)
    assert (body["rows_before"], body["rows_after"]) == (heroes, heroes)


def test_compare_reports_the_failure_and_the_rows_kept(client, engine_name):
    response = client.get(f"{LESSON}/compare", params={"size": 1000})
    assert response.status_code == 200, response.text
    bad, fixed = response.json()["variants"]
    squawk = "squawk: adding-required-field"
    assert bad["outcome"] == f"failed: {FAILURE[engine_name]}; heroes 1000 -> 1000; at 0002; {squawk}"
    assert fixed["outcome"] == "ok: 3 steps; heroes 1000 -> 1000; at 0005; squawk: clean"
    assert bad["statuses"] == fixed["statuses"] == {"200": 1}
    bigger = client.get(f"{LESSON}/compare", params={"size": 10_000}).json()["variants"][1]
    assert bigger["statements"] - fixed["statements"] == 9  # nine more batches of 1000, nothing else


def test_the_lesson_says_what_to_run(client):
    entry = client.get(LESSON).json()
    assert "heroes db upgrade 0005" in entry["more"]["Commands"]
    assert "heroes db downgrade 0002" in entry["more"]["Commands"]
    assert "alembic upgrade 0002:0005 --sql" in entry["more"]["Commands"]
    assert entry["engines"] == ["sqlite", "postgresql"]


def test_a_size_out_of_range_is_refused_naming_the_field(client):
    assert_problem(client.post(f"{LESSON}/bad", params={"heroes": 0}), 422, field="heroes", location="query")
    assert_problem(client.post(f"{LESSON}/fixed", params={"heroes": 100_001}), 422, field="heroes")
