"""Heroes: create, filter and page, read with its team and an ETag, If-Match / If-None-Match, delete."""

import re

import pytest
from sqlalchemy import delete, update

from heroes.models import Hero, Team

from support import assert_problem, once_after

PREVENTERS = {"id": 1, "name": "Preventers", "headquarters": "Sharp Tower"}
RUSTY_MAN = {"id": 2, "name": "Rusty-Man", "age": 48, "team_id": 1, "version": 1}


def hero_ids(client, **params) -> list[int]:
    response = client.get("/heroes", params=params)
    assert response.status_code == 200, response.text
    return [hero["id"] for hero in response.json()]


def all_heroes(client) -> list[dict]:
    response = client.get("/heroes", params={"limit": 100})
    assert response.status_code == 200
    return response.json()


# ---- create ---------------------------------------------------------------------------------------


def test_create_hero(client, seeded):
    response = client.post(
        "/heroes", json={"name": "Nightcrawler", "secret_name": "Kurt Wagner", "age": 30, "team_id": 2}
    )
    assert response.status_code == 201
    created = {"id": 16, "name": "Nightcrawler", "age": 30, "team_id": 2, "version": 1}
    assert response.json() == created
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == "/heroes/16"
    assert response.headers["x-query-count"] == "3"  # the team exists?, INSERT, refresh
    team = {"id": 2, "name": "Z-Force", "headquarters": "Sister Margaret's Bar"}
    assert client.get("/heroes/16").json() == {**created, "team": team}


def test_create_hero_without_team_or_age(client):
    response = client.post("/heroes", json={"name": "Loner", "secret_name": "Nobody"})
    assert response.status_code == 201
    assert response.json() == {"id": 1, "name": "Loner", "age": None, "team_id": None, "version": 1}
    assert response.headers["x-query-count"] == "2"  # INSERT, refresh
    assert client.get("/heroes/1").json() == {**response.json(), "team": None}


def test_create_hero_ignores_client_id_and_version(client, seeded):
    response = client.post("/heroes", json={"name": "X", "secret_name": "Y", "id": 1, "version": 99})
    assert response.status_code == 201
    assert response.json() == {"id": 16, "name": "X", "age": None, "team_id": None, "version": 1}


@pytest.mark.parametrize("age", [0, 10_000])
def test_create_hero_accepts_the_age_bounds(client, age):
    response = client.post("/heroes", json={"name": "X", "secret_name": "Y", "age": age})
    assert response.status_code == 201
    assert response.json()["age"] == age


def test_create_hero_with_unknown_team_is_422_naming_team_id(client, seeded):
    response = client.post("/heroes", json={"name": "X", "secret_name": "Y", "team_id": 6})
    body = assert_problem(response, 422, "team_id", "body")
    assert body["detail"] == "No team with id 6."
    assert len(all_heroes(client)) == 15


BAD_HEROES = [
    ({"secret_name": "S"}, "name"),
    ({"name": "N"}, "secret_name"),
    ({"name": None, "secret_name": "S"}, "name"),
    ({"name": "N", "secret_name": None}, "secret_name"),
    ({"name": "", "secret_name": "S"}, "name"),
    ({"name": "N", "secret_name": ""}, "secret_name"),
    ({"name": "n" * 101, "secret_name": "S"}, "name"),  # SQLite would store it: VARCHAR(100) is a hint
    ({"name": "N", "secret_name": "s" * 101}, "secret_name"),
    ({"name": "nul\x00byte", "secret_name": "S"}, "name"),  # PostgreSQL refuses NUL in text
    ({"name": "N", "secret_name": "nul\x00byte"}, "secret_name"),
    ({"name": "N", "secret_name": "S", "age": -1}, "age"),
    ({"name": "N", "secret_name": "S", "age": 10_001}, "age"),
    ({"name": "N", "secret_name": "S", "age": 2**31}, "age"),  # PostgreSQL INTEGER overflows
    ({"name": "N", "secret_name": "S", "age": 2**63}, "age"),  # SQLite INTEGER overflows
    ({"name": "N", "secret_name": "S", "age": 1.5}, "age"),
    ({"name": "N", "secret_name": "S", "age": "old"}, "age"),
    ({"name": "N", "secret_name": "S", "age": "42"}, "age"),  # a JSON string is not a number
    ({"name": "N", "secret_name": "S", "age": True}, "age"),  # lax validation would store 1
    ({"name": "N", "secret_name": "S", "team_id": 0}, "team_id"),
    ({"name": "N", "secret_name": "S", "team_id": -1}, "team_id"),
    ({"name": "N", "secret_name": "S", "team_id": 2**31}, "team_id"),
    ({"name": "N", "secret_name": "S", "team_id": 2**63}, "team_id"),
    ({"name": "N", "secret_name": "S", "team_id": 2**64}, "team_id"),
    ({"name": "N", "secret_name": "S", "team_id": "one"}, "team_id"),
    ({"name": "N", "secret_name": "S", "team_id": True}, "team_id"),  # lax validation would join team 1
]


