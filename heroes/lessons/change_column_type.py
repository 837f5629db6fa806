"""Changing a column's type: integer to bigint rewrites the table under its strongest lock

Symptom: POST /lessons/change-column-type/bad runs ALTER TABLE hero ALTER COLUMN age TYPE BIGINT (what
autogenerate writes for it) while the application writes. The writer (an INSERT, as POST /heroes runs)
waits until the migration commits (writer_blocked, lock_wait_ms), and hero's relfilenode changes.
Cause: ALTER COLUMN ... TYPE takes ACCESS EXCLUSIVE (no SELECT gets past it) and, unless the types are
binary-compatible (integer and bigint are not), rewrites table and indexes under it: minutes, if big.
Fix: know the safe ones: a VARCHAR made longer, or TEXT, is not rewritten (POST .../fixed/widen: same
relfilenode, milliseconds; a narrowed one is rewritten), yet holds ACCESS EXCLUSIVE until commit (the
writer waits for that transaction too): do it alone, commit at once, with a lock_timeout. Otherwise a new
column and a swap, revisions ct_1..ct_4 (migrations/lessons), run by POST .../fixed: ct_1 adds age_big
BIGINT (instant) and a trigger copying age into it (the dual-write: the running release keeps writing
age), ct_2 backfills in batches (the writer is not blocked), ct_3 builds its index CONCURRENTLY and
validates its CHECK, ct_4 drops age and renames age_big to age in one instant transaction: every age kept,
no rewrite. Why age: the rewrite is the same for any column, and age has no key in the way (an id's cycle
must also swap its primary key, USING INDEX, and its sequence).
Commands: heroes db lint --lessons runs squawk on ct_1..ct_4. Its changing-column-type flags every ALTER
... TYPE, safe or not: /fixed/widen ignores it with the reason.
Data: a scratch database at the reference head with ?heroes=N heroes (1000 unless said), rebuilt on every
request; the migration commits 200 ms after the writer tries. SQLite: INTEGER holds 64 bits already; batch
mode copies hero for every change (a new rootpage in sqlite_master); no writer raced (null).
"""

from collections.abc import Callable
from time import perf_counter, sleep
from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from fastapi import Request
from sqlalchemy import Engine, inspect, text

from heroes import migrate
from heroes.db import is_sqlite
from heroes.lab import Call, Lesson
from heroes.lessons import _migration
from heroes.lessons._migration import DEFAULT_HEROES, SCRATCH_SIZE, Heroes, MigrationReport, Run, scratch
from heroes.problems import problem_responses

lesson = Lesson(__name__, __doc__, size=SCRATCH_SIZE)
router = lesson.router()
NO_EXERCISE = "its fix is revisions, not a route: the exercise will be to write them until squawk is silent"
HOLD = 0.2  # seconds the migration's transaction stays open once the writer has tried
INSERT = text("INSERT INTO hero (name, secret_name, version, age) VALUES ('Writer', 'x', 1, 42)")
HEROES = "SELECT id, name, age FROM hero ORDER BY id"
ROOTPAGE = "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'hero'"
RESPONSES = problem_responses(422)


class TypeReport(MigrationReport):
    rewritten: bool  # hero's storage moved: a new relfilenode (PostgreSQL), a new rootpage (SQLite)
    storage: list[int]  # where hero's rows were, before and after
    change_ms: float  # the step that changes the type: the ALTER (bad, widen) or the swap, ct_4 (fixed)
    column_types: dict[str, str]  # the changed columns' types afterwards, as reflected
    heroes_kept: bool  # every hero there before has the same id, name and age after
    writer_blocked: bool | None  # PostgreSQL: the writer's INSERT seen waiting for a lock
    lock_wait_ms: float | None  # how long the writer's INSERT took


def age_to_bigint(op: Operations) -> None:
    with op.batch_alter_table("hero") as batch:  # SQLite: a copy of hero; PostgreSQL: the ALTER itself
        batch.alter_column("age", type_=sa.BigInteger(), existing_type=sa.Integer())  # rewrites every row


def widen(op: Operations) -> None:
    for column, new in (("name", sa.String(200)), ("secret_name", sa.Text())):  # both VARCHAR(100)
        migrate.lint_ignore("changing-column-type", "binary-compatible: an instant ALTER, no rewrite", op)
        with op.batch_alter_table("hero") as batch:  # SQLite: a copy of hero each time
            batch.alter_column(column, type_=new, existing_type=sa.String(100))  # PostgreSQL: no rewrite


def backfill(op: Operations) -> None:
    migrate.upgrade_connection(op.get_bind(), "ct_2", lessons=True)  # in the caller's open transaction


