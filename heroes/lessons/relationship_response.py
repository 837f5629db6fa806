"""Relationships in responses: a table model answers without its heroes, read models that nest each other loop

Symptom: GET /lessons/relationship-response/bad?team_id=1 answers 200 with the team's id, name and
headquarters, and no `heroes` at all: no error, no warning, the field is simply not there.
GET .../bad/recursive?team_id=1, read models that point at each other (a team's heroes, each with its
team, with its heroes...), answers 500: the response fails validation, "Recursion error - cyclic
reference detected".
Cause: the route returns the table model Team as its response model. A Relationship() is an ORM
attribute, not a field of the Pydantic model, so Team's schema, and so the response, has none; the
heroes are never even loaded (1 statement). The recursive read models do include the relationship,
but the ORM objects point back at each other (team.heroes[0].team is team), so validating them from
attributes walks the same objects again, and Pydantic stops at the cycle.
Fix: a read model per direction, as SQLModel's tutorial does: TeamPublicWithHeroes holds
list[HeroPublic] and HeroPublicWithTeam holds TeamPublic, plain public models with no way back, so
there is no cycle (GET .../fixed; .../fixed/hero?team_id=1 is the other direction, a team's first
hero with its team). Load what the read model reads, eagerly, in the query: selectinload(Team.heroes),
2 statements whatever the heroes; joinedload(Hero.team), 1 statement.
Data: the demo data (5 teams, 15 heroes) copied into the lesson's own database, never the reference
API's rows. The bad routes read it only.
"""

from http import HTTPStatus
from typing import Annotated

from fastapi import Query
from sqlalchemy import Engine
from sqlalchemy.orm import joinedload, selectinload
from sqlmodel import Session, select

from heroes.lab import Call, Lab, Lesson, scratch_engine, session_on
from heroes.models import (
    INT32_MAX,
    Hero,
    HeroPublic,
    HeroPublicWithTeam,
    Team,
    TeamPublic,
    TeamPublicWithHeroes,
)
from heroes.problems import Problem, problem_responses
from heroes.seed import seed_demo

lesson = Lesson(__name__, __doc__)
router = lesson.router()
PITFALLS = {
    "GET /bad/recursive": (
        "ResponseValidationError",
        "; ".join(f"response.heroes.{n}.team: Recursion error - cyclic reference detected" for n in range(3)),
    )
}  # team 1 has 3 heroes
NO_EXERCISE = (
    "The fix is the route's response model (a read model that carries the relationship, one direction "
    "only), which the route's decorator declares, not code in its body."
)


class HeroPublicWithTeamAndBack(HeroPublic):
    team: "TeamPublicWithHeroesAndBack | None" = None


class TeamPublicWithHeroesAndBack(TeamPublic):  # each holds the other: the cycle
    heroes: list[HeroPublicWithTeamAndBack] = []


HeroPublicWithTeamAndBack.model_rebuild()


def scratch(lab: Lab) -> Engine:
    return lesson.scratch(lab, populate=seed_demo)


ScratchSession = session_on(scratch_engine(scratch))
TeamId = Annotated[int, Query(ge=1, le=INT32_MAX, description="A team's id in the lesson's copy (1 to 5).")]
RESPONSES = problem_responses(404, 422)
FAILS = problem_responses(404, 422, 500)  # the recursive read models: the 500 is their documented symptom


def found(session: Session, team_id: int, *options) -> Team:  # 404 naming the team
    team = session.exec(select(Team).where(Team.id == team_id).options(*options)).first()
    if team is None:
        raise Problem(404, f"No team with id {team_id}.")
    return team


@router.get("/bad", response_model=Team, responses=RESPONSES)
def bad(team_id: TeamId, session: ScratchSession) -> Team:
    """Return the table model: its relationship is not a field, so the heroes are silently missing."""
    return found(session, team_id)  # response_model=Team: no `heroes` in its schema


@router.get(
    "/bad/recursive", response_model=TeamPublicWithHeroesAndBack, responses=problem_responses(404, 422, 500)
)
def bad_recursive(team_id: TeamId, session: ScratchSession) -> Team:
    """Read models that nest each other: team -> heroes -> team -> ...: a cycle, a 500."""
    return found(session, team_id, selectinload(Team.heroes))  # hero.team is the same team: a loop


@router.get("/fixed", response_model=TeamPublicWithHeroes, responses=RESPONSES)
def fixed(team_id: TeamId, session: ScratchSession) -> Team:
    """The team with its heroes, one direction (heroes without their team), loaded eagerly: 2 statements."""
    return found(session, team_id, selectinload(Team.heroes))  # the read model names heroes; load them


@router.get("/fixed/hero", response_model=HeroPublicWithTeam, responses=RESPONSES)
def fixed_hero(team_id: TeamId, session: ScratchSession) -> Hero:
    """The other direction: the team's first hero with its team (no heroes inside), 1 statement."""
    query = select(Hero).where(Hero.team_id == team_id).options(joinedload(Hero.team)).order_by(Hero.id)
    hero = session.exec(query).first()
    if hero is None:
        raise Problem(404, f"No hero in team {team_id}.")
    return hero


def shape(status: int, body) -> str:
    """compare's outcome line: the fields the response carries."""
    if status != 200:  # the first validation error ("loc: msg; loc: msg"), or the problem's detail
        first, _, rest = body["detail"].partition("; ")
        more = f" (+{rest.count('; ') + 1} more)" if rest else ""
        if "exception" not in body:
            return f"{status} {HTTPStatus(status).phrase}: {body['detail']}"
        return f"{status} {body['exception']} at {first}{more}"
    nested = {key: len(value) for key, value in body.items() if isinstance(value, list)}
    fields = ", ".join(f"{key} ({nested[key]})" if key in nested else key for key in sorted(body))
    return f"200 OK: {fields}"


def calls(size: int | None) -> list[Call]:
    team = {"team_id": 1}
    return [
        Call("bad", "GET", "/bad", team, summary=shape),
        Call("bad/recursive", "GET", "/bad/recursive", team, summary=shape),
        Call("fixed", "GET", "/fixed", team, summary=shape),
        Call("fixed/hero", "GET", "/fixed/hero", team, summary=shape),
    ]
