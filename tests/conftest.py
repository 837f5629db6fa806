"""Fixtures: every test gets a fresh, migrated database, on SQLite and on a real PostgreSQL.

- The PostgreSQL server is `TEST_DATABASE_URL` (a libpq/SQLAlchemy URL to a server where we may
  CREATE DATABASE) or, by default, an embedded server from pip started once per run. If it cannot
  start, the PostgreSQL tests error out: they are never skipped.
- The schema comes only from `alembic upgrade head`, applied once per run to a template
  (a SQLite file that is copied, a PostgreSQL template database that is cloned per test).
- Tests marked `postgres_only` / `sqlite_only` run on one engine and say why in the marker's reason.
"""

import itertools
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from heroes import migrate
from heroes.config import Settings
from heroes.db import create_db_engine
from heroes.main import create_app
from heroes.seed import seed_demo
from heroes.testing import queries  # noqa: F401  (the fixture learners reuse: heroes/testing.py)

ENGINES = ("sqlite", "postgresql")
TEMPLATE_DB = "heroes_template"
_counter = itertools.count()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise every test that touches a database over both engines (unless marked for one)."""
    if "engine_name" not in metafunc.fixturenames:
        return
    chosen = (_names(mark.args[0]) for mark in metafunc.definition.iter_markers("parametrize"))
    if any("engine_name" in names for names in chosen):
        return  # the test chooses its engine per case (tests/test_fuzz.py)
    engines = list(ENGINES)
    if metafunc.definition.get_closest_marker("postgres_only"):
        engines = ["postgresql"]
    if metafunc.definition.get_closest_marker("sqlite_only"):
        engines = ["sqlite"]
    metafunc.parametrize("engine_name", engines, indirect=True)


def _names(argnames: str | tuple[str, ...] | list[str]) -> set[str]:
    return {name.strip() for name in (argnames.split(",") if isinstance(argnames, str) else argnames)}


@pytest.fixture
def engine_name(request: pytest.FixtureRequest) -> str:
    return request.param


# ---- PostgreSQL: one server per run, one template, one database per test ------------------------------


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://) as psycopg wants it (postgresql://)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlalchemy_url(url: str, database: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql+psycopg", database=database)
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A libpq URL to a PostgreSQL server where the tests may create databases."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield libpq_url(external)
        return
    from heroes.embedded_pg import start_server

    server = start_server(tmp_path_factory.mktemp("postgres") / "data", delete_on_exit=True)
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def _admin(admin_url: str, statement: sql.Composable) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(statement)


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> str:
    """A database migrated to head, cloned by every PostgreSQL test."""
    name = f"{TEMPLATE_DB}_{os.getpid()}"
    _admin(postgres_admin_url, sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    _admin(postgres_admin_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate.upgrade(sqlalchemy_url(postgres_admin_url, name))
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, copied by every SQLite test."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def fresh_database_url(
    request: pytest.FixtureRequest, engine_name: str, tmp_path: Path, migrated: bool = True
):
    """A new, empty database for one test (migrated to head unless `migrated=False`), dropped afterwards."""
    if engine_name == "sqlite":
        path = tmp_path / f"heroes_{next(_counter)}.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    admin_url = request.getfixturevalue("postgres_admin_url")
    name = f"heroes_test_{os.getpid()}_{next(_counter)}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if migrated:
        template = request.getfixturevalue("postgres_template")
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    _admin(admin_url, create)
    request.addfinalizer(
        lambda: _admin(
            admin_url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    )
    return sqlalchemy_url(admin_url, name)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, engine_name: str, tmp_path: Path) -> str:
    """A fresh database migrated to head (`alembic upgrade head`, never create_all)."""
    return fresh_database_url(request, engine_name, tmp_path)


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, engine_name: str, tmp_path: Path) -> str:
    """A fresh database with no schema at all, for the migration tests."""
    return fresh_database_url(request, engine_name, tmp_path, migrated=False)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(settings=settings)
    yield engine
    engine.dispose()


@pytest.fixture
def app(settings: Settings, engine: Engine):
    return create_app(settings=settings, engine=engine)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    """A client of the app; an unexpected server exception fails the test with its traceback."""
    with TestClient(app) as client:
        yield client


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    """The demo cast (5 teams, 15 heroes) in the test's database."""
    seed_demo(engine)
    return engine


# ---- a live server on loopback, for real concurrent clients ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app served by uvicorn on 127.0.0.1 in a thread; its base URL. Stopped after the test."""
    config = uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