def race(run: Run, change: Callable[[Operations], None], action: str) -> dict[str, Any]:
    """The migration's transaction changes hero; a writer inserts; the transaction commits HOLD later."""
    engine, errors, took = run.engine, [], {}
    with engine.connect() as migration, engine.connect() as writer:
        op = Operations(MigrationContext.configure(migration))
        if is_sqlite(engine):  # one writer at a time: nobody to race
            run.step(action, lambda _: change(op) or migration.commit() or "done")
            return {"writer_blocked": None, "lock_wait_ms": None}

        def insert() -> None:
            started = perf_counter()
            writer.execute(INSERT)
            writer.commit()
            took["ms"] = round((perf_counter() - started) * 1000, 2)

        def commit(_) -> str:
            migration.commit()
            inserting.join(30)
            failed = "; ".join(_migration.message(e) for e in errors)
            return failed or f"the writer's INSERT took {took['ms']} ms"

        migration.begin()
        run.step(action, lambda _: change(op) or "done, its transaction still open")
        inserting = _migration.in_background(insert, errors)
        _migration.until(lambda: not inserting.is_alive() or _migration.waits_for_a_lock(engine, writer))
        blocked = inserting.is_alive() and _migration.waits_for_a_lock(engine, writer)
        run.step("a writer inserts a hero, as POST /heroes does", lambda _: "blocked" if blocked else "done")
        sleep(HOLD)
        run.step(f"the migration commits {HOLD * 1000:.0f} ms later", commit)
    return {"writer_blocked": blocked, "lock_wait_ms": took.get("ms", -1.0)}


def snapshot(engine: Engine) -> tuple[int, dict]:
    """Where hero's rows are (a rewrite moves them: new relfilenode; SQLite: new rootpage), and the rows."""
    where = ROOTPAGE if is_sqlite(engine) else "SELECT pg_relation_filenode('hero')"
    with engine.connect() as connection:
        rows = {row.id: tuple(row) for row in connection.execute(text(HEROES))}
        return connection.scalar(text(where)), rows


def report(run: Run, before: tuple[int, dict], raced: dict, step: int, names: tuple[str, ...]) -> TypeReport:
    after = snapshot(run.engine)
    with run.engine.connect() as connection:
        types = {c["name"]: str(c["type"]) for c in inspect(connection).get_columns("hero")}
    return TypeReport(
        **run.report(),
        rewritten=after[0] != before[0],
        storage=[before[0], after[0]],
        change_ms=run.steps[step].ms,
        column_types={name: types[name] for name in names},
        heroes_kept=all(after[1].get(id) == row for id, row in before[1].items()),
        **raced,
    )


@router.post("/bad", response_model=TypeReport, responses=RESPONSES)
def bad(request: Request, heroes: Heroes = DEFAULT_HEROES) -> TypeReport:
    """ALTER COLUMN age TYPE BIGINT in place while the application writes: rewritten, the writer waits."""
    with scratch(request, lesson, "bad", "head", heroes) as run:
        before = snapshot(run.engine)
        raced = race(run, age_to_bigint, "ALTER TABLE hero ALTER COLUMN age TYPE BIGINT")
        run.squawk = _migration.squawk_operations(age_to_bigint)
        return report(run, before, raced, 0, ("age",))


@router.post("/fixed", response_model=TypeReport, responses=RESPONSES)
def fixed(request: Request, heroes: Heroes = DEFAULT_HEROES) -> TypeReport:
    """ct_1..ct_4: a BIGINT column beside age, a trigger, a backfill, a swap; the writer goes on."""
    with scratch(request, lesson, "fixed", "head", heroes) as run:
        before = snapshot(run.engine)
        run.migrate("ct_1", "ct_1: ADD COLUMN age_big BIGINT, its trigger", lambda: "done", lessons=True)
        raced = race(run, backfill, "ct_2 backfill: UPDATE hero SET age_big = age, in batches")
        run.migrate("ct_3", "ct_3: CREATE INDEX CONCURRENTLY, VALIDATE", lambda: "done", lessons=True)
        run.migrate("ct_4", "ct_4 swap: DROP COLUMN age, RENAME age_big TO age", lambda: "done", lessons=True)
        run.squawk = _migration.squawk_revisions(None, "ct_4", lessons=True)
        return report(run, before, raced, len(run.steps) - 1, ("age",))


@router.post("/fixed/widen", response_model=TypeReport, responses=RESPONSES)
def fixed_widen(request: Request, heroes: Heroes = DEFAULT_HEROES) -> TypeReport:
    """VARCHAR(100) to VARCHAR(200) and to TEXT: no rewrite, yet the same ACCESS EXCLUSIVE until commit."""
    with scratch(request, lesson, "widen", "head", heroes) as run:
        before = snapshot(run.engine)
        raced = race(run, widen, "ALTER COLUMN name TYPE VARCHAR(200), secret_name TYPE TEXT")
        run.squawk = _migration.squawk_operations(widen)
        return report(run, before, raced, 0, ("name", "secret_name"))


def type_summary(status: int, body) -> str:
    line = _migration.summary(status, body)
    if status == 200:
        rewritten = "rewritten" if body["rewritten"] else "not rewritten"
        line += f"; hero {rewritten}, the change took {body['change_ms']:.0f} ms"
        if body["writer_blocked"] is not None:
            state = "blocked" if body["writer_blocked"] else "not blocked"
            line += f"; writer {state}, its INSERT took {body['lock_wait_ms']:.0f} ms"
    return line


def calls(size: int | None) -> list[Call]:
    params = {"heroes": size} if size else {}
    variants = ("bad", "fixed", "fixed/widen")
    return [Call(variant, "POST", f"/{variant}", params, summary=type_summary) for variant in variants]
