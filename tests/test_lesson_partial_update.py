"""partial-update: the bad PATCH nulls what the client left out (or answers 500 on a NOT NULL column), an
in-place JSON append sends no UPDATE; exclude_unset + sqlmodel_update and flag_modified (or MutableList)
keep every change."""

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, create_engine, inspect, select
from sqlalchemy.ext.mutable import MutableList
from sqlalchemy.orm import Session, registry
from sqlmodel import SQLModel

from heroes.lessons.partial_update import CAST, scratch
from heroes.problems import PROBLEM_JSON

from support import assert_problem

URL = "/lessons/partial-update"


@pytest.fixture
def lesson_db(app, client):
    return scratch(app.state.lab, fresh=True)


def stored(engine, sidekick_id: int) -> dict:
    with engine.connect() as connection:
        row = connection.exec_driver_sql(
            f"SELECT id, name, age, power, tags FROM sidekick WHERE id = {sidekick_id}"
        )
        values = dict(row.mappings().one())
    if isinstance(values["tags"], str):  # SQLite hands the JSON text back
        import json

        values["tags"] = json.loads(values["tags"])
    return values


def test_bad_nulls_the_fields_the_client_did_not_send(client, lesson_db):
    response = client.patch(f"{URL}/bad", params={"sidekick_id": 1}, json={"name": "Bucky Barnes"})

    assert response.status_code == 200, response.text
    lost = {"id": 1, "name": "Bucky Barnes", "age": None, "power": None, "tags": ["soldier"]}
    assert response.json() == lost
    assert stored(lesson_db, 1) == lost  # age 106 and "Metal arm": gone
    assert response.headers["x-query-count"] == "3"  # SELECT, UPDATE, the refresh's SELECT


def test_bad_without_the_name_nulls_a_not_null_column_a_500(client, lesson_db, engine_name):
    response = client.patch(f"{URL}/bad", params={"sidekick_id": 1}, json={"age": 107})

    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == URL and body["exception"] == "IntegrityError"
    if engine_name == "sqlite":
        assert body["detail"] == "IntegrityError: NOT NULL constraint failed: sidekick.name"
    else:
        assert body["detail"].startswith(
            'NotNullViolation: null value in column "name" of relation "sidekick" violates not-null'
        )
    assert stored(lesson_db, 1) == CAST[0]  # rolled back: nothing changed


@pytest.mark.parametrize(
    ("change", "after"),
    [
        ({"name": "Dick Grayson"}, {"name": "Dick Grayson"}),
        ({"age": 18}, {"age": 18}),
        ({"power": None}, {"power": None}),  # an explicit null still clears a nullable field
        ({"age": None, "power": "Escrima"}, {"age": None, "power": "Escrima"}),
    ],
)
def test_fixed_changes_only_what_was_sent(client, lesson_db, change, after):
    response = client.patch(f"{URL}/fixed", params={"sidekick_id": 2}, json=change)

    assert response.status_code == 200, response.text
    assert response.json() == {**CAST[1], **after}
    assert stored(lesson_db, 2) == {**CAST[1], **after}
    assert stored(lesson_db, 1) == CAST[0] and stored(lesson_db, 3) == CAST[2]
    assert response.headers["x-query-count"] == "3"


def test_fixed_with_nothing_sent_writes_nothing(client, lesson_db):
    response = client.patch(f"{URL}/fixed", params={"sidekick_id": 2}, json={})

    assert response.json() == CAST[1]
    assert response.headers["x-query-count"] == "2"  # SELECT and the refresh: no UPDATE


@pytest.mark.parametrize("variant", ["bad", "fixed"])
def test_an_unknown_sidekick_is_404_and_a_negative_age_422(client, lesson_db, variant):
    assert_problem(client.patch(f"{URL}/{variant}", params={"sidekick_id": 9}, json={"age": 1}), 404)
    assert_problem(client.patch(f"{URL}/{variant}", params={"sidekick_id": 1}, json={"age": -1}), 422, "age")


def sql_of(client, variant: str) -> list[tuple[str, int]]:
    response = client.get(f"{URL}/compare")
    assert response.status_code == 200, response.text
    found = next(v for v in response.json()["variants"] if v["variant"] == variant)
    return [(group["sql"].split()[0], group["count"]) for group in found["sql"]]


def test_an_in_place_json_append_sends_no_update(client, lesson_db):
    response = client.post(f"{URL}/bad/tags", params={"sidekick_id": 2}, json={"tag": "titans"})

    assert response.status_code == 200, response.text
    assert response.json()["tags"] == ["detective", "gotham"]  # the append is lost
    assert stored(lesson_db, 2)["tags"] == ["detective", "gotham"]
    assert response.headers["x-query-count"] == "2"  # SELECT and the refresh: no UPDATE
    assert sorted(sql_of(client, "bad/tags")) == [("SELECT", 2)]


def test_flag_modified_sends_the_update(client, lesson_db):
    response = client.post(f"{URL}/fixed/tags", params={"sidekick_id": 2}, json={"tag": "titans"})

    assert response.status_code == 200, response.text
    assert response.json()["tags"] == ["detective", "gotham", "titans"]
    assert stored(lesson_db, 2)["tags"] == ["detective", "gotham", "titans"]
    assert response.headers["x-query-count"] == "3"
    assert sorted(sql_of(client, "fixed/tags")) == [("SELECT", 2), ("UPDATE", 1)]


def test_a_mutable_list_column_sends_its_own_change_events():
    """The declarative fix: MutableList.as_mutable(JSON). Top-level changes only, as its docs say."""
    mapper_registry = registry(metadata=MetaData())
    table = Table(
        "card",
        mapper_registry.metadata,
        Column("id", Integer, primary_key=True),
        Column("tags", MutableList.as_mutable(JSON)),
    )

    class Card:
        pass

    mapper_registry.map_imperatively(Card, table)
    engine = create_engine("sqlite://")
    mapper_registry.metadata.create_all(engine)
    with Session(engine) as session:
        card = Card()
        card.id, card.tags = 1, ["a", {"nested": []}]
        session.add(card)
        session.commit()
        card.tags.append("b")  # noticed
        session.commit()
        card.tags[1]["nested"].append("lost")  # inside an item: not noticed
        session.commit()
    with engine.connect() as connection:
        assert connection.scalar(select(table.c.tags)) == ["a", {"nested": []}, "b"]


def test_the_sidekick_table_stays_out_of_the_reference_schema(client, lesson_db, engine):
    assert "sidekick" not in SQLModel.metadata.tables
    assert "sidekick" not in inspect(engine).get_table_names()


def outcomes(client) -> list[tuple[str, str, int]]:
    response = client.get(f"{URL}/compare")
    assert response.status_code == 200, response.text
    return [(v["variant"], v["outcome"], v["statements"]) for v in response.json()["variants"]]


def test_compare(client):
    expected = [
        ("bad", "200 OK: name 'Bucky Barnes', age None, power None, tags ['soldier']", 3),
        ("fixed", "200 OK: name 'Dick Grayson', age 17, power 'Acrobatics', tags ['detective', 'gotham']", 3),
        ("bad/tags", "200 OK: name 'Wong', age 45, power 'Sorcery', tags []", 2),
        ("fixed/tags", "200 OK: name 'Wong', age 45, power 'Sorcery', tags ['shield']", 3),
    ]
    assert outcomes(client) == expected
    assert outcomes(client) == expected  # a fresh table for each compare
