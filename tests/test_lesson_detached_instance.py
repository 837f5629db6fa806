"""Lesson detached-instance: bad reads hero.team (or an expired attribute) after its session closed.

Every test runs on SQLite and PostgreSQL. The PATCH routes write only to the lesson's own copy of the
demo cast; the reference data is checked unchanged after every route.
"""

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm.exc import DetachedInstanceError
from sqlmodel import Session

from heroes.db import pool_status
from heroes.evidence import count_queries
from heroes.lessons.detached_instance import scratch
from heroes.models import Hero
from heroes.problems import PROBLEM_JSON
from heroes.seed import DEMO_HEROES

from support import assert_problem

LESSON = "/lessons/detached-instance"
Z_FORCE = {"id": 2, "name": "Z-Force", "headquarters": "Sister Margaret's Bar"}
DEADPOND = {"id": 1, "name": "Deadpond", "age": None, "team_id": 2, "version": 1, "team": Z_FORCE}
LONE_RANGER = {"id": 15, "name": "Lone Ranger", "age": 40, "team_id": None, "version": 1, "team": None}
SECRETS = [secret for _, secret, _, _ in DEMO_HEROES]
LAZY_LOAD = "is not bound to a Session; lazy load operation of attribute 'team' cannot proceed"
REFRESH = "is not bound to a Session; attribute refresh operation cannot proceed"
ROUTES = [  # method, path, json
    ("GET", f"{LESSON}/bad", None),
    ("GET", f"{LESSON}/fixed", None),
    ("PATCH", f"{LESSON}/bad/expired", {"name": "Renamed"}),
    ("PATCH", f"{LESSON}/fixed/expire-on-commit", {"name": "Renamed"}),
    ("PATCH", f"{LESSON}/fixed/in-session", {"name": "Renamed"}),
]


@pytest.fixture
def lesson_db(app, client) -> Engine:
    """The lesson's own database (the demo cast), built before any statement is counted."""
    return scratch(app.state.lab)


def reference(client) -> tuple[list, list]:
    heroes = client.get("/heroes", params={"limit": 100})
    teams = client.get("/teams", params={"limit": 100})
    assert heroes.status_code == teams.status_code == 200
    return heroes.json(), teams.json()


def name_in(engine: Engine, hero_id: int) -> str:
    with Session(engine) as session:
        return session.get(Hero, hero_id).name


def assert_no_secret(response) -> None:
    assert "secret" not in response.text.lower()
    for secret in SECRETS:
        assert secret not in response.text


def assert_lesson_500(response, message: str) -> dict:
    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == "/lessons/detached-instance"
    assert body["status"] == 500
    assert body["exception"] == "DetachedInstanceError"
    assert body["title"] == "DetachedInstanceError: the pitfall this lesson shows"
    assert body["instance"] == response.request.url.path
    assert message in body["detail"]
    assert "<Hero at 0x" in body["detail"]
    assert_no_secret(response)
    return body


# ---- bad: the documented errors ---------------------------------------------------------------------


def test_bad_answers_the_lazy_load_error_after_one_statement(client, seeded):
    before = reference(client)
    with count_queries(seeded) as queries:
        response = client.get(f"{LESSON}/bad", params={"hero_id": 1})
    body = assert_lesson_500(response, LAZY_LOAD)
    assert body["detail"].startswith("Parent instance <Hero at 0x")
    assert queries.count == 1, queries.statements  # the hero; the team's SELECT never ran
    assert response.headers["x-query-count"] == "1"
    assert reference(client) == before


def test_bad_expired_commits_the_rename_then_answers_the_refresh_error(client, seeded, lesson_db):
    before = reference(client)
    with count_queries() as queries:
        response = client.patch(f"{LESSON}/bad/expired", params={"hero_id": 1}, json={"name": "Renamed"})
    body = assert_lesson_500(response, REFRESH)
    assert body["detail"].startswith("Instance <Hero at 0x")
    assert queries.count == 2, queries.statements  # SELECT hero JOIN team, UPDATE; no reload possible
    assert queries.statements[1].startswith("UPDATE hero SET name=")
    assert response.headers["x-query-count"] == "2"
    assert name_in(lesson_db, 1) == "Renamed"  # committed, although the client was told 500
    assert reference(client) == before


def test_expire_on_commit_false_alone_still_cannot_lazy_load_the_team(seeded):
    """What the docstring claims: expire_on_commit=False keeps what was loaded, and loads nothing more."""
    with Session(seeded, expire_on_commit=False) as session:
        hero = session.get(Hero, 1)
        session.commit()
    assert hero.name == "Deadpond"
    with pytest.raises(DetachedInstanceError, match="lazy load operation of attribute 'team'"):
        hero.team  # noqa: B018


# ---- fixed: the hero with its team, exact statements ------------------------------------------------


@pytest.mark.parametrize(("hero_id", "expected"), [(1, DEADPOND), (15, LONE_RANGER)])
def test_fixed_returns_the_hero_with_its_team_in_one_statement(client, seeded, queries, hero_id, expected):
    response = client.get(f"{LESSON}/fixed", params={"hero_id": hero_id})
    assert response.status_code == 200, response.text
    assert response.json() == expected
    assert queries.count == 1, queries.statements  # hero LEFT OUTER JOIN team
    assert " JOIN team" in queries.statements[0]
    assert response.headers["x-query-count"] == "1"
    assert_no_secret(response)


