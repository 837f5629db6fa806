"""Alembic owns the schema: one head, every step up and down, no drift from the models, offline SQL,
and rows kept across upgrade -> downgrade -> upgrade except what a revision's docstring says it drops."""

import ast
import re
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, pool, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

from heroes import migrate
from heroes.config import Settings
from heroes.db import create_db_engine
from heroes.evidence import count_queries
from heroes.main import create_app
from heroes.seed import count_rows, seed_bulk, seed_demo

from support import rows

TABLES = {"team", "hero"}
REVISIONS = ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]
HEAD = REVISIONS[-1]
HERO_0001 = {"id", "name", "secret_name", "age", "team_id", "version"}
HERO_COLUMNS = {  # the hero table after each revision
    "0001": HERO_0001,
    "0002": HERO_0001 | {"nickname"},
    "0003": HERO_0001 | {"nickname", "created_at"},
    "0004": HERO_0001 | {"nickname", "created_at"},
    "0005": HERO_0001 | {"nickname", "created_at"},
    "0006": HERO_0001 | {"nickname", "created_at"},
    "0007": HERO_0001 | {"created_at"},
}
HERO_INDEXES = {"ix_hero_age", "ix_hero_name", "ix_hero_team_id"}
# every column a downgrade keeps, in a stable order (created_at is checked on its own: 0003 drops it)
KEPT = "id, name, secret_name, age, team_id, version"


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


def execute(url: str, sql: str) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text(sql))
    finally:
        engine.dispose()


def hero_schema(url: str) -> tuple[set[str], set[str], bool | None]:
    """(columns, indexes, created_at nullable?) of the hero table."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        inspector = inspect(engine)
        columns = {c["name"]: c for c in inspector.get_columns("hero")}
        indexes = {i["name"] for i in inspector.get_indexes("hero")}
        created_at = columns.get("created_at")
        return set(columns), indexes, None if created_at is None else created_at["nullable"]
    finally:
        engine.dispose()


def populate(url: str, heroes: int = 2500) -> None:
    """`heroes` heroes (10 per team) written with raw INSERT/COPY, which works at every revision."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        seed_bulk(engine, heroes // 10, 10)
    finally:
        engine.dispose()


def test_single_head_and_a_straight_chain():
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert script.get_heads() == [HEAD]
    assert migrate.head_revision() == HEAD
    chain = [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]
    assert chain == REVISIONS


def test_every_revision_says_what_its_downgrade_brings_back():
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    for revision in REVISIONS:
        doc = script.get_revision(revision).module.__doc__
        assert re.search(r"^Downgrade: \S", doc, re.M), revision
    assert "cannot bring back a single nickname" in script.get_revision("0007").module.__doc__


def test_upgrade_from_base_creates_the_schema(empty_database_url):
    """The one test that builds the schema only through `alembic upgrade head` on an empty database."""
    assert table_names(empty_database_url) == set()
    assert revision_of(empty_database_url) is None

    migrate.upgrade(empty_database_url)

    assert table_names(empty_database_url) == TABLES
    assert revision_of(empty_database_url) == HEAD
    engine = create_engine(empty_database_url, poolclass=pool.NullPool)
    try:
        inspector = inspect(engine)
        assert {c["name"] for c in inspector.get_columns("team")} == {"id", "name", "headquarters"}
        assert {c["name"] for c in inspector.get_columns("hero")} == HERO_COLUMNS[HEAD]
        created_at = next(c for c in inspector.get_columns("hero") if c["name"] == "created_at")
        assert created_at["nullable"] is False
        assert "CURRENT_TIMESTAMP" in str(created_at["default"])
        assert {i["name"] for i in inspector.get_indexes("hero")} == HERO_INDEXES | {"ix_hero_created_at"}
        assert [fk["referred_table"] for fk in inspector.get_foreign_keys("hero")] == ["team"]
        assert {uq["name"] for uq in inspector.get_unique_constraints("team")} == {"uq_team_name"}
        assert {ck["name"] for ck in inspector.get_check_constraints("hero")} == {
            "ck_hero_age_range",
            "ck_hero_name_length",
        }  # SQLite's table rebuilds (0003, 0005) kept them
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_database_url):
    migrate.upgrade(empty_database_url)
    migrate.downgrade(empty_database_url, "base")
    assert table_names(empty_database_url) == set()
    assert revision_of(empty_database_url) is None

    migrate.upgrade(empty_database_url)
    assert table_names(empty_database_url) == TABLES
    assert revision_of(empty_database_url) == HEAD


def test_every_step_down_and_up(empty_database_url):
    """head -> base one revision at a time, then back up one at a time: each step lands where it says."""
    url = empty_database_url
    migrate.upgrade(url)
    for below in reversed(["base", *REVISIONS[:-1]]):
        migrate.downgrade(url, "-1")
        assert revision_of(url) == (None if below == "base" else below)
        if below != "base":
            columns, indexes, _ = hero_schema(url)
            assert columns == HERO_COLUMNS[below], below
            assert indexes == HERO_INDEXES | ({"ix_hero_created_at"} if below == "0006" else set())
    assert table_names(url) == set()
    for revision in REVISIONS:
        migrate.upgrade(url, "+1")
        assert revision_of(url) == revision
        columns, _, nullable = hero_schema(url)
        assert columns == HERO_COLUMNS[revision], revision
        assert nullable is (None if revision < "0003" else revision < "0005"), revision


