"""add-unique-constraint: while a write transaction is open, ADD CONSTRAINT ... UNIQUE makes the next writer
wait behind it, then fails on the duplicates already there; the duplicate report, uq_1 (resolve them, CREATE
UNIQUE INDEX CONCURRENTLY) and uq_2 (ADD CONSTRAINT ... USING INDEX) do neither. Blocked or not is observed
in pg_stat_activity, not guessed from a timing; the revisions also run on SQLite, in batch mode."""

import pytest
from sqlalchemy import text

from heroes import migrate
from heroes.lessons._migration import HOLD
from heroes.lessons.add_unique_constraint import share_names
from heroes.seed import seed_bulk

from support import report, scratch_rows

LESSON = "/lessons/add-unique-constraint"
DUPLICATES = [
    {"name": "Hero 000001-0001", "heroes": 3, "ids": [1, 2, 3]},
    {"name": "Hero 000001-0004", "heroes": 2, "ids": [4, 5]},
]
FAILED = 'failed: UniqueViolation: could not create unique index "uq_hero_name"'
CONSTRAINT = (
    "SELECT conname, contype, conindid::regclass::text FROM pg_constraint WHERE conname = 'uq_hero_name'"
)
REFUSED = "UNIQUE constraint failed|UniqueViolation"
RENAMED = "SELECT id, name FROM hero WHERE id <= 5 ORDER BY id"


@pytest.mark.postgres_only(reason="SQLite has no concurrent index build: one writer at a time")
def test_add_constraint_blocks_the_next_writer_then_fails_on_the_duplicates(client, app):
    body = report(client.post(f"{LESSON}/bad", params={"heroes": 200}))
    assert body["writer_blocked"] is True
    assert body["lock_wait_ms"] >= HOLD * 1000  # it waited for the job, then for the failed build
    assert [step["outcome"] for step in body["steps"]] == ["ok: waiting for a lock", "ok: blocked", FAILED]
    assert body["error"] == FAILED.removeprefix("failed: ")
    assert body["duplicates"] == DUPLICATES  # there all along: nobody looked
    assert body["duplicates_after"] == 2
    assert (body["revision_from"], body["revision_to"]) == ("0007", "0007")
    assert (body["rows_before"], body["rows_after"]) == (200, 202)  # the job's hero and the writer's
    assert body["squawk"] == ["constraint-missing-not-valid", "disallowed-unique-constraint"]
    assert scratch_rows(app, "add_unique_constraint_bad", CONSTRAINT) == []


@pytest.mark.postgres_only(reason="SQLite has no concurrent index build: one writer at a time")
def test_the_report_then_uq_1_and_uq_2_and_the_writer_goes_through(client, app):
    body = report(client.post(f"{LESSON}/fixed", params={"heroes": 200}))
    assert body["writer_blocked"] is False
    assert body["lock_wait_ms"] < HOLD * 1000  # done while the batch job still held its transaction
    assert [step["outcome"] for step in body["steps"]] == [
        "ok: 2 names, 5 heroes",  # the duplicate report
        "ok: waiting for a lock",  # uq_1's CREATE UNIQUE INDEX CONCURRENTLY, for the job's transaction
        "ok: done",  # the writer
        "ok: the writer's INSERT took " + body["steps"][3]["outcome"].split("took ")[1],
        "ok: indisvalid = true",
        "ok: a constraint over the index uq_1 built: no row read",
    ]
    assert body["error"] is None
    assert body["duplicates"] == DUPLICATES
    assert body["duplicates_after"] == 0
    assert (body["revision_from"], body["revision_to"]) == ("0007", "0007+uq_2")
    assert (body["rows_before"], body["rows_after"]) == (200, 202)  # every hero kept, later ones renamed
    assert body["squawk"] == []
    scratch = "add_unique_constraint_fixed"
    assert scratch_rows(app, scratch, CONSTRAINT) == [("uq_hero_name", "u", "uq_hero_name")]
    assert scratch_rows(app, scratch, RENAMED) == [
        (1, "Hero 000001-0001"),
        (2, "Hero 000001-0001 #2"),
        (3, "Hero 000001-0001 #3"),
        (4, "Hero 000001-0004"),
        (5, "Hero 000001-0004 #5"),
    ]


@pytest.mark.postgres_only(reason="the lesson runs on PostgreSQL")
def test_compare_reports_blocked_and_not_blocked(client):
    response = client.get(f"{LESSON}/compare", params={"size": 200})
    assert response.status_code == 200, response.text
    bad, fixed = response.json()["variants"]
    squawk = "squawk: constraint-missing-not-valid, disallowed-unique-constraint"
    assert bad["outcome"].startswith(
        f"{FAILED}; heroes 200 -> 202; at 0007; {squawk}; 2 names shared -> 2; writer blocked, its INSERT"
    )
    assert fixed["outcome"].startswith(
        "ok: 6 steps; heroes 200 -> 202; at 0007+uq_2; squawk: clean; 2 names shared -> 0; writer not blocked"
    )


def test_the_revisions_run_up_and_down_keeping_every_hero(app, engine_name):
    """On both engines: SQLite in batch mode (uq_2 copies the table with UNIQUE in its CREATE TABLE)."""

    def populate(engine) -> None:
        seed_bulk(engine, 1, 20)
        with engine.begin() as connection:
            share_names(connection)

    engine = app.state.lab.engine("add_unique_constraint_round_trip", populate, fresh=True)
    with engine.connect() as connection:
        ids = connection.execute(text("SELECT id FROM hero ORDER BY id")).scalars().all()
        connection.rollback()  # CONCURRENTLY needs the connection outside a transaction
        migrate.upgrade_connection(connection, "add-unique-constraint@head", lessons=True)
        connection.commit()
        assert migrate.current_revision(connection, lessons=True) == "uq_2"
        assert connection.execute(text(RENAMED)).all()[1] == (2, "Hero 000001-0001 #2")
        duplicate = "INSERT INTO hero (name, secret_name, version) VALUES ('Hero 000001-0001', 'x', 1)"
        with pytest.raises(Exception, match=REFUSED), connection.begin_nested():
            connection.execute(text(duplicate))
        connection.rollback()
        migrate.downgrade_connection(connection, "uq_1", lessons=True)  # the unique index, no constraint
        connection.commit()
        with pytest.raises(Exception, match=REFUSED), connection.begin_nested():
            connection.execute(text(duplicate))
        connection.rollback()
        migrate.downgrade_connection(connection, "add-unique-constraint@base", lessons=True)
        connection.commit()
        assert migrate.current_revision(connection, lessons=True) is None
        assert migrate.current_revision(connection) == migrate.head_revision()
        assert connection.execute(text("SELECT id FROM hero ORDER BY id")).scalars().all() == ids
        connection.execute(text(duplicate))  # no rule left: a duplicate goes in
        connection.rollback()
        migrate.upgrade_connection(connection, "add-unique-constraint@head", lessons=True)  # again: fine
        connection.commit()
        assert migrate.current_revision(connection, lessons=True) == "uq_2"


def test_the_lesson_says_where_its_revisions_are(client):
    entry = client.get(LESSON).json()
    assert entry["engines"] == ["postgresql"]
    assert "heroes db lint --lessons" in entry["more"]["Commands"]
    assert "CREATE UNIQUE INDEX CONCURRENTLY" in entry["fix"] and "UNIQUE USING INDEX" in entry["fix"]
