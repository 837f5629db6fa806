"""CREATE INDEX blocks every write to the table; CREATE INDEX CONCURRENTLY does not

Symptom: POST /lessons/concurrent-index/bad builds ix_hero_created_at with a plain CREATE INDEX
while a batch job's write transaction is open on hero. The migration waits for that transaction,
and a writer that comes next (an INSERT, as POST /heroes runs) waits behind the migration: blocked
for as long as the job and then the build take. The report says writer_blocked and lock_wait_ms.
Cause: CREATE INDEX takes a SHARE lock on the table, which conflicts with the ROW EXCLUSIVE lock
of every INSERT, UPDATE and DELETE, and holds it until its transaction ends. PostgreSQL queues lock
requests in order: while the migration waits for its lock, everyone who asks after it waits too.
Fix: CREATE INDEX CONCURRENTLY (revision 0006): a lock that lets writes through, two scans of the
table instead of one, and it must run outside a transaction block (op.get_context().autocommit_block).
It still waits for the open transactions before it finishes, but nobody waits for it. POST
/lessons/concurrent-index/fixed runs 0006 in the same situation: the writer is not blocked. On
SQLite the same revision builds a plain index: one writer at a time there anyway.
Myth: "CONCURRENTLY needs raw SQL and takes no lock". Index(..., postgresql_concurrently=True) (or
op.create_index(..., postgresql_concurrently=True)) renders it; it must run outside a transaction
(inside one: "cannot run inside a transaction block"); and it holds SHARE UPDATE EXCLUSIVE for its
whole run: writers pass, other schema changes and VACUUM of the table wait.
Variant: POST /lessons/concurrent-index/bad/invalid: a unique index built CONCURRENTLY while a writer
adds a duplicate fails, and stays INVALID (pg_index.indisvalid false); run again, CREATE INDEX
CONCURRENTLY IF NOT EXISTS keeps it. The duplicate gone: REINDEX INDEX CONCURRENTLY (or drop, rebuild).
Commands: heroes db upgrade 0006 and heroes db downgrade 0005 run it on your database; alembic
upgrade 0005:0006 --sql prints COMMIT, then CREATE INDEX CONCURRENTLY, then BEGIN.
Data: a PostgreSQL schema of its own, migrated to 0005, with ?heroes=N heroes (1000 unless said),
rebuilt on every request. The batch job's transaction stays open 200 ms after the writer has tried.
"""

from alembic.migration import MigrationContext
from alembic.operations import Operations
from fastapi import Request
from sqlalchemy import Connection, text

from heroes import migrate
from heroes.lab import POSTGRESQL, Call, Lesson
from heroes.lessons._migration import (
    DEFAULT_HEROES,
    SCRATCH_SIZE,
    Heroes,
    MigrationReport,
    index_valid,
    race,
    scratch,
    squawk_operations,
    squawk_revisions,
    summary,
)
from heroes.problems import problem_responses

lesson = Lesson(__name__, __doc__, engines=POSTGRESQL, size=SCRATCH_SIZE)
router = lesson.router()
NO_EXERCISE = (
    "its fix is a revision, not a route: the exercise will be to edit one until squawk (its finding is in "
    "the report) is silent and the writer is not blocked"
)
RESPONSES = problem_responses(409, 422)
UNIQUE = "ux_hero_name"  # bad/invalid's index
BUILD = f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {UNIQUE} ON hero (name)"
REINDEX = f"REINDEX INDEX CONCURRENTLY {UNIQUE}"  # rebuilds an INVALID index, valid this time
NAMED = "UPDATE hero SET name = 'Writer' WHERE id = 1"  # bad/invalid: a hero named as the writer's
RENAME = "UPDATE hero SET name = 'Writer ' || id WHERE name = 'Writer' AND id > 1"  # the later Writers


class IndexReport(MigrationReport):
    writer_blocked: bool  # the writer's INSERT was seen waiting for a lock
    lock_wait_ms: float  # how long the writer's INSERT took


def create_index(op: Operations) -> None:
    op.create_index("ix_hero_created_at", "hero", ["created_at"])  # SHARE lock: no write until commit


def plain(connection: Connection) -> None:
    with connection.begin():
        create_index(Operations(MigrationContext.configure(connection)))


def concurrently(connection: Connection) -> None:
    migrate.upgrade_connection(connection, "0006")  # CREATE INDEX CONCURRENTLY, outside a transaction


@router.post("/bad", response_model=IndexReport, responses=RESPONSES)
def bad(request: Request, heroes: Heroes = DEFAULT_HEROES) -> IndexReport:
    """A plain CREATE INDEX while a write transaction is open: the next writer waits behind it."""
    with scratch(request, lesson, "bad", "0005", heroes) as run:
        blocked, ms = race(run, plain, "CREATE INDEX ix_hero_created_at, in a transaction")
        run.squawk = squawk_operations(create_index)
        return IndexReport(**run.report(), writer_blocked=blocked, lock_wait_ms=ms)


@router.post("/fixed", response_model=IndexReport, responses=RESPONSES)
def fixed(request: Request, heroes: Heroes = DEFAULT_HEROES) -> IndexReport:
    """Revision 0006, CREATE INDEX CONCURRENTLY, in the same situation: the writer goes through."""
    with scratch(request, lesson, "fixed", "0005", heroes) as run:
        blocked, ms = race(run, concurrently, "0006: CREATE INDEX CONCURRENTLY ix_hero_created_at")
        run.squawk = squawk_revisions("0005", "0006")
        return IndexReport(**run.report(), writer_blocked=blocked, lock_wait_ms=ms)


def unique_name(op: Operations) -> None:
    op.execute(BUILD)  # IF NOT EXISTS: an INVALID index of that name counts as there


@router.post("/bad/invalid", response_model=IndexReport, responses=RESPONSES)
def bad_invalid(request: Request, heroes: Heroes = DEFAULT_HEROES) -> IndexReport:
    """A unique index built CONCURRENTLY, a duplicate written meanwhile: INVALID; IF NOT EXISTS keeps it."""
    with scratch(request, lesson, "invalid", "0005", heroes, lambda c: c.execute(text(NAMED))) as run:
        build = lambda c: c.execution_options(isolation_level="AUTOCOMMIT").execute(text(BUILD))  # noqa: E731
        blocked, ms = race(run, build, "CREATE UNIQUE INDEX CONCURRENTLY ux_hero_name (hero 1: Writer)")
        run.step("pg_index: the index the failed build left", lambda e: index_valid(e, UNIQUE))
        run.step("the later Writer renamed; the build again", lambda e: index_valid(e, UNIQUE, RENAME, BUILD))
        run.step(f"recover: {REINDEX}", lambda e: index_valid(e, UNIQUE, REINDEX))
        run.squawk = squawk_operations(unique_name)
        return IndexReport(**run.report(), writer_blocked=blocked, lock_wait_ms=ms)


def index_summary(status: int, body) -> str:
    line = summary(status, body)
    if status == 200:
        state = "blocked" if body["writer_blocked"] else "not blocked"
        line += f"; writer {state}, its INSERT took {body['lock_wait_ms']:.0f} ms"
        line += "".join(f"; then {s['outcome'].removeprefix('ok: ')}" for s in body["steps"][3:])
    return line


def calls(size: int | None) -> list[Call]:
    params = {"heroes": size} if size else {}
    return [
        Call("bad", "POST", "/bad", params, summary=index_summary),
        Call("fixed", "POST", "/fixed", params, summary=index_summary),
        Call("bad/invalid", "POST", "/bad/invalid", params, summary=index_summary),
    ]
