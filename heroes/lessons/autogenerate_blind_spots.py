"""Autogenerate's blind spots: the revision it writes is a draft of your change, not your change

Symptom: POST /lessons/autogenerate-blind-spots/bad runs Alembic's autogenerate on a scratch database at
head for four model changes, each with one thing set up as projects often first have it, then runs each
revision. A server default added to hero.version: an empty revision. A new `str` field, hero.motto: the
revision names sqlmodel.sql.sqltypes.AutoString, alembic init's template never imports sqlmodel, and the
upgrade fails with NameError: name 'sqlmodel' is not defined. team.headquarters renamed to base:
add_column base and remove_column headquarters: the NOT NULL add fails on the populated table (on an
empty database, CI's, it runs and drops the column and its values). And an env.py that never imports the
models: a revision that drops every table (not run here).
Cause: autogenerate compares the database with the MetaData env.py hands it, and only what it is asked
to compare. A model whose module nobody imported is not in that MetaData; a rename looks like a column
gone and another one new; server defaults are compared only with compare_server_default=True (off by
default; compare_type is on since Alembic 1.12); AutoString is rendered by its module path, the import
left to the template. The dropped tables even come in a Python set's order: on PostgreSQL dropping team
before hero fails on hero's foreign key, in some runs only.
Fix: migrations/env.py imports heroes.models and sets compare_type and compare_server_default;
migrations/script.py.mako imports sqlmodel.sql.sqltypes; every generated revision is read before it is
committed (a rename becomes alter_column new_column_name, or rename-column's cycle); and the suite's
test_models_and_migrations_agree (tests/test_migrations.py) fails while autogenerate finds anything at
head. POST .../fixed runs the same four changes set up that way.
Myth: "autogenerate sees every change". Not a rename, not a server default unless asked, not a value
added to an Enum even with compare_type=True, nothing of a model env.py does not import.
Commands: alembic check (the suite runs it), alembic revision --autogenerate -m "...", then read the file.
Data: a scratch database at head with ?heroes=N heroes (1000 unless said), rebuilt on every request;
the revisions go to a temporary folder, never to migrations/.
"""

import tempfile
from pathlib import Path

import alembic
from alembic.operations import ops
from fastapi import Request
from pydantic import BaseModel
from sqlalchemy import Column, DefaultClause, Engine, MetaData, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import AutoString, SQLModel

from heroes.lab import Call, Lesson
from heroes.lessons._migration import (
    DEFAULT_HEROES,
    SCRATCH_SIZE,
    Heroes,
    autogenerate,
    message,
    run_revision,
    scratch,
)
from heroes.problems import problem_responses

lesson = Lesson(__name__, __doc__, size=SCRATCH_SIZE)
router = lesson.router()
NO_EXERCISE = "its fix is the project's set-up (env.py, the revision template) and a review, not a route"
RESPONSES = problem_responses(422)
STOCK_TEMPLATE = Path(alembic.__file__).parent / "templates" / "generic" / "script.py.mako"  # alembic init's


class Case(BaseModel):
    case: str  # the model change
    setup: str  # the one thing set up wrongly (bad) or as the lab has it (fixed) for this change
    generated: list[str]  # autogenerate's operations (sorted): kind, then table.column or name
    reviewed: list[str]  # what the revision runs once a person has read it (bad: nobody did)
    upgrade: str  # that revision run on the scratch database: "ok: ...", "failed: ...", "not run: ..."


class AutogenerateReport(BaseModel):
    engine: str
    cases: list[Case]
    tables_after: list[str]


def models(change=lambda metadata: None) -> MetaData:
    """The models, changed (in a copy: SQLModel.metadata itself is never touched)."""
    metadata = MetaData(naming_convention=SQLModel.metadata.naming_convention)
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(metadata)
    change(metadata)
    return metadata


def server_default(metadata: MetaData) -> None:
    metadata.tables["hero"].c.version.server_default = DefaultClause(text("1"))  # server_default="1"


def motto(metadata: MetaData) -> None:
    metadata.tables["hero"].append_column(Column("motto", AutoString(length=100)))  # motto: str | None


def rename(metadata: MetaData) -> None:
    column = metadata.tables["team"].c.headquarters
    column.name = column.key = "base"  # the field renamed: base: str


