"""Teams: create, list and page, read with heroes (2 statements), rename, delete; bad input, both engines."""

import re

import pytest
from sqlalchemy import insert

from heroes.models import Hero

from support import PROBLEM_JSON, assert_problem, once_after

SERVER_TIMING = re.compile(r'^db;dur=\d+\.\d\d;desc="(\d+) queries", app;dur=\d+\.\d\d$')
TEAMS = [
    {"id": 1, "name": "Preventers", "headquarters": "Sharp Tower"},
    {"id": 2, "name": "Z-Force", "headquarters": "Sister Margaret's Bar"},
    {"id": 3, "name": "Avengers", "headquarters": "Avengers Mansion"},
    {"id": 4, "name": "Justice League", "headquarters": "Hall of Justice"},
    {"id": 5, "name": "Guardians", "headquarters": "Knowhere"},
]


def team_count(client) -> int:
    response = client.get("/teams", params={"limit": 100})
    assert response.status_code == 200
    return len(response.json())


# ---- create ---------------------------------------------------------------------------------------


def test_create_team(client):
    response = client.post("/teams", json={"name": "Preventers", "headquarters": "Sharp Tower"})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"id": 1, "name": "Preventers", "headquarters": "Sharp Tower"}
    assert response.headers["x-query-count"] == "2"  # INSERT, then the refresh
    assert client.get("/teams/1").json() == {**response.json(), "heroes": []}


def test_create_team_ignores_a_client_id(client, seeded):
    response = client.post("/teams", json={"id": 1, "name": "Fantastic Four", "headquarters": "Baxter"})
    assert response.status_code == 201
    assert response.json()["id"] == 6
    assert client.get("/teams/1").json()["name"] == "Preventers"


@pytest.mark.parametrize(
    "name",
    [
        "x",
        "n" * 100,  # the longest name allowed
        "é" * 100,  # 100 characters, 200 bytes: the limit counts characters on both engines
        "🦸" * 100,  # 400 bytes
        'Ünïcödé  Team\'s "quoted" %_\\',
    ],
    ids=["one-char", "100-ascii", "100-accented", "100-emoji", "punctuation"],
)
def test_create_team_round_trips_names_exactly(client, name):
    response = client.post("/teams", json={"name": name, "headquarters": name})
    assert response.status_code == 201, response.text
    assert response.json() == {"id": 1, "name": name, "headquarters": name}
    assert client.get("/teams/1").json() == {"id": 1, "name": name, "headquarters": name, "heroes": []}


BAD_TEAMS = [
    ({"headquarters": "HQ"}, "name"),
    ({"name": "X"}, "headquarters"),
    ({"name": None, "headquarters": "HQ"}, "name"),
    ({"name": "", "headquarters": "HQ"}, "name"),
    ({"name": "n" * 101, "headquarters": "HQ"}, "name"),  # SQLite would store it: VARCHAR(100) is a hint
    ({"name": "é" * 101, "headquarters": "HQ"}, "name"),
    ({"name": "X", "headquarters": "h" * 101}, "headquarters"),
    ({"name": "nul\x00byte", "headquarters": "HQ"}, "name"),  # PostgreSQL refuses NUL in text
    ({"name": "X", "headquarters": "nul\x00byte"}, "headquarters"),
    ({"name": "bell\x07", "headquarters": "HQ"}, "name"),
    ({"name": 42, "headquarters": "HQ"}, "name"),
    ({"name": ["X"], "headquarters": "HQ"}, "name"),
]


