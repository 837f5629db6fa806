"""Blocking the event loop: a sync Session inside `async def` serves one request at a time

Symptom: 8 clients at once on GET /lessons/blocking-event-loop/bad, each a 200 ms query, finish one after
another (the last after 1.6 s) and /health/live, which touches no database, waits behind them. GET
.../race/bad?clients=8 fires them inside the app: total_ms, health_ms. Nothing fails, nothing is logged.
Cause: an `async def` route runs on the event loop, the one thread serving every request of the worker;
`session.exec()` on a sync Session waits for the database without giving the loop back. The query sleeps:
`pg_sleep(0.2)` on PostgreSQL, on SQLite a `pg_sleep` of the lesson's own (time.sleep), as SQLite runs in
this process: a slow statement there (a recursive CTE of 600,000 rows, 200 ms) is CPU here, and 8 of
them on 2 cores take 1.0 s however they are called.
Fix: await the database: AsyncSession (.../race/fixed) gives the loop back while the query runs: 8 clients
in about one query time, /health/live in milliseconds. Or a plain `def` route (.../race/threadpool):
FastAPI runs it in anyio's threadpool, 40 threads by default; past 40 requests at once the 41st waits for
a thread, as does every `def` route (/health/live too), and each thread needs a pooled connection.
Myth: "`async def` makes a route concurrent". Only where it awaits: `bad` is async def and serial, the
threadpool variant is a plain def and concurrent. Async pays when the route waits on I/O it can await.
Data: the lesson's own scratch database, 12 heroes, counted by each request's slow query.
"""

import asyncio
import time
from contextlib import ExitStack
from typing import Annotated, Literal

from anyio import from_thread
from fastapi import Query, Request
from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Session, SQLModel, func, select

from heroes.db import is_sqlite
from heroes.lab import Call, Lab, LabDep, Lesson, Size
from heroes.lab.check import Probe
from heroes.lab.crowd import Crowd, crowd
from heroes.lab.deps import async_sessions
from heroes.models import Hero
from heroes.problems import problem_responses

MAXIMUM = 64
lesson = Lesson(__name__, __doc__, size=Size("clients", "requests fired at once", MAXIMUM, (8, 32), 8))
router = lesson.router()
SECONDS = 0.2  # the slow query
POOL = {"pool_size": 40, "max_overflow": 0}  # one connection per threadpool thread, kept open
SLOW = select(func.count(), func.pg_sleep(SECONDS)).select_from(Hero)


def with_sleep(engine: Engine) -> Engine:
    """On SQLite, `pg_sleep` of our own on each connection: a wait outside the CPU, as PostgreSQL's is."""
    if is_sqlite(engine) and not event.contains(engine, "connect", sleeper):
        event.listen(engine, "connect", sleeper)
    return engine


def sleeper(dbapi_connection, connection_record) -> None:
    dbapi_connection.create_function("pg_sleep", 1, time.sleep)


def populate(engine: Engine) -> None:
    with Session(engine) as session:
        session.add_all(Hero(name=f"Sleeper {n}", secret_name=f"Nap {n}") for n in range(12))
        session.commit()


def sync_engine(lab: Lab) -> Engine:
    return with_sleep(lab.own_engine(lesson.name, lesson.name, populate, **POOL))


async def async_engine(lab: Lab) -> AsyncEngine:
    engine = await lab.async_engine(lesson.name, populate, **POOL)
    with_sleep(engine.sync_engine)
    return engine


LessonSessions = async_sessions(async_engine)


class Count(SQLModel):
    heroes: int  # counted by the slow query


@router.get("/bad", response_model=Count)
async def bad(lab: LabDep) -> Count:
    """The heroes, counted by a 200 ms query through a sync Session in async def."""
    with Session(sync_engine(lab)) as session:
        heroes, _ = session.exec(SLOW).one()  # blocks the event loop: every other request waits
    return Count(heroes=heroes)


@router.get("/fixed", response_model=Count)
async def fixed(sessions: LessonSessions) -> Count:
    """The heroes, counted by a 200 ms query through an AsyncSession, awaited."""
    async with sessions() as session:
        heroes, _ = (await session.exec(SLOW)).one()  # awaited: the loop serves others meanwhile
    return Count(heroes=heroes)


