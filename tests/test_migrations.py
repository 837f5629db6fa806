"""Alembic owns the schema: one head, up and down from base, no drift from the models, offline SQL."""

import re
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, pool
from sqlmodel import SQLModel

from heroes import migrate
from heroes.config import Settings
from heroes.db import create_db_engine
from heroes.main import create_app
from heroes.seed import count_rows, seed_demo

TABLES = {"team", "hero"}


def table_names(url: str) -> set[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return migrate.current_revision(connection)
    finally:
        engine.dispose()


def test_single_head():
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert script.get_heads() == ["0001"]
    assert migrate.head_revision() == "0001"


def test_upgrade_from_base_creates_the_schema(empty_database_url):
    """The one test that builds the schema only through `alembic upgrade head` on an empty database."""
    assert table_names(empty_database_url) == set()
    assert revision_of(empty_database_url) is None

    migrate.upgrade(empty_database_url)

    assert table_names(empty_database_url) == TABLES
    assert revision_of(empty_database_url) == "0001"
    engine = create_engine(empty_database_url, poolclass=pool.NullPool)
    try:
        inspector = inspect(engine)
        assert {c["name"] for c in inspector.get_columns("team")} == {"id", "name", "headquarters"}
        assert {c["name"] for c in inspector.get_columns("hero")} == {
            "id",
            "name",
            "secret_name",
            "age",
            "team_id",
            "version",
        }
        assert [fk["referred_table"] for fk in inspector.get_foreign_keys("hero")] == ["team"]
        assert {uq["name"] for uq in inspector.get_unique_constraints("team")} == {"uq_team_name"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_database_url):
    migrate.upgrade(empty_database_url)
    migrate.downgrade(empty_database_url, "base")
    assert table_names(empty_database_url) == set()
    assert revision_of(empty_database_url) is None

    migrate.upgrade(empty_database_url)
    assert table_names(empty_database_url) == TABLES
    assert revision_of(empty_database_url) == "0001"


def test_upgrade_on_a_handed_in_connection(empty_database_url):
    """env.py migrates a connection the caller hands in (in the caller's transaction), whatever the URL."""
    config = migrate.alembic_config("sqlite://")
    engine = create_engine(empty_database_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
    assert table_names(empty_database_url) == TABLES
    assert revision_of(empty_database_url) == "0001"


def test_upgrade_twice_keeps_rows_and_base_then_head_gives_a_working_empty_schema(empty_database_url):
    """0001's downgrade drops every row (its docstring says so): after base -> head the tables are empty."""
    migrate.upgrade(empty_database_url)
    engine = create_db_engine(empty_database_url, Settings(database_url=empty_database_url))
    try:
        seed_demo(engine)
        migrate.upgrade(empty_database_url)  # already at head: nothing to do
        assert count_rows(engine) == (5, 15)
        assert revision_of(empty_database_url) == "0001"

        engine.dispose()  # no pooled connection may hold the tables while they are dropped
        migrate.downgrade(empty_database_url, "base")
        migrate.upgrade(empty_database_url)
        assert count_rows(engine) == (0, 0)

        app = create_app(settings=Settings(database_url=empty_database_url), engine=engine)
        with TestClient(app) as client:
            assert client.get("/health/ready").status_code == 200
            created = client.post("/teams", json={"name": "Preventers", "headquarters": "Sharp Tower"})
            assert created.status_code == 201, created.text
            assert created.json()["id"] == 1
            hero = client.post("/heroes", json={"name": "Rusty-Man", "secret_name": "Tommy", "team_id": 1})
            assert hero.status_code == 201, hero.text
            team = client.get("/teams/1")
            assert team.status_code == 200
            assert [h["name"] for h in team.json()["heroes"]] == ["Rusty-Man"]
    finally:
        engine.dispose()


def test_models_and_migrations_agree(database_url):
    """Autogenerate finds nothing to do: every model change came with its migration."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        engine.dispose()
    command.check(migrate.alembic_config(database_url))  # raises if autogenerate would write a revision


def test_offline_sql_renders_the_ddl(empty_database_url, capsys):
    command.upgrade(migrate.alembic_config(empty_database_url), "head", sql=True)
    ddl = capsys.readouterr().out
    assert "CREATE TABLE team" in ddl
    assert "CREATE TABLE hero" in ddl
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in ddl
    assert table_names(empty_database_url) == set()  # printed, not run


def test_the_package_never_calls_create_all():
    """The schema is Alembic's: no `metadata.create_all()` anywhere in heroes/."""
    package = Path(migrate.__file__).parent
    sources = list(package.rglob("*.py"))
    assert len(sources) > 5
    offenders = [str(p) for p in sources if re.search(r"\bcreate_all\b", p.read_text(encoding="utf-8"))]
    assert offenders == []
