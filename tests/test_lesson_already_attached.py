"""Lesson already-attached: bad is SQLAlchemy's "already attached" 500, fixed and fixed/merge store the
change once; the Myths (a second add is a no-op, merge of a transient object returns a copy); both engines."""

import re
import warnings

import pytest
from sqlalchemy import event
from sqlalchemy.exc import InvalidRequestError
from sqlmodel import Session, select

from heroes.lessons.already_attached import scratch
from heroes.models import Hero, Team
from heroes.problems import PROBLEM_JSON
from heroes.seed import count_rows

from support import assert_problem

URL = "/lessons/already-attached"
ATTACHED = re.compile(
    r"Object '<Hero at 0x[0-9a-f]+>' is already attached to session '(\d+)' \(this is '(\d+)'\)"
)


def scratch_hero(app, hero_id: int) -> Hero:
    with Session(scratch(app.state.lab)) as session:
        return session.get(Hero, hero_id)


def updates_on(engine):
    """The UPDATE statements `engine` runs while the block is open."""
    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("UPDATE"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    return seen, lambda: event.remove(engine, "before_cursor_execute", listen)


# ---- bad: the hero belongs to the dependency's session -----------------------------------------------------


def test_bad_is_the_already_attached_500_and_renames_nothing(client, seeded, app):
    response = client.patch(f"{URL}/bad", params={"hero_id": 1}, json={"name": "Deadpond the Attached"})
    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert (body["type"], body["exception"]) == (URL, "InvalidRequestError")
    assert body["title"] == "InvalidRequestError: the pitfall this lesson shows"
    found = ATTACHED.fullmatch(body["detail"])
    assert found, body["detail"]
    assert int(found[2]) == int(found[1]) + 1  # the dependency's session was made first, the request's next
    assert response.headers["x-query-count"] == "1"  # the dependency's SELECT; the add fails before any write
    assert "Dive Wilson" not in response.text and "secret" not in response.text
    assert scratch_hero(app, 1).name == "Deadpond"


def test_bad_with_an_unknown_hero_is_404_naming_hero_id(client, seeded):
    assert_problem(
        client.patch(f"{URL}/bad", params={"hero_id": 99}, json={"name": "X"}), 404, "hero_id", "query"
    )


# ---- fixed: loaded where it is changed; fixed/merge: this session's copy -----------------------------------


@pytest.mark.parametrize(("route", "statements"), [("fixed", 3), ("fixed/merge", 4)])
def test_fixed_stores_the_change_once(client, seeded, app, engine, route, statements):
    lesson_engine = scratch(app.state.lab)
    seen, stop = updates_on(lesson_engine)
    try:
        response = client.patch(f"{URL}/{route}", params={"hero_id": 1}, json={"name": "Deadpond the Loaded"})
    finally:
        stop()
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "Deadpond the Loaded",
        "age": None,
        "team_id": 2,
        "id": 1,
        "version": 1,
    }
    assert response.headers["x-query-count"] == str(statements)  # merge: one more SELECT, by primary key
    assert len(seen) == 1 and seen[0].startswith("UPDATE hero SET name=")
    assert scratch_hero(app, 1).name == "Deadpond the Loaded"
    with Session(engine) as session:  # the reference API's heroes are untouched
        assert session.get(Hero, 1).name == "Deadpond"
    assert count_rows(engine) == (5, 15)


def test_the_reference_api_renames_in_its_one_session_per_request(client, seeded, engine):
    """PATCH /heroes/{id}: the hero is loaded and updated by the request's own session, never twice."""
    response = client.patch("/heroes/1", json={"name": "Deadpond Prime"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Deadpond Prime"
    with Session(engine) as session:
        assert session.get(Hero, 1).name == "Deadpond Prime"


# ---- the Myths, on the pinned SQLAlchemy -------------------------------------------------------------------


def test_myth_adding_the_same_object_twice_is_a_silent_no_op(seeded, queries):
    with warnings.catch_warnings(record=True) as caught, Session(seeded) as session:
        warnings.simplefilter("always")
        team = Team(name="Thunderbolts", headquarters="Watchtower")
        session.add(team)
        session.add(team)  # the same session: nothing happens
        hero = session.get(Hero, 1)
        session.add(hero)
        session.add(hero)
        assert team in session and hero in session
        session.commit()
    assert caught == []
    inserts = [s for s in queries.statements if s.startswith("INSERT INTO team")]
    assert len(inserts) == 1 and not any(s.startswith("UPDATE") for s in queries.statements)


def test_the_real_error_is_an_object_attached_to_another_open_session(seeded):
    with Session(seeded) as first, Session(seeded) as second:
        hero = first.get(Hero, 1)
        with pytest.raises(
            InvalidRequestError, match=r"is already attached to session '\d+' \(this is '\d+'\)"
        ):
            second.add(hero)
    with Session(seeded) as first:
        hero = first.get(Hero, 1)
    with Session(seeded) as third:  # the first is closed: the hero is detached and may join another
        third.add(hero)
        assert hero in third


def test_myth_merge_of_a_transient_object_returns_a_copy_and_leaves_the_original_out(seeded):
    with Session(seeded) as session:
        team = Team(name="Thunderbolts", headquarters="Watchtower")
        merged = session.merge(team)
        assert merged is not team and merged in session and team not in session
        team.headquarters = "Changed Afterwards"  # the original: never saved
        session.commit()
        stored = session.exec(select(Team).where(Team.name == "Thunderbolts")).one()
        assert stored is merged and stored.headquarters == "Watchtower"
        assert team.id is None  # the original never got its id either


# ---- the exercise, compare, the catalogue ------------------------------------------------------------------


def test_compare(client, seeded, engine, engine_name):
    for _ in range(2):  # every run starts from a fresh copy: the same outcome again
        response = client.get(f"{URL}/compare")
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["engine"] == engine_name
        bad, fixed, merge = result["variants"]
        assert (bad["variant"], bad["statuses"], bad["statements"]) == ("bad", {"500": 1}, 1)
        assert ATTACHED.fullmatch(bad["outcome"].removeprefix("500 Internal Server Error: "))
        assert (fixed["variant"], fixed["outcome"], fixed["statements"]) == ("fixed", "200 OK", 3)
        assert (merge["variant"], merge["outcome"], merge["statements"]) == ("fixed/merge", "200 OK", 4)
        assert [group["count"] for group in merge["sql"] if group["sql"].startswith("UPDATE")] == [1]
    assert count_rows(engine) == (5, 15)


def test_catalogue_lists_the_three_routes_and_the_myth(client):
    lesson = client.get(URL).json()
    assert [(r["method"], r["path"]) for r in lesson["routes"]] == [
        ("PATCH", f"{URL}/bad"),
        ("PATCH", f"{URL}/fixed"),
        ("PATCH", f"{URL}/fixed/merge"),
    ]
    assert lesson["engines"] == ["sqlite", "postgresql"]
    assert list(lesson["more"]) == ["Data"]
    assert lesson["myth"].startswith("adding the same object to a session twice does not warn")
