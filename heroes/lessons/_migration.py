"""What the migration lessons share: a scratch database at a given revision with heroes in it, the
steps a route runs on it (each timed, its statements counted, its failure kept), and the report."""

import contextvars
import importlib.util
import io
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from time import monotonic, perf_counter, sleep
from types import ModuleType
from typing import Annotated, Any

from alembic import util
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops
from fastapi import Query, Request
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, MetaData, text
from sqlalchemy.exc import SQLAlchemyError

from heroes import migrate
from heroes.db import is_sqlite
from heroes.evidence import count_queries, not_recorded
from heroes.lab import Lesson, Size, lab_of, safe_message
from heroes.lint import revision_sql, squawk
from heroes.seed import seed_bulk

DEFAULT_HEROES = 1000
SCRATCH_SIZE = Size(
    "heroes", "heroes in the lesson's scratch database", 100_000, demo=(1000, 10_000), default=DEFAULT_HEROES
)
Heroes = Annotated[int, Query(ge=1, le=SCRATCH_SIZE.maximum, description=SCRATCH_SIZE.meaning)]
_one_at_a_time = threading.Lock()  # a request rebuilds its scratch database: no two may share one


class Step(BaseModel):
    action: str  # what ran: a revision, a statement, the application's code
    outcome: str  # "ok: ..." or "failed: <the driver's message>"
    statements: int
    ms: float


class MigrationReport(BaseModel):
    engine: str
    revision_from: str
    revision_to: str  # where the scratch database is when the route is done
    steps: list[Step]
    rows_before: int  # heroes
    rows_after: int
    error: str | None  # the first step that failed, in the database's own words
    squawk: list[str]  # the rules squawk flags in this variant's migration, rendered for PostgreSQL


def message(exc: BaseException) -> str:
    """The driver's message, without the SQL, its parameters, or PostgreSQL's DETAIL (row values)."""
    return re.split(r" (?:DETAIL|LINE \d+):", safe_message(exc))[0]


def in_background(work: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    """`work` in a thread that counts in this request's evidence; what it raises lands in `errors`."""

    def guarded() -> None:
        try:
            work()
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(guarded,), daemon=True)
    thread.start()
    return thread


def until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll `condition` every 10 ms for up to `seconds`: an observed state, not a timing guess."""
    deadline = monotonic() + seconds
    while not condition():
        if monotonic() > deadline:
            return False
        sleep(0.01)
    return True


HOLD = 0.2  # seconds a race's batch job keeps its transaction open once the writer has tried
WRITE = text("INSERT INTO hero (name, secret_name, version, team_id) VALUES (:name, 'x', 1, :team)")


def waits_for_a_lock(engine: Engine, connection: Connection) -> bool:
    """PostgreSQL: `connection`'s backend is waiting for a lock right now (pg_stat_activity), seen from
    another connection: an observed state, not a timing."""
    pid = connection.connection.driver_connection.info.backend_pid
    with not_recorded(), engine.connect().execution_options(isolation_level="AUTOCOMMIT") as observer:
        query = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"
        return bool(observer.scalar(text(query), {"pid": pid}))


def race(
    run: "Run", migration: Callable[[Connection], None], action: str, team: int | None = None
) -> tuple[bool, float]:
    """A batch job's write transaction is open on hero; the migration starts; a writer inserts a hero
    (as POST /heroes does, in team `team`); the job commits HOLD later. Returns (the writer was seen
    waiting for a lock, ms its INSERT took). Each stage is a step of the report; the migration's own
    failure is the last step's outcome."""
    engine, errors, took = run.engine, [], {}
    with engine.connect() as job, engine.connect() as migrating, engine.connect() as writer:

        def insert() -> None:
            started = perf_counter()
            writer.execute(WRITE, {"name": "Writer", "team": team})
            writer.commit()
            took["ms"] = round((perf_counter() - started) * 1000, 2)

        def seen_waiting(thread: threading.Thread, connection: Connection) -> bool:
            until(lambda: not thread.is_alive() or waits_for_a_lock(engine, connection))
            return thread.is_alive() and waits_for_a_lock(engine, connection)

        def commit(_) -> str:
            job.commit()
            building.join(30), inserting.join(30)
            if errors:
                raise errors[0]  # the migration's own failure is this step's outcome
            return f"the writer's INSERT took {took['ms']} ms"

        job.execute(WRITE, {"name": "Batch Hero", "team": team})  # a write in flight, not committed yet
        building = in_background(lambda: migration(migrating), errors)
        waiting = seen_waiting(building, migrating)  # for the batch job's transaction, or not at all
        done = "done, the job still open" if not building.is_alive() else "not waiting"
        run.step(action, lambda _: "waiting for a lock" if waiting else done)
        inserting = in_background(insert, errors)
        blocked = seen_waiting(inserting, writer)
        run.step("a writer inserts a hero, as POST /heroes does", lambda _: "blocked" if blocked else "done")
        sleep(HOLD)
        run.step(f"the batch job commits {HOLD * 1000:.0f} ms later", commit)
    return blocked, took.get("ms", -1.0)


