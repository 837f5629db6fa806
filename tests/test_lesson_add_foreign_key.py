"""add-foreign-key: on a legacy hero table (no foreign key on team_id, orphans planted), a validated ADD
FOREIGN KEY makes the next writer wait behind it and then fails on the orphans; fk_1 (NOT VALID), fk_2
(orphans to NULL) and fk_3 (VALIDATE) add it while the writer goes through. Blocked or not is observed in
pg_stat_activity, the locks in pg_locks, never guessed from a timing."""

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from heroes import migrate
from heroes.lessons._migration import HOLD, in_background, until, waits_for_a_lock
from heroes.lessons.add_foreign_key import FOREIGN_KEY, INSERT, legacy
from heroes.lint import squawk
from heroes.seed import seed_bulk

from support import report, scratch_rows

LESSON = "/lessons/add-foreign-key"
ORPHANS = [100, 200]  # every 100th hero of 200 points at team 2, which does not exist
VIOLATION = (
    f'ForeignKeyViolation: insert or update on table "hero" violates foreign key constraint "{FOREIGN_KEY}"'
)
VALIDATED = f"SELECT convalidated FROM pg_constraint WHERE conname = '{FOREIGN_KEY}'"
KEPT = "SELECT count(*), count(team_id) FROM hero"
PG = pytest.mark.postgres_only(reason="the lesson is PostgreSQL's: NOT VALID and VALIDATE")


@PG
def test_a_validated_add_foreign_key_blocks_the_next_writer_then_fails_on_the_orphans(client, app):
    body = report(client.post(f"{LESSON}/bad", params={"heroes": 200}))
    assert body["writer_blocked"] is True
    assert body["lock_wait_ms"] >= HOLD * 1000  # it could not finish before the batch job committed
    assert [step["outcome"] for step in body["steps"]] == [
        "ok: waiting for a lock",
        "ok: blocked",
        f"failed: {VIOLATION}",  # after all that waiting, the first orphan stops it
    ]
    assert body["error"] == VIOLATION
    assert (body["orphans"], body["orphans_after"]) == (ORPHANS, 2)
    assert (body["revision_from"], body["revision_to"]) == ("0007", "0007")
    assert (body["rows_before"], body["rows_after"]) == (200, 202)  # the job's hero and the writer's
    assert body["squawk"] == ["adding-foreign-key-constraint", "constraint-missing-not-valid"]
    assert scratch_rows(app, "add_foreign_key_bad", VALIDATED) == []  # no constraint: rolled back


@PG
def test_not_valid_then_the_orphans_then_validate_and_the_writer_goes_through(client, app):
    body = report(client.post(f"{LESSON}/fixed", params={"heroes": 200}))
    assert body["error"] is None
    assert [step["outcome"] for step in body["steps"][:-1]] == [
        "ok: 2 orphans",  # fk_1: the rows already there are not checked
        f"ok: refused: {VIOLATION}",  # ... the new ones are
        "ok: 2 heroes of no team",
        "ok: 0 orphans",  # fk_2
        "ok: done, the job still open",  # fk_3 does not wait for the batch job
        "ok: done",
    ]
    assert body["steps"][-1]["outcome"].startswith("ok: the writer's INSERT took ")
    assert body["writer_blocked"] is False
    assert (body["orphans"], body["orphans_after"]) == (ORPHANS, 0)
    assert (body["revision_from"], body["revision_to"]) == ("0007", "0007+fk_3")
    assert (body["rows_before"], body["rows_after"]) == (200, 202)  # every hero kept, orphans teamless
    assert body["squawk"] == []  # fk_1..fk_3 as heroes db lint renders them
    assert scratch_rows(app, "add_foreign_key_fixed", VALIDATED) == [(True,)]
    assert scratch_rows(app, "add_foreign_key_fixed", KEPT) == [(202, 200)]  # 2 orphans now teamless


@PG
def test_compare_reports_blocked_and_not_blocked(client):
    response = client.get(f"{LESSON}/compare", params={"size": 200})
    assert response.status_code == 200, response.text
    bad, fixed = response.json()["variants"]
    assert bad["outcome"].startswith(
        f"failed: {VIOLATION}; heroes 200 -> 202; at 0007; squawk: adding-foreign-key-constraint, "
        "constraint-missing-not-valid; orphans 2 -> 2; writer blocked, its INSERT took"
    )
    assert fixed["outcome"].startswith(
        "ok: 7 steps; heroes 200 -> 202; at 0007+fk_3; squawk: clean; orphans 2 -> 0; writer not blocked"
    )


def locks(connection: Connection, pid: int) -> set[tuple[str, str]]:
    query = (
        "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE l.pid = :pid AND l.granted AND c.relname IN ('hero', 'team') AND l.mode <> 'AccessShareLock'"
    )
    return {tuple(row) for row in connection.execute(text(query), {"pid": pid})}


def waits(engine, sql: str) -> bool:
    """While a migration's transaction is open: does `sql` wait for a lock? (seen in pg_stat_activity)"""
    errors = []
    with engine.connect() as other:
        other.execute(text("SET lock_timeout = '2s'"))
        work = in_background(lambda: other.execute(text(sql)), errors)
        until(lambda: not work.is_alive() or waits_for_a_lock(engine, other))
        blocked = work.is_alive() and waits_for_a_lock(engine, other)
        work.join(5)
        other.rollback()
    return blocked