@router.get("/fixed/threadpool", response_model=Count)
def fixed_threadpool(lab: LabDep) -> Count:
    """The heroes, counted by a 200 ms query through a sync Session in a plain def route."""
    with Session(sync_engine(lab)) as session:  # plain def: FastAPI runs it in its threadpool
        heroes, _ = session.exec(SLOW).one()
    return Count(heroes=heroes)


@router.get("/race/{variant}", response_model=Crowd, responses=problem_responses(422))
async def race_variant(
    request: Request,
    variant: Literal["bad", "fixed", "threadpool", "mine"],
    clients: Annotated[int, Query(ge=1, le=MAXIMUM, description="requests fired at once")] = 8,
) -> Crowd:
    """K requests at once to a variant, and /health/live meanwhile: total wall time, health latency."""
    path = {"threadpool": "/fixed/threadpool"}.get(variant, f"/{variant}")
    return await crowd(request.app, lesson.prefix + path, clients)


def outcome(status: int, body) -> str:
    if status != 200:
        return f"{status}: {body.get('detail')}"
    total, query, health = body["total_ms"], body["db_ms"] or SECONDS * 1000, body["probe_ms"]
    return (
        f"{body['clients']} clients {body['statuses']}: all answered in {total:.0f} ms "
        f"({total / max(query, 1):.1f}x the {query:.0f} ms query); /health/live {health:.0f} ms"
    )


def calls(size: int | None) -> list[Call]:
    params = {"clients": size or 8}
    variants = (("bad", "bad"), ("fixed", "fixed"), ("fixed/threadpool", "threadpool"))
    return [Call(name, "GET", f"/race/{race}", params=params, summary=outcome) for name, race in variants]


def reset(lab: Lab) -> None:
    lab.release(lesson.name)  # the sync engine's pool
    lab.drop(lesson.name)  # the scratch database, and its async engine with it


async def warm(lab: Lab, clients: int) -> None:
    """The scratch database built, then `clients` connections open in each engine's pool (kept there):
    what compare times is the event loop, not connecting."""
    barrier, engine = asyncio.Barrier(clients), await async_engine(lab)

    async def hold() -> None:
        async with engine.connect():
            await barrier.wait()

    with ExitStack() as held:
        for _ in range(clients):
            held.enter_context(sync_engine(lab).connect())
    await asyncio.gather(*(hold() for _ in range(clients)))


def prepare(lab: Lab, size: int | None) -> None:
    from_thread.run(warm, lab, min(size or 8, POOL["pool_size"]))  # in compare's event loop


async def check(probe: Probe) -> None:
    """K requests at once side by side, /health/live not kept waiting; at K the learner never saw."""
    with probe.lab.engine(lesson.name, populate).connect() as connection:  # counted apart from the route
        heroes = connection.execute(select(func.count()).select_from(Hero)).scalar_one()
    await warm(probe.lab, 8)  # no crowd times building the database, nor connecting
    first = await probe.call()
    probe.expect("the heroes counted", first.status == 200 and first.json["heroes"] == heroes, first.outcome)
    for clients in (5, 8):  # the better of two crowds: a serial route is serial every time
        seen = min([await crowd(probe.app, probe.path, clients) for _ in range(2)], key=lambda c: c.total_ms)
        query = seen.db_ms or 0
        whole = seen.statuses == {"200": clients} and seen.answers == [{"heroes": heroes}] and query >= 180
        probe.expect(
            f"{clients} requests side by side, each a whole query",
            whole and seen.total_ms <= 3 * query,
            f"{seen.statuses}, answers {seen.answers}: all in {seen.total_ms} ms, "
            f"{seen.total_ms / max(query, 1):.1f}x one {query} ms query (side by side: at most 3x)",
        )
        probe.expect(
            f"/health/live answers during {clients} requests",
            seen.probe_ms < query,
            f"{seen.probe_ms} ms (within one query's {query} ms: the loop is free)",
        )