@pytest.mark.parametrize(("body", "field"), BAD_HEROES)
def test_create_hero_rejects_bad_input(client, seeded, body, field):
    response = client.post("/heroes", json=body)
    assert_problem(response, 422, field, "body")
    assert response.headers["x-query-count"] == "0"  # refused before the database saw it
    assert len(all_heroes(client)) == 15


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ('{"name": "\\ud800", "secret_name": "S"}', "name"),  # a lone surrogate: valid JSON, not UTF-8
        ('{"name": "N", "secret_name": "\\udc00"}', "secret_name"),
        ('{"name": "N", "secret_name": "S", "age": 1e400}', "age"),  # infinity
        ('{"name": "N", "secret_name": "S"', "body"),
        ("null", "body"),
    ],
    ids=["surrogate-name", "surrogate-secret", "infinite-age", "truncated", "null"],
)
def test_create_hero_rejects_bad_json(client, seeded, content, field):
    response = client.post("/heroes", content=content, headers={"content-type": "application/json"})
    assert_problem(response, 422, field, "body")
    assert len(all_heroes(client)) == 15


def test_create_hero_refused_when_its_team_is_deleted_after_the_check(client, engine):
    client.post("/teams", json={"name": "Vanishing", "headquarters": "HQ"})

    with once_after(engine, "FROM team", lambda other: other.execute(delete(Team))):
        response = client.post("/heroes", json={"name": "X", "secret_name": "Y", "team_id": 1})

    assert_problem(response, 422, "team_id", "body")
    assert all_heroes(client) == []


# ---- read -----------------------------------------------------------------------------------------


def test_read_hero_with_its_team_in_one_statement(client, seeded, queries):
    response = client.get("/heroes/2")
    assert response.status_code == 200
    assert response.json() == {**RUSTY_MAN, "team": PREVENTERS}
    assert response.headers["etag"] == '"1"'
    assert response.headers["x-query-count"] == "1"
    assert queries.count == 1, queries.statements


def test_read_hero_without_a_team(client, seeded):
    response = client.get("/heroes/15")
    assert response.status_code == 200
    assert response.json() == {
        "id": 15,
        "name": "Lone Ranger",
        "age": 40,
        "team_id": None,
        "version": 1,
        "team": None,
    }


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("PATCH", {"age": 1}), ("DELETE", None)],
)
def test_unknown_hero_is_404(client, seeded, method, body):
    response = client.request(method, "/heroes/16", json=body)
    body = assert_problem(response, 404)
    assert body["detail"] == "No hero with id 16."
    assert len(all_heroes(client)) == 15


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("hero_id", ["0", "-1", "2147483648", "9223372036854775808", "abc", "1.5"])
def test_out_of_range_hero_id_is_422_naming_the_path_field(client, seeded, method, hero_id):
    body = {"age": 1} if method == "PATCH" else None
    response = client.request(method, f"/heroes/{hero_id}", json=body)
    assert_problem(response, 422, "hero_id", "path")
    assert response.headers["x-query-count"] == "0"
    assert client.get("/heroes/1").json()["version"] == 1
    assert len(all_heroes(client)) == 15


def test_largest_hero_id_is_a_plain_404(client, seeded):
    assert_problem(client.get("/heroes/2147483647"), 404)


