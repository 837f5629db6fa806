"""Stale connections: the server dropped the pool's connections, and the next request gets a dead one

Symptom: POST /lessons/stale-connection/bad fills the lesson's pool (3 connections), has the server
drop them all (pg_terminate_backend, as a restart, a failover or an idle timeout would), then makes 4
requests, each with its own session. The first fails with OperationalError, psycopg's AdminShutdown
"terminating connection due to administrator command" (after a restart: "server closed the connection
unexpectedly"); the other 3 succeed. POST .../bad/mid-transaction drops the connection of a session
in the middle of its transaction: that read fails even with pre-ping, and every later use of the same
session fails with "Can't reconnect until invalid transaction is rolled back".
Cause: the pool hands out the connection it holds without knowing the server closed it; the first
statement finds out. Only the first request fails: on a disconnect error SQLAlchemy invalidates the
whole pool (every connection made before it is replaced at its next checkout), so the next requests
get new connections. pre-ping cannot help a connection that dies while checked out, inside a
transaction: the session will not silently reconnect and carry on as if nothing was lost.
Fix: create_engine(..., pool_pre_ping=True) (POST .../fixed): a cheap ping at checkout, a dead connection
replaced before the request sees it: 0 failures. pool_recycle (300 s here) replaces connections before
a server or firewall idle timeout closes them. The reference API's engine has both (heroes/db.py). Mid-
transaction, the request in flight fails whatever you do: roll back (POST .../fixed/mid-transaction),
or use a session per request, which rolls back when it closes; the next requests work.
Myth: "pool_pre_ping fixes dropped connections": not one dropped mid-transaction; pre-ping only tests a
connection as it is checked out (POST .../bad/mid-transaction uses a pre-ping engine).
Data: the demo cast in the lesson's own schema, through engines of its own (3 connections each, their
own application_name, so pg_terminate_backend drops theirs only, never the reference API's).
"""

import time
from typing import Annotated

from fastapi import Query, Request
from sqlalchemy import Engine, func, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, select

from heroes.evidence import not_recorded
from heroes.lab import POSTGRESQL, Call, Lab, Lesson, lab_of, safe_message
from heroes.models import Hero
from heroes.problems import problem_responses
from heroes.seed import seed_demo

lesson = Lesson(__name__, __doc__, engines=POSTGRESQL)
router = lesson.router()
NO_EXERCISE = "its fix is an engine setting (pool_pre_ping=True), not code in a route: compare bad and fixed"
POOL = {"pool_size": 3, "max_overflow": 0, "pool_timeout": 1}
ENGINES = {"bad": False, "fixed": True, "mid": True}  # pool_pre_ping of each of the lesson's engines
Requests = Annotated[int, Query(ge=1, le=20, description="Requests made after the connections dropped.")]
RESPONSES = problem_responses(409, 422)
OK, COUNT = "200 OK", select(func.count()).select_from(Hero)


def name_of(lab: Lab, key: str) -> str:
    return f"heroes_{lesson.name}_{lab.owner}_{key}"  # its connections in pg_stat_activity


def lesson_engine(lab: Lab, key: str) -> Engine:
    options = {"pool_pre_ping": ENGINES[key], "pool_recycle": 300, "application_name": name_of(lab, key)}
    return lab.own_engine(f"{lesson.name}_{key}", lesson.name, seed_demo, **options, **POOL)


def drop_connections(lab: Lab, key: str, fill: bool = True) -> int:
    """The server terminates every connection of the lesson's engine `key` (its pool filled first)."""
    if fill:
        connections = [lesson_engine(lab, key).connect() for _ in range(POOL["pool_size"])]
        for connection in connections:
            connection.close()  # back in the pool, open: what a busy app's pool holds
    mine = "application_name = :name AND datname = current_database()"
    with not_recorded(), lab.main.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
        query = f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {mine}"
        killed = admin.scalar(text(query), {"name": name_of(lab, key)})
        deadline = time.monotonic() + 5  # terminating is asynchronous: wait until they are gone
        gone = text(f"SELECT count(*) = 0 FROM pg_stat_activity WHERE {mine}")
        while not admin.scalar(gone, {"name": name_of(lab, key)}) and time.monotonic() < deadline:
            time.sleep(0.02)
    return killed


