"""Scratch databases: a lesson's own data, away from the reference API's, each owned by one Lab.

A Lab belongs to one app in one process (the server, a CLI run, a test). Its scratch databases are
named after it, so a `heroes lesson` run beside a serving `make run` builds and drops its own and
never the server's:

    SQLite       heroes.db.lab/<owner>/<name>.db     (a temporary folder for an in-memory database)
    PostgreSQL   the schema lab_<owner>_<name>, reached through the engine's search_path

`owner` is `p<pid>_<n>`. Each database is built by `alembic upgrade` (the real migrations), filled
once by the lesson, cached, rebuilt if it vanished meanwhile, and dropped when the app stops. What a
process that died left behind is swept when a Lab of the same database first builds (on PostgreSQL,
only schemas that a process of this host made).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateIndex, CreateTable

from heroes.async_db import AsyncEngines, create_async_db_engine
from heroes.config import Settings
from heroes.db import create_db_engine, is_sqlite
from heroes.evidence import not_recorded
from heroes.problems import logger

_labs = itertools.count()
NAME = re.compile(r"[a-z0-9_]{1,40}")
OWNER = re.compile(r"p(?P<pid>\d+)_\d+")
HOST = socket.gethostname()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class Lab:
    """The scratch databases of one app."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.main = engine
        self.settings = settings
        self.owner = f"p{os.getpid()}_{next(_labs)}"
        self._engines: dict[str, Engine] = {}
        self._populate: dict[str, tuple[Callable[[Engine], Any], str]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._tmp: Path | None = None
        self._swept = False
        self._own: dict[str, Engine] = {}  # lessons' own engines (a tiny pool to empty on purpose...)
        self._held: dict[str, list[Any]] = {}  # what bad routes leak on purpose (sessions), by engine key
        self.async_engines = AsyncEngines()  # the app's async engine ("main") and async_engine()'s

    # ---- the public face -------------------------------------------------------------------------

    def engine(
        self,
        name: str,
        populate: Callable[[Engine], Any] = lambda engine: None,
        *,
        fresh: bool = False,
        revision: str = "head",
    ) -> Engine:
        """The scratch database `name`, migrated to `revision` and populated once (again if `fresh`)."""
        if not NAME.fullmatch(name):
            raise ValueError(f"scratch database names are [a-z0-9_], 1 to 40: {name!r}")
        with self._lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:  # one builder per name; other names build meanwhile
            engine = self._engines.get(name)
            if engine is not None and not fresh and self._exists(name):
                return engine
            if engine is not None and not fresh:  # it vanished (deleted by hand): build it again
                logger.warning("scratch database %s vanished; rebuilding it", name)
                populate, revision = self._populate.get(name, (populate, revision))
            with not_recorded():  # building the data is not what the lesson's evidence is about
                if engine is not None:
                    self._drop(name, engine)
                engine = self._create(name, revision)
                populate(engine)
            self._engines[name] = engine
            self._populate[name] = (populate, revision)
            return engine

    def own_engine(
        self, key: str, name: str, populate: Callable[[Engine], Any] = lambda engine: None, **overrides: Any
    ) -> Engine:
        """A lesson's own engine `key` on its scratch database `name`, with its own pool and options
        (`overrides` as create_db_engine takes them: pool_size=2, pool_pre_ping=False, application_name=...),
        made once per Lab; `release(key)` gives back what it holds and disposes it, as close() does."""
        scratch = self.engine(name, populate)
        with self._lock:
            engine = self._own.get(key)
            if engine is None:
                url = scratch.url.render_as_string(hide_password=False)
                where = {} if is_sqlite(self.main) else {"search_path": self._schema(name)}
                engine = create_db_engine(url, self.settings, **where, **overrides)
                self._own[key] = engine
            return engine

    async def async_engine(
        self, name: str, populate: Callable[[Engine], Any] = lambda engine: None, **overrides: Any
    ) -> AsyncEngine:
        """The scratch database `name` (built and populated by engine(), in a worker thread) through its
        async driver: the same file, or on PostgreSQL the same schema by search_path; made in the running
        event loop, disposed when the scratch database is dropped. `overrides` as create_db_engine takes
        them (pool_size=2, ...): an engine per distinct set."""
        scratch = await asyncio.to_thread(self.engine, name, populate)
        url = scratch.url.render_as_string(hide_password=False)
        where = {} if is_sqlite(self.main) else {"search_path": self._schema(name)}
        key = f"{name}:{sorted(overrides.items())}"
        return await self.async_engines.get(
            key, lambda: create_async_db_engine(url, self.settings, **where, **overrides)
        )

    def hold(self, key: str, thing: Any) -> int:
        """Keep `thing` (a session a bad route leaks on purpose) referenced until release(key) closes it;
        how many are held now."""
        with self._lock:
            self._held.setdefault(key, []).append(thing)
            return len(self._held[key])

    def release(self, key: str) -> int:
        """Close what is held under `key` and dispose its own engine (made again on next use); how many."""
        with self._lock:
            held, engine = self._held.pop(key, []), self._own.pop(key, None)
        for thing in held:
            thing.close()
        if engine is not None:
            engine.dispose()
        return len(held)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._engines)

    def drop(self, prefix: str = "") -> list[str]:
        """Drop the scratch databases named `prefix` or `prefix_...` (all by default); they rebuild on use."""
        dropped = []
        for name in self.names():
            if name == prefix or name.startswith(f"{prefix}_") or not prefix:
                with self._lock:
                    lock = self._locks.setdefault(name, threading.Lock())
                with lock:
                    engine = self._engines.pop(name, None)
                    if engine is not None:
                        self._drop(name, engine)
                        dropped.append(name)
        return dropped

    def close(self) -> None:
        """Drop every scratch database of this Lab (the app is stopping)."""
        for key in set(self._own) | set(self._held):  # leaked sessions first: they hold locks on PostgreSQL
            self.release(key)
        self.async_engines.close()
        try:
            self.drop()
        except sa_exc.SQLAlchemyError as exc:  # the main database may be gone already
            logger.warning("could not drop the scratch databases: %s", type(exc).__name__)
        if is_sqlite(self.main) and self._tmp is None:
            folder = self._folder()
            shutil.rmtree(folder, ignore_errors=True)
            if folder.parent.is_dir() and not any(folder.parent.iterdir()):
                folder.parent.rmdir()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # ---- where they live ---------------------------------------------------------------------------

    def _folder(self) -> Path:
        database = make_url(str(self.main.url)).database
        if database in (None, "", ":memory:"):
            self._tmp = self._tmp or Path(tempfile.mkdtemp(prefix="heroes-lab-"))
            return self._tmp
        return Path(f"{database}.lab") / self.owner

    def _path(self, name: str) -> Path:
        return self._folder() / f"{name}.db"

    def _schema(self, name: str) -> str:
        return f"lab_{self.owner}_{name}"

    def _exists(self, name: str) -> bool:
        if is_sqlite(self.main):
            return self._path(name).exists()
        connection = self.main.raw_connection()  # the driver's own cursor: nobody's evidence, not counted
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self._schema(name),))
            return cursor.fetchone() is not None
        finally:
            connection.rollback()
            connection.close()

    def _create(self, name: str, revision: str) -> Engine:
        from heroes import migrate

        self._sweep()
        if is_sqlite(self.main):
            path = self._path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in path.parent.glob(f"{name}.db*"):
                stale.unlink()
            url = f"sqlite:///{path}"
            migrate.upgrade(url, revision)
            return create_db_engine(url, self.settings, pool_size=5, max_overflow=20)
        schema = self._schema(name)
        with self.main.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {schema}"))
            comment = f"heroes lab scratch: host {HOST} pid {os.getpid()}"
            connection.execute(text(f"COMMENT ON SCHEMA {schema} IS '{comment}'"))
        url = self.main.url.render_as_string(hide_password=False)
        engine = create_db_engine(url, self.settings, search_path=schema, pool_size=5, max_overflow=20)
        with engine.connect() as connection:  # alembic_version lands in the scratch schema too
            migrate.upgrade_connection(connection, revision, empty=True)
            connection.commit()
        return engine

    def _drop(self, name: str, engine: Engine) -> None:
        self.async_engines.close(lambda key: key.startswith(f"{name}:"))
        engine.dispose()
        if is_sqlite(self.main):
            for file in self._path(name).parent.glob(f"{name}.db*"):
                file.unlink(missing_ok=True)
        else:
            with self.main.begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {self._schema(name)} CASCADE"))

    def _sweep(self) -> None:
        """Remove what Labs of processes that no longer run left behind (a server killed with -9)."""
        if self._swept:
            return
        self._swept = True
        if is_sqlite(self.main):
            if self._tmp is not None:
                return
            for folder in self._folder().parent.glob("p*_*"):
                match = OWNER.fullmatch(folder.name)
                if match and not _alive(int(match["pid"])):
                    shutil.rmtree(folder, ignore_errors=True)
            return
        with not_recorded(), self.main.begin() as connection:
            rows = connection.execute(
                text(
                    "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace "
                    "WHERE nspname LIKE 'lab\\_p%'"
                )
            ).all()
            for schema, comment in rows:
                found = re.fullmatch(r"heroes lab scratch: host (\S+) pid (\d+)", comment or "")
                if found and found[1] == HOST and not _alive(int(found[2])):
                    connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def create_lesson_tables(connection: Connection, metadata: MetaData) -> None:
    """A lesson's own tables in its scratch database: CREATE TABLE and CREATE INDEX for each, in order.

    Only for tables of a lesson's own MetaData (never SQLModel.metadata, whose schema is Alembic's), in
    a scratch database the migrations built; spelled out as the DDL it is.
    """
    for table in metadata.sorted_tables:
        connection.execute(CreateTable(table))
        for index in table.indexes:
            connection.execute(CreateIndex(index))
