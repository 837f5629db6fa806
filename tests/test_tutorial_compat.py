"""The SQLModel tutorial's clients are served: trailing slashes work; a body that is not JSON gets 415."""

import pytest
from fastapi import HTTPException

from heroes.db import get_session

from support import assert_problem

TEAM = {"name": "Preventers", "headquarters": "Sharp Tower"}
ASK = "This route takes a JSON body: send it with `Content-Type: application/json`; this request sent"


# ---- trailing slashes: served, not redirected ------------------------------------------------------


def test_post_with_a_trailing_slash_creates(client):
    team = client.post("/teams/", json=TEAM, follow_redirects=False)
    assert team.status_code == 201, team.text
    assert team.json() == {**TEAM, "id": 1}
    hero = client.post(
        "/heroes/",
        json={"name": "Rusty-Man", "secret_name": "Tommy Sharp", "team_id": 1},
        follow_redirects=False,
    )
    assert hero.status_code == 201, hero.text
    assert hero.headers["location"] == "/heroes/1"
    assert hero.json() == {"name": "Rusty-Man", "age": None, "team_id": 1, "id": 1, "version": 1}


def test_get_with_a_trailing_slash_lists(client, seeded):
    response = client.get("/teams/", follow_redirects=False)
    assert response.status_code == 200
    assert response.json() == client.get("/teams").json()
    assert len(response.json()) == 5
    assert client.get("/heroes/1/", follow_redirects=False).json()["name"] == "Deadpond"


def test_only_a_path_some_route_takes_without_its_slash_is_rewritten(client):
    assert client.get("/", follow_redirects=False).json()["teams"] == "/teams"
    body = assert_problem(client.get("/villains/", follow_redirects=False), 404)
    assert body["detail"] == "Nothing at GET /villains/."  # not rewritten: nothing serves /villains either
    wrong_method = client.delete("/health/live/", follow_redirects=False)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET"


# ---- a body that is not JSON: 415, saying what to send ---------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "sent"),
    [
        (
            "application/x-www-form-urlencoded",
            "`application/x-www-form-urlencoded` (what curl -d sends unless told otherwise).",
        ),
        ("text/plain", "`text/plain`."),
        (None, "none."),
    ],
)
def test_a_body_that_is_not_json_is_415(client, content_type, sent):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(
        "/teams", content=b'{"name": "Preventers", "headquarters": "Sharp Tower"}', headers=headers
    )
    body = assert_problem(response, 415, field="Content-Type", location="header")
    assert body["detail"] == f"{ASK} {sent}"
    assert body["errors"] == [
        {
            "field": "Content-Type",
            "location": "header",
            "message": body["detail"],
            "type": "unsupported_media_type",
        }
    ]
    assert response.headers["accept-post"] == "application/json"
    assert client.get("/teams").json() == []  # nothing stored


def test_a_patch_in_another_media_type_is_415_with_accept_patch(client, seeded):
    response = client.patch(
        "/heroes/1", content=b"age=31", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert_problem(response, 415, field="Content-Type", location="header")
    assert response.headers["accept-patch"] == "application/json"
    assert client.get("/heroes/1").json()["version"] == 1  # unchanged


def test_a_lesson_route_that_takes_json_says_so_too(client, seeded):
    response = client.post("/lessons/unique-violation/fixed", content=b'{"name": "X", "headquarters": "Y"}')
    body = assert_problem(response, 415, field="Content-Type", location="header")
    assert body["detail"] == f"{ASK} none."


def test_json_keeps_working_and_other_mistakes_keep_their_answers(client):
    as_json = client.post(
        "/teams", content=b'{"name": "Preventers", "headquarters": "Sharp Tower"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )  # fmt: skip
    assert as_json.status_code == 201, as_json.text
    broken = client.post("/teams", content=b'{"name": ', headers={"content-type": "application/json"})
    assert assert_problem(broken, 422, field="body")["errors"][0]["type"] == "json_invalid"
    nothing = client.post("/teams", headers={"content-type": "text/plain"})  # no body at all: it is missing
    assert assert_problem(nothing, 422, field="body")["errors"][0]["type"] == "missing"
    no_body_taken = client.request("GET", "/teams", content=b"hello", headers={"content-type": "text/plain"})
    assert no_body_taken.status_code == 200  # a route that takes no body ignores one
    assert no_body_taken.headers["content-type"] == "application/json"


def test_dependency_overrides_reach_the_reference_routes(app, client):
    """The SQLModel tutorial tests with app.dependency_overrides[get_session]: the reference routes are
    added flat (heroes.main.include_flat) with the app as their overrides provider, as include_router did."""

    def refused():
        raise HTTPException(status_code=418, detail="the override answered")

    app.dependency_overrides[get_session] = refused
    try:
        for path in ("/heroes/1", "/heroes", "/teams/1"):
            assert client.get(path).json()["detail"] == "the override answered", path
    finally:
        app.dependency_overrides.clear()
    assert client.get("/heroes", params={"limit": 1}).status_code == 200
