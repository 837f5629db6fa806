"""Database is locked: SQLite has one write lock, and a writer with no busy timeout fails at once

Symptom: POST /lessons/database-is-locked/bad?writers=20: 20 writers, each in its own thread and
transaction, while another transaction holds the write lock: 20 of 20 fail at once, "database is locked".
.../bad/reader: an open read transaction fails every commit (rollback journal). .../bad/read-then-write:
SELECT, then UPDATE, fails at once with a 5 s busy timeout too.
Cause: a SQLite file has one write lock; a connection that finds it taken waits as long as its busy
timeout says: 0 is not at all. In the rollback journal a commit also waits for every reader. A deferred
`BEGIN` takes no lock: the SELECT makes the transaction a reader, its UPDATE must upgrade, and while
another writer holds the lock SQLite answers BUSY at once (waiting could deadlock), whatever the timeout.
Fix: a busy timeout (.../fixed, 5 s: the writers queue); WAL, where a reader reads a snapshot and never
blocks a writer (.../fixed/wal, timeout 0 still); `BEGIN IMMEDIATE` for read-then-write: the write lock
first, waited for in the busy handler (.../fixed/immediate). The reference API's SQLite engine
(heroes/db.py) sets WAL, a 5 s busy timeout and synchronous=NORMAL (durable enough in WAL, fewer fsyncs),
and keeps pysqlite's BEGIN, sent just before the first write: a read is never upgraded.
Postgres: the same routes report 0 errors: PostgreSQL locks rows, not the database. A writer of another
row does not block; writers of one row queue on its lock (bounded by statement_timeout); with MVCC a
reader never blocks a writer: no read lock to upgrade.
Data: the lesson's own SQLite files (WAL, a rollback journal) or PostgreSQL schema; `stored` counts writes.
"""

import contextvars
import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import Query
from sqlalchemy import Column, Engine, Integer, MetaData, Table, create_engine, event, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool
from sqlmodel import Session, SQLModel

from heroes.db import is_sqlite
from heroes.evidence import instrument, not_recorded
from heroes.lab import Call, Lab, LabDep, Lesson, Size, create_lesson_tables, safe_message
from heroes.problems import problem_responses

lesson = Lesson(__name__, __doc__, size=Size("writers", "concurrent writers", 30, (10, 30), default=20))
router = lesson.router()
Writers = Annotated[int, Query(ge=1, le=lesson.size.maximum, description=lesson.size.meaning)]
RESPONSES = problem_responses(422)
NO_EXERCISE = "The fixes are engine settings (busy timeout, WAL, BEGIN IMMEDIATE), not code in a route."
PATIENCE = 5.0  # the fixes' busy timeout, in seconds: the reference API's default
HOLD = 0.5  # the other transaction stays open this long after the last writer started, unless all are done
tally = Table("tally", MetaData(), Column("id", Integer, primary_key=True), Column("hits", Integer))
BUMP, HITS = update(tally).values(hits=tally.c.hits + 1), select(tally.c.hits).where(tally.c.id == 1)
INCREMENT = (BUMP.where(tally.c.id == 1),)  # what each writer does
READ_THEN_INCREMENT = (HITS, *INCREMENT)  # the SELECT makes the transaction a reader first
ANOTHER_WRITER = (BUMP.where(tally.c.id == 2),)  # another request writes another row
A_REPORT = (HITS,)  # a request that reads


def populate(engine: Engine, journal: str = "wal") -> None:
    with engine.begin() as connection:
        if is_sqlite(engine):  # WAL as the lab's, or the rollback journal (before pysqlite's BEGIN)
            connection.exec_driver_sql(f"PRAGMA journal_mode={journal}")
        create_lesson_tables(connection, tally.metadata)
        connection.execute(insert(tally), [{"id": 1, "hits": 0}, {"id": 2, "hits": 0}])


def lesson_engine(lab: Lab, busy_timeout: float, journal: str = "wal", begin: str = "BEGIN") -> Engine:
    """SQLite: the lesson's file, with this busy timeout, journal mode and BEGIN. PostgreSQL: its pool."""
    if not is_sqlite(lab.main):
        return lab.own_engine(lesson.name, lesson.name, populate, pool_size=lesson.size.maximum + 1)
    scratch = lesson.scratch(lab, journal, functools.partial(populate, journal=journal))
    return sqlite_engine(scratch.url.database, busy_timeout, begin)


def prepare(lab: Lab, size: int | None) -> None:
    lesson_engine(lab, 0, "delete"), lesson_engine(lab, 0)  # both files built before compare times anything


@functools.cache
def sqlite_engine(path: str, busy_timeout: float, begin: str = "BEGIN") -> Engine:
    options = {"timeout": busy_timeout, "isolation_level": None}  # pysqlite's BEGIN off, SQLAlchemy's on
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool, connect_args=options)
    event.listen(engine, "begin", lambda connection: connection.exec_driver_sql(begin))
    return instrument(engine)


class Run(SQLModel):
    writers: int
    errors: int  # writers whose transaction failed
    stored: int  # increments the tally gained
    error: str | None  # the first failure's message


