"""Alembic from Python: the CLI, the health check and the tests migrate through these."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command, op
from alembic.config import Config
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from heroes.config import get_settings

ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = ROOT / "alembic.ini"
# The migration lessons' own revisions: one branch per lesson (branch label: its slug), run on a lesson's
# scratch database on top of the reference chain, recorded in their own version table. They teach an
# operation on the hero table; the reference schema (migrations/versions) does not need it.
LESSON_VERSIONS = ROOT / "migrations" / "lessons"
LESSON_VERSION_TABLE = "lesson_version"


def alembic_config(url: str | None = None, *, quiet: bool = True, lessons: bool = False) -> Config:
    """Alembic's Config for `url` (default: DATABASE_URL); migrations/env.py reads it from here.

    `quiet`: env.py leaves logging alone, so Alembic's INFO lines stay out of the lab's output (a scratch
    database built in front of a room). `heroes db upgrade` and the `alembic` command say what they run.
    `lessons`: the migration lessons' revisions (LESSON_VERSIONS) instead of the reference chain.
    """
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    if lessons:
        config.set_main_option("version_locations", str(LESSON_VERSIONS))
        config.attributes["version_table"] = LESSON_VERSION_TABLE
    config.attributes["database_url"] = url or get_settings().database_url
    config.attributes["quiet"] = quiet
    return config


def upgrade(url: str | None = None, revision: str = "head", *, quiet: bool = True) -> None:
    command.upgrade(alembic_config(url, quiet=quiet), revision)


def upgrade_connection(
    connection: Connection, revision: str = "head", *, empty: bool = False, lessons: bool = False
) -> None:
    """Upgrade through a connection the caller made (a lesson's scratch schema, set by its search_path).

    `empty`: the schema has no rows yet (a scratch database being built), so nothing needs building
    CONCURRENTLY: see `concurrently()`. `lessons`: `revision` is one of the lessons' (LESSON_VERSIONS).
    """
    config = alembic_config(str(connection.engine.url), lessons=lessons)
    config.attributes["connection"] = connection
    config.attributes["empty"] = empty
    command.upgrade(config, revision)


def concurrently() -> bool:
    """In a revision: build an index CONCURRENTLY, unless the database is being built empty.

    CREATE INDEX CONCURRENTLY waits for every transaction open in the database when it starts, whatever
    table it touches; a lab scratch database is built while a bad route may hold one open on purpose
    (connection-leak, shared-session), and on an empty table a plain CREATE INDEX blocks nobody.
    """
    return not op.get_context().config.attributes.get("empty", False)


# What a migration run on PostgreSQL may wait for a lock, and run one statement: an ALTER TABLE behind a
# long reader waits for its ACCESS EXCLUSIVE lock, and every query that comes after queues behind it
# (lock-queue); past lock_timeout the revision fails and can be run again, instead of stopping the table.
# migrations/env.py sets both on its connection, and writes them at the top of `alembic upgrade --sql`.
MIGRATION_LOCK_TIMEOUT = "5s"
MIGRATION_STATEMENT_TIMEOUT = "15min"  # a backfill batch or a CONCURRENTLY build on a large table


def lint_ignore(rule: str, reason: str, operations: Operations | None = None) -> None:
    """In a revision: the next statement breaks squawk's `rule` on purpose (`heroes db lint`), and why.

    Only in offline mode (`alembic upgrade --sql`, what the linter reads): two SQL comments, the reason
    then squawk's `-- squawk-ignore RULE`. A migration run against a database sends nothing.
    `operations`: outside a revision, the Operations a lesson renders with (default: the revision's op).
    """
    context = (operations or op).get_context()
    if context.as_sql:
        context.impl.output_buffer.write(f"-- {reason}\n-- squawk-ignore {rule}\n")  # right above it


def downgrade(url: str | None = None, revision: str = "-1", *, quiet: bool = True) -> None:
    command.downgrade(alembic_config(url, quiet=quiet), revision)


def downgrade_connection(connection: Connection, revision: str = "-1", *, lessons: bool = False) -> None:
    """Downgrade through a connection the caller made (a lesson's scratch schema, set by its search_path)."""
    config = alembic_config(str(connection.engine.url), lessons=lessons)
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


@lru_cache
def head_revision() -> str | None:
    """The revision the code expects (a single head: the test suite checks there is only one)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(connection: Connection, *, lessons: bool = False) -> str | None:
    """The revision the database is at, or None for a database Alembic never touched.

    `lessons`: the lessons' revisions applied on top (one row per lesson branch), joined by commas."""
    table = LESSON_VERSION_TABLE if lessons else "alembic_version"
    if not inspect(connection).has_table(table):
        return None
    rows = connection.scalars(text(f"SELECT version_num FROM {table} ORDER BY version_num")).all()
    return ",".join(rows) or None


@contextmanager
def outside_transaction() -> Iterator[None]:
    """In a revision: run the block outside the migration's transaction, each statement committed alone.

    Alembic's autocommit_block (it commits the work so far, then switches the connection to autocommit):
    what CREATE INDEX CONCURRENTLY needs, and what lets a backfill commit batch by batch. When the caller
    handed in a connection inside its own transaction, that transaction is the caller's to commit: the
    block runs in it (PostgreSQL then refuses CONCURRENTLY with its own clear error).
    """
    context = op.get_context()
    if getattr(context, "_in_external_transaction", False):
        yield
        return
    with context.autocommit_block():
        yield