def test_a_populated_database_keeps_every_row_down_to_0001_and_back(empty_database_url):
    """Down to 0001 and back to head with 2500 heroes: every row and value comes back except what the
    docstrings say is dropped: created_at (0003's downgrade; the next upgrade stamps the heroes anew)."""
    url = empty_database_url
    migrate.upgrade(url)
    populate(url)
    before = rows(url, f"SELECT {KEPT} FROM hero ORDER BY id")
    stamps = rows(url, "SELECT id, created_at FROM hero ORDER BY id")
    assert len(before) == 2500 and all(stamp is not None for _, stamp in stamps)

    for below in ["0006", "0005", "0004", "0003", "0002", "0001"]:
        migrate.downgrade(url, below)
        assert rows(url, f"SELECT {KEPT} FROM hero ORDER BY id") == before, below
        if below >= "0003":  # created_at is still there, with every value
            assert rows(url, "SELECT id, created_at FROM hero ORDER BY id") == stamps, below
    assert rows(url, "SELECT count(*) FROM team") == [(250,)]

    migrate.upgrade(url)
    assert revision_of(url) == HEAD
    assert rows(url, f"SELECT {KEPT} FROM hero ORDER BY id") == before
    assert rows(url, "SELECT count(*) FROM hero WHERE created_at IS NULL") == [(0,)]  # stamped again


@pytest.mark.parametrize("down_to", ["0006", "0005", "0004", "0003"])
def test_one_step_round_trips_keep_the_timestamps(empty_database_url, down_to):
    url = empty_database_url
    migrate.upgrade(url)
    populate(url, 100)
    before = rows(url, f"SELECT {KEPT}, created_at FROM hero ORDER BY id")
    migrate.downgrade(url, down_to)
    migrate.upgrade(url)
    # down to 0003 included: 0004's downgrade keeps every timestamp, and its upgrade skips them
    assert rows(url, f"SELECT {KEPT}, created_at FROM hero ORDER BY id") == before


def test_dropping_the_nickname_loses_every_value_a_downgrade_cannot_bring_back(empty_database_url):
    """0007's docstring: its downgrade adds the column back, empty. So does the next step, 0002's."""
    url = empty_database_url
    migrate.upgrade(url, "0006")
    populate(url, 100)
    execute(url, "UPDATE hero SET nickname = 'Nick ' || id")
    before = rows(url, f"SELECT {KEPT}, created_at FROM hero ORDER BY id")

    migrate.upgrade(url, "0007")
    migrate.downgrade(url, "0006")

    assert "nickname" in hero_schema(url)[0]  # the column is back ...
    assert rows(url, "SELECT count(*), count(nickname) FROM hero") == [(100, 0)]  # ... and every value gone
    assert rows(url, f"SELECT {KEPT}, created_at FROM hero ORDER BY id") == before  # the rest is kept


def test_expand_leaves_the_old_rows_to_the_backfill_and_stamps_new_ones(empty_database_url):
    url = empty_database_url
    migrate.upgrade(url, "0002")
    populate(url, 100)
    migrate.upgrade(url, "0003")
    assert rows(url, "SELECT count(*), count(created_at) FROM hero") == [(100, 0)]  # not filled by ADD COLUMN
    execute(url, "INSERT INTO hero (name, secret_name, version) VALUES ('New', 'x', 1)")
    assert rows(url, "SELECT count(created_at) FROM hero WHERE name = 'New'") == [(1,)]  # the server default


def test_the_backfill_updates_1000_rows_per_statement_each_committed(empty_database_url):
    url = empty_database_url
    migrate.upgrade(url, "0002")
    populate(url)  # ids 1 to 2500: three batches
    migrate.upgrade(url, "0003")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with count_queries(engine) as queries, engine.connect() as connection:
            migrate.upgrade_connection(connection, "0004")
    finally:
        engine.dispose()
    updates = [s for s in queries.statements if s.startswith("UPDATE hero SET created_at")]
    assert len(updates) == 3
    assert all("hero.id BETWEEN" in s and "created_at IS NULL" in s for s in updates)
    assert rows(url, "SELECT count(*), count(created_at) FROM hero") == [(2500, 2500)]


def test_the_contract_refuses_while_a_hero_has_no_value(empty_database_url):
    """0005 checks before it changes anything (SQLite's rebuild would leave its half-built copy)."""
    url = empty_database_url
    migrate.upgrade(url, "0002")
    populate(url, 20)
    migrate.upgrade(url, "0003")
    command.stamp(migrate.alembic_config(url), "0004")  # pretend the backfill ran: it did not
    with pytest.raises(RuntimeError, match="20 heroes have no created_at: run 0004"):
        migrate.upgrade(url, "0005")
    assert revision_of(url) == "0004"
    assert hero_schema(url)[2] is True
    assert table_names(url) == TABLES  # no _alembic_tmp_hero left behind