@pytest.mark.parametrize(
    ("variant", "statements"),
    [
        ("fixed/expire-on-commit", ["SELECT", "UPDATE"]),  # nothing expired: nothing to reload
        ("fixed/in-session", ["SELECT", "UPDATE", "SELECT"]),  # the expired hero and team, in 1 SELECT
    ],
)
def test_fixed_renames_answer_the_hero_with_its_team(client, seeded, lesson_db, variant, statements):
    before = reference(client)
    with count_queries() as queries:
        response = client.patch(f"{LESSON}/{variant}", params={"hero_id": 1}, json={"name": "Renamed"})
    assert response.status_code == 200, response.text
    assert response.json() == {**DEADPOND, "name": "Renamed"}
    assert [s.split()[0] for s in queries.statements] == statements, queries.statements
    assert response.headers["x-query-count"] == str(len(statements))
    assert_no_secret(response)
    assert name_in(lesson_db, 1) == "Renamed"
    assert reference(client) == before


# ---- the server after a bad request; bad input; no secret; the reference data --------------------------


def test_after_the_bad_routes_the_server_answers_and_no_connection_is_held(client, seeded, engine, lesson_db):
    assert client.get(f"{LESSON}/bad").status_code == 500
    assert client.patch(f"{LESSON}/bad/expired", json={"name": "Renamed"}).status_code == 500
    assert pool_status(engine)["checkedout"] == 0
    assert pool_status(lesson_db)["checkedout"] == 0
    assert client.get(f"{LESSON}/fixed").json() == DEADPOND
    assert client.get("/heroes/1").json() == DEADPOND


@pytest.mark.parametrize(("method", "path", "json"), ROUTES)
def test_unknown_hero_is_a_404_naming_hero_id(client, seeded, method, path, json):
    hero_id = 99  # the lesson's copy has the 15 demo heroes too
    response = client.request(method, path, params={"hero_id": hero_id}, json=json)
    body = assert_problem(response, 404, field="hero_id", location="query")
    assert body["detail"] == "No hero with id 99."


@pytest.mark.parametrize("hero_id", [0, 2**31, "one"])
@pytest.mark.parametrize(("method", "path", "json"), ROUTES)
def test_invalid_hero_id_is_a_422_naming_it(client, seeded, lesson_db, queries, method, path, json, hero_id):
    response = client.request(method, path, params={"hero_id": hero_id}, json=json)
    assert_problem(response, 422, field="hero_id", location="query")
    assert queries.count == 0


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 101}, {"name": "a\x00b"}, {"name": None}])
@pytest.mark.parametrize("path", [path for method, path, _ in ROUTES if method == "PATCH"])
def test_invalid_name_is_a_422_naming_it(client, seeded, path, body):
    response = client.patch(path, params={"hero_id": 1}, json=body)
    assert_problem(response, 422, field="name", location="body")


def test_every_route_leaves_the_reference_data_and_hides_secrets(client, seeded, lesson_db):
    before = reference(client)
    for method, path, json in ROUTES:
        response = client.request(method, path, params={"hero_id": 1}, json=json)
        assert response.status_code in (200, 500), response.text
        assert_no_secret(response)
        assert reference(client) == before
    assert client.get("/heroes/1").json()["name"] == "Deadpond"


# ---- compare and the catalogue ------------------------------------------------------------------


def test_compare_reports_bad_failing_and_fixed_working(client, seeded):
    for _ in range(2):  # the same figures every run: each rename really changes the name
        response = client.get(f"{LESSON}/compare")
        assert response.status_code == 200, response.text
        report = response.json()
        variants = {v["variant"]: v for v in report["variants"]}
        assert list(variants) == [
            "bad",
            "fixed",
            "bad/expired",
            "fixed/expire-on-commit",
            "fixed/in-session",
        ]
        assert {name: v["statuses"] for name, v in variants.items()} == {
            "bad": {"500": 1},
            "fixed": {"200": 1},
            "bad/expired": {"500": 1},
            "fixed/expire-on-commit": {"200": 1},
            "fixed/in-session": {"200": 1},
        }
        assert [v["statements"] for v in variants.values()] == [1, 1, 2, 2, 3]
        assert variants["bad"]["outcome"].startswith("500 Internal Server Error: Parent instance <Hero")
        assert LAZY_LOAD in variants["bad"]["outcome"]
        assert REFRESH in variants["bad/expired"]["outcome"]
        assert variants["fixed"]["request"] == f"GET {LESSON}/fixed?hero_id=1"
        assert "secret" not in response.text.lower()
    assert client.get("/heroes/1").json()["name"] == "Deadpond"


def test_catalogue_lists_the_routes_with_a_body_for_the_renames(client):
    lesson = client.get(LESSON).json()
    assert lesson["title"] == "Detached instances: a hero's team read after its session closed"
    routes = {(r["method"], r["path"]): r for r in lesson["routes"]}
    assert set(routes) == {(method, path) for method, path, _ in ROUTES}
    assert "-X PATCH" in routes[("PATCH", f"{LESSON}/fixed/expire-on-commit")]["curl"]
    assert '"name": "Deadpond"' in routes[("PATCH", f"{LESSON}/fixed/expire-on-commit")]["curl"]
    assert "schema of its own" in lesson["more"]["Data"]
