"""n-plus-one: bad runs 1 + N statements for N teams, fixed 2 whatever N, joinedload 1; raiseload guards."""

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import raiseload
from sqlmodel import Session, select

from heroes.evidence import count_queries
from heroes.lessons.n_plus_one import HEROES_PER_TEAM
from heroes.models import Team, TeamPublicWithHeroes
from heroes.problems import PROBLEM_JSON
from heroes.seed import DEMO_HEROES, DEMO_TEAMS

from support import assert_problem

LESSON = "/lessons/n-plus-one"
DEMO_N = len(DEMO_TEAMS)


def statements(response) -> int:
    assert response.status_code == 200, response.text
    return int(response.headers["X-Query-Count"])


def test_on_the_demo_data_bad_runs_one_select_per_team(client, seeded, queries):
    bad = client.get(f"{LESSON}/bad")
    assert statements(bad) == 1 + DEMO_N
    assert queries.count == 1 + DEMO_N  # the header tells the truth
    fixed = client.get(f"{LESSON}/fixed")
    assert statements(fixed) == 2
    assert bad.json() == fixed.json()  # the same answer, at a different price
    assert [team["name"] for team in fixed.json()] == [name for name, _ in DEMO_TEAMS]
    assert sum(len(team["heroes"]) for team in fixed.json()) == sum(1 for h in DEMO_HEROES if h[3])


@pytest.mark.parametrize("teams", [10, 100])
def test_bad_grows_with_the_teams_fixed_does_not(client, seeded, teams):
    """The scratch database has `teams` teams; every engine's statements are counted, not just the app's."""
    with count_queries(Engine) as everything:
        client.get(f"{LESSON}/bad", params={"teams": teams})  # first touch builds the scratch data
    with count_queries(Engine) as everything:
        bad = client.get(f"{LESSON}/bad", params={"teams": teams})
    assert statements(bad) == everything.count == 1 + teams
    with count_queries(Engine) as everything:
        fixed = client.get(f"{LESSON}/fixed", params={"teams": teams})
    assert statements(fixed) == everything.count == 2
    assert bad.json() == fixed.json()
    assert len(fixed.json()) == teams
    assert {len(team["heroes"]) for team in fixed.json()} == {HEROES_PER_TEAM}


def test_selectinload_sends_the_ids_500_to_an_in_list(client, seeded):
    """Not 2 whatever N: 1 + ceil(N / 500). At 501 teams the heroes come in two IN lists."""
    with count_queries(Engine) as everything:
        client.get(f"{LESSON}/fixed", params={"teams": 501})  # builds the scratch data
    with count_queries(Engine) as everything:
        fixed = client.get(f"{LESSON}/fixed", params={"teams": 501})
    assert statements(fixed) == everything.count == 3
    assert all("FROM hero" in statement for statement in everything.statements[1:])  # two IN lists
    assert len(fixed.json()) == 501


@pytest.mark.parametrize("teams", [None, 10])
def test_joinedload_reads_heroes_with_their_team_in_one_statement(client, seeded, teams):
    response = client.get(f"{LESSON}/fixed/joinedload", params={"teams": teams} if teams else {})
    assert statements(response) == 1
    heroes = response.json()
    assert len(heroes) == (len(DEMO_HEROES) if teams is None else teams * HEROES_PER_TEAM)
    assert all(hero["team"] is None or hero["team"]["id"] == hero["team_id"] for hero in heroes)
    assert not any("secret_name" in hero for hero in heroes)


def test_the_scratch_data_leaves_the_reference_data_alone(client, seeded):
    client.get(f"{LESSON}/fixed", params={"teams": 50})
    assert [team["name"] for team in client.get("/teams").json()] == [name for name, _ in DEMO_TEAMS]


def test_raiseload_turns_the_accidental_lazy_load_into_an_error(seeded):
    """The guard to put in tests: the bad route's code under raiseload("*") fails on the first lazy load."""
    with Session(seeded) as session:
        teams = session.exec(select(Team).options(raiseload("*")).order_by(Team.id)).all()
        with pytest.raises(InvalidRequestError, match="'Team.heroes' is not available due to lazy='raise'"):
            teams[0].heroes  # noqa: B018  (the access is the test)
        with count_queries(seeded) as queries, pytest.raises(ValueError, match="lazy='raise'"):
            TeamPublicWithHeroes.model_validate(teams[0])  # and nothing is loaded behind our back
        assert queries.count == 0


def test_the_guard_route_answers_the_error_as_the_lesson_problem(client, seeded):
    response = client.get(f"{LESSON}/guard")
    body = assert_problem_of_lesson(response)
    assert "'Team.heroes' is not available due to lazy='raise'" in body["detail"]
    assert response.headers["X-Query-Count"] == "1"  # the teams' SELECT, then an error, not a lazy load


def assert_problem_of_lesson(response) -> dict:
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == LESSON
    assert body["instance"] == response.request.url.path
    return body


@pytest.mark.parametrize("size", [10, 100])
def test_compare_reports_the_gap(client, seeded, size):
    response = client.get(f"{LESSON}/compare", params={"size": size})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["size"] == size
    by_variant = {v["variant"]: v for v in result["variants"]}
    assert list(by_variant) == ["bad", "fixed", "fixed/joinedload"]
    assert by_variant["bad"]["statements"] == 1 + size
    assert by_variant["fixed"]["statements"] == 2
    assert by_variant["fixed/joinedload"]["statements"] == 1
    assert {v["outcome"] for v in result["variants"]} == {"200 OK"}
    assert by_variant["bad"]["body_bytes"] == by_variant["fixed"]["body_bytes"]
    assert int(response.headers["X-Query-Count"]) == size + 4  # compare's own header sums its variants


@pytest.mark.parametrize("teams", ["0", "5001", "ten", "-1", "2147483648"])
def test_the_size_knob_is_validated(client, teams):
    assert_problem(client.get(f"{LESSON}/bad", params={"teams": teams}), 422, field="teams", location="query")
