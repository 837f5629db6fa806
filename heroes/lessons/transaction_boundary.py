"""Transaction boundary: repositories that commit in every method leave half a request behind

Symptom: POST /lessons/transaction-boundary/bad founds a team with its first hero. When the database
refuses the hero (an age of 20,000 breaks CHECK (age BETWEEN 0 AND 10000)), the answer is 422, yet the
team is stored, alone: `teams_left` 1. A request that succeeds made 2 commits, one per repository call.
Cause: a repository whose add() commits decides the transaction boundary for whoever calls it. The team's
commit is final before the hero's INSERT runs, so when the hero fails there is nothing left to roll
back but the hero. Two calls, two transactions: the request is not all or nothing.
Fix: repositories add and flush (the INSERT runs, the id is known, nothing is final), and the request
owns one transaction: `with session.begin():` around both calls commits once at the end, or rolls
everything back on an exception (POST .../fixed: the same 422, `teams_left` 0, 1 commit when it
succeeds). The reference API's routes do the same: one session, one commit, per request.
Data: the lesson's own scratch database (the migrations' team and hero tables, no rows). The founder's
age is bounded by the database only (past what an INTEGER holds), so the failure happens where this
lesson needs it: in the second write. The response says how many commits the request's session made
(an after_commit listener).
"""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from heroes.evidence import not_recorded
from heroes.lab import Call, Lab, Lesson, lab_of
from heroes.lab.check import Probe
from heroes.lab.deps import count_commits
from heroes.models import NAME_MAX, Hero, Team, TeamCreate
from heroes.problems import Problem, integrity_kind, problem_responses

lesson = Lesson(__name__, __doc__)
router = lesson.router()


def scratch(lab: Lab) -> Engine:
    return lesson.scratch(lab)


def lesson_session(request: Request) -> Iterator[Session]:
    """A session on the scratch database whose commits are counted."""
    with Session(scratch(lab_of(request))) as session:
        yield count_commits(session)


LessonSession = Annotated[Session, Depends(lesson_session)]


class Founder(SQLModel):
    name: str = Field(min_length=1, max_length=NAME_MAX)
    # No bound of the lesson's own here, on purpose: the database's CHECK is what refuses 20000. Only
    # the column's type is enforced (INTEGER: 32 bits), so a number no column can hold is a 422.
    age: int = Field(ge=-(2**31), le=2**31 - 1)


class Founding(SQLModel):
    team: TeamCreate
    founder: Founder


class Founded(SQLModel):
    team_id: int
    hero_id: int
    commits: int


class CommittingRepository:
    """add() commits: every call is a transaction of its own."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row):
        self.session.add(row)
        self.session.commit()  # the repository ends the caller's transaction
        return row


class Repository:
    """add() flushes: the INSERT runs and the id is known; the caller decides when to commit."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row):
        self.session.add(row)
        self.session.flush()  # part of the caller's transaction; nothing is final yet
        return row


def refused(session: Session, exc: IntegrityError, body: Founding) -> Problem:
    """422 (409 for a taken team name), saying how many teams of that name the failed request left."""
    session.rollback()
    with not_recorded(), Session(session.get_bind()) as other:
        left = other.exec(select(func.count()).where(Team.name == body.team.name)).one()
    kind, _ = integrity_kind(exc)
    if kind == "unique":
        return Problem(409, f"A team named {body.team.name!r} already exists.", field="team.name")
    detail = f"The database refused the founder (CHECK age BETWEEN 0 AND 10000); teams left: {left}."
    return Problem(422, detail, field="founder.age", extra={"teams_left": left})


RESPONSES = problem_responses(400, 409, 422)


@router.post("/bad", status_code=201, response_model=Founded, responses=RESPONSES)
def bad(body: Founding, session: LessonSession) -> Founded:
    """A team, then its founder, through repositories that each commit: two transactions."""
    teams, heroes = CommittingRepository(session), CommittingRepository(session)
    try:
        team = teams.add(Team.model_validate(body.team))  # committed: final before the hero is tried
        hero = heroes.add(
            Hero(name=body.founder.name, secret_name="-", age=body.founder.age, team_id=team.id)
        )
    except IntegrityError as exc:
        raise refused(session, exc, body) from None
    return Founded(team_id=team.id, hero_id=hero.id, commits=session.info["commits"])


@router.post("/fixed", status_code=201, response_model=Founded, responses=RESPONSES)
def fixed(body: Founding, session: LessonSession) -> Founded:
    """The same calls in one transaction the request owns: both rows, or neither."""
    teams, heroes = Repository(session), Repository(session)
    try:
        with session.begin():  # one transaction: commits once at the end, rolls back both on an error
            team = teams.add(Team.model_validate(body.team))
            hero = heroes.add(
                Hero(name=body.founder.name, secret_name="-", age=body.founder.age, team_id=team.id)
            )
    except IntegrityError as exc:
        raise refused(session, exc, body) from None
    return Founded(team_id=team.id, hero_id=hero.id, commits=session.info["commits"])


def founding(team: str, age: int) -> dict:
    return {"team": {"name": team, "headquarters": "Garage"}, "founder": {"name": "Founder", "age": age}}


def outcome(status: int, body) -> str:
    if status == 201:
        return f"201 Created: {body['commits']} commits"
    return f"{status}: teams left by the failed request: {body.get('teams_left', '-')}"


def calls(size: int | None) -> list[Call]:
    return [
        Call("bad", "POST", "/bad", json=founding("Rejects", 20_000), summary=outcome),
        Call("bad, valid", "POST", "/bad", json=founding("Starters", 30), summary=outcome),
        Call("fixed", "POST", "/fixed", json=founding("Refused", 20_000), summary=outcome),
        Call("fixed, valid", "POST", "/fixed", json=founding("Openers", 30), summary=outcome),
    ]


def reset(lab: Lab) -> None:
    lab.drop(lesson.name)  # the teams founded so far: the next request starts on an empty database


def prepare(lab: Lab, size: int | None) -> None:
    reset(lab)  # every compare founds its teams on an empty database


async def check(probe: Probe) -> None:
    """A refused founder leaves no team; a valid founding is one commit; on names never shown."""
    reset(probe.lab)
    failed = await probe.call(json=founding("Lost Cause 7", 12_345))
    left = (failed.json or {}).get("teams_left")
    probe.expect(
        "a refused founder leaves no team behind", failed.status == 422 and left == 0, failed.outcome
    )
    ok = await probe.call(json=founding("Fresh Start 7", 41))
    commits = (ok.json or {}).get("commits")
    probe.expect(
        "a valid founding is one commit", ok.status == 201 and commits == 1, f"{ok.outcome}; {commits}"
    )
