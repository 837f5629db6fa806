"""relationship-response: a table model as the response model drops its relationship silently, read models
that nest each other fail on the cycle; one-direction read models, loaded eagerly, carry it."""

import pytest

from heroes.lessons.relationship_response import Team, TeamPublicWithHeroesAndBack
from heroes.problems import PROBLEM_JSON

from support import assert_problem

URL = "/lessons/relationship-response"
PREVENTERS = {"id": 1, "name": "Preventers", "headquarters": "Sharp Tower"}
HEROES = [
    {"id": 2, "name": "Rusty-Man", "age": 48, "team_id": 1, "version": 1},
    {"id": 3, "name": "Spider-Boy", "age": 18, "team_id": 1, "version": 1},
    {"id": 4, "name": "Tarantula", "age": 32, "team_id": 1, "version": 1},
]


def test_bad_answers_the_team_without_its_heroes(client):
    response = client.get(f"{URL}/bad", params={"team_id": 1})

    assert response.status_code == 200, response.text
    assert response.json() == PREVENTERS  # no "heroes" key at all
    assert response.headers["x-query-count"] == "1"  # the heroes are not even loaded
    assert "heroes" not in Team.model_json_schema()["properties"]  # a Relationship is not a field
    assert "heroes" not in client.app.openapi()["components"]["schemas"]["Team"]["properties"]


def test_bad_recursive_fails_on_the_cycle(client):
    response = client.get(f"{URL}/bad/recursive", params={"team_id": 1})

    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == URL and body["exception"] == "ResponseValidationError"
    assert body["detail"].startswith("response.heroes.0.team: Recursion error - cyclic reference detected; ")
    assert body["detail"].count("Recursion error - cyclic reference detected") == 3  # one per hero
    assert "secret_name" not in response.text and "Dive Wilson" not in response.text
    assert response.headers["x-query-count"] == "2"


def test_the_recursive_read_models_recurse_in_their_schema_too():
    schema = TeamPublicWithHeroesAndBack.model_json_schema()
    hero = schema["$defs"]["HeroPublicWithTeamAndBack"]["properties"]["team"]
    assert {"$ref": "#/$defs/TeamPublicWithHeroesAndBack"} in hero["anyOf"]  # a type that contains itself


def test_fixed_answers_the_team_with_its_heroes_in_2_statements(client):
    response = client.get(f"{URL}/fixed", params={"team_id": 1})

    assert response.status_code == 200, response.text
    assert response.json() == {**PREVENTERS, "heroes": HEROES}  # the heroes carry no team: no way back
    assert response.headers["x-query-count"] == "2"  # the team, then selectinload's SELECT of its heroes
    assert "secret_name" not in response.text


def test_fixed_hero_is_the_other_direction_in_1_statement(client):
    response = client.get(f"{URL}/fixed/hero", params={"team_id": 1})

    assert response.status_code == 200, response.text
    assert response.json() == {**HEROES[0], "team": PREVENTERS}
    assert response.headers["x-query-count"] == "1"  # joinedload: one SELECT ... LEFT OUTER JOIN team


@pytest.mark.parametrize("variant", ["bad", "bad/recursive", "fixed", "fixed/hero"])
def test_an_unknown_team_is_404(client, variant):
    assert_problem(client.get(f"{URL}/{variant}", params={"team_id": 99}), 404)


def test_compare(client, seeded):
    response = client.get(f"{URL}/compare")
    assert response.status_code == 200, response.text
    got = [(v["variant"], v["outcome"], v["statements"]) for v in response.json()["variants"]]
    recursion = "500 ResponseValidationError at response.heroes.0.team: Recursion error - cyclic"
    assert got == [
        ("bad", "200 OK: headquarters, id, name", 1),
        ("bad/recursive", f"{recursion} reference detected (+2 more)", 2),
        ("fixed", "200 OK: headquarters, heroes (3), id, name", 2),
        ("fixed/hero", "200 OK: age, id, name, team, team_id, version", 1),
    ]
    assert len(client.get("/teams").json()) == 5  # the reference data untouched
