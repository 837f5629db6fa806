"""Isolation level: "at most 5 heroes per team", checked by a count then an insert, lets 24 in

Symptom: POST /lessons/isolation-level/bad has 20 clients, each in its own transaction, join a team of 4:
count its heroes, insert one if fewer than 5. The team ends with 24, 19 over the limit (both engines).
Cause: write skew. Under READ COMMITTED each count sees what was committed when it ran: 4, for every
client, as no insert is committed yet; each insert is a new row, so no two clients touch the same row and
nothing conflicts. The limit is a fact about a set of rows, and nobody locks that set.
Fix: lock the team row first, SELECT ... FOR UPDATE (POST .../fixed): the next client waits, counts 5 and
stops: 5 heroes, 19 refused. Or SERIALIZABLE from the first statement, with a bounded retry of what
PostgreSQL aborts with 40001 serialization_failure (.../fixed/serializable, `retries`). SQLite renders no
FOR UPDATE: /fixed runs BEGIN IMMEDIATE, the database's one write lock: every writer of any team or table
waits for it (up to the busy timeout, then "database is locked").
Myth: "make the transaction SERIALIZABLE and the race is gone": not once it has run a statement. POST
.../bad/serializable-too-late asks for it after the count (session.connection(execution_options=...)):
SQLAlchemy warns "execution_options ignored" (`warnings`), the transaction stays READ COMMITTED: 19 over.
Data: the lesson's scratch database; each request founds a team of ?heroes=4 that ?clients=20 join, each
held at its insert until every client has counted, asked for a lock or ended (heroes/lab/clients.py).
"""

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy import Engine, func, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, select

from heroes.db import is_sqlite
from heroes.evidence import not_recorded
from heroes.lab import Call, Lab, Lesson, Size, lab_of, scratch_engine
from heroes.lab.check import Probe
from heroes.lab.clients import as_outcome, read_then_write, warned
from heroes.models import Hero, Team
from heroes.problems import Problem, problem_responses

lesson = Lesson(__name__, __doc__, size=Size("clients", "clients joining one team", 25, (20,), default=20))
router = lesson.router()
LIMIT, RETRIES = 5, 5  # heroes per team; attempts of a serializable transaction
SSI_ONLY = "SERIALIZABLE (SSI) is PostgreSQL's; on SQLite the fix is BEGIN IMMEDIATE (/fixed)."


def new_team(request: Request, heroes: Annotated[int, Query(ge=0, le=LIMIT)] = LIMIT - 1) -> Team:
    with not_recorded(), Session(lesson.scratch(lab_of(request)), expire_on_commit=False) as session:
        team = Team(name=f"Team {uuid.uuid4().hex[:12]}", headquarters="Lab")
        members = [Hero(name=f"Member {i}", secret_name="-", team=team) for i in range(heroes)]
        session.add_all([team, *members])
        session.commit()
        return team


def prepare(lab: Lab, size: int | None) -> None:
    lesson.scratch(lab)  # built before compare times anything


NewTeam = Annotated[Team, Depends(new_team)]
LessonEngine = scratch_engine(lambda lab: lesson.scratch(lab))
Clients = Annotated[int, Query(ge=1, le=lesson.size.maximum, description=lesson.size.meaning)]


class Recruitment(SQLModel):
    clients: int
    joined: int  # clients whose hero was stored
    refused: int  # clients that counted 5 heroes and stopped
    failed: list[str]  # the error of each client whose transaction failed
    retries: int  # transactions run again after a serialization failure (40001)
    heroes: int  # the team's heroes afterwards
    over_limit: int
    warnings: list[str] = []  # what SQLAlchemy warned


def recruit(engine: Engine, team: Team, clients: int, join) -> Recruitment:
    """`clients` threads, each in its own session, run `join(session, name)`; what became of the team."""
    work = {True: "joined", False: "refused"}
    results, retries = read_then_write(engine, clients, lambda s, i: work[join(s, f"Recruit {i}")])
    outcomes = [as_outcome(result) for result in results]
    with not_recorded(), Session(engine) as session:
        heroes = session.exec(select(func.count()).where(Hero.team_id == team.id)).one()
    failed = [o for o in outcomes if o not in work.values()]
    counts = {name: outcomes.count(name) for name in work.values()}  # joined, refused
    over = {"over_limit": max(0, heroes - LIMIT)}
    return Recruitment(clients=clients, failed=failed, retries=retries, heroes=heroes, **over, **counts)


