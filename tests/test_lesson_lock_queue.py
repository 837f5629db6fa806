"""lock-queue: an ADD COLUMN with no lock_timeout behind an open report makes every later reader queue
behind it; revision lq_1, run with lock_timeout 200 ms and retried on 55P03, lets them through. Queued or
not is observed in pg_stat_activity (readers waiting on a Lock when the report ends), not guessed from a
timing; the reports' transaction is held the same HOLD in both."""

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from heroes import migrate
from heroes.lessons import lock_queue
from heroes.lessons._migration import squawk_operations
from heroes.lessons.lock_queue import HOLD, READERS

from support import report, scratch_rows

LESSON = "/lessons/lock-queue"
ALTER_LOCKS = (
    "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'hero'::regclass AND granted"
)
PG = pytest.mark.postgres_only(reason="the lesson runs on PostgreSQL: SQLite has no lock queue per table")


def columns(engine) -> list[str]:
    return [column["name"] for column in inspect(engine).get_columns("hero")]


@PG
def test_without_a_lock_timeout_every_reader_queues_behind_the_migration(client, app):
    body = report(client.post(f"{LESSON}/bad", params={"heroes": 200}))
    assert (body["readers"], body["readers_queued"]) == (READERS, READERS)  # all 5 still waiting at the end
    assert body["reader_max_wait_ms"] >= HOLD * 1000  # none could read before the report committed
    assert body["attempts"] == 1
    assert [step["outcome"] for step in body["steps"]] == [
        "ok: waiting for AccessExclusiveLock",
        f"ok: {READERS} waiting for a lock, 0 done",
        "ok: the migration ran on attempt 1",
    ]
    assert body["error"] is None
    assert (body["rows_before"], body["rows_after"]) == (200, 200)
    assert body["revision_to"] == migrate.head_revision()  # the lesson's Operations, not a revision
    assert body["squawk"] == ["require-lock-timeout"]
    assert "catchphrase" in columns(app.state.lab.engine("lock_queue_bad"))  # it did run, in the end


@PG
def test_lq_1_with_lock_timeout_and_retries_lets_the_readers_through(client, app):
    body = report(client.post(f"{LESSON}/fixed", params={"heroes": 200}))
    assert (body["readers"], body["readers_queued"]) == (READERS, 0)  # all done while the report still held
    assert body["reader_max_wait_ms"] < HOLD * 1000
    assert 2 <= body["attempts"] <= lock_queue.ATTEMPTS  # the first gave up: the report held hero
    assert body["steps"][0]["outcome"] == "ok: waiting for AccessExclusiveLock"
    assert body["steps"][2]["outcome"] == f"ok: the migration ran on attempt {body['attempts']}"
    assert body["error"] is None
    assert (body["revision_from"], body["revision_to"]) == ("0007", "0007+lq_1")
    assert body["squawk"] == []
    assert (body["rows_before"], body["rows_after"]) == (200, 200)
    # the round trip: lq_1 down to the branch's base and up again, every hero kept
    engine = app.state.lab.engine("lock_queue_fixed")
    with engine.connect() as connection:
        migrate.downgrade_connection(connection, "lock-queue@base", lessons=True)
        connection.commit()
        assert "catchphrase" not in columns(engine)
        assert migrate.current_revision(connection, lessons=True) is None
        migrate.upgrade_connection(connection, "lq_1", lessons=True)
        connection.commit()
    assert "catchphrase" in columns(engine)
    assert scratch_rows(app, "lock_queue_fixed", "SELECT count(*) FROM hero") == [(200,)]


@PG
def test_the_retries_are_bounded_and_the_timeout_stays_in_the_attempt(client, app, monkeypatch):
    report(client.post(f"{LESSON}/fixed", params={"heroes": 200}))
    engine = app.state.lab.engine("lock_queue_fixed")
    with engine.connect() as connection:
        migrate.downgrade_connection(connection, "lock-queue@base", lessons=True)
        connection.commit()
    monkeypatch.setattr(lock_queue, "ATTEMPTS", 2)
    with engine.connect() as holder, engine.connect() as migrating:
        lab_timeout = migrating.scalar(text("SHOW lock_timeout"))
        migrating.rollback()
        holder.execute(text("SELECT count(*) FROM hero"))  # a report that never ends, for this test
        with pytest.raises(OperationalError) as raised:
            lock_queue.with_retries(migrating)
        assert raised.value.orig.sqlstate == "55P03"  # lock_not_available, after 2 attempts
        assert migrating.scalar(text("SHOW lock_timeout")) == lab_timeout != "200ms"  # SET LOCAL: gone
        migrating.rollback()
        holder.rollback()
        assert lock_queue.with_retries(migrating) == 1  # the report gone: at once
    assert "catchphrase" in columns(engine)


@PG
def test_myth_instant_ddl_still_takes_access_exclusive(client, app):
    body = report(client.post(f"{LESSON}/bad", params={"heroes": 200}))
    assert (body["alter_lock"], body["table_rewritten"]) == ("AccessExclusiveLock", False)
    engine = app.state.lab.engine("lock_queue_bad")
    with engine.connect() as connection:  # nobody in the way: granted at once, and held to the commit
        before = connection.scalar(text("SELECT pg_relation_filenode('hero')"))
        connection.execute(text("ALTER TABLE hero ADD COLUMN motto text"))
        assert "AccessExclusiveLock" in connection.scalars(text(ALTER_LOCKS)).all()
        assert connection.scalar(text("SELECT pg_relation_filenode('hero')")) == before  # not rewritten
        connection.rollback()


@PG
def test_compare_reports_queued_and_not_queued(client):
    response = client.get(f"{LESSON}/compare", params={"size": 200})
    assert response.status_code == 200, response.text
    bad, fixed = response.json()["variants"]
    assert bad["outcome"].startswith(
        "ok: 3 steps; heroes 200 -> 200; at 0007; squawk: require-lock-timeout; 5/5 readers queued"
    )
    assert bad["outcome"].endswith("migration attempts: 1")
    assert fixed["outcome"].startswith("ok: 3 steps; heroes 200 -> 200; at 0007+lq_1; squawk: clean; 0/5")


def test_squawk_names_the_missing_lock_timeout_only_when_it_is_missing():
    assert squawk_operations(lock_queue.add_catchphrase, lock_timeout=False) == ("require-lock-timeout",)
    assert squawk_operations(lock_queue.add_catchphrase) == ()