def attempt(session: Session) -> str:
    try:
        session.exec(COUNT).one()
        return OK
    except SQLAlchemyError as exc:
        return f"{type(exc).__name__}: {safe_message(exc)}"


class StaleReport(SQLModel):
    dropped: int  # connections of the lesson's engine the server terminated
    failed: int  # requests that failed afterwards
    requests: list[str]  # each request's outcome, in order


def report(dropped: int, outcomes: list[str]) -> StaleReport:
    return StaleReport(dropped=dropped, failed=sum(o != OK for o in outcomes), requests=outcomes)


def one_request(engine: Engine) -> str:
    with Session(engine) as session:  # a session per request, closed
        return attempt(session)


@router.post("/bad", response_model=StaleReport, responses=RESPONSES)
def bad(request: Request, requests: Requests = 4) -> StaleReport:
    """pool_pre_ping=False: the first request after the drop gets a dead connection and fails."""
    dropped = drop_connections(lab_of(request), "bad")
    engine = lesson_engine(lab_of(request), "bad")  # pool_pre_ping=False: connections handed out untested
    return report(dropped, [one_request(engine) for _ in range(requests)])


@router.post("/fixed", response_model=StaleReport, responses=RESPONSES)
def fixed(request: Request, requests: Requests = 4) -> StaleReport:
    """pool_pre_ping=True: each connection is pinged at checkout, a dead one replaced: no failure."""
    dropped = drop_connections(lab_of(request), "fixed")
    engine = lesson_engine(lab_of(request), "fixed")  # pool_pre_ping=True, pool_recycle=300
    return report(dropped, [one_request(engine) for _ in range(requests)])


@router.post("/bad/mid-transaction", response_model=StaleReport, responses=RESPONSES)
def bad_mid_transaction(request: Request, requests: Requests = 4) -> StaleReport:
    """The connection dropped inside a transaction, the session used on: it refuses until rolled back."""
    engine = lesson_engine(lab_of(request), "mid")  # pool_pre_ping=True, and no help here
    with Session(engine) as session:
        session.exec(COUNT).one()  # a transaction is open on a checked-out connection
        dropped = drop_connections(lab_of(request), "mid", fill=False)
        outcomes = [attempt(session) for _ in range(requests)]  # never rolled back
    return report(dropped, outcomes)


@router.post("/fixed/mid-transaction", response_model=StaleReport, responses=RESPONSES)
def fixed_mid_transaction(request: Request, requests: Requests = 4) -> StaleReport:
    """The same, rolled back after the failure: the request in flight fails, the next ones reconnect."""
    engine = lesson_engine(lab_of(request), "mid")
    with Session(engine) as session:
        session.exec(COUNT).one()
        dropped = drop_connections(lab_of(request), "mid", fill=False)
        outcomes = []
        for _ in range(requests):
            outcomes.append(attempt(session))
            if outcomes[-1] != OK:
                session.rollback()  # the dead transaction ends; the next statement gets a new connection
    return report(dropped, outcomes)


def reset(lab: Lab) -> None:
    for key in ENGINES:
        lab.release(f"{lesson.name}_{key}")


def prepare(lab: Lab, size: int | None) -> None:
    for key in ENGINES:
        lesson_engine(lab, key)


def summary(status: int, body) -> str:
    if status != 200:
        return f"{status}: {body['detail']}"
    first = next((o for o in body["requests"] if o != OK), "")
    failed = f"{body['failed']} of {len(body['requests'])} requests failed"
    return f"connections dropped: {body['dropped']}, {failed}" + (f", first: {first}" if first else "")


def calls(size: int | None) -> list[Call]:
    variants = ("bad", "fixed", "bad/mid-transaction", "fixed/mid-transaction")
    return [Call(variant, "POST", f"/{variant}", summary=summary) for variant in variants]
