"""change-column-type: ALTER COLUMN age TYPE BIGINT rewrites hero (a new relfilenode) under ACCESS
EXCLUSIVE, and the writer waits; VARCHAR widened or made TEXT is not rewritten (the lock is the same);
revisions ct_1..ct_4 (a BIGINT column, a dual-write trigger, a backfill, a swap) change it without a
rewrite, the writer going on. Blocked or not is observed in pg_stat_activity; rewritten or not in
pg_relation_filenode (SQLite: the table's rootpage)."""

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import create_engine, pool, text

from heroes import migrate
from heroes.lessons.change_column_type import HOLD, snapshot
from heroes.seed import seed_bulk

from support import report, scratch_rows

LESSON = "/lessons/change-column-type"
HEROES = 20
AGES = "SELECT id, age FROM hero WHERE name <> 'Writer' ORDER BY id"
BIGINT, NAME, TEXT = "BIGINT", "VARCHAR(200)", "TEXT"  # as SQLAlchemy reflects them, on either engine


def test_bad_rewrites_hero_in_place_and_the_writer_waits(client, app, engine_name):
    body = report(client.post(f"{LESSON}/bad", params={"heroes": HEROES}))
    assert body["error"] is None
    assert body["rewritten"] is True and body["storage"][0] != body["storage"][1]
    assert body["column_types"] == {"age": BIGINT}
    assert body["heroes_kept"] is True
    assert body["squawk"] == ["changing-column-type"]
    assert (body["revision_from"], body["revision_to"]) == ("0007", "0007")
    if engine_name == "sqlite":  # batch mode: a new table, copied and renamed; nobody raced
        assert (body["writer_blocked"], body["lock_wait_ms"]) == (None, None)
        assert (body["rows_before"], body["rows_after"]) == (HEROES, HEROES)
        return
    assert body["writer_blocked"] is True
    assert body["lock_wait_ms"] >= HOLD * 1000  # it could not insert before the migration committed
    assert [step["outcome"] for step in body["steps"][:2]] == [
        "ok: done, its transaction still open",
        "ok: blocked",
    ]
    assert (body["rows_before"], body["rows_after"]) == (HEROES, HEROES + 1)


def test_fixed_swaps_in_a_bigint_column_without_a_rewrite_and_the_writer_goes_on(client, app, engine_name):
    body = report(client.post(f"{LESSON}/fixed", params={"heroes": HEROES}))
    assert body["error"] is None
    assert body["column_types"] == {"age": BIGINT}
    assert body["heroes_kept"] is True
    assert body["squawk"] == []
    assert (body["revision_from"], body["revision_to"]) == ("0007", "0007+ct_4")
    assert [step["action"][:4] for step in body["steps"] if step["action"].startswith("ct_")] == [
        "ct_1",
        "ct_2",
        "ct_3",
        "ct_4",
    ]
    if engine_name == "sqlite":  # batch mode copied hero (ct_1, ct_4): SQLite has no other way
        assert body["rewritten"] is True
        assert (body["writer_blocked"], body["lock_wait_ms"]) == (None, None)
        return
    assert body["rewritten"] is False and body["storage"][0] == body["storage"][1]
    assert body["writer_blocked"] is False
    assert [step["outcome"] for step in body["steps"][1:3]] == [
        "ok: done, its transaction still open",
        "ok: done",
    ]
    assert (body["rows_before"], body["rows_after"]) == (HEROES, HEROES + 1)
    # the writer wrote age only: the trigger (ct_1) copied it, the swap (ct_4) kept it
    assert scratch_rows(app, "change_column_type_fixed", "SELECT age FROM hero WHERE name = 'Writer'") == [
        (42,)
    ]
    index = (
        "SELECT attname FROM pg_index JOIN pg_attribute ON attrelid = indrelid AND attnum = indkey[0] "
        "WHERE indexrelid = 'ix_hero_age'::regclass"
    )
    assert scratch_rows(app, "change_column_type_fixed", index) == [("age",)]
    check = "SELECT convalidated FROM pg_constraint WHERE conrelid = 'hero'::regclass AND conname LIKE %s"
    assert scratch_rows(app, "change_column_type_fixed", check % "'ck_hero_age%'") == [(True,)]


def test_widening_a_varchar_or_making_it_text_is_not_rewritten_but_still_locks(client, engine_name):
    body = report(client.post(f"{LESSON}/fixed/widen", params={"heroes": HEROES}))
    assert body["error"] is None
    assert body["column_types"] == {
        "name": NAME,
        "secret_name": TEXT,
    }
    assert body["heroes_kept"] is True
    assert body["squawk"] == []  # flagged as changing-column-type, ignored with the reason
    if engine_name == "sqlite":
        assert body["rewritten"] is True  # batch mode copies hero for any change
        return
    assert body["rewritten"] is False and body["storage"][0] == body["storage"][1]
    assert body["writer_blocked"] is True  # no rewrite, the same ACCESS EXCLUSIVE until commit
    assert body["lock_wait_ms"] >= HOLD * 1000


@pytest.mark.postgres_only(
    reason="relfilenode: PostgreSQL's rewrite or not; SQLite's batch mode copies always"
)
@pytest.mark.parametrize(
    ("column", "new", "old", "rewritten"),
    [
        ("age", sa.BigInteger(), sa.Integer(), True),
        ("name", sa.String(200), sa.String(100), False),  # widened
        ("secret_name", sa.Text(), sa.String(100), False),
        ("name", sa.String(50), sa.String(100), True),  # narrowed: every value checked, the table rewritten
    ],
)
def test_which_type_changes_rewrite_the_table(database_url, column, new, old, rewritten):
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        seed_bulk(engine, 1, HEROES)
        before = snapshot(engine)[0]
        with engine.begin() as connection:
            Operations(MigrationContext.configure(connection)).alter_column(
                "hero", column, type_=new, existing_type=old
            )
        assert (snapshot(engine)[0] != before) is rewritten
    finally:
        engine.dispose()


def test_the_revisions_round_trip_keeping_every_age(database_url):
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        seed_bulk(engine, 2, 10)
        with engine.connect() as connection:
            ages = connection.execute(text(AGES)).all()
            connection.commit()  # each revision commits on its own (ct_3 builds CONCURRENTLY)
            migrate.upgrade_connection(connection, "ct_4", lessons=True)
            connection.commit()
            assert connection.execute(text(AGES)).all() == ages
            connection.commit()
            migrate.downgrade_connection(connection, "change-column-type@base", lessons=True)
            connection.commit()
            assert connection.execute(text(AGES)).all() == ages
            assert migrate.current_revision(connection, lessons=True) is None
    finally:
        engine.dispose()


def test_compare_runs_every_variant(client, engine_name):
    response = client.get(f"{LESSON}/compare", params={"size": HEROES})
    assert response.status_code == 200, response.text
    bad, fixed, widen = response.json()["variants"]
    rewrite = "hero not rewritten" if engine_name == "postgresql" else "hero rewritten"
    assert "squawk: changing-column-type; hero rewritten" in bad["outcome"]
    assert f"at 0007+ct_4; squawk: clean; {rewrite}" in fixed["outcome"]
    assert f"squawk: clean; {rewrite}" in widen["outcome"]
    if engine_name == "postgresql":
        assert "writer blocked" in bad["outcome"] and "writer not blocked" in fixed["outcome"]
        assert "writer blocked" in widen["outcome"]
