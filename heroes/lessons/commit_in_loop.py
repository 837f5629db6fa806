"""Commit in a loop: a bulk create that commits every row pays for a transaction per row

Symptom: POST /lessons/commit-in-loop/bad?heroes=10000 creates 10,000 heroes and reports 10,000
commits; its rows/s is several times lower than /fixed's, which reports 1 commit for the same rows.
Cause: each commit() ends a transaction: the database makes it durable (PostgreSQL waits for its WAL
flush, SQLite writes its journal) and the session expires everything it holds. One per row is N of
those waits, and the n-th commit expires the n heroes held so far: N(N+1)/2 expirations, work that
grows with the square of N (rows/s falls as N grows: 273 at 1,000, 99 at 4,000 on SQLite, fsync off).
Statements are not the difference: on PostgreSQL the ORM already batches the INSERTs of one flush into
a few multi-row statements (insertmanyvalues, 1,000 rows each), on SQLite it sends one INSERT per row
either way; count commits, not statements.
Fix: one transaction for the whole batch: add every hero, commit once (/fixed). A very large import
that must not be one transaction commits in batches: /fixed/batches commits every 1,000 rows,
ceil(N / 1000) commits. Fastest: no objects at all, Core insert(Hero) with a list of parameter sets
(/fixed/core, one executemany), and on PostgreSQL COPY hero FROM STDIN (/fixed/copy, psycopg's
cursor.copy(); compare counts no statement for it, as the driver's own cursor is not instrumented; on
SQLite it answers 409: sqlite3's executemany of /fixed/core is SQLite's fastest).
Data: the lesson's own scratch database; each request makes a new team and ?heroes=N heroes for it
(default 100, up to 10,000; `--size 1000 --size 10000` for the evidence), and reports the rows that
team has after it and the commits of the request's session (an after_commit listener).
"""

import math
import time
import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query
from sqlalchemy import Engine, func, insert
from sqlmodel import Session, SQLModel, select

from heroes.db import is_sqlite
from heroes.evidence import not_recorded
from heroes.lab import Call, Lab, Lesson, Size, scratch_engine
from heroes.lab.check import Probe
from heroes.lab.deps import count_commits
from heroes.models import Hero, Team
from heroes.problems import Problem, problem_responses

lesson = Lesson(
    __name__,
    __doc__,
    size=Size("heroes", "heroes created by one request", 10_000, (1000, 10_000), default=100),
)
router = lesson.router()
BATCH = 1000


def scratch(lab: Lab) -> Engine:
    return lesson.scratch(lab)


LessonEngine = scratch_engine(scratch)


class Recruits(list):  # N new heroes (transient) of a team made for them; `team_id` says which
    team_id: int


Count = Annotated[int, Query(ge=1, le=lesson.size.maximum, description=lesson.size.meaning)]


def new_heroes(engine: LessonEngine, heroes: Count = lesson.size.default) -> Recruits:
    with not_recorded(), Session(engine) as session:  # the team is set-up, not what is measured
        team = Team(name=f"Recruits {uuid.uuid4().hex[:12]}", headquarters="Lab")
        session.add(team)
        session.commit()
        recruits = Recruits(
            Hero(name=f"Recruit {i}", secret_name="-", age=i % 100, team_id=team.id)
            for i in range(1, heroes + 1)
        )
        recruits.team_id = team.id
    return recruits


def lesson_session(engine: LessonEngine) -> Iterator[Session]:
    """A session whose commits are counted (session.info["commits"])."""
    with Session(engine) as session:
        session.info["started"] = time.perf_counter()
        yield count_commits(session)


NewHeroes = Annotated[Recruits, Depends(new_heroes)]
LessonSession = Annotated[Session, Depends(lesson_session)]


class Created(SQLModel):
    heroes: int  # asked for
    stored: int  # rows the new team has after the request
    commits: int
    rows_per_second: int


