"""cascade-delete: SQLite without the pragma ignores ON DELETE CASCADE (orphans), the ORM's own cascade loads
and deletes every child, foreign keys on + passive_deletes=True is one DELETE and no orphan."""

import sqlite3

import pytest
from sqlalchemy import inspect

from heroes.lessons.cascade_delete import scratch

from support import assert_problem

URL = "/lessons/cascade-delete"


def members_of(engine, guild_id: int) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql(f"SELECT count(*) FROM member WHERE guild_id = {guild_id}").scalar()


@pytest.fixture
def lesson_db(app, client):
    return scratch(app.state.lab, 10, fresh=True)


def delete(client, variant: str, guild_id: int, members: int = 10):
    response = client.delete(f"{URL}/{variant}", params={"guild_id": guild_id, "members": members})
    assert response.status_code == 200, response.text
    return response.json(), int(response.headers["x-query-count"])


@pytest.mark.sqlite_only(reason="PostgreSQL always enforces foreign keys: only SQLite leaves the orphans")
def test_myth_sqlite_without_the_pragma_ignores_on_delete_cascade(client, lesson_db):
    body, statements = delete(client, "bad", 1)

    assert body == {"guild_id": 1, "rows_deleted_by_the_orm": 1, "orphans": 10}
    assert statements == 3  # SELECT guild, DELETE guild, the orphan count
    assert members_of(lesson_db, 1) == 10  # the cascade declared, and ignored
    plain = sqlite3.connect(lesson_db.url.database)
    try:
        assert plain.execute("PRAGMA foreign_keys").fetchone() == (0,)  # SQLite's default, per connection
        fk = plain.execute("PRAGMA foreign_key_list(member)").fetchone()
        assert (fk[2], fk[6]) == ("guild", "CASCADE")  # ON DELETE CASCADE is in the schema
        assert len(plain.execute("PRAGMA foreign_key_check(member)").fetchall()) == 10
    finally:
        plain.close()


@pytest.mark.postgres_only(
    reason="the same careless route on PostgreSQL: it enforces foreign keys regardless"
)
def test_bad_cascades_on_postgresql(client, lesson_db):
    body, statements = delete(client, "bad", 1)

    assert body == {"guild_id": 1, "rows_deleted_by_the_orm": 1, "orphans": 0}
    assert statements == 3
    assert members_of(lesson_db, 1) == 0


@pytest.mark.parametrize("members", [10, 40])
def test_the_orm_cascade_loads_and_deletes_every_member(client, app, members):
    engine = scratch(app.state.lab, members, fresh=True)
    body, statements = delete(client, "bad/orm-cascade", 2, members)

    assert body == {"guild_id": 2, "rows_deleted_by_the_orm": 1 + members, "orphans": 0}
    assert (
        statements == 5
    )  # SELECT guild, SELECT its members, DELETE member x N (executemany), DELETE guild, count
    assert members_of(engine, 2) == 0 and members_of(engine, 1) == members


@pytest.mark.parametrize("members", [10, 40])
def test_fixed_is_one_delete_and_no_orphan(client, app, members):
    engine = scratch(app.state.lab, members, fresh=True)
    body, statements = delete(client, "fixed", 3, members)

    assert body == {"guild_id": 3, "rows_deleted_by_the_orm": 1, "orphans": 0}
    assert statements == 3  # SELECT guild, one DELETE (the database deletes the members), the count
    assert members_of(engine, 3) == 0 and members_of(engine, 2) == members


def test_the_sql_of_each_variant(client, seeded):
    response = client.get(f"{URL}/compare", params={"size": 20})
    assert response.status_code == 200, response.text
    sql = {v["variant"]: [group["sql"] for group in v["sql"]] for v in response.json()["variants"]}
    deletes = {
        variant: [s.split(" WHERE")[0] for s in shapes if s.startswith("DELETE")]
        for variant, shapes in sql.items()
    }
    assert deletes["bad/orm-cascade"] == ["DELETE FROM member", "DELETE FROM guild"]  # members by the ORM
    assert deletes["fixed"] == ["DELETE FROM guild"]  # the members: by the database's ON DELETE CASCADE
    assert len(sql["bad/orm-cascade"]) == 5 and len(sql["fixed"]) == 3
    outcomes = [v["outcome"] for v in response.json()["variants"]]
    orphans = 20 if seeded.dialect.name == "sqlite" else 0
    assert outcomes == [
        f"200 OK: 1 row(s) deleted by the ORM, {orphans} orphans left",
        "200 OK: 21 row(s) deleted by the ORM, 0 orphans left",
        "200 OK: 1 row(s) deleted by the ORM, 0 orphans left",
    ]


@pytest.mark.parametrize("variant", ["bad", "bad/orm-cascade", "fixed"])
def test_a_deleted_guild_is_404(client, lesson_db, variant):
    delete(client, variant, 1)
    assert_problem(client.delete(f"{URL}/{variant}", params={"guild_id": 1, "members": 10}), 404)


def test_the_reference_api_refuses_instead(client, seeded, engine):
    """The other right answer: a team whose heroes matter on their own is not cascaded, it is refused."""
    body = assert_problem(client.delete("/teams/1"), 409)
    assert body["detail"] == "Team 1 still has 3 hero(es): move or delete them first."
    assert not {"guild", "member"} & set(inspect(engine).get_table_names())