@pytest.mark.parametrize("tag", ['"1"', "*", 'W/"1"', '"7", "1"'])
def test_if_none_match_with_the_current_version_is_304(client, seeded, tag):
    response = client.get("/heroes/2", headers={"If-None-Match": tag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == '"1"'
    assert response.headers["x-query-count"] == "1"


def test_if_none_match_with_an_old_version_is_200(client, seeded):
    assert client.patch("/heroes/2", json={"age": 49}).status_code == 200
    response = client.get("/heroes/2", headers={"If-None-Match": '"1"'})
    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'
    assert response.json() == {**RUSTY_MAN, "age": 49, "version": 2, "team": PREVENTERS}


# ---- list and filter ------------------------------------------------------------------------------


def test_list_heroes(client, seeded):
    response = client.get("/heroes")
    assert response.status_code == 200
    heroes = response.json()
    assert [hero["id"] for hero in heroes] == list(range(1, 16))
    assert heroes[1] == RUSTY_MAN
    assert all("secret_name" not in hero and "team" not in hero for hero in heroes)
    assert response.headers["x-query-count"] == "1"


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({"name": "man"}, [2, 8]),  # Rusty-Man, Iron Woman
        ({"name": "PERSON"}, [10, 11]),
        ({"name": "sPiDeR-bOy"}, [3]),
        ({"name": "Dr. "}, [6]),
        ({"name": "zzz"}, []),
        ({"min_age": 1000}, [9, 12]),  # a hero without an age matches no age filter
        ({"max_age": 18}, [3, 13]),
        ({"min_age": 35, "max_age": 36}, [5, 6, 10]),
        ({"min_age": 40, "max_age": 30}, []),
        ({"min_age": 0}, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]),
        ({"team_id": 2}, [1, 5, 6]),
        ({"team_id": 99}, []),  # an unknown team filters everything out; it is not an error
        ({"team_id": 1, "min_age": 30}, [2, 4]),
        ({"name": "er", "team_id": 3}, [7, 9]),
        ({"name": "er", "max_age": 40}, [3, 10, 15]),
        ({"limit": 5}, [1, 2, 3, 4, 5]),
        ({"offset": 5, "limit": 5}, [6, 7, 8, 9, 10]),
        ({"offset": 14}, [15]),
        ({"offset": 15}, []),
        ({"offset": 2147483647}, []),
        ({"name": "a", "offset": 2, "limit": 3}, [4, 5, 7]),  # filter first, then page
    ],
)
def test_filter_and_page_heroes(client, seeded, params, ids):
    assert hero_ids(client, **params) == ids


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        ("%", ["100% Real"]),  # LIKE wildcards are matched literally
        ("_", ["Under_Score"]),
        ("0%", ["100% Real"]),
        ("under_", ["Under_Score"]),  # as a wildcard it would match "Underscore" too
        ("\\", ["Back\\Slash"]),
        ("/", ["Slash/Dot"]),  # the escape character SQLAlchemy's autoescape uses
    ],
)
def test_name_filter_treats_wildcards_literally(client, seeded, name, matches):
    for hero_name in ("100% Real", "Under_Score", "Back\\Slash", "Slash/Dot", "Underscore", "1000 Real"):
        assert client.post("/heroes", json={"name": hero_name, "secret_name": "S"}).status_code == 201
    response = client.get("/heroes", params={"name": name})
    assert response.status_code == 200
    assert [hero["name"] for hero in response.json()] == matches


def test_list_default_limit_is_20(client, seeded):
    for n in range(10):
        client.post("/heroes", json={"name": f"Extra {n}", "secret_name": "S"})
    assert hero_ids(client) == list(range(1, 21))
    assert hero_ids(client, offset=20) == list(range(21, 26))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"offset": -1}, "offset"),
        ({"offset": 2147483648}, "offset"),
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": 101}, "limit"),
        ({"min_age": -1}, "min_age"),
        ({"min_age": 10_001}, "min_age"),
        ({"max_age": 2**63}, "max_age"),
        ({"max_age": "old"}, "max_age"),
        ({"team_id": 0}, "team_id"),
        ({"team_id": 2**31}, "team_id"),
        ({"name": ""}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": "nul\x00"}, "name"),  # PostgreSQL refuses NUL even in a parameter
    ],
)
def test_list_heroes_rejects_bad_query(client, seeded, params, field):
    response = client.get("/heroes", params=params)
    assert_problem(response, 422, field, "query")
    assert response.headers["x-query-count"] == "0"


# ---- update and If-Match --------------------------------------------------------------------------


def test_update_hero_without_if_match_bumps_the_version(client, seeded):
    response = client.patch("/heroes/2", json={"age": 49})
    assert response.status_code == 200
    assert response.json() == {**RUSTY_MAN, "age": 49, "version": 2}
    assert response.headers["etag"] == '"2"'
    assert response.headers["x-query-count"] == "3"  # SELECT, UPDATE, refresh

    again = client.patch("/heroes/2", json={"name": "Rusty-Man II"})
    assert again.json() == {**RUSTY_MAN, "name": "Rusty-Man II", "age": 49, "version": 3}
    assert again.headers["etag"] == '"3"'
    assert client.get("/heroes/2").headers["etag"] == '"3"'


