"""autogenerate-blind-spots: Alembic's autogenerate, run for real on a scratch database at head, misses a
server default unless asked, renders AutoString without importing sqlmodel (NameError at upgrade),
writes a rename as drop + add, and drops every table when env.py never imports the models."""

import pytest
from sqlalchemy import Column, Enum, create_engine, pool, text
from sqlalchemy.exc import SQLAlchemyError

from heroes.lessons import autogenerate_blind_spots as lesson
from heroes.lessons._migration import ENV_PY_COMPARE, autogenerate, run_revision
from heroes.migrate import ROOT

from support import assert_problem, report, scratch_rows

LESSON = "/lessons/autogenerate-blind-spots"
DEFAULT, MOTTO, RENAME, MODELS = (
    "hero.version gets server_default='1'",
    "hero.motto: str | None, a new field",
    "team.headquarters renamed to base",
    "the models, as env.py sees them",
)
DROP_ADD = ["add_column team.base", "remove_column team.headquarters"]
EVERY_TABLE = [
    "remove_index ix_hero_age",
    "remove_index ix_hero_created_at",
    "remove_index ix_hero_name",
    "remove_index ix_hero_team_id",
    "remove_table hero",
    "remove_table team",
]
NOT_NULL = {  # the add of a NOT NULL column, on a populated table
    "sqlite": "IntegrityError: NOT NULL constraint failed: _alembic_tmp_team.base",
    "postgresql": 'NotNullViolation: column "base" of relation "team" contains null values',
}


def cases(body: dict) -> dict[str, tuple]:
    return {c["case"]: (c["generated"], c["reviewed"], c["upgrade"]) for c in body["cases"]}


def test_bad_misses_the_default_fails_on_sqlmodel_drops_the_column_and_every_table(client, app, engine_name):
    body = report(client.post(f"{LESSON}/bad", params={"heroes": 20}))
    assert body["engine"] == engine_name
    assert cases(body) == {
        DEFAULT: ([], [], "ok"),  # compare_server_default is off: an empty revision
        MOTTO: (
            ["add_column hero.motto"],
            ["add_column hero.motto"],
            "failed: NameError: name 'sqlmodel' is not defined",
        ),
        RENAME: (DROP_ADD, DROP_ADD, f"failed: {NOT_NULL[engine_name]}"),
        MODELS: (EVERY_TABLE, EVERY_TABLE, "not run: it drops hero, team"),
    }
    assert [c["setup"] for c in body["cases"]] == [
        "Alembic's defaults: compare_server_default=False",
        "alembic init's script.py.mako: no import sqlmodel",
        "committed as generated, unread",
        "env.py never imports heroes.models",
    ]
    assert body["tables_after"] == ["hero", "team"]  # each failed revision rolled back, SQLite's batch too
    rows = "SELECT count(*), count(headquarters), count(DISTINCT version) FROM team, hero"
    assert scratch_rows(app, "autogenerate_blind_spots_bad", "SELECT count(*) FROM hero") == [(20,)]
    assert scratch_rows(app, "autogenerate_blind_spots_bad", rows) == [(20, 20, 1)]


def test_fixed_sees_the_default_imports_sqlmodel_reviews_the_rename_and_finds_nothing_at_head(client, app):
    body = report(client.post(f"{LESSON}/fixed", params={"heroes": 20}))
    assert cases(body) == {
        DEFAULT: (["modify_default hero.version"], ["modify_default hero.version"], "ok"),
        MOTTO: (["add_column hero.motto"], ["add_column hero.motto"], "ok: hero.motto added"),
        RENAME: (DROP_ADD, ["rename_column team.headquarters -> base"], "ok: 1 of 1 kept, as base"),
        MODELS: ([], [], "ok"),  # what tests/test_migrations.py's test_models_and_migrations_agree asserts
    }
    assert body["tables_after"] == ["hero", "team"]
    name = "autogenerate_blind_spots_fixed"
    assert scratch_rows(app, name, "SELECT base FROM team") == [("Tower 1",)]
    assert scratch_rows(app, name, "SELECT count(*), count(motto) FROM hero") == [(20, 0)]
    with app.state.lab.engine(name).begin() as connection:  # the default is in the database now
        connection.execute(text("INSERT INTO hero (name, secret_name) VALUES ('Raw', 'x')"))
    assert scratch_rows(app, name, "SELECT version FROM hero WHERE name = 'Raw'") == [(1,)]


def test_the_lab_set_up_is_what_fixed_uses():
    env_py = (ROOT / "migrations" / "env.py").read_text()
    assert "from heroes import models" in env_py
    assert "compare_type=True" in env_py and "compare_server_default=True" in env_py
    assert "import sqlmodel.sql.sqltypes" in (ROOT / "migrations" / "script.py.mako").read_text()
    assert "import sqlmodel" not in lesson.STOCK_TEMPLATE.read_text()


def test_myth_autogenerate_sees_every_change(database_url, engine_name, tmp_path):
    """Set up as the lab is (models imported, compare_type and compare_server_default on), autogenerate
    still writes a rename as drop + add and never sees a value added to an Enum."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            if engine_name == "postgresql":
                connection.execute(text("CREATE TYPE power AS ENUM ('flight', 'strength')"))
                connection.execute(text("ALTER TABLE hero ADD COLUMN power power"))
            else:  # SQLAlchemy's Enum on SQLite: a VARCHAR as long as the longest value
                connection.execute(text("ALTER TABLE hero ADD COLUMN power VARCHAR(8)"))

        def powers(*values: str):
            metadata = lesson.models()
            metadata.tables["hero"].append_column(Column("power", Enum(*values, name="power")))
            return metadata

        assert autogenerate(engine, powers("flight", "strength"), str(tmp_path))[0] == []
        assert autogenerate(engine, powers("flight", "strength", "speed"), str(tmp_path))[0] == []  # unseen
        renamed = lesson.models(lesson.rename)
        renamed.tables["hero"].append_column(Column("power", Enum("flight", "strength", name="power")))
        generated, _, revision = autogenerate(engine, renamed, str(tmp_path), options=ENV_PY_COMPARE)
        assert generated == DROP_ADD
        run_revision(engine, revision)  # on an empty table (a CI database) the drop runs
        with engine.connect() as connection, pytest.raises(SQLAlchemyError, match="headquarters"):
            connection.execute(text("SELECT headquarters FROM team"))  # dropped, values and all
    finally:
        engine.dispose()


def test_no_revision_lands_in_migrations(client):
    before = sorted(p.name for p in (ROOT / "migrations").rglob("*.py"))
    report(client.post(f"{LESSON}/bad", params={"heroes": 5}))
    assert sorted(p.name for p in (ROOT / "migrations").rglob("*.py")) == before


def test_compare_shows_what_each_set_up_migrates(client, engine_name):
    response = client.get(f"{LESSON}/compare", params={"size": 20})
    assert response.status_code == 200, response.text
    bad, fixed = response.json()["variants"]
    assert (
        bad["outcome"] == "0 of 3 changes migrated; 2 revisions failed; 3 tables or columns dropped in them"
    )
    assert (
        fixed["outcome"] == "3 of 3 changes migrated; 0 revisions failed; 0 tables or columns dropped in them"
    )


def test_a_size_out_of_range_is_refused_naming_the_field(client):
    assert_problem(client.post(f"{LESSON}/bad", params={"heroes": 0}), 422, field="heroes", location="query")