@pytest.mark.parametrize(("body", "field"), BAD_TEAMS)
def test_create_team_rejects_bad_input(client, seeded, body, field):
    response = client.post("/teams", json=body)
    assert_problem(response, 422, field, "body")
    assert response.headers["x-query-count"] == "0"  # refused before the database saw it
    assert team_count(client) == 5


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ('{"name": "\\ud800", "headquarters": "HQ"}', "name"),  # a lone surrogate: valid JSON, not UTF-8
        ('{"name": "X", "headquarters": "a\\udfffb"}', "headquarters"),
        ('{"name": "X", "headquarters": "HQ"', "body"),  # truncated JSON
        ("[]", "body"),
        ("", "body"),
    ],
    ids=["surrogate-name", "surrogate-headquarters", "truncated", "array", "empty"],
)
def test_create_team_rejects_bad_json(client, seeded, content, field):
    response = client.post("/teams", content=content, headers={"content-type": "application/json"})
    assert_problem(response, 422, field, "body")
    assert team_count(client) == 5


def test_create_team_rejects_bytes_that_are_not_utf8(client, seeded):
    response = client.post(
        "/teams",
        content=b'{"name": "\xff", "headquarters": "HQ"}',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400)
    assert team_count(client) == 5


def test_duplicate_name_on_create_is_409_and_the_server_keeps_working(client, seeded):
    response = client.post("/teams", json={"name": "Preventers", "headquarters": "Elsewhere"})
    body = assert_problem(response, 409, "name", "body")
    assert "Preventers" in body["detail"]
    assert client.get("/teams/1").json()["headquarters"] == "Sharp Tower"
    assert team_count(client) == 5

    again = client.post("/teams", json={"name": "Preventers", "headquarters": "Elsewhere"})
    assert_problem(again, 409, "name")
    created = client.post("/teams", json={"name": "Fantastic Four", "headquarters": "Baxter Building"})
    assert created.status_code == 201
    assert created.json()["name"] == "Fantastic Four"
    assert team_count(client) == 6


# ---- list -----------------------------------------------------------------------------------------


def test_list_teams(client, seeded):
    response = client.get("/teams")
    assert response.status_code == 200
    assert response.json() == TEAMS
    assert response.headers["x-query-count"] == "1"


def test_list_teams_is_empty_without_teams(client):
    response = client.get("/teams")
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({"limit": 2}, [1, 2]),
        ({"offset": 2, "limit": 2}, [3, 4]),
        ({"offset": 4}, [5]),
        ({"offset": 5}, []),
        ({"offset": 2147483647}, []),
        ({"limit": 1}, [1]),
        ({"limit": 100}, [1, 2, 3, 4, 5]),
    ],
)
def test_list_teams_pages_by_id(client, seeded, params, ids):
    response = client.get("/teams", params=params)
    assert response.status_code == 200
    assert [team["id"] for team in response.json()] == ids


def test_list_teams_default_limit_is_20(client, seeded):
    for n in range(6, 26):
        assert client.post("/teams", json={"name": f"Team {n}", "headquarters": "HQ"}).status_code == 201
    first = client.get("/teams").json()
    assert [team["id"] for team in first] == list(range(1, 21))
    assert [team["id"] for team in client.get("/teams", params={"offset": 20}).json()] == list(range(21, 26))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"offset": -1}, "offset"),  # PostgreSQL: OFFSET must not be negative (a 500 if it got there)
        ({"offset": 2147483648}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),  # SQLite: LIMIT -1 means no limit at all
        ({"limit": 101}, "limit"),
        ({"limit": 9223372036854775808}, "limit"),
        ({"limit": "1.5"}, "limit"),
    ],
)
def test_list_teams_rejects_bad_paging(client, seeded, params, field):
    assert_problem(client.get("/teams", params=params), 422, field, "query")


# ---- read -----------------------------------------------------------------------------------------


def test_read_team_with_its_heroes_in_two_statements(client, seeded, queries):
    response = client.get("/teams/1")
    assert response.status_code == 200
    assert response.json() == {
        **TEAMS[0],
        "heroes": [
            {"id": 2, "name": "Rusty-Man", "age": 48, "team_id": 1, "version": 1},
            {"id": 3, "name": "Spider-Boy", "age": 18, "team_id": 1, "version": 1},
            {"id": 4, "name": "Tarantula", "age": 32, "team_id": 1, "version": 1},
        ],
    }
    assert response.headers["x-query-count"] == "2"
    assert queries.count == 2, queries.statements


