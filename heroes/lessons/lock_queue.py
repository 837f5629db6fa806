"""An "instant" ADD COLUMN behind a long reader stops every query on the table

Symptom: POST /lessons/lock-queue/bad adds hero.catchphrase (nullable, no default: no row rewritten) while a
report's transaction that has read hero is still open. The ALTER waits, and the 5 readers that come next
(SELECT count(*) FROM hero, as GET /heroes runs) wait behind it: pg_stat_activity shows all 5 on a Lock
(readers_queued) until the report commits 1 s later (reader_max_wait_ms).
Cause: ALTER TABLE takes ACCESS EXCLUSIVE, which conflicts with every lock, a SELECT's ACCESS SHARE too.
PostgreSQL grants a table's locks in the order asked: the ALTER waits for the report, and each later SELECT,
compatible with the report but not with the ALTER ahead of it, queues behind it. The migration set no
lock_timeout (PostgreSQL's default, 0: for ever).
Fix: a short lock_timeout on the migration's connection (200 ms) and retries with a backoff: past it the
ALTER gives up (55P03, lock_not_available), the readers behind it go on, and it tries again until the report
is gone. POST /lessons/lock-queue/fixed so runs revision lq_1 (migrations/lessons) in the same situation: no
reader waits past one lock_timeout; the migration lands on a later attempt. migrations/env.py sets
heroes.migrate.MIGRATION_LOCK_TIMEOUT (5 s) only on a connection it makes: one handed in, as here, is the
caller's to set.
Myth: "adding a nullable column is instant, so it is safe". Instant means no rewrite (table_rewritten:
hero's pg_relation_filenode unchanged), not no lock: it asks for ACCESS EXCLUSIVE all the same (alter_lock,
from pg_locks): a moment's wait if no one holds hero, else the oldest transaction's.
Data: a PostgreSQL schema of its own at the reference head, ?heroes=N heroes (1000 unless said), rebuilt per
request. The report stays open 1 s once the readers have asked; a reader waits at most the lab's
lock_timeout (2 s), the bad ALTER at most its statement_timeout (15 s).
"""

from collections.abc import Callable
from time import perf_counter, sleep

from alembic.migration import MigrationContext
from alembic.operations import Operations
from fastapi import Request
from sqlalchemy import Column, Connection, Engine, Text, text
from sqlalchemy.exc import OperationalError

from heroes import migrate
from heroes.evidence import not_recorded
from heroes.lab import POSTGRESQL, Call, Lesson
from heroes.lessons._migration import (
    DEFAULT_HEROES,
    SCRATCH_SIZE,
    Heroes,
    MigrationReport,
    Run,
    in_background,
    message,
    scratch,
    squawk_operations,
    squawk_revisions,
    summary,
    until,
)
from heroes.problems import problem_responses

lesson = Lesson(__name__, __doc__, engines=POSTGRESQL, size=SCRATCH_SIZE)
router = lesson.router()
NO_EXERCISE = "its fix is a setting and a retry around a revision, not a route's code"
READERS = 5  # SELECTs on hero that arrive once the migration is waiting
HOLD = 1.0  # seconds the report keeps its transaction open once the readers have asked
LOCK_TIMEOUT = "200ms"  # the fixed migration's wait for its lock, per attempt
ATTEMPTS, BACKOFF = 10, 0.1  # the fixed migration's tries, and its first pause (doubled, at most 0.4 s)
RESPONSES = problem_responses(409, 422)
FILENODE = "SELECT pg_relation_filenode('hero')"  # a new file: the table was rewritten
WAITING = "SELECT pid FROM pg_stat_activity WHERE pid = ANY(:pids) AND wait_event_type = 'Lock'"
LOCKS = "SELECT mode FROM pg_locks WHERE pid = ANY(:pids) AND NOT granted AND relation = 'hero'::regclass"


class QueueReport(MigrationReport):
    readers: int  # SELECTs on hero started while the migration waited for its lock
    readers_queued: int  # of them, seen waiting on a Lock (pg_stat_activity) when the report ended
    reader_max_wait_ms: float  # the longest a reader's SELECT took
    attempts: int  # the migration's tries until it ran (the fixed one retries on 55P03)
    alter_lock: str  # the lock the waiting ALTER asked for (pg_locks)
    table_rewritten: bool  # hero's pg_relation_filenode changed


def observe(engine: Engine, sql: str, pids: list[int]) -> list:
    with not_recorded(), engine.connect().execution_options(isolation_level="AUTOCOMMIT") as observer:
        return observer.scalars(text(sql), {"pids": pids}).all()


def pid(connection: Connection) -> int:
    return connection.connection.driver_connection.info.backend_pid