def test_update_hero_with_an_empty_body_still_bumps_the_version(client, seeded):
    response = client.patch("/heroes/2", json={})
    assert response.status_code == 200
    assert response.json() == {**RUSTY_MAN, "version": 2}


@pytest.mark.parametrize("tag", ['"1"', "*", '"5", "1"', "1"])
def test_if_match_with_the_current_version_updates(client, seeded, tag):
    response = client.patch("/heroes/2", json={"age": 50}, headers={"If-Match": tag})
    assert response.status_code == 200
    assert response.json() == {**RUSTY_MAN, "age": 50, "version": 2}
    assert response.headers["etag"] == '"2"'


@pytest.mark.parametrize("tag", ['"2"', '"0"', 'W/"1"', '""', "", "garbage"])
def test_if_match_with_another_version_is_412_and_changes_nothing(client, seeded, tag):
    response = client.patch("/heroes/2", json={"age": 50}, headers={"If-Match": tag})
    assert_problem(response, 412)
    assert client.get("/heroes/2").json() == {**RUSTY_MAN, "team": PREVENTERS}


def test_if_match_after_someone_else_updated_is_412(client, seeded):
    first = client.get("/heroes/2").headers["etag"]
    assert client.patch("/heroes/2", json={"age": 49}, headers={"If-Match": first}).status_code == 200

    stale = client.patch("/heroes/2", json={"name": "Lost Update"}, headers={"If-Match": first})
    body = assert_problem(stale, 412)
    assert body["detail"] == "Hero 2 is at version 2 now: read it again, then retry."
    assert client.get("/heroes/2").json() == {**RUSTY_MAN, "age": 49, "version": 2, "team": PREVENTERS}

    fresh = client.patch("/heroes/2", json={"name": "Rusty"}, headers={"If-Match": '"2"'})
    assert fresh.json() == {**RUSTY_MAN, "name": "Rusty", "age": 49, "version": 3}


def test_a_hero_deleted_between_read_and_update_is_404(client, engine):
    """Without If-Match the UPDATE has no version condition: matching no row means the hero is gone."""
    client.post("/heroes", json={"name": "Vanishing", "secret_name": "S"})

    with once_after(engine, "FROM hero", lambda other: other.execute(delete(Hero).where(Hero.id == 1))):
        response = client.patch("/heroes/1", json={"age": 3})

    body = assert_problem(response, 404)
    assert body["detail"] == "No hero with id 1 (it was just deleted)."
    assert client.get("/heroes").json() == []


def test_if_match_loses_a_race_with_a_concurrent_writer(client, engine):
    """Someone writes between our read and our write: the compare-and-set UPDATE matches no row."""
    client.post("/heroes", json={"name": "Contested", "secret_name": "S", "age": 1})
    bump = update(Hero).where(Hero.id == 1).values(age=2, version=Hero.version + 1)

    with once_after(engine, "FROM hero", lambda other: other.execute(bump)):
        response = client.patch("/heroes/1", json={"age": 3}, headers={"If-Match": '"1"'})

    assert_problem(response, 412)
    assert client.get("/heroes/1").json() == {
        "id": 1,
        "name": "Contested",
        "age": 2,
        "team_id": None,
        "version": 2,
        "team": None,
    }


def test_update_hero_fields(client, seeded):
    moved = client.patch("/heroes/2", json={"team_id": 3})
    assert moved.json() == {**RUSTY_MAN, "team_id": 3, "version": 2}
    assert [hero["id"] for hero in client.get("/teams/3").json()["heroes"]] == [2, 7, 8, 9]

    cleared = client.patch("/heroes/2", json={"age": None, "team_id": None})  # null clears both
    assert cleared.json() == {**RUSTY_MAN, "age": None, "team_id": None, "version": 3}
    assert client.get("/heroes/2").json()["team"] is None

    renamed = client.patch("/heroes/2", json={"name": "Rusty", "secret_name": "Tom S."})
    assert renamed.json() == {**RUSTY_MAN, "name": "Rusty", "age": None, "team_id": None, "version": 4}


def test_update_hero_to_an_unknown_team_is_422_and_changes_nothing(client, seeded):
    response = client.patch("/heroes/2", json={"team_id": 6, "age": 1})
    body = assert_problem(response, 422, "team_id", "body")
    assert body["detail"] == "No team with id 6."
    assert client.get("/heroes/2").json() == {**RUSTY_MAN, "team": PREVENTERS}