def test_read_team_stays_at_two_statements_with_many_heroes(client, seeded):
    for n in range(30):
        hero = {"name": f"Extra {n}", "secret_name": "s", "team_id": 3}
        assert client.post("/heroes", json=hero).status_code == 201
    response = client.get("/teams/3")
    assert response.status_code == 200
    assert len(response.json()["heroes"]) == 33
    assert response.headers["x-query-count"] == "2"


def test_read_team_without_heroes(client):
    client.post("/teams", json={"name": "Lonely", "headquarters": "Nowhere"})
    response = client.get("/teams/1")
    assert response.status_code == 200
    assert response.json() == {"id": 1, "name": "Lonely", "headquarters": "Nowhere", "heroes": []}
    assert response.headers["x-query-count"] == "2"


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("PATCH", {"headquarters": "HQ"}), ("DELETE", None)],
)
def test_unknown_team_is_404(client, seeded, method, body):
    response = client.request(method, "/teams/6", json=body)
    body = assert_problem(response, 404)
    assert body["detail"] == "No team with id 6."
    assert "errors" not in body
    assert team_count(client) == 5


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("team_id", ["0", "-1", "2147483648", "9223372036854775808", "abc", "1.5"])
def test_out_of_range_team_id_is_422_naming_the_path_field(client, seeded, method, team_id):
    body = {"headquarters": "HQ"} if method == "PATCH" else None
    response = client.request(method, f"/teams/{team_id}", json=body)
    assert_problem(response, 422, "team_id", "path")
    assert response.headers["x-query-count"] == "0"
    assert client.get("/teams").json() == TEAMS


def test_largest_team_id_is_a_plain_404(client, seeded):
    assert_problem(client.get("/teams/2147483647"), 404)


# ---- update ---------------------------------------------------------------------------------------


def test_update_team_changes_only_what_is_sent(client, seeded):
    response = client.patch("/teams/2", json={"headquarters": "Deadpond's Flat"})
    assert response.status_code == 200
    assert response.json() == {"id": 2, "name": "Z-Force", "headquarters": "Deadpond's Flat"}
    assert response.headers["x-query-count"] == "3"  # SELECT, UPDATE, refresh
    assert client.get("/teams").json()[1] == response.json()

    renamed = client.patch("/teams/2", json={"name": "X-Force"})
    assert renamed.json() == {"id": 2, "name": "X-Force", "headquarters": "Deadpond's Flat"}


def test_update_team_with_an_empty_body_changes_nothing(client, seeded):
    response = client.patch("/teams/2", json={})
    assert response.status_code == 200
    assert response.json() == TEAMS[1]


def test_update_team_to_its_own_name_is_not_a_duplicate(client, seeded):
    response = client.patch("/teams/1", json={"name": "Preventers", "headquarters": "Sharp Tower 2"})
    assert response.status_code == 200
    assert response.json() == {"id": 1, "name": "Preventers", "headquarters": "Sharp Tower 2"}


def test_duplicate_name_on_update_is_409_and_nothing_changes(client, seeded):
    response = client.patch("/teams/2", json={"name": "Preventers", "headquarters": "Moved"})
    body = assert_problem(response, 409, "name", "body")
    assert "Preventers" in body["detail"]
    assert client.get("/teams").json() == TEAMS  # neither the name nor the headquarters changed

    ok = client.patch("/teams/2", json={"name": "X-Force"})
    assert ok.status_code == 200
    assert ok.json() == {"id": 2, "name": "X-Force", "headquarters": "Sister Margaret's Bar"}