def index_valid(engine: Engine, index: str, *first: str) -> str:
    """`first` run outside a transaction (as CONCURRENTLY must), then `index`'s pg_index.indisvalid."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for statement in first:
            connection.execute(text(statement))
        valid = connection.scalar(
            text("SELECT indisvalid FROM pg_index WHERE indexrelid = CAST(:index AS regclass)"),
            {"index": index},
        )
    return f"indisvalid = {str(valid).lower()}"


@lru_cache
def squawk_revisions(start: str | None, end: str, *, lessons: bool = False) -> tuple[str, ...]:
    """The rules squawk flags in revisions start..end, as `heroes db lint` renders them (`lessons`: the
    migration lessons' own revisions, heroes.migrate.LESSON_VERSIONS; start None: from the branch's base)."""
    sql = revision_sql(end, start, lessons=lessons)
    return tuple(sorted({finding.rule for finding in squawk(sql, f"{end}.sql")}))


@lru_cache
def squawk_operations(work: Callable[[Operations], None], *, lock_timeout: bool = True) -> tuple[str, ...]:
    """The rules squawk flags in what `work` renders for PostgreSQL (offline: no server), its waits
    bounded as the lab's revisions bound theirs, so what is left is the lesson's pitfall.
    `lock_timeout=False`: rendered without `SET lock_timeout`, as a migration that never sets one."""
    buffer = io.StringIO()
    context = MigrationContext.configure(
        dialect_name="postgresql", opts={"as_sql": True, "output_buffer": buffer}
    )
    work(Operations(context))
    sql = buffer.getvalue()
    if lock_timeout:
        sql = f"SET lock_timeout = '{migrate.MIGRATION_LOCK_TIMEOUT}';\n{sql}"
    sql = f"SET statement_timeout = '{migrate.MIGRATION_STATEMENT_TIMEOUT}';\n{sql}"
    return tuple(sorted({finding.rule for finding in squawk(sql, "migration.sql")}))


class Run:
    """Steps on one scratch database, recorded as the report shows them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.steps: list[Step] = []
        self.error: str | None = None
        self.revision_from = self.revision()
        self.rows_before = self.scalar("SELECT count(*) FROM hero")
        self.squawk: tuple[str, ...] = ()  # the route says what it migrates with

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as connection:
            return connection.scalar(text(sql))

    def revision(self) -> str:
        """The reference revision, then the lessons' revisions applied on top, if any: "0007+fk_1"."""
        with self.engine.connect() as connection:
            reference = migrate.current_revision(connection) or "base"
            on_top = migrate.current_revision(connection, lessons=True)
        return f"{reference}+{on_top}" if on_top else reference

    def step(self, action: str, work: Callable[[Engine], str]) -> bool:
        """Run `work` (it returns the outcome line); a database error becomes the outcome, not a 500."""
        started = perf_counter()
        with count_queries(self.engine, keep_statements=False) as queries:
            try:
                outcome, ok = f"ok: {work(self.engine)}", True
            except (SQLAlchemyError, RuntimeError) as exc:
                outcome, ok = f"failed: {message(exc)}", False
                self.error = self.error or message(exc)
        ms = round((perf_counter() - started) * 1000, 2)
        self.steps.append(Step(action=action, outcome=outcome, statements=queries.count, ms=ms))
        return ok

    def migrate(
        self, target: str, action: str, outcome: Callable[[], str], down: bool = False, lessons: bool = False
    ) -> bool:
        """`alembic upgrade target` (or downgrade) through a connection; then `outcome` describes it.
        `lessons`: `target` is one of the migration lessons' revisions (heroes.migrate.LESSON_VERSIONS)."""

        def work(engine: Engine) -> str:
            with engine.connect() as connection:
                run = migrate.downgrade_connection if down else migrate.upgrade_connection
                run(connection, target, lessons=lessons)
                connection.commit()
            return outcome()

        return self.step(action, work)

    def report(self) -> dict[str, Any]:
        return {
            "engine": "sqlite" if is_sqlite(self.engine) else "postgresql",
            "revision_from": self.revision_from,
            "revision_to": self.revision(),
            "steps": self.steps,
            "rows_before": self.rows_before,
            "rows_after": self.scalar("SELECT count(*) FROM hero"),
            "error": self.error,
            "squawk": list(self.squawk),
        }


