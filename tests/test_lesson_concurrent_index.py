"""concurrent-index: while a write transaction is open, a plain CREATE INDEX makes the next writer wait
behind it; revision 0006 (CREATE INDEX CONCURRENTLY) does not. Blocked or not is observed in
pg_stat_activity (the writer waiting on a lock), not guessed from a timing."""

import pytest

from heroes.lessons._migration import HOLD

from support import report, scratch_rows

LESSON = "/lessons/concurrent-index"
INDEX = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_hero_created_at'::regclass"


@pytest.mark.postgres_only(reason="SQLite has no concurrent index build: one writer at a time")
def test_a_plain_create_index_blocks_the_next_writer(client, app):
    body = report(client.post(f"{LESSON}/bad", params={"heroes": 1000}))
    assert body["writer_blocked"] is True
    assert body["lock_wait_ms"] >= HOLD * 1000  # it could not finish before the batch job committed
    assert [step["outcome"] for step in body["steps"][:2]] == ["ok: waiting for a lock", "ok: blocked"]
    assert body["error"] is None
    assert (body["rows_before"], body["rows_after"]) == (1000, 1002)  # the job's hero and the writer's
    assert body["squawk"] == ["require-concurrent-index-creation"]
    assert scratch_rows(app, "concurrent_index_bad", INDEX) == [(True,)]  # built, in the end


@pytest.mark.postgres_only(reason="SQLite has no concurrent index build: one writer at a time")
def test_revision_0006_builds_concurrently_and_the_writer_goes_through(client, app):
    body = report(client.post(f"{LESSON}/fixed", params={"heroes": 1000}))
    assert body["writer_blocked"] is False
    assert body["lock_wait_ms"] < HOLD * 1000  # done while the batch job still held its transaction
    assert [step["outcome"] for step in body["steps"][:2]] == ["ok: waiting for a lock", "ok: done"]
    assert body["error"] is None
    assert (body["revision_from"], body["revision_to"]) == ("0005", "0006")
    assert body["squawk"] == []
    assert (body["rows_before"], body["rows_after"]) == (1000, 1002)
    assert scratch_rows(app, "concurrent_index_fixed", INDEX) == [(True,)]  # valid, not left INVALID


@pytest.mark.postgres_only(reason="SQLite has no concurrent index build: one writer at a time")
def test_a_failed_unique_build_leaves_an_invalid_index_and_if_not_exists_keeps_it(client, app):
    body = report(client.post(f"{LESSON}/bad/invalid", params={"heroes": 200}))
    failed = 'failed: UniqueViolation: could not create unique index "ux_hero_name"'
    assert [step["outcome"] for step in body["steps"]] == [
        "ok: waiting for a lock",  # for the batch job's transaction, its index not ready yet
        "ok: done",  # the writer's second Writer: nothing checks it, and nobody blocks it
        failed,  # the build, once the job committed, finds the two Writers
        "ok: indisvalid = false",  # the failed build left its index
        "ok: indisvalid = false",  # the duplicate gone, IF NOT EXISTS built nothing
        "ok: indisvalid = true",  # REINDEX INDEX CONCURRENTLY
    ]
    assert body["error"] == failed.removeprefix("failed: ")
    assert body["writer_blocked"] is False
    assert (body["revision_from"], body["revision_to"]) == ("0005", "0005")
    assert (body["rows_before"], body["rows_after"]) == (200, 202)
    assert body["squawk"] == []  # the linter sees a CONCURRENTLY build: nothing to say
    unique = "SELECT indisvalid, indisready FROM pg_index WHERE indexrelid = 'ux_hero_name'::regclass"
    assert scratch_rows(app, "concurrent_index_invalid", unique) == [(True, True)]
    writers = "SELECT id, name FROM hero WHERE name LIKE 'Writer%' ORDER BY id"
    assert scratch_rows(app, "concurrent_index_invalid", writers) == [(1, "Writer"), (202, "Writer 202")]


@pytest.mark.postgres_only(reason="the lesson runs on PostgreSQL")
def test_compare_reports_blocked_and_not_blocked(client):
    response = client.get(f"{LESSON}/compare", params={"size": 1000})
    assert response.status_code == 200, response.text
    bad, fixed, invalid = response.json()["variants"]
    head = "ok: 3 steps; heroes 1000 -> 1002"
    squawk = "squawk: require-concurrent-index-creation"
    assert bad["outcome"].startswith(f"{head}; at 0005; {squawk}; writer blocked, its INSERT")
    assert fixed["outcome"].startswith(f"{head}; at 0006; squawk: clean; writer not blocked, its")
    failed = 'failed: UniqueViolation: could not create unique index "ux_hero_name"'
    assert invalid["outcome"].startswith(f"{failed}; heroes 1000 -> 1002; at 0005; squawk: clean; writer not")
    assert invalid["outcome"].endswith(
        "; then indisvalid = false; then indisvalid = false; then indisvalid = true"
    )


def test_the_lesson_says_what_to_run(client):
    entry = client.get(LESSON).json()
    assert entry["engines"] == ["postgresql"]
    assert "heroes db upgrade 0006" in entry["more"]["Commands"]
    assert "alembic upgrade 0005:0006 --sql" in entry["more"]["Commands"]
