"""table-model-validation: Recruit(**body) on a table model validates nothing (stored on SQLite, a 500 on
PostgreSQL where VARCHAR refuses); RecruitCreate + model_validate answers 422 naming the field; CHECK
constraints refuse what the code lets through."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import inspect
from sqlmodel import SQLModel

from heroes.lessons.table_model_validation import INVALID, Recruit, RecruitCreate, scratch
from heroes.problems import PROBLEM_JSON

from support import assert_problem, scratch_rows

URL = "/lessons/table-model-validation"
NAME = "table_model_validation"
NEGATIVE_AGE = {"name": "Groot", "age": -5}


def recruits(app, table: str = "recruit") -> list[tuple]:
    return scratch_rows(app, NAME, f"SELECT id, length(name), age FROM {table} ORDER BY id")


@pytest.fixture
def lesson_db(app, client):
    return scratch(app.state.lab, fresh=True)


@pytest.mark.sqlite_only(reason="SQLite does not enforce VARCHAR lengths: the 120-character name is stored")
def test_bad_stores_a_long_name_and_a_negative_age_on_sqlite(app, client, lesson_db):
    response = client.post(f"{URL}/bad", json=INVALID)

    assert response.status_code == 201, response.text
    assert response.json() == {"id": 1, "name": INVALID["name"], "age": -5}
    assert response.headers["x-invalid-rows"] == "1"
    assert response.headers["x-query-count"] == "3"  # INSERT, the refresh's SELECT, the count
    assert recruits(app) == [(1, 120, -5)]


@pytest.mark.postgres_only(reason="PostgreSQL's VARCHAR(100) refuses the long name: the symptom is a 500")
def test_bad_is_a_500_on_postgresql_for_the_long_name(app, client, lesson_db):
    response = client.post(f"{URL}/bad", json=INVALID)

    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == URL and body["exception"] == "DataError"
    assert body["detail"] == "StringDataRightTruncation: value too long for type character varying(100)"
    assert recruits(app) == []


def test_bad_stores_a_negative_age_on_both_engines(app, client, lesson_db):
    response = client.post(f"{URL}/bad", json=NEGATIVE_AGE)

    assert response.status_code == 201, response.text
    assert response.json() == {"id": 1, "name": "Groot", "age": -5}
    assert response.headers["x-invalid-rows"] == "1"
    assert recruits(app) == [(1, 5, -5)]


@pytest.mark.parametrize(("body", "field"), [(INVALID, "name"), (NEGATIVE_AGE, "age"), ({"age": 3}, "name")])
def test_fixed_answers_422_naming_the_field_and_stores_nothing(app, client, lesson_db, body, field):
    response = client.post(f"{URL}/fixed", json=body)

    assert_problem(response, 422, field, "body")
    assert response.headers["x-query-count"] == "0"  # refused before the database
    assert recruits(app) == []


def test_fixed_stores_a_valid_recruit(app, client, lesson_db):
    response = client.post(f"{URL}/fixed", json={"name": "Mantis", "age": 33})

    assert response.status_code == 201, response.text
    assert response.json() == {"id": 1, "name": "Mantis", "age": 33}
    assert response.headers["x-invalid-rows"] == "0"
    assert recruits(app) == [(1, 6, 33)]


def test_the_check_constraints_are_the_backstop(app, client, lesson_db, engine_name):
    first = "name" if engine_name == "sqlite" else "age"  # each engine reports the first CHECK it tried
    response = client.post(f"{URL}/fixed/constraints", json=INVALID)
    body = assert_problem(response, 422, first, "body")
    assert body["detail"] == f"The database refused {first}: outside its CHECK constraint."

    assert_problem(client.post(f"{URL}/fixed/constraints", json=NEGATIVE_AGE), 422, "age")
    too_long = {"name": "x" * 101, "age": 1}
    assert_problem(client.post(f"{URL}/fixed/constraints", json=too_long), 422, "name")
    assert recruits(app, "checked_recruit") == []
    ok = client.post(f"{URL}/fixed/constraints", json={"name": "Nebula", "age": 30})
    assert ok.status_code == 201 and ok.json()["name"] == "Nebula"
    first_id = 1 if engine_name == "sqlite" else 4  # PostgreSQL's sequence spent 1-3 on the refused INSERTs
    assert recruits(app, "checked_recruit") == [(first_id, 6, 30)]


def test_myth_a_table_model_validates_like_any_pydantic_model():
    """Checked on SQLModel 0.0.50: it does not. Only model_validate and non-table models validate."""
    recruit = Recruit(name="x" * 200, age=-5)  # no error
    assert (len(recruit.name), recruit.age) == (200, -5)
    assert Recruit(name=5, age="old").age == "old"  # not even a type is converted
    with pytest.raises(ValidationError) as table:
        Recruit.model_validate({"name": "x" * 200, "age": -5})
    assert [error["loc"] for error in table.value.errors()] == [("name",), ("age",)]
    with pytest.raises(ValidationError):
        RecruitCreate(name="x" * 200, age=-5)

    app = FastAPI()  # the table model as the body parameter: FastAPI hands it over unvalidated too

    @app.post("/recruits")
    def create(recruit: Recruit) -> dict:
        return {"name_length": len(recruit.name), "age": recruit.age}

    response = TestClient(app).post("/recruits", json={"name": "x" * 200, "age": -5})
    assert (response.status_code, response.json()) == (200, {"name_length": 200, "age": -5})


def test_the_lesson_tables_stay_out_of_the_reference_schema(app, client, engine):
    client.post(f"{URL}/fixed", json={"name": "Mantis", "age": 33})
    assert not {"recruit", "checked_recruit"} & set(SQLModel.metadata.tables)  # autogenerate never sees them
    assert not {"recruit", "checked_recruit"} & set(inspect(engine).get_table_names())


def outcomes(client) -> list[tuple[str, str, int]]:
    response = client.get(f"{URL}/compare")
    assert response.status_code == 200, response.text
    return [(v["variant"], v["outcome"], v["statements"]) for v in response.json()["variants"]]


FIXED_422 = (
    "422 Unprocessable Entity: Invalid request. name (body): String should have at most 100 characters; "
    "age (body): Input should be greater than or equal to 0"
)


def test_compare(client, engine_name):
    if engine_name == "sqlite":
        bad = ("bad", "201 Created: stored a name of 120 characters, age -5", 3)
        constraint = "name"
    else:
        truncated = "StringDataRightTruncation: value too long for type character varying(100)"
        bad = ("bad", f"500 Internal Server Error: {truncated}", 1)
        constraint = "age"
    refused = f"422 Unprocessable Entity: The database refused {constraint}: outside its CHECK constraint."
    expected = [bad, ("fixed", FIXED_422, 0), ("fixed/constraints", refused, 1)]
    assert outcomes(client) == expected
    assert outcomes(client) == expected  # each compare starts from fresh tables