def rename_by_hand(upgrade: ops.UpgradeOps) -> ops.UpgradeOps:
    return ops.UpgradeOps(
        [ops.ModifyTableOps("team", [ops.AlterColumnOp("team", "headquarters", modify_name="base")])]
    )


KEPT = "SELECT count(base) || ' of ' || count(*) || ' kept, as base' FROM team"
PLAN = [  # the change, what shows it ran, then its bad and its fixed set-up (the rest: the lab's)
    ("hero.version gets server_default='1'", server_default, None,
     {"how": "Alembic's defaults: compare_server_default=False", "options": {}},
     {"how": "compare_server_default=True, as env.py sets"}),
    ("hero.motto: str | None, a new field", motto, "SELECT 'hero.motto added'",
     {"how": "alembic init's script.py.mako: no import sqlmodel", "template": STOCK_TEMPLATE},
     {"how": "migrations/script.py.mako: import sqlmodel.sql.sqltypes"}),
    ("team.headquarters renamed to base", rename, KEPT,
     {"how": "committed as generated, unread"},
     {"how": "read: the drop and the add made one alter_column", "review": rename_by_hand}),
    ("the models, as env.py sees them", lambda metadata: None, None,
     {"how": "env.py never imports heroes.models", "metadata": MetaData()},
     {"how": "env.py: from heroes import models"}),
]  # fmt: skip


def run(engine: Engine, module, evidence: str | None) -> str:
    try:
        run_revision(engine, module)
    except SQLAlchemyError as exc:
        return f"failed: {message(exc)}"
    except NameError as exc:
        return f"failed: NameError: {exc}"
    with engine.connect() as connection:
        return f"ok: {connection.scalar(text(evidence))}" if evidence else "ok"


def report(engine: Engine, fixed: bool) -> AutogenerateReport:
    """Every change generated against the database at head first, then each revision run, in PLAN's order."""
    made, cases = [], []
    with tempfile.TemporaryDirectory() as folder:
        for case, change, evidence, *sides in PLAN:
            setup = dict(sides[fixed])
            how, metadata = setup.pop("how"), setup.pop("metadata", None) or models(change)
            made.append((case, how, evidence, *autogenerate(engine, metadata, folder, **setup)))
        for case, how, evidence, generated, reviewed, module in made:
            drops = [line.split()[1] for line in reviewed if line.startswith("remove_table")]
            upgrade = f"not run: it drops {', '.join(drops)}" if drops else run(engine, module, evidence)
            cases.append(Case(case=case, setup=how, generated=generated, reviewed=reviewed, upgrade=upgrade))
    tables = sorted(set(inspect(engine).get_table_names()) - {"alembic_version"})
    return AutogenerateReport(engine=engine.dialect.name, cases=cases, tables_after=tables)


@router.post("/bad", response_model=AutogenerateReport, responses=RESPONSES)
def bad(request: Request, heroes: Heroes = DEFAULT_HEROES) -> AutogenerateReport:
    """Autogenerate as first set up: no models import, Alembic's defaults, its stock template, unread."""
    with scratch(request, lesson, "bad", "head", heroes) as scratch_run:
        return report(scratch_run.engine, fixed=False)  # each change with its own mistake, nothing read


@router.post("/fixed", response_model=AutogenerateReport, responses=RESPONSES)
def fixed(request: Request, heroes: Heroes = DEFAULT_HEROES) -> AutogenerateReport:
    """The lab's set-up (env.py, script.py.mako), and each generated revision read before it runs."""
    with scratch(request, lesson, "fixed", "head", heroes) as scratch_run:
        return report(scratch_run.engine, fixed=True)  # env.py, script.py.mako, every revision read


DROPS = ("remove_table", "remove_column")


def outcome(status: int, body) -> str:
    if status != 200:
        return f"{status}: {body.get('detail') if isinstance(body, dict) else body}"
    ok = sum(case["upgrade"].startswith("ok") and bool(case["reviewed"]) for case in body["cases"])
    failed = sum(case["upgrade"].startswith("failed") for case in body["cases"])
    drops = sum(line.split()[0] in DROPS for case in body["cases"] for line in case["reviewed"])
    return f"{ok} of 3 changes migrated; {failed} revisions failed; {drops} tables or columns dropped in them"


def calls(size: int | None) -> list[Call]:
    params = {"heroes": size} if size else {}
    return [
        Call("bad", "POST", "/bad", params, summary=outcome),
        Call("fixed", "POST", "/fixed", params, summary=outcome),
    ]