def writers_and_reader(engine) -> tuple[bool, bool, bool]:
    """Does a hero's INSERT wait? a team's UPDATE? a SELECT of heroes?"""
    writer = "INSERT INTO hero (name, secret_name, team_id, version) VALUES ('Writer', 'x', 1, 1)"
    team = "UPDATE team SET headquarters = 'Elsewhere'"
    return waits(engine, writer), waits(engine, team), waits(engine, "SELECT count(*) FROM hero")


@PG
def test_myth_not_valid_then_validate_in_one_transaction_keeps_the_strong_lock(app):
    engine = app.state.lab.engine("add_foreign_key_myth", lambda e: seed_bulk(e, 1, 200), fresh=True)
    with engine.begin() as connection:
        legacy(connection)
        connection.execute(text("UPDATE hero SET team_id = 1"))  # no orphans: VALIDATE passes
    with engine.connect() as migration, engine.connect() as observer:
        pid = migration.connection.driver_connection.info.backend_pid
        op = Operations(MigrationContext.configure(migration))
        op.create_foreign_key(FOREIGN_KEY, "hero", "team", ["team_id"], ["id"], postgresql_not_valid=True)
        migration.execute(text(f"ALTER TABLE hero VALIDATE CONSTRAINT {FOREIGN_KEY}"))  # same transaction
        held = {("hero", "ShareRowExclusiveLock"), ("team", "ShareRowExclusiveLock")}
        assert held <= locks(observer, pid)  # NOT VALID's lock, still held after VALIDATE's scan
        assert writers_and_reader(engine) == (True, True, False)  # writers of both tables wait, not readers
        migration.rollback()

        op.create_foreign_key(FOREIGN_KEY, "hero", "team", ["team_id"], ["id"], postgresql_not_valid=True)
        migration.commit()  # its own transaction, as fk_1 is its own revision
        migration.execute(text(f"ALTER TABLE hero VALIDATE CONSTRAINT {FOREIGN_KEY}"))
        assert locks(observer, pid) == {("hero", "ShareUpdateExclusiveLock"), ("team", "RowShareLock")}
        assert writers_and_reader(engine) == (False, False, False)  # nobody waits
        migration.commit()


def render(*transactions: list[str]) -> str:
    """SQL as `alembic upgrade --sql` writes it: each list of statements in a transaction of its own."""
    body = "".join(
        "BEGIN;\n" + "".join(f"{s};\n" for s in statements) + "COMMIT;\n" for statements in transactions
    )
    return f"SET lock_timeout = '5s';\nSET statement_timeout = '15min';\n{body}"


def test_squawk_flags_the_myth_in_one_transaction_and_not_in_separate_ones():
    add = f"ALTER TABLE hero ADD CONSTRAINT {FOREIGN_KEY} FOREIGN KEY(team_id) REFERENCES team (id) NOT VALID"
    check = f"ALTER TABLE hero VALIDATE CONSTRAINT {FOREIGN_KEY}"
    findings = squawk(render([add, check]), "myth.sql")
    assert [f.rule for f in findings] == ["constraint-missing-not-valid"]
    assert "will block all reads" in findings[0].message  # it says reads; the myth test sees writes wait
    assert squawk(render([add], [check]), "fixed.sql") == []


@pytest.mark.parametrize("where", ["legacy", "reference head"])
def test_the_revisions_run_up_and_down_keeping_every_hero(app, engine_name, where):
    """On both engines (SQLite in batch mode) on the legacy table; on PostgreSQL also on a table that has
    the schema's key (a second, redundant one: SQLite's reflection cannot tell two identical keys apart)."""
    if where != "legacy" and engine_name == "sqlite":
        pytest.skip("SQLite: the branch is for a legacy table, without the schema's foreign key")
    name = f"add_foreign_key_round_trip_{where.split()[0]}"

    def populate(engine) -> None:
        seed_bulk(engine, 1, 200)
        if where == "legacy":
            with engine.begin() as connection:
                legacy(connection)

    engine = app.state.lab.engine(name, populate, fresh=True)
    with engine.connect() as connection:
        before = connection.execute(text("SELECT id, name, age FROM hero ORDER BY id")).all()
        migrate.upgrade_connection(connection, "add-foreign-key@head", lessons=True)
        connection.commit()
        assert migrate.current_revision(connection, lessons=True) == "fk_3"
        assert connection.execute(text(KEPT)).one() == (200, 198 if where == "legacy" else 200)
        failed = "FOREIGN KEY constraint failed|ForeignKeyViolation"
        with pytest.raises(IntegrityError, match=failed), connection.begin_nested():
            connection.execute(INSERT, {"name": "Orphan", "team": 2})  # checked: the key is there
        migrate.downgrade_connection(connection, "add-foreign-key@base", lessons=True)
        connection.commit()
        assert migrate.current_revision(connection, lessons=True) is None
        assert migrate.current_revision(connection) == migrate.head_revision()
        assert connection.execute(text("SELECT id, name, age FROM hero ORDER BY id")).all() == before


def test_the_lesson_says_what_to_run(client):
    entry = client.get(LESSON).json()
    assert entry["engines"] == ["postgresql"]
    assert "heroes db lint --lessons" in entry["more"]["Commands"]
    assert "constraint-missing-not-valid" in entry["myth"]
