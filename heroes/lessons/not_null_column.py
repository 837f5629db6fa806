"""Adding a NOT NULL column to a populated table: the migration fails

Symptom: POST /lessons/not-null-column/bad runs the one-step migration a new model field suggests,
ALTER TABLE hero ADD COLUMN created_at ... NOT NULL, on a copy of the hero table with 1000 heroes. It
fails, and a deploy that runs it stops there. PostgreSQL: column "created_at" of relation "hero"
contains null values. SQLite: Cannot add a NOT NULL column with default value NULL.
Cause: NOT NULL holds for every row at once, and the rows already there have no value. On an empty
development database the same migration passes, which is how it reaches production. A DEFAULT gets it
through only if one constant is right for every old row; CURRENT_TIMESTAMP is not a constant (SQLite
refuses it in ADD COLUMN), and one UPDATE of a big table locks every row until it commits.
Fix: three revisions, each deployable and reversible on its own. 0003 expand: the column, nullable,
then a server default for the rows to come. 0004 backfill: UPDATE ... WHERE id BETWEEN, 1000 rows per
transaction. 0005 contract: SET NOT NULL (on PostgreSQL via a CHECK validated without blocking
writes). POST /lessons/not-null-column/fixed runs them on the same data: every hero kept, each with a
created_at.
Myth: "adding a NOT NULL column with a default rewrites the table". Not on PostgreSQL 11+: a constant
default (a stable one such as now() too) is stored once in the catalog; only a volatile one (random(),
clock_timestamp()) rewrites every row. And SET NOT NULL takes ACCESS EXCLUSIVE and scans the whole
table, unless a validated CHECK (x IS NOT NULL) proves it (then no scan): how 0005 contracts.
Commands: heroes db upgrade 0005 (or 0003, then 0004, then 0005) and heroes db downgrade 0002 run them
on your database; alembic upgrade 0002:0005 --sql prints their SQL without running anything (SQLite's
table rebuilds; set DATABASE_URL=postgresql+psycopg://localhost/x to read PostgreSQL's, no server
needed).
Data: a scratch database (a SQLite file beside the lab's, or a PostgreSQL schema of its own) migrated
to 0002 and filled with ?heroes=N heroes (1000 unless said), rebuilt on every request. The reference
API's data is never touched.
"""

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from fastapi import Request
from sqlalchemy import Engine

from heroes.lab import Call, Lesson
from heroes.lessons._migration import (
    DEFAULT_HEROES,
    SCRATCH_SIZE,
    Heroes,
    MigrationReport,
    scratch,
    squawk_operations,
    squawk_revisions,
    summary,
)
from heroes.problems import problem_responses

lesson = Lesson(__name__, __doc__, size=SCRATCH_SIZE)
router = lesson.router()
NO_EXERCISE = (
    "its fix is a revision, not a route: the exercise will be to edit one until squawk (the PostgreSQL "
    "migration linter: its findings are in the report) is silent and nothing breaks"
)
BEFORE = "0002"  # the revision before the lesson's three
RESPONSES = problem_responses(422)
COUNT = "SELECT count(*) FROM hero"
STEPS = [
    ("0003", "0003 expand: ADD COLUMN created_at (nullable), then SET DEFAULT CURRENT_TIMESTAMP"),
    ("0004", "0004 backfill: UPDATE ... WHERE id BETWEEN, 1000 heroes per transaction"),
    ("0005", "0005 contract: SET NOT NULL"),
]


def add_not_null(op: Operations) -> None:
    column = sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)
    op.add_column("hero", column)  # NOT NULL, and the rows already there have no value


def one_revision(engine: Engine) -> str:
    with engine.begin() as connection:
        add_not_null(Operations(MigrationContext.configure(connection)))
    return "created_at added"


@router.post("/bad", response_model=MigrationReport, responses=RESPONSES)
def bad(request: Request, heroes: Heroes = DEFAULT_HEROES) -> MigrationReport:
    """One revision, ADD COLUMN created_at NOT NULL, on a table that has rows: it fails, nothing changes."""
    with scratch(request, lesson, "bad", BEFORE, heroes) as run:
        run.step("one revision: ADD COLUMN created_at ... NOT NULL", one_revision)
        run.squawk = squawk_operations(add_not_null)
        return MigrationReport(**run.report())


@router.post("/fixed", response_model=MigrationReport, responses=RESPONSES)
def fixed(request: Request, heroes: Heroes = DEFAULT_HEROES) -> MigrationReport:
    """Three revisions, expand, backfill, contract: every hero kept, each with its created_at."""
    with scratch(request, lesson, "fixed", BEFORE, heroes) as run:

        def missing() -> str:
            return f"{run.scalar(f'{COUNT} WHERE created_at IS NULL')} heroes without created_at"

        for revision, action in STEPS:  # each one deployable, and reversible, on its own
            if not run.migrate(revision, action, missing):
                break
        run.squawk = squawk_revisions(BEFORE, STEPS[-1][0])
        return MigrationReport(**run.report())


def calls(size: int | None) -> list[Call]:
    params = {"heroes": size} if size else {}
    return [
        Call("bad", "POST", "/bad", params, summary=summary),
        Call("fixed", "POST", "/fixed", params, summary=summary),
    ]