def created(session: Session, heroes: Recruits) -> Created:
    seconds = time.perf_counter() - session.info["started"]
    with not_recorded(), Session(session.get_bind()) as other:
        stored = other.exec(select(func.count()).where(Hero.team_id == heroes.team_id)).one()
    rate = round(stored / seconds) if seconds else 0
    return Created(heroes=len(heroes), stored=stored, commits=session.info["commits"], rows_per_second=rate)


RESPONSES = problem_responses(422)


@router.post("/bad", response_model=Created, responses=RESPONSES)
def bad(heroes: NewHeroes, session: LessonSession) -> Created:
    """One commit per hero: N transactions, N waits for durability."""
    for hero in heroes:
        session.add(hero)
        session.commit()  # a transaction per row: N commits
    return created(session, heroes)


@router.post("/fixed", response_model=Created, responses=RESPONSES)
def fixed(heroes: NewHeroes, session: LessonSession) -> Created:
    """Every hero in one transaction: one commit."""
    for hero in heroes:
        session.add(hero)
    session.commit()  # one transaction for the batch: 1 commit
    return created(session, heroes)


@router.post("/fixed/batches", response_model=Created, responses=RESPONSES)
def fixed_batches(heroes: NewHeroes, session: LessonSession) -> Created:
    """A commit every 1,000 heroes: ceil(N / 1000) transactions, for imports too big for one."""
    for start in range(0, len(heroes), BATCH):
        session.add_all(heroes[start : start + BATCH])
        session.commit()  # one commit per 1,000 rows
    return created(session, heroes)


@router.post("/fixed/core", response_model=Created, responses=RESPONSES)
def fixed_core(heroes: NewHeroes, session: LessonSession) -> Created:
    """No objects: insert(Hero) with a list of parameter sets, one executemany, one commit."""
    rows = [hero.model_dump(exclude={"id", "created_at"}) for hero in heroes]
    session.execute(insert(Hero), rows)  # one executemany (multi-row INSERTs on psycopg)
    session.commit()
    return created(session, heroes)


@router.post("/fixed/copy", response_model=Created, responses=problem_responses(409, 422))
def fixed_copy(heroes: NewHeroes, session: LessonSession) -> Created:
    """PostgreSQL's COPY ... FROM STDIN through psycopg, in the session's transaction."""
    if is_sqlite(session.get_bind()):
        raise Problem(
            409, "COPY is PostgreSQL's; on SQLite the fastest way is /fixed/core.", type=lesson.type
        )
    cursor = session.connection().connection.cursor()  # the driver's own cursor, same transaction
    with cursor.copy("COPY hero (name, secret_name, age, team_id, version) FROM STDIN") as copy:
        for hero in heroes:
            copy.write_row((hero.name, hero.secret_name, hero.age, hero.team_id, 1))
    session.commit()
    return created(session, heroes)


def outcome(status: int, body) -> str:
    if status != 200:
        return f"{status}: {body.get('detail')}"
    return f"{body['commits']} commits, {body['stored']} rows stored, {body['rows_per_second']:,} rows/s"


def calls(size: int | None) -> list[Call]:
    params = {"heroes": size or lesson.size.default}
    variants = ("bad", "fixed", "fixed/batches", "fixed/core", "fixed/copy")
    return [Call(variant, "POST", f"/{variant}", params, summary=outcome) for variant in variants]


async def check(probe: Probe) -> None:
    """Every hero stored, at most one commit per 1,000 rows: 57 heroes, then 1,234 (sizes never shown)."""
    for heroes in (57, 1234):
        answer = await probe.call(params={"heroes": heroes})
        body = answer.json if answer.status == 200 else {}
        stored, commits, most = body.get("stored"), body.get("commits"), math.ceil(heroes / BATCH)
        probe.expect(f"{heroes} heroes stored", stored == heroes, f"{answer.outcome}; stored {stored}")
        few = commits is not None and commits <= most
        probe.expect(f"at most {most} commits for {heroes} rows", few, f"{commits} commits")
        if not few:  # a commit per row: the larger size would only take longer to say so
            return