@router.post("/bad", response_model=Recruitment, responses=problem_responses(409, 422))
def bad(team: NewTeam, engine: LessonEngine, clients: Clients = 20) -> Recruitment:
    """Count, then insert, under READ COMMITTED: every client counts 4 and every client inserts."""

    def join(session: Session, name: str) -> bool:
        if session.exec(select(func.count()).where(Hero.team_id == team.id)).one() >= LIMIT:  # all count 4
            return False
        session.add(Hero(name=name, secret_name="-", team_id=team.id))
        session.commit()
        return True

    return recruit(engine, team, clients, join)


@router.post("/bad/serializable-too-late", response_model=Recruitment, responses=problem_responses(409, 422))
def bad_serializable_too_late(team: NewTeam, engine: LessonEngine, clients: Clients = 20) -> Recruitment:
    """SERIALIZABLE asked for after the count: ignored (a warning), the transaction stays READ COMMITTED."""
    if is_sqlite(engine):
        raise Problem(409, SSI_ONLY, type=lesson.type)
    said: set[str] = set()

    def join(session: Session, name: str) -> bool:
        if session.exec(select(func.count()).where(Hero.team_id == team.id)).one() >= LIMIT:
            return False
        with warned(said):
            session.connection(execution_options={"isolation_level": "SERIALIZABLE"})  # too late: ignored
        session.add(Hero(name=name, secret_name="-", team_id=team.id))
        session.commit()
        return True

    return recruit(engine, team, clients, join).model_copy(update={"warnings": sorted(said)})


@router.post("/fixed", response_model=Recruitment, responses=problem_responses(409, 422))
def fixed(team: NewTeam, engine: LessonEngine, clients: Clients = 20) -> Recruitment:
    """Lock the team row first (SQLite: the database): one client of a team at a time counts and inserts."""

    def join(session: Session, name: str) -> bool:
        if is_sqlite(engine):
            session.execute(text("BEGIN IMMEDIATE"))  # SQLite: the database's write lock, every table
        else:
            session.exec(select(Team).where(Team.id == team.id).with_for_update()).one()  # lock the team
        if session.exec(select(func.count()).where(Hero.team_id == team.id)).one() >= LIMIT:
            return False
        session.add(Hero(name=name, secret_name="-", team_id=team.id))
        session.commit()
        return True

    return recruit(engine, team, clients, join)


@router.post("/fixed/serializable", response_model=Recruitment, responses=problem_responses(409, 422))
def fixed_serializable(team: NewTeam, engine: LessonEngine, clients: Clients = 20) -> Recruitment:
    """SERIALIZABLE from the first statement, retried on 40001 (at most 5 attempts): a retry counts 5."""
    if is_sqlite(engine):
        raise Problem(409, SSI_ONLY, type=lesson.type)

    def join(session: Session, name: str) -> bool:
        for attempt in range(1, RETRIES + 1):
            session.connection(execution_options={"isolation_level": "SERIALIZABLE"})  # before any statement
            try:
                if session.exec(select(func.count()).where(Hero.team_id == team.id)).one() >= LIMIT:
                    return False
                session.add(Hero(name=name, secret_name="-", team_id=team.id))
                session.commit()
                return True
            except OperationalError as exc:
                session.rollback()
                if getattr(exc.orig, "sqlstate", None) != "40001" or attempt == RETRIES:
                    raise
                session.info["retries"] += 1  # serialization_failure: run the whole transaction again

    return recruit(engine, team, clients, join)


def outcome(status: int, body) -> str:
    if status != 200:
        return f"{status}: {body.get('detail')}"
    line = f"{body['heroes']} heroes ({body['over_limit']} over the limit), {body['refused']} refused"
    line += f", {len(body['failed'])} failed, {body['retries']} retries"
    return line + "".join(f"; SQLAlchemy warned: {warning}" for warning in body["warnings"])


def calls(size: int | None) -> list[Call]:
    params = {"clients": size or lesson.size.default}
    variants = ("bad", "bad/serializable-too-late", "fixed", "fixed/serializable")
    return [Call(variant, "POST", f"/{variant}", params, summary=outcome) for variant in variants]


async def check(probe: Probe) -> None:
    """Never over the limit, nobody failing: 20 clients on a team of 4, then 9 on a team of 1."""
    for clients, heroes in ((20, 4), (9, 1)):
        answer = await probe.call(params={"clients": clients, "heroes": heroes})
        body = answer.json if answer.status == 200 else {}
        seen = f"{answer.outcome}; {body.get('heroes')} heroes, failed: {body.get('failed')}"
        right = body.get("heroes") == LIMIT and body.get("failed") == []
        probe.expect(f"{clients} clients, a team of {heroes}: 5 heroes, none failed", right, seen)
