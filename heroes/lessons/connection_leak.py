"""Connection leaks: sessions opened and never closed empty the pool, then every request waits and fails

Symptom: GET /lessons/connection-leak/bad answers 200 twice, and checked_out goes 1, then 2 (the
lesson's pool holds 2 connections). The third call waits the pool timeout (1 s here) and answers 503:
"QueuePool limit of size 2 overflow 0 reached, connection timed out, timeout 1.00". So does every
call after it, until POST /lessons/connection-leak/reset gives the connections back. In production the
same happens at pool_size + max_overflow requests, as a wave of timeouts under load.
Cause: a Session checks a connection out of the engine's pool at its first statement and gives it back
when it is closed (or committed, or rolled back). `session = Session(engine)` without a `with` or a
close() keeps it as long as the Session object lives. Here the Session stays referenced (a cache, a
global, an object that outlives the request keep it so): its connection is never given back. Without
any reference, the garbage collector closes the session whenever it happens to run and the connection
comes back then, so the same bug looks intermittent: fine in a test that calls gc, empty pool under load.
Fix: close every session, by scope: `with Session(engine) as session:` (GET .../fixed), or a `yield`
dependency (GET .../fixed/dependency, as SessionDep in heroes/db.py) which FastAPI closes after the
response. Its `checked_out` says 1, its own connection while it answers; it never grows.
Myth: "pool_pre_ping fixes it": pre-ping tests a connection when it is checked out; a leaked one is never
checked in, so there is nothing to test and the pool still empties (a test shows it). An unclosed session
is a connection leak, not a memory leak: the garbage collector frees the object and returns its
connection, but only when it runs, so the leak comes and goes.
Data: the demo cast in the lesson's own database, through engines of its own (2 connections, no
overflow, 1 s pool timeout; bad and fixed each have one). The reference API's pool is never touched:
GET /heroes/1 answers while the lesson's pool is empty. compare starts from a reset pool and leaves bad's
connections leaked: POST .../reset gives them back.
"""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine, func
from sqlmodel import Session, SQLModel, select

from heroes.lab import Call, Lab, Lesson, lab_of
from heroes.lab.check import Probe
from heroes.models import Hero
from heroes.problems import problem_responses
from heroes.seed import seed_demo

lesson = Lesson(__name__, __doc__)
router = lesson.router()
PITFALLS = {  # a 503: the lesson's own pool, emptied on purpose (heroes/docs.py documents it)
    "*": (
        "TimeoutError",
        "QueuePool limit of size 2 overflow 0 reached, connection timed out, timeout 1.00",
    )
}
POOL = {"pool_size": 2, "max_overflow": 0, "pool_timeout": 1}
BAD, FIXED = lesson.name, f"{lesson.name}_fixed"  # the lesson's two engines: bad's leaks never reach fixed


def lesson_engine(lab: Lab, key: str) -> Engine:
    return lab.own_engine(key, lesson.name, seed_demo, application_name=f"heroes_{key}", **POOL)


def engine_of(key: str):
    def engine(request: Request) -> Engine:
        return lesson_engine(lab_of(request), key)

    return Annotated[Engine, Depends(engine)]


BadEngine, FixedEngine = engine_of(BAD), engine_of(FIXED)


def fixed_session(engine: FixedEngine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


class PoolReport(SQLModel):
    heroes: int  # what the route read
    checked_out: int  # connections of the lesson's pool checked out as the route answers
    pool_size: int


def report(engine: Engine, heroes: int) -> PoolReport:
    return PoolReport(heroes=heroes, checked_out=engine.pool.checkedout(), pool_size=engine.pool.size())


COUNT = select(func.count()).select_from(Hero)


@router.get("/bad", response_model=PoolReport, responses=problem_responses(503))
def bad(request: Request, engine: BadEngine) -> PoolReport:
    """Open a session and never close it: each call keeps one of the pool's 2 connections."""
    session = Session(engine)  # never closed: its connection stays checked out
    heroes = session.exec(COUNT).one()
    lab_of(request).hold(BAD, session)  # still referenced (a cache, a global): the GC never returns it
    return report(engine, heroes)


@router.get("/fixed", response_model=PoolReport, responses=problem_responses(503))
def fixed(request: Request, engine: FixedEngine) -> PoolReport:
    """A session in a `with` block: closed at the end of it, its connection back in the pool."""
    with Session(engine) as session:  # closed when the block ends, whatever happens in it
        heroes = session.exec(COUNT).one()
    return report(engine, heroes)


@router.get("/fixed/dependency", response_model=PoolReport, responses=problem_responses(503))
def fixed_dependency(session: Annotated[Session, Depends(fixed_session)], engine: FixedEngine) -> PoolReport:
    """A session from a `yield` dependency: FastAPI closes it after the response."""
    return report(engine, session.exec(COUNT).one())


def reset(lab: Lab) -> None:
    """The leaked sessions closed, the lesson's engines disposed (made again on next use)."""
    lab.release(BAD)
    lab.release(FIXED)


def prepare(lab: Lab, size: int | None) -> None:
    reset(lab)
    lesson_engine(lab, BAD), lesson_engine(lab, FIXED)  # built before compare times anything


def checked_out(status: int, body) -> str:
    if status == 200:
        return f"200 OK: {body['checked_out']} of {body['pool_size']} connections checked out"
    return f"{status}: {body['detail']}"


def calls(size: int | None) -> list[Call]:
    return [
        *(Call(variant, "GET", "/bad", summary=checked_out) for variant in ("bad", "bad, 2nd", "bad, 3rd")),
        *(
            Call(variant, "GET", "/fixed", summary=checked_out)
            for variant in ("fixed", "fixed, 2nd", "fixed, 3rd")
        ),
        Call("fixed/dependency", "GET", "/fixed/dependency", summary=checked_out),
    ]


async def check(probe: Probe) -> None:
    """5 calls, more than the pool holds: each answers, none stays checked out; data it never saw."""
    reset(probe.lab)
    answers = [await probe.call() for _ in range(5)]
    seen = ", ".join(f"{a.status} ({(a.json or {}).get('checked_out', '-')})" for a in answers)
    probe.expect("5 calls, a pool of 2: every call answers 200", all(a.status == 200 for a in answers), seen)
    left = sum(lesson_engine(probe.lab, key).pool.checkedout() for key in (BAD, FIXED))
    probe.expect("no connection stays checked out", left == 0, f"checked out after 5 calls: {left}")
    with Session(lesson_engine(probe.lab, FIXED)) as session:  # a hero the learner never saw
        session.add(Hero(name="Unseen", secret_name="-"))
        session.commit()
        heroes = session.exec(COUNT).one()
    last = await probe.call()
    counted = (last.json or {}).get("heroes") == heroes
    probe.expect(f"it counts what is there ({heroes} heroes)", counted, last.outcome)
    reset(probe.lab)