def test_update_hero_refused_when_its_new_team_is_deleted_after_the_check(client, seeded, engine):
    client.post("/teams", json={"name": "Vanishing", "headquarters": "HQ"})
    vanish = delete(Team).where(Team.id == 6)

    with once_after(engine, "FROM team", lambda other: other.execute(vanish)):
        response = client.patch("/heroes/2", json={"team_id": 6})

    assert_problem(response, 422, "team_id", "body")
    assert client.get("/heroes/2").json() == {**RUSTY_MAN, "team": PREVENTERS}


BAD_HERO_UPDATES = [
    ({"name": None}, "name"),  # explicit null on a NOT NULL column
    ({"secret_name": None}, "secret_name"),
    ({"name": ""}, "name"),
    ({"secret_name": ""}, "secret_name"),
    ({"name": "n" * 101}, "name"),
    ({"secret_name": "s" * 101}, "secret_name"),
    ({"name": "nul\x00"}, "name"),
    ({"secret_name": "nul\x00"}, "secret_name"),
    ({"age": -1}, "age"),
    ({"age": 10_001}, "age"),
    ({"age": 2**31}, "age"),
    ({"age": 2**63}, "age"),
    ({"team_id": 0}, "team_id"),
    ({"team_id": 2**31}, "team_id"),
    ({"team_id": 2**63}, "team_id"),
    ({"team_id": "x"}, "team_id"),
    ({"team_id": True}, "team_id"),
    ({"age": False}, "age"),
    ({"age": 48.0}, "age"),
]


@pytest.mark.parametrize(("body", "field"), BAD_HERO_UPDATES)
def test_update_hero_rejects_bad_input(client, seeded, body, field):
    response = client.patch("/heroes/2", json=body)
    assert_problem(response, 422, field, "body")
    assert client.get("/heroes/2").json() == {**RUSTY_MAN, "team": PREVENTERS}


@pytest.mark.parametrize("field", ["name", "secret_name"])
def test_update_hero_rejects_a_lone_surrogate(client, seeded, field):
    response = client.patch(
        "/heroes/2", content=f'{{"{field}": "x\\ud83e"}}', headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, field, "body")
    assert client.get("/heroes/2").json() == {**RUSTY_MAN, "team": PREVENTERS}


# ---- delete ---------------------------------------------------------------------------------------


def test_delete_hero(client, seeded):
    response = client.delete("/heroes/2")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(client.get("/heroes/2"), 404)
    assert_problem(client.delete("/heroes/2"), 404)
    assert hero_ids(client) == [1, *range(3, 16)]
    assert [hero["id"] for hero in client.get("/teams/1").json()["heroes"]] == [3, 4]


def test_name_filter_ignores_case_beyond_ascii(client):
    """SQLite's own lower() folds ASCII only: db.py registers Python's on every connection."""
    for name in ("Élan Vital", "Ørsted", "Plain"):
        assert client.post("/heroes", json={"name": name, "secret_name": "S"}).status_code == 201
    assert hero_ids(client, name="élan") == [1]
    assert hero_ids(client, name="øRSTED") == [2]


# ---- evidence -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "headers", "body", "status", "count"),
    [
        ("GET", "/heroes", {}, None, 200, 1),
        ("GET", "/heroes/2", {}, None, 200, 1),
        ("GET", "/heroes/2", {"If-None-Match": '"1"'}, None, 304, 1),
        ("GET", "/heroes/99", {}, None, 404, 1),
        ("POST", "/heroes", {}, {"name": "N", "secret_name": "S", "team_id": 1}, 201, 3),
        ("POST", "/heroes", {}, {"name": "N", "secret_name": "S", "team_id": 9}, 422, 1),
        ("POST", "/heroes", {}, {"name": "N"}, 422, 0),
        ("PATCH", "/heroes/2", {"If-Match": '"1"'}, {"age": 1}, 200, 3),
        ("PATCH", "/heroes/2", {"If-Match": '"9"'}, {"age": 1}, 412, 1),
        ("PATCH", "/heroes/2", {}, {"team_id": 3}, 200, 4),  # + the team exists?
        ("DELETE", "/heroes/2", {}, None, 204, 2),
    ],
)
def test_every_response_carries_the_evidence(client, seeded, method, url, headers, body, status, count):
    response = client.request(method, url, headers=headers, json=body)
    assert response.status_code == status
    assert response.headers["x-query-count"] == str(count)
    server_timing = response.headers["server-timing"]
    assert re.fullmatch(rf'db;dur=\d+\.\d\d;desc="{count} queries", app;dur=\d+\.\d\d', server_timing)