BAD_TEAM_UPDATES = [
    ({"name": None}, "name"),  # explicit null on a NOT NULL column
    ({"headquarters": None}, "headquarters"),
    ({"name": ""}, "name"),
    ({"name": "n" * 101}, "name"),
    ({"headquarters": "h" * 101}, "headquarters"),
    ({"name": "nul\x00byte"}, "name"),
    ({"headquarters": "nul\x00byte"}, "headquarters"),
    ({"name": 7}, "name"),
]


@pytest.mark.parametrize(("body", "field"), BAD_TEAM_UPDATES)
def test_update_team_rejects_bad_input(client, seeded, body, field):
    assert_problem(client.patch("/teams/1", json=body), 422, field, "body")
    assert client.get("/teams").json() == TEAMS


def test_update_team_rejects_a_lone_surrogate(client, seeded):
    response = client.patch(
        "/teams/1", content='{"name": "\\ud800"}', headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "name", "body")
    assert client.get("/teams").json() == TEAMS


# ---- delete ---------------------------------------------------------------------------------------


def test_delete_team_with_heroes_is_409_and_keeps_everything(client, seeded):
    before = client.get("/teams/1").json()
    body = assert_problem(client.delete("/teams/1"), 409)
    assert body["detail"] == "Team 1 still has 3 hero(es): move or delete them first."
    assert client.get("/teams/1").json() == before
    assert len(before["heroes"]) == 3
    assert len(client.get("/heroes", params={"limit": 100}).json()) == 15


def test_delete_team_after_moving_its_heroes(client, seeded):
    for hero_id in (2, 3, 4):
        assert client.patch(f"/heroes/{hero_id}", json={"team_id": 2}).status_code == 200

    response = client.delete("/teams/1")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(client.get("/teams/1"), 404)
    assert_problem(client.delete("/teams/1"), 404)
    assert [team["id"] for team in client.get("/teams").json()] == [2, 3, 4, 5]
    assert [hero["id"] for hero in client.get("/teams/2").json()["heroes"]] == [1, 2, 3, 4, 5, 6]


def test_delete_team_after_deleting_its_heroes(client, seeded):
    for hero_id in (13, 14):
        assert client.delete(f"/heroes/{hero_id}").status_code == 204
    assert client.delete("/teams/5").status_code == 204
    assert client.get("/teams").json() == TEAMS[:4]


def test_delete_team_refused_when_a_hero_joins_after_the_count(client, engine):
    """The count said 0, then a hero joined: the foreign key must refuse, not orphan the hero."""
    client.post("/teams", json={"name": "Doomed", "headquarters": "HQ"})
    joiner = insert(Hero).values(name="Latecomer", secret_name="s", team_id=1, version=1)

    with once_after(engine, "count(", lambda other: other.execute(joiner)):
        response = client.delete("/teams/1")

    assert_problem(response, 409)
    team = client.get("/teams/1")
    assert team.status_code == 200
    assert [(hero["name"], hero["team_id"]) for hero in team.json()["heroes"]] == [("Latecomer", 1)]


# ---- evidence on every response -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "count"),
    [
        ("GET", "/teams", None, 200, 1),
        ("GET", "/teams/1", None, 200, 2),
        ("POST", "/teams", {"name": "New", "headquarters": "HQ"}, 201, 2),
        ("POST", "/teams", {"name": "Preventers", "headquarters": "HQ"}, 409, 1),
        ("POST", "/teams", {"name": ""}, 422, 0),
        ("GET", "/teams/99", None, 404, 1),
        ("DELETE", "/teams/1", None, 409, 2),
        ("PUT", "/teams/1", None, 405, 0),
        ("GET", "/nowhere", None, 404, 0),
    ],
)
def test_every_response_carries_the_evidence(client, seeded, method, url, body, status, count):
    response = client.request(method, url, json=body)
    assert response.status_code == status
    assert response.headers["x-query-count"] == str(count)
    match = SERVER_TIMING.match(response.headers["server-timing"])
    assert match, response.headers["server-timing"]
    assert match[1] == str(count)
    if status >= 400:
        assert response.headers["content-type"] == PROBLEM_JSON
