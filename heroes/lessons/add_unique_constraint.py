"""Adding a unique constraint: the table stops while every row is read, and one duplicate fails it all

Symptom: POST /lessons/add-unique-constraint/bad runs op.create_unique_constraint (ALTER TABLE hero ADD
CONSTRAINT uq_hero_name UNIQUE (name)) on a populated hero table while a batch job's write transaction
is open on it. The migration waits for the job, and a writer that comes next (an INSERT, as POST
/heroes runs) waits behind the migration. Once the job commits, the migration reads every hero to build
its index and fails: could not create unique index "uq_hero_name" (two names are shared by five
heroes). The writer waited for a migration that did nothing. The report: writer_blocked, lock_wait_ms,
and the duplicates that were there all along.
Cause: ADD CONSTRAINT ... UNIQUE builds a unique index inside the ALTER TABLE, under ACCESS EXCLUSIVE,
the lock no other statement shares, SELECT included, held until its transaction ends: the whole table
stops for the whole build. PostgreSQL queues lock requests in order, so while it waits for the open
transaction, every query that comes after waits too. And the build checks every row: one duplicate
fails all of it, after the wait.
Fix: find the duplicates, resolve them, then build the index without stopping anyone and attach it.
The duplicate report first (the response's duplicates: each shared name, its heroes and their ids).
Revision uq_1 (migrations/lessons) resolves them by a rule its docstring states (the lowest id keeps
the name, each later hero becomes "<name> #<id>"), then runs CREATE UNIQUE INDEX CONCURRENTLY
uq_hero_name in an autocommit block (heroes.migrate.outside_transaction): writers and readers go on.
Revision uq_2: ALTER TABLE hero ADD CONSTRAINT uq_hero_name UNIQUE USING INDEX uq_hero_name, which
reads no row (an instant's ACCESS EXCLUSIVE: give it a lock_timeout, as lock-queue shows). POST
.../fixed runs them, uq_1 in bad's situation: the writer is not blocked, and no name is shared after.
Stop the code that writes duplicates before uq_1: one written during the build leaves an INVALID index
(POST /lessons/concurrent-index/bad/invalid shows it, and the way back).
Commands: heroes db lint --lessons lints uq_1 and uq_2 (clean); squawk flags bad's SQL. Both revisions
also run on SQLite, in batch mode (uq_2 there copies the table with UNIQUE in its CREATE TABLE).
Data: a PostgreSQL schema at the reference head, ?heroes=N heroes (1000 unless said), rebuilt on every
request; heroes 2 and 3 renamed as hero 1 (Hero 000001-0001), hero 5 as hero 4. The batch job's
transaction stays open 200 ms after the writer has tried.
"""

from alembic.migration import MigrationContext
from alembic.operations import Operations
from fastapi import Request
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, text

from heroes import migrate
from heroes.lab import POSTGRESQL, Call, Lesson
from heroes.lessons._migration import (
    DEFAULT_HEROES,
    SCRATCH_SIZE,
    Heroes,
    MigrationReport,
    Run,
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
    "its fix is revisions, not a route: the exercise will be to write them until squawk (its findings are "
    "in the report) is silent and the writer is not blocked"
)
RESPONSES = problem_responses(409, 422)
NAME = "uq_hero_name"  # the constraint, and the unique index it is built on
DUPLICATES = text(
    "SELECT name, count(*), array_agg(id ORDER BY id) FROM hero GROUP BY name HAVING count(*) > 1"
    " ORDER BY name"
)


class Duplicate(BaseModel):
    name: str
    heroes: int  # heroes sharing the name
    ids: list[int]


class UniqueReport(MigrationReport):
    duplicates: list[Duplicate]  # the duplicate report: the names more than one hero had before the migration
    duplicates_after: int  # names still shared when the route is done
    writer_blocked: bool  # the writer's INSERT was seen waiting for a lock
    lock_wait_ms: float  # how long the writer's INSERT took


