"""Alembic environment: the URL from heroes' settings, SQLModel's metadata as the target.

SQLite cannot ALTER most things in place, so every revision runs in batch mode there
(Alembic copies the table, changes the copy, and swaps it in).

Each revision runs in its own transaction (as Alembic advises once a revision has an autocommit
block: 0004's batched backfill, 0006's CREATE INDEX CONCURRENTLY): an upgrade that fails stops at
the last revision that succeeded, and the locks a step takes end with that step. On PostgreSQL every
statement of a migration waits at most MIGRATION_LOCK_TIMEOUT for a lock (heroes/migrate.py says why).
"""

import logging
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, pool
from sqlmodel import SQLModel

from heroes import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from heroes.config import get_settings, normalize_database_url
from heroes.db import is_sqlite
from heroes.migrate import MIGRATION_LOCK_TIMEOUT, MIGRATION_STATEMENT_TIMEOUT

config = context.config
# Alembic's INFO lines (alembic.ini's logging) for the `alembic` command and `heroes db upgrade`; a quiet
# caller (the lab building a scratch database, `heroes lesson`) leaves logging alone: nothing below WARNING
quiet = config.attributes.get("quiet", False)
if not quiet and config.config_file_name is not None and not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def database_url() -> str:
    url = config.attributes.get("database_url") or get_settings().database_url
    return normalize_database_url(url)


def configure(connection: Connection | None = None, **kwargs) -> None:
    # a handed-in connection decides, whatever DATABASE_URL says
    sqlite = connection.dialect.name == "sqlite" if connection is not None else is_sqlite(database_url())
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=True,
        # the migration lessons' revisions (heroes.migrate.LESSON_VERSIONS) keep their own record
        version_table=config.attributes.get("version_table", "alembic_version"),
        **kwargs,
    )


def run_migrations_offline() -> None:
    """`alembic upgrade head --sql`: print the DDL for the configured database instead of running it."""
    configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    if not is_sqlite(database_url()):  # the script bounds its own waits, as an online run does
        context.execute(f"SET lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'")
        context.execute(f"SET statement_timeout = '{MIGRATION_STATEMENT_TIMEOUT}'")
    with context.begin_transaction():
        context.run_migrations()


def run_with(connection: Connection) -> None:
    configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # a caller (a test, a lesson) hands in its own connection
        run_with(connection)
        return
    # no `PRAGMA foreign_keys=ON` here: batch mode re-creates tables, which foreign keys would block.
    # On PostgreSQL a DDL statement waits at most MIGRATION_LOCK_TIMEOUT for its lock (lock-queue: while
    # it waits, every later query on the table waits behind it), then the revision fails, to be re-run.
    url = database_url()
    timeouts = f"-c lock_timeout={MIGRATION_LOCK_TIMEOUT} -c statement_timeout={MIGRATION_STATEMENT_TIMEOUT}"
    engine = create_engine(
        url, poolclass=pool.NullPool, connect_args={} if is_sqlite(url) else {"options": timeouts}
    )
    with engine.connect() as connection:
        run_with(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