def race(engine: Engine, writers: int, other: tuple, work: tuple, one_at_a_time: bool = False) -> Run:
    """`other` holds a transaction open while `writers` threads each run `work` in a transaction."""

    patient = sqlite_engine(engine.url.database, PATIENCE) if is_sqlite(engine) else engine

    def hits() -> int:  # counted on a connection that waits for the lock, whatever the writers' timeout
        with not_recorded(), Session(patient) as session:
            return session.execute(HITS).scalar_one()

    before, errors, holding = hits(), [], threading.Event()
    started, ended = threading.Semaphore(0), threading.Semaphore(0)

    def transaction(statements: tuple) -> None:
        with Session(engine) as session, session.begin():
            for statement in statements:
                session.execute(statement)
            if statements is other:  # open before any writer starts, closed when all are done (or HOLD)
                holding.set()
                all(started.acquire(timeout=10) for _ in range(writers))
                deadline = time.monotonic() + HOLD  # then until every writer ended, or the deadline
                all(ended.acquire(timeout=max(deadline - time.monotonic(), 0)) for _ in range(writers))

    def writer() -> None:
        started.release()
        try:
            transaction(work)
        except OperationalError as exc:
            errors.append(safe_message(exc))
        ended.release()

    with ThreadPoolExecutor(1) as pool, ThreadPoolExecutor(1 if one_at_a_time else writers) as clients:
        holder = pool.submit(contextvars.copy_context().run, transaction, other)  # threads report statements
        holding.wait(10)
        list(clients.map(lambda c: c.run(writer), [contextvars.copy_context() for _ in range(writers)]))
        holder.result()
    return Run(writers=writers, errors=len(errors), stored=hits() - before, error=next(iter(errors), None))


@router.post("/bad", response_model=Run, responses=RESPONSES)
def bad(lab: LabDep, writers: Writers = lesson.size.default) -> Run:
    """K writers while another transaction holds the write lock, no busy timeout: they fail at once."""
    engine = lesson_engine(lab, busy_timeout=0)  # no busy timeout: a taken lock is an error at once
    return race(engine, writers, other=ANOTHER_WRITER, work=INCREMENT)


@router.post("/fixed", response_model=Run, responses=RESPONSES)
def fixed(lab: LabDep, writers: Writers = lesson.size.default) -> Run:
    """The same writers with a busy timeout: they queue for the lock, none fails."""
    engine = lesson_engine(lab, busy_timeout=PATIENCE)  # wait up to 5 s for the lock
    return race(engine, writers, other=ANOTHER_WRITER, work=INCREMENT)


@router.post("/bad/reader", response_model=Run, responses=RESPONSES)
def bad_reader(lab: LabDep, writers: Writers = lesson.size.default) -> Run:
    """K writes, one after another, while a report reads (rollback journal): every commit is refused."""
    engine = lesson_engine(lab, busy_timeout=0, journal="delete")  # rollback journal: a reader blocks commits
    return race(engine, writers, other=A_REPORT, work=INCREMENT, one_at_a_time=True)


@router.post("/fixed/wal", response_model=Run, responses=RESPONSES)
def fixed_wal(lab: LabDep, writers: Writers = lesson.size.default) -> Run:
    """The same writes in WAL, still no busy timeout: the report reads a snapshot, no write waits for it."""
    engine = lesson_engine(lab, busy_timeout=0, journal="wal")  # WAL: readers no longer block the writer
    return race(engine, writers, other=A_REPORT, work=INCREMENT, one_at_a_time=True)


@router.post("/bad/read-then-write", response_model=Run, responses=RESPONSES)
def bad_read_then_write(lab: LabDep, writers: Writers = lesson.size.default) -> Run:
    """Deferred BEGIN, SELECT, UPDATE while another writer holds the lock: locked at once, despite 5 s."""
    engine = lesson_engine(lab, busy_timeout=PATIENCE)  # deferred BEGIN: the UPDATE's upgrade never waits
    return race(engine, writers, other=ANOTHER_WRITER, work=READ_THEN_INCREMENT)


@router.post("/fixed/immediate", response_model=Run, responses=RESPONSES)
def fixed_immediate(lab: LabDep, writers: Writers = lesson.size.default) -> Run:
    """BEGIN IMMEDIATE: the write lock is taken before the read, so the wait is the busy timeout's."""
    engine = lesson_engine(lab, busy_timeout=PATIENCE, begin="BEGIN IMMEDIATE")  # writer from the start
    return race(engine, writers, other=ANOTHER_WRITER, work=READ_THEN_INCREMENT)


def outcome(status: int, body) -> str:
    if status != 200:
        return f"{status}: {body.get('detail')}"
    failed = f" ({body['error']})" if body["error"] else ""
    return f"{body['errors']} of {body['writers']} writers failed{failed}, {body['stored']} stored"


def calls(size: int | None) -> list[Call]:
    params = {"writers": size or lesson.size.default}
    variants = ("bad", "fixed", "bad/reader", "fixed/wal", "bad/read-then-write", "fixed/immediate")
    return [Call(variant, "POST", f"/{variant}", params, summary=outcome) for variant in variants]