def share_names(connection: Connection) -> None:
    connection.execute(text("UPDATE hero SET name = 'Hero 000001-0001' WHERE id IN (2, 3)"))
    connection.execute(text("UPDATE hero SET name = 'Hero 000001-0004' WHERE id = 5"))


def duplicate_report(engine: Engine) -> list[Duplicate]:
    with engine.connect() as connection:
        return [Duplicate(name=n, heroes=k, ids=ids) for n, k, ids in connection.execute(DUPLICATES)]


def unique_constraint(op: Operations) -> None:
    op.create_unique_constraint(NAME, "hero", ["name"])  # ACCESS EXCLUSIVE while it reads every hero


def in_one_step(connection: Connection) -> None:
    with connection.begin():
        unique_constraint(Operations(MigrationContext.configure(connection)))


def concurrently(connection: Connection) -> None:
    migrate.upgrade_connection(connection, "uq_1", lessons=True)  # CREATE UNIQUE INDEX CONCURRENTLY


def unique_report(run: Run, duplicates: list[Duplicate], writer: tuple[bool, float]) -> UniqueReport:
    blocked, ms = writer
    after = len(duplicate_report(run.engine))
    return UniqueReport(
        **run.report(), duplicates=duplicates, duplicates_after=after, writer_blocked=blocked, lock_wait_ms=ms
    )


@router.post("/bad", response_model=UniqueReport, responses=RESPONSES)
def bad(request: Request, heroes: Heroes = DEFAULT_HEROES) -> UniqueReport:
    """ADD CONSTRAINT ... UNIQUE while a write transaction is open: the writer waits, then it fails."""
    with scratch(request, lesson, "bad", "head", heroes, share_names) as run:
        duplicates = duplicate_report(run.engine)
        writer = race(run, in_one_step, f"ADD CONSTRAINT {NAME} UNIQUE (name), in a transaction")
        run.squawk = squawk_operations(unique_constraint)
        return unique_report(run, duplicates, writer)


@router.post("/fixed", response_model=UniqueReport, responses=RESPONSES)
def fixed(request: Request, heroes: Heroes = DEFAULT_HEROES) -> UniqueReport:
    """The duplicate report, uq_1 (resolve them, build the index CONCURRENTLY), uq_2 (USING INDEX)."""
    with scratch(request, lesson, "fixed", "head", heroes, share_names) as run:
        duplicates = duplicate_report(run.engine)
        shared = f"{len(duplicates)} names, {sum(d.heroes for d in duplicates)} heroes"
        run.step("the duplicate report: names more than one hero has", lambda _: shared)
        writer = race(
            run, concurrently, f"uq_1: later duplicates renamed; CREATE UNIQUE INDEX CONCURRENTLY {NAME}"
        )
        run.step(f"pg_index: {NAME}", lambda engine: index_valid(engine, NAME))
        using = f"uq_2: ADD CONSTRAINT {NAME} UNIQUE USING INDEX {NAME}"
        run.migrate(
            "uq_2", using, lambda: "a constraint over the index uq_1 built: no row read", lessons=True
        )
        run.squawk = squawk_revisions(None, "uq_2", lessons=True)
        return unique_report(run, duplicates, writer)


def unique_summary(status: int, body) -> str:
    line = summary(status, body)
    if status == 200:
        state = "blocked" if body["writer_blocked"] else "not blocked"
        shared = f"{len(body['duplicates'])} names shared -> {body['duplicates_after']}"
        line += f"; {shared}; writer {state}, its INSERT took {body['lock_wait_ms']:.0f} ms"
    return line


def calls(size: int | None) -> list[Call]:
    params = {"heroes": size} if size else {}
    return [
        Call("bad", "POST", "/bad", params, summary=unique_summary),
        Call("fixed", "POST", "/fixed", params, summary=unique_summary),
    ]