@contextmanager
def scratch(
    request: Request,
    lesson: Lesson,
    variant: str,
    at: str,
    heroes: int,
    then: Callable[[Connection], Any] = lambda c: None,
) -> Iterator[Run]:
    """A fresh scratch database for the variant, migrated to `at`, with `heroes` heroes (one team), `then`
    run on it."""

    def populate(engine: Engine) -> None:
        seed_bulk(engine, 1, heroes)  # raw INSERT/COPY: works at any revision, whatever the model says
        with engine.begin() as connection:
            then(connection)

    with _one_at_a_time:
        yield Run(lesson.scratch(lab_of(request), variant, populate, fresh=True, revision=at))


def summary(status: int, body: Any) -> str:
    """compare's outcome line: what the run ended with, rows before and after."""
    if status != 200 or not isinstance(body, dict):
        detail = body.get("detail") if isinstance(body, dict) else None
        return f"{status}: {detail}"
    head = f"failed: {body['error']}" if body["error"] else f"ok: {len(body['steps'])} steps"
    rows = f"heroes {body['rows_before']} -> {body['rows_after']}"
    return f"{head}; {rows}; at {body['revision_to']}; squawk: {', '.join(body['squawk']) or 'clean'}"


# ---- autogenerate, for real, into a folder of the caller's (never migrations/) --------------------------

REVISION_TEMPLATE = migrate.ROOT / "migrations" / "script.py.mako"
ENV_PY_COMPARE = {"compare_type": True, "compare_server_default": True}  # what migrations/env.py sets


def operation_labels(upgrade: ops.OpContainer) -> list[str]:
    """A revision's operations, sorted: `remove_table hero`, `add_column hero.motto`, `rename_column ...`."""
    found = []
    for op in upgrade.ops:
        if isinstance(op, ops.ModifyTableOps):
            found += operation_labels(op)
        elif isinstance(op, ops.AlterColumnOp) and op.modify_name:
            found.append(f"rename_column {op.table_name}.{op.column_name} -> {op.modify_name}")
        else:
            diffs = op.to_diff_tuple()
            for diff in diffs if isinstance(diffs, list) else [diffs]:
                named = (
                    diff[1].name if diff[1] is not None else f"{diff[2]}.{getattr(diff[3], 'name', diff[3])}"
                )
                found.append(f"{diff[0]} {named}")
    return sorted(found)


def autogenerate(
    engine: Engine,
    metadata: MetaData,
    folder: str,
    template: Path = REVISION_TEMPLATE,
    options: dict[str, Any] = ENV_PY_COMPARE,
    review: Callable[[ops.UpgradeOps], ops.UpgradeOps] | None = None,
) -> tuple[list[str], list[str], ModuleType]:
    """`alembic revision --autogenerate` against `metadata` (`options`: the compare options), rendered
    with `template` into `folder` and loaded; `review`: a person's edit of the operations first.
    Returns (the operations generated, the operations the revision holds, the revision's module)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=options)
        script = produce_migrations(context, metadata)
        upgrade = review(script.upgrade_ops) if review else script.upgrade_ops
        body = render_python_code(upgrade, render_as_batch=is_sqlite(engine), migration_context=context)
    path = Path(folder, f"ag_{len(list(Path(folder).iterdir()))}.py")
    util.template_to_file(
        template, path, "utf-8", comma=util.format_as_comma, message="autogenerated", up_revision=path.stem,
        down_revision=None, create_date="now", branch_labels=None, depends_on=None, imports="",
        upgrades=body, downgrades="pass",
    )  # fmt: skip
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return operation_labels(script.upgrade_ops), operation_labels(upgrade), module


def run_revision(engine: Engine, module: ModuleType) -> None:
    """A revision module's upgrade() on `engine` in one transaction, as `alembic upgrade` runs it; what
    fails is rolled back and raised (on SQLite: foreign keys off while batch mode rebuilds a table)."""
    sqlite = is_sqlite(engine)
    with engine.connect() as connection:
        if sqlite:  # as Alembic advises for batch mode; and BEGIN, which pysqlite leaves out before DDL
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.exec_driver_sql("BEGIN")
        try:
            with Operations.context(MigrationContext.configure(connection)):
                module.upgrade()
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