def race(run: Run, migration: Callable[[Connection], int], action: str) -> QueueReport:
    """A report's transaction has read hero; the migration starts; readers come; the report commits."""
    engine, errors, waits, pids, attempts = run.engine, [], [], [], []
    before = run.scalar(FILENODE)
    waiting = lambda pids: len(observe(engine, WAITING, pids))  # noqa: E731
    with engine.connect() as report, engine.connect() as migrating:
        migration_pid = pid(migrating)

        def read() -> None:
            with engine.connect() as reader:
                pids.append(pid(reader))
                started = perf_counter()
                reader.execute(text("SELECT count(*) FROM hero"))
                waits.append(round((perf_counter() - started) * 1000, 2))

        def commit(_) -> str:
            report.commit()
            for thread in (running, *readers):
                thread.join(30)
            if errors:
                raise RuntimeError("; ".join(message(e) for e in errors))
            return f"the migration ran on attempt {sum(attempts)}"

        report.execute(text("SELECT count(*) FROM hero"))  # ACCESS SHARE on hero, until it commits
        running = in_background(lambda: attempts.append(migration(migrating)), errors)
        until(lambda: waiting([migration_pid]) == 1)
        lock = next(iter(observe(engine, LOCKS, [migration_pid])), "none")
        run.step(action, lambda _: f"waiting for {lock}")
        readers = [in_background(read, errors) for _ in range(READERS)]
        until(lambda: len(pids) == READERS and waiting(pids) + len(waits) == READERS)
        asked = f"{READERS} readers SELECT count(*) FROM hero, as GET /heroes does"
        run.step(asked, lambda _: f"{waiting(pids)} waiting for a lock, {len(waits)} done")
        sleep(HOLD)
        queued = waiting(pids)
        run.step(f"the report commits {HOLD * 1000:.0f} ms later, {queued} readers still queued", commit)
    seen = dict(readers=READERS, readers_queued=queued, reader_max_wait_ms=max(waits, default=-1.0))
    evidence = dict(attempts=sum(attempts), alter_lock=lock, table_rewritten=run.scalar(FILENODE) != before)
    return QueueReport(**run.report(), **seen, **evidence)


def add_catchphrase(op: Operations) -> None:
    op.add_column("hero", Column("catchphrase", Text(), nullable=True))  # no rewrite; ACCESS EXCLUSIVE


def no_timeout(connection: Connection) -> int:
    with connection.begin():
        connection.execute(text("SET LOCAL lock_timeout = 0"))  # as PostgreSQL starts: waits for ever
        add_catchphrase(Operations(MigrationContext.configure(connection)))
    return 1


def with_retries(connection: Connection) -> int:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with connection.begin():  # env.py sets a lock_timeout only on a connection it makes itself:
                connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))  # give up, then retry
                migrate.upgrade_connection(connection, "lq_1", lessons=True)
            return attempt
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03" or attempt == ATTEMPTS:
                raise
            sleep(min(BACKOFF * 2 ** (attempt - 1), 0.4))
    raise AssertionError("unreachable")


@router.post("/bad", response_model=QueueReport, responses=RESPONSES)
def bad(request: Request, heroes: Heroes = DEFAULT_HEROES) -> QueueReport:
    """ADD COLUMN with no lock_timeout behind an open report: every later reader queues behind it."""
    with scratch(request, lesson, "bad", "head", heroes) as run:
        run.squawk = squawk_operations(add_catchphrase, lock_timeout=False)
        return race(run, no_timeout, "ALTER TABLE hero ADD COLUMN catchphrase, no lock_timeout")


@router.post("/fixed", response_model=QueueReport, responses=RESPONSES)
def fixed(request: Request, heroes: Heroes = DEFAULT_HEROES) -> QueueReport:
    """Revision lq_1 with lock_timeout 200 ms, retried on 55P03: the readers go on between tries."""
    with scratch(request, lesson, "fixed", "head", heroes) as run:
        run.squawk = squawk_revisions(None, "lq_1", lessons=True)
        return race(run, with_retries, f"lq_1: ADD COLUMN catchphrase, lock_timeout {LOCK_TIMEOUT}")


def queue_summary(status: int, body) -> str:
    line = summary(status, body)
    if status == 200:
        line += (
            f"; {body['readers_queued']}/{body['readers']} readers queued when the report ended, the longest"
            f" waited {body['reader_max_wait_ms']:.0f} ms; migration attempts: {body['attempts']}"
        )
    return line


def calls(size: int | None) -> list[Call]:
    params = {"heroes": size} if size else {}
    return [
        Call("bad", "POST", "/bad", params, summary=queue_summary),
        Call("fixed", "POST", "/fixed", params, summary=queue_summary),
    ]
