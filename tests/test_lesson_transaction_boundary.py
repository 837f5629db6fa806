"""Lesson transaction-boundary: committing repositories leave the team behind (1 row) in 2 commits, the
request's own transaction leaves nothing (0) in 1 commit; both engines."""

import pytest
from sqlmodel import Session, select

from heroes.lessons.transaction_boundary import founding, scratch
from heroes.models import Hero, Team
from heroes.seed import count_rows

from support import assert_problem

URL = "/lessons/transaction-boundary"


def scratch_rows(app) -> tuple[list[str], list[str]]:
    with Session(scratch(app.state.lab)) as session:
        teams = list(session.exec(select(Team.name).order_by(Team.id)))
        heroes = list(session.exec(select(Hero.name).order_by(Hero.id)))
    return teams, heroes


@pytest.mark.parametrize(("route", "left", "teams"), [("bad", 1, ["Doomed"]), ("fixed", 0, [])])
def test_a_refused_founder_leaves_the_team_only_with_bad(client, seeded, app, engine, route, left, teams):
    response = client.post(f"{URL}/{route}", json=founding("Doomed", 20_000))
    body = assert_problem(response, 422, "founder.age", "body")
    assert body["teams_left"] == left
    assert body["detail"].endswith(f"teams left: {left}.")
    assert scratch_rows(app) == (teams, [])
    assert count_rows(engine) == (5, 15)  # the reference API's rows untouched


@pytest.mark.parametrize(("route", "commits"), [("bad", 2), ("fixed", 1)])
def test_a_valid_founding_commits_twice_with_bad_once_with_fixed(client, seeded, app, route, commits):
    response = client.post(f"{URL}/{route}", json=founding("Founders", 33))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["commits"] == commits
    assert scratch_rows(app) == (["Founders"], ["Founder"])
    with Session(scratch(app.state.lab)) as session:
        assert session.get(Hero, body["hero_id"]).team_id == body["team_id"]


@pytest.mark.parametrize("route", ["bad", "fixed"])
def test_a_taken_team_name_is_409_on_both(client, seeded, app, route):
    assert client.post(f"{URL}/{route}", json=founding("Twins", 1)).status_code == 201
    assert_problem(client.post(f"{URL}/{route}", json=founding("Twins", 2)), 409, "team.name", "body")
    assert scratch_rows(app) == (["Twins"], ["Founder"])


def test_fixed_rolls_back_the_team_it_flushed(client, seeded, app):
    """Flushed is not committed: fixed's team INSERT ran (it has an id) and is still rolled back."""
    from heroes.evidence import count_queries

    with count_queries(scratch(app.state.lab)) as queries:
        client.post(f"{URL}/fixed", json=founding("Flushed", -1))
    assert [s.split()[2] for s in queries.statements if s.startswith("INSERT")] == ["team", "hero"]
    assert scratch_rows(app) == ([], [])


def test_reset_empties_the_scratch_database(client, seeded, app):
    client.post(f"{URL}/bad", json=founding("Orphans", 20_000))
    assert client.post(f"{URL}/reset").status_code == 200
    assert scratch_rows(app) == ([], [])


def test_compare(client, seeded):
    for _ in range(2):  # compare starts on an empty database every time
        response = client.get(f"{URL}/compare")
        assert response.status_code == 200, response.text
        outcomes = [(v["variant"], v["outcome"]) for v in response.json()["variants"]]
        assert outcomes == [
            ("bad", "422: teams left by the failed request: 1"),
            ("bad, valid", "201 Created: 2 commits"),
            ("fixed", "422: teams left by the failed request: 0"),
            ("fixed, valid", "201 Created: 1 commits"),
        ]
