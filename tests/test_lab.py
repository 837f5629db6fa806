"""The lab's machinery: scratch databases with one owner, the SQL compare reports, resets, HEROES_ECHO_SQL."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from heroes.config import Settings
from heroes.evidence import SHAPES_MAX, QueryLog, sql_shape
from heroes.lab import Lab
from heroes.main import create_app
from heroes.seed import count_rows, seed_bulk

ROOT = Path(__file__).resolve().parent.parent


def scratch_schemas(engine) -> list[str]:
    with engine.connect() as connection:
        query = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'lab\\_%' ORDER BY 1"
        return list(connection.scalars(text(query)))


def lesson_answers(base: str) -> dict[str, tuple[int, str]]:
    """What the server's lesson routes answer: status and statements, for routes on four scratch databases.

    The team created through unique-violation is in the server's scratch database: a 409 the second time
    shows the database is the same one, not one rebuilt meanwhile.
    """
    with httpx.Client(base_url=base, timeout=60) as client:
        answers = {
            "unique-violation fixed": client.post(
                "/lessons/unique-violation/fixed", json={"name": "The Server's Own", "headquarters": "Here"}
            ),
            "n-plus-one fixed": client.get("/lessons/n-plus-one/fixed", params={"teams": 10}),
            "n-plus-one bad": client.get("/lessons/n-plus-one/bad", params={"teams": 10}),
            "foreign-key fixed": client.post(
                "/lessons/foreign-key/fixed", json={"name": "Orphan", "secret_name": "x", "team_id": 99}
            ),
            "detached fixed": client.get("/lessons/detached-instance/fixed", params={"hero_id": 1}),
        }
    return {name: (r.status_code, r.headers["x-query-count"]) for name, r in answers.items()}


def test_a_cli_run_beside_a_live_server_leaves_the_server_scratch_alone(live_server, seeded, database_url):
    """The instructor's room: `make run` serves, `heroes lesson ...` runs in another terminal and exits."""
    before = lesson_answers(live_server)
    assert before.pop("unique-violation fixed") == (201, "2")  # created in the server's scratch database
    assert before == {
        "n-plus-one fixed": (200, "2"),
        "n-plus-one bad": (200, "11"),
        "foreign-key fixed": (422, "1"),
        "detached fixed": (200, "1"),
    }
    environment = {**os.environ, "DATABASE_URL": database_url, "COLUMNS": "200"}
    lessons = (["n-plus-one", "--size", "10"], ["foreign-key"], ["detached-instance"], ["unique-violation"])
    for arguments in lessons:
        run = subprocess.run(
            [sys.executable, "-m", "heroes", "lesson", *arguments, "--json"],
            env=environment, cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
    after = lesson_answers(live_server)
    assert after.pop("unique-violation fixed") == (409, "1")  # the server's team is still there
    assert after == before  # its scratch databases are still there, untouched


def test_a_scratch_database_that_vanished_is_rebuilt(client, app, seeded):
    assert client.get("/lessons/n-plus-one/bad", params={"teams": 4}).headers["x-query-count"] == "5"
    lab: Lab = app.state.lab
    engine = lab.engine("n_plus_one_4")
    if seeded.dialect.name == "sqlite":
        engine.dispose()
        for file in Path(engine.url.database).parent.glob("n_plus_one_4.db*"):
            file.unlink()  # someone tidied heroes.db.lab/ by hand
    else:
        with seeded.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {lab._schema('n_plus_one_4')} CASCADE"))
    response = client.get("/lessons/n-plus-one/bad", params={"teams": 4})
    assert response.status_code == 200, response.text
    assert response.headers["x-query-count"] == "5"
    assert len(response.json()) == 4


def test_two_labs_on_one_database_own_different_scratch_databases(settings, engine, seeded):
    first, second = Lab(engine, settings), Lab(engine, settings)
    one = first.engine("shared_name", lambda e: seed_bulk(e, 2, 1))
    two = second.engine("shared_name", lambda e: seed_bulk(e, 3, 1))
    assert (count_rows(one), count_rows(two)) == ((2, 2), (3, 3))
    first.close()  # the CLI exits: only its own go
    assert count_rows(two) == (3, 3)
    assert count_rows(second.engine("shared_name")) == (3, 3)  # still there, not rebuilt
    second.close()
    if engine.dialect.name == "postgresql":
        assert scratch_schemas(engine) == []
    else:
        assert not Path(f"{engine.url.database}.lab").exists()


def test_what_a_dead_process_left_behind_is_swept(settings, engine, seeded):
    dead = 4_000_000  # above the kernel's pid_max: no process has it
    if engine.dialect.name == "sqlite":
        leftover = Path(f"{engine.url.database}.lab") / f"p{dead}_0"
        leftover.mkdir(parents=True)
        (leftover / "n_plus_one_10.db").write_bytes(b"")
    else:
        from heroes.lab.scratch import HOST

        with engine.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA lab_p{dead}_0_n_plus_one_10"))
            comment = f"heroes lab scratch: host {HOST} pid {dead}"
            connection.execute(text(f"COMMENT ON SCHEMA lab_p{dead}_0_n_plus_one_10 IS '{comment}'"))
            connection.execute(text("CREATE SCHEMA lab_p1_0_someone_elses"))  # no comment: not ours to drop
    lab = Lab(engine, settings)
    lab.engine("fresh")
    if engine.dialect.name == "sqlite":
        assert not leftover.exists()
    else:
        assert set(scratch_schemas(engine)) == {"lab_p1_0_someone_elses", lab._schema("fresh")}
    lab.close()


# ---- the SQL compare reports -----------------------------------------------------------------------


def test_compare_reports_the_statements_grouped_by_shape(client, seeded):
    response = client.get("/lessons/n-plus-one/compare", params={"size": 10})
    assert response.status_code == 200, response.text
    variants = {v["variant"]: v for v in response.json()["variants"]}
    bad = [(group["count"], group["sql"]) for group in variants["bad"]["sql"]]
    assert [count for count, _ in bad] == [10, 1]  # one per team, then the teams
    assert bad[0][1].startswith("SELECT hero.") and "FROM hero WHERE ? = hero.team_id" in bad[0][1]
    assert bad[1][1].startswith("SELECT team.") and "ORDER BY team.id" in bad[1][1]
    fixed = variants["fixed"]["sql"]
    assert [group["count"] for group in fixed] == [1, 1]
    assert "IN (?, ... (10 values))" in fixed[1]["sql"] or "IN (?, ... (10 values))" in fixed[0]["sql"]
    assert [group["count"] for group in variants["fixed/joinedload"]["sql"]] == [1]
    assert all(v["other_statements"] == 0 for v in variants.values())
    assert "secret" not in response.text.lower()


def test_a_statement_shape_is_text_only_and_small():
    sqlite = "SELECT hero.id FROM hero WHERE hero.team_id IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    postgres = "SELECT hero.id FROM hero WHERE hero.team_id IN (%(p_1)s, %(p_2)s, %(p_3)s::INTEGER)"
    assert sql_shape(sqlite) == "SELECT hero.id FROM hero WHERE hero.team_id IN (?, ... (12 values))"
    assert sql_shape(postgres) == "SELECT hero.id FROM hero WHERE hero.team_id IN (?, ?, ?)"
    rows = "INSERT INTO team (name, headquarters) VALUES (?, ?), (?, ?), (?, ?), (?, ?)"
    assert sql_shape(rows) == "INSERT INTO team (name, headquarters) VALUES (?, ?), ... (4 rows)"
    private = "INSERT INTO hero (name, secret_name) VALUES (:name, 'Dive Wilson')"
    assert sql_shape(private) == "INSERT INTO hero (name, <private>) VALUES (?, '…')"
    assert sql_shape("SELECT 1\n  FROM   team") == "SELECT 1 FROM team"


def test_a_log_keeps_a_bounded_number_of_shapes():
    log = QueryLog(keep_statements=False, shapes={})
    for n in range(SHAPES_MAX + 25):
        log.record(f"SELECT {n} FROM team", 0.0)  # a different literal: a different shape each time
        log.record(f"SELECT {n} FROM team", 0.0)
    assert log.count == 2 * (SHAPES_MAX + 25)
    assert len(log.shapes) == SHAPES_MAX and log.other_statements == 50
    assert log.grouped()[0] == ("SELECT 0 FROM team", 2)


# ---- resets ------------------------------------------------------------------------------------------


def test_reset_gives_a_lesson_its_starting_data_back(client, app, seeded):
    orphan = {"name": "Orphan", "secret_name": "x", "team_id": 1}
    assert client.post("/lessons/foreign-key/bad", json=orphan).status_code == 201
    assert count_rows(app.state.lab.engine("foreign_key")) == (5, 16)
    response = client.post("/lessons/foreign-key/reset")
    assert response.json() == {"lessons": ["foreign-key"], "dropped": ["foreign_key"]}
    assert client.post("/lessons/foreign-key/bad", json=orphan).json()["id"] == 16  # the same id again
    client.get("/lessons/n-plus-one/fixed", params={"teams": 3})
    response = client.post("/lessons/reset")
    assert response.status_code == 200
    assert sorted(response.json()["dropped"]) == ["foreign_key", "n_plus_one_3"]
    assert app.state.lab.names() == []
    assert client.post("/lessons/n-plus-two/reset").status_code == 404


# ---- HEROES_ECHO_SQL --------------------------------------------------------------------------------


def test_echo_sql_logs_each_statement_once_with_its_request(database_url, seeded):
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("heroes.sql").addHandler(handler)
    try:
        app = create_app(Settings(database_url=database_url, echo_sql=True))
        with TestClient(app) as client:
            client.get("/teams/1")
            created = client.post("/heroes", json={"name": "Echo", "secret_name": "Never Logged"})
    finally:
        logging.getLogger("heroes.sql").removeHandler(handler)
    assert created.status_code == 201
    reads = [r for r in records if r.startswith("GET /teams/1 | ")]
    assert len(reads) == 2  # the team, then its heroes: each once
    assert reads[0].startswith("GET /teams/1 | SELECT team.")
    writes = [r for r in records if r.startswith("POST /heroes | ")]
    assert any("INSERT INTO hero" in r for r in writes)
    assert not any("Never Logged" in r for r in records)  # the text, never the parameters
    assert len(records) == len(reads) + len(writes)


@pytest.mark.parametrize("name", ["x; DROP TABLE hero", "UPPER", "x" * 41, ""])
def test_scratch_names_are_checked(app, name):
    with pytest.raises(ValueError, match="scratch database names"):
        app.state.lab.engine(name)


@pytest.mark.postgres_only(reason="CREATE INDEX CONCURRENTLY (revision 0006) waits for open transactions")
def test_a_scratch_database_builds_while_a_transaction_is_open(settings, engine, seeded):
    """A bad route may hold a transaction open on purpose (connection-leak, shared-session); building
    another lesson's scratch database must not wait for it (an empty table needs no CONCURRENTLY)."""
    quick = settings.model_copy(update={"statement_timeout_ms": 3000})
    lab = Lab(engine, quick)
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as holder:
        holder.execute(text("SELECT count(*) FROM team"))  # idle in transaction, its snapshot held
        scratch = lab.engine("while_open", lambda e: seed_bulk(e, 2, 1))
        assert count_rows(scratch) == (2, 2)
        holder.rollback()
    with scratch.connect() as connection:
        query = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'hero'"
        assert "ix_hero_created_at" in set(connection.scalars(text(query)))
    lab.close()