def test_upgrade_on_a_handed_in_connection(empty_database_url, engine_name):
    """env.py migrates a connection the caller hands in, in the caller's transaction if it began one.

    PostgreSQL refuses 0006's CREATE INDEX CONCURRENTLY inside that transaction, and the caller's
    rollback leaves nothing behind; a connection handed in outside a transaction (as the lessons'
    scratch databases do) lets each revision commit on its own, and goes to head."""
    config = migrate.alembic_config("sqlite://")
    engine = create_engine(empty_database_url, poolclass=pool.NullPool)
    try:
        if engine_name == "postgresql":
            with (
                pytest.raises(
                    SQLAlchemyError, match="CREATE INDEX CONCURRENTLY cannot run inside a transaction"
                ),
                engine.begin() as connection,
            ):
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            assert table_names(empty_database_url) == set()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0005" if engine_name == "postgresql" else "head")
        with engine.connect() as connection:
            migrate.upgrade_connection(connection, "head")
            connection.commit()
    finally:
        engine.dispose()
    assert table_names(empty_database_url) == TABLES
    assert revision_of(empty_database_url) == HEAD


def test_upgrade_twice_keeps_rows_and_base_then_head_gives_a_working_empty_schema(empty_database_url):
    """0001's downgrade drops every row (its docstring says so): after base -> head the tables are empty."""
    migrate.upgrade(empty_database_url)
    engine = create_db_engine(empty_database_url, Settings(database_url=empty_database_url))
    try:
        seed_demo(engine)
        migrate.upgrade(empty_database_url)  # already at head: nothing to do
        assert count_rows(engine) == (5, 15)
        assert revision_of(empty_database_url) == HEAD

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
            assert hero.json() == {"id": 1, "name": "Rusty-Man", "age": None, "team_id": 1, "version": 1}
            team = client.get("/teams/1")
            assert team.status_code == 200
            assert [h["name"] for h in team.json()["heroes"]] == ["Rusty-Man"]
        assert rows(empty_database_url, "SELECT count(created_at) FROM hero") == [(1,)]  # the server default
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


def test_offline_sql_renders_the_ddl(empty_database_url, engine_name, capsys):
    command.upgrade(migrate.alembic_config(empty_database_url), "head", sql=True)
    ddl = capsys.readouterr().out
    assert "CREATE TABLE team" in ddl
    assert "CREATE TABLE hero" in ddl
    assert "ALTER TABLE hero ADD COLUMN created_at" in ddl
    assert "UPDATE hero SET created_at=CURRENT_TIMESTAMP WHERE hero.created_at IS NULL;" in ddl
    assert "ALTER TABLE hero DROP COLUMN nickname;" in ddl
    assert f"UPDATE alembic_version SET version_num='{HEAD}'" in ddl
    if engine_name == "postgresql":
        assert "ALTER TABLE hero ALTER COLUMN created_at SET DEFAULT CURRENT_TIMESTAMP;" in ddl
        assert "CHECK (created_at IS NOT NULL) NOT VALID;" in ddl
        assert "ALTER TABLE hero ALTER COLUMN created_at SET NOT NULL;" in ddl
        # outside any transaction: the migration's transaction is committed first, a new one begun after
        assert (
            "COMMIT;\n\nCREATE INDEX CONCURRENTLY ix_hero_created_at ON hero (created_at);\n\nBEGIN;" in ddl
        )
    else:  # SQLite changes a default or a NOT NULL by rebuilding the table (batch mode)
        assert ddl.count("CREATE TABLE _alembic_tmp_hero") == 2
        assert "created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL" in ddl
        assert "CREATE INDEX ix_hero_created_at ON hero (created_at);" in ddl
    assert table_names(empty_database_url) == set()  # printed, not run


def test_offline_sql_of_a_range_renders_only_that_range(empty_database_url, capsys):
    """`alembic upgrade 0002:0005 --sql`: the not-null-column lesson's three steps, to read before running."""
    command.upgrade(migrate.alembic_config(empty_database_url), "0002:0005", sql=True)
    ddl = capsys.readouterr().out
    assert re.findall(r"-- Running upgrade (\S+ -> \S+)", ddl) == [
        "0002 -> 0003",
        "0003 -> 0004",
        "0004 -> 0005",
    ]
    assert "CREATE TABLE team" not in ddl


def test_the_package_never_calls_create_all():
    """The schema is Alembic's: no `metadata.create_all()` anywhere in heroes/."""
    package = Path(migrate.__file__).parent
    sources = list(package.rglob("*.py"))
    assert len(sources) > 5
    calls = [  # a call, wherever it is; the word in a docstring (drop-column's Myth) is no call
        f"{p}:{node.lineno}"
        for p in sources
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "create_all"
    ]
    assert calls == []
