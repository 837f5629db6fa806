"""The myths of the lessons written before the Myth sections: each proven wrong on the pinned versions.

One test (or two) per lesson's `Myth:` paragraph, named after the lesson; the newer lessons keep their
myth's test in their own module (tests/test_lesson_missing_index.py, say).
"""

import threading
import time

import pytest
from sqlalchemy import Column, Index, Integer, MetaData, String, Table, create_engine, event, inspect, text
from sqlalchemy.exc import IntegrityError, InternalError, InvalidRequestError
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.pool import NullPool
from sqlmodel import Session, select

from heroes.evidence import count_queries, sql_shape
from heroes.lessons import BY_SLUG
from heroes.models import Team
from heroes.seed import seed_bulk


def test_every_myth_here_is_in_its_lesson():
    said = {
        "n-plus-one": ".unique()",
        "unique-violation": "SELECT first",
        "foreign-key": "PRAGMA foreign_keys=ON",
        "not-null-column": "SET NOT NULL",
        "concurrent-index": "SHARE UPDATE EXCLUSIVE",
        "drop-column": "create_all",
    }
    for slug, words in said.items():
        assert words in BY_SLUG[slug].myth, slug


# ---- n-plus-one -----------------------------------------------------------------------------------------


def test_n_plus_one_joinedload_of_a_collection_needs_unique(seeded):
    """A 2.x select() with joinedload of a collection refuses to hand out rows until .unique() is called."""
    query = select(Team).options(joinedload(Team.heroes)).order_by(Team.id)
    with Session(seeded) as session, pytest.raises(InvalidRequestError, match=r"unique\(\) method must be"):
        session.scalars(query).all()
    with Session(seeded) as session, pytest.raises(InvalidRequestError, match=r"unique\(\) method must be"):
        session.exec(query).all()  # SQLModel's exec() too
    with Session(seeded) as session, count_queries(seeded) as queries:
        teams = session.scalars(query).unique().all()
        assert len(teams) == 5 and sum(len(team.heroes) for team in teams) == 14  # the demo cast
    assert queries.count == 1


def test_n_plus_one_selectinload_is_a_second_select_of_500_ids_at_most(engine):
    """Not "the same query": one more SELECT ... IN per 500 parents (3 statements for 501 teams)."""
    seed_bulk(engine, 501, 1)
    with Session(engine) as session, count_queries(engine) as queries:
        teams = session.exec(select(Team).options(selectinload(Team.heroes))).all()
        assert sum(len(team.heroes) for team in teams) == 501
    assert queries.count == 3
    shapes = [sql_shape(statement) for statement in queries.statements[1:]]
    assert [shape.count("(500 values)") for shape in shapes] == [1, 0], shapes  # ids 1-500, then 501
    assert all(" IN (" in shape for shape in shapes), shapes


# ---- unique-violation -----------------------------------------------------------------------------------


def test_unique_violation_a_select_first_in_the_same_transaction_does_not_make_the_insert_safe(engine):
    """Two transactions each SELECT the name (not there), then both INSERT: the second still violates."""
    with Session(engine) as first, Session(engine) as second:
        for session in (first, second):
            session.begin()
            assert session.exec(select(Team).where(Team.name == "Masters of Evil")).first() is None
        first.add(Team(name="Masters of Evil", headquarters="A"))
        first.commit()
        second.add(Team(name="Masters of Evil", headquarters="B"))
        with pytest.raises(IntegrityError):
            second.commit()  # checked, in its own transaction, and it still loses at the constraint


# ---- foreign-key --------------------------------------------------------------------------------------


ORPHAN = "INSERT INTO hero (name, secret_name, version, team_id) VALUES ('O', 'x', 1, {})"


@pytest.mark.sqlite_only(reason="the myth is SQLite's: PRAGMA foreign_keys is per connection, off by default")
def test_foreign_key_sqlite_pragma_is_per_connection_off_by_default_and_ignored_in_a_transaction(
    database_url,
):
    plain = create_engine(database_url, poolclass=NullPool)  # no connect hook, a new connection each time
    try:
        with plain.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0  # off by default
            connection.exec_driver_sql("BEGIN")
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")  # inside a transaction: a no-op
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
            connection.exec_driver_sql(ORPHAN.format(99))
            connection.exec_driver_sql("COMMIT")  # the orphan is stored
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")  # outside one: on, for this connection
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            with pytest.raises(IntegrityError, match="FOREIGN KEY constraint failed"):
                connection.exec_driver_sql(ORPHAN.format(98))
        with plain.connect() as other:  # the next connection: off again
            assert other.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
            assert other.exec_driver_sql("SELECT count(*) FROM hero WHERE team_id = 99").scalar() == 1
    finally:
        plain.dispose()


# ---- not-null-column ----------------------------------------------------------------------------------


def filenode(connection, table: str) -> int:
    return connection.scalar(text(f"SELECT pg_relation_filenode('{table}')"))


@pytest.fixture
def populated(engine):
    """PostgreSQL: a table of 10,000 rows of the test's own."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE myth (id int PRIMARY KEY, x int)"))
        connection.execute(text("INSERT INTO myth SELECT i, i FROM generate_series(1, 10000) i"))
    return engine


@pytest.mark.postgres_only(reason="PostgreSQL 11+'s fast default: the myth is about its table rewrites")
def test_not_null_column_a_constant_default_does_not_rewrite_a_volatile_one_does(populated):
    with populated.begin() as connection:
        before = filenode(connection, "myth")
        connection.execute(text("ALTER TABLE myth ADD COLUMN a int NOT NULL DEFAULT 0"))
        assert filenode(connection, "myth") == before  # a constant: stored once in the catalog, no rewrite
        connection.execute(text("ALTER TABLE myth ADD COLUMN b timestamptz NOT NULL DEFAULT now()"))
        assert filenode(connection, "myth") == before  # now() is stable: evaluated once, no rewrite either
        connection.execute(text("ALTER TABLE myth ADD COLUMN c float8 NOT NULL DEFAULT random()"))
        assert filenode(connection, "myth") != before  # volatile: a value per row, the table rewritten
        assert connection.scalar(text("SELECT count(DISTINCT c) FROM myth")) == 10_000


def set_not_null(engine) -> tuple[list[str], str]:
    """ALTER TABLE myth ALTER COLUMN x SET NOT NULL: what PostgreSQL says it did (DEBUG1), and its lock."""
    with engine.begin() as connection:
        said: list[str] = []
        connection.connection.driver_connection.add_notice_handler(lambda d: said.append(d.message_primary))
        connection.execute(text("SET LOCAL client_min_messages = debug1"))
        connection.execute(text("ALTER TABLE myth ALTER COLUMN x SET NOT NULL"))
        lock = connection.scalar(
            text("SELECT mode FROM pg_locks WHERE relation = 'myth'::regclass AND pid = pg_backend_pid()")
        )
    return said, lock


@pytest.mark.postgres_only(reason="PostgreSQL's SET NOT NULL: its lock and its scan")
def test_not_null_column_set_not_null_locks_and_scans_unless_a_validated_check_proves_it(populated):
    assert set_not_null(populated) == (['verifying table "myth"'], "AccessExclusiveLock")  # a full scan
    with populated.begin() as connection:
        connection.execute(text("ALTER TABLE myth ALTER COLUMN x DROP NOT NULL"))
        connection.execute(text("ALTER TABLE myth ADD CONSTRAINT x_nn CHECK (x IS NOT NULL) NOT VALID"))
    with populated.begin() as connection:
        connection.execute(text("ALTER TABLE myth VALIDATE CONSTRAINT x_nn"))  # the scan, writers let through
    said, lock = set_not_null(populated)
    assert lock == "AccessExclusiveLock"  # still the strongest lock, but held for no scan:
    assert set(said) == {
        'existing constraints on column "myth.x" are sufficient to prove that it does not contain nulls'
    }


# ---- concurrent-index ---------------------------------------------------------------------------------


@pytest.mark.postgres_only(reason="CREATE INDEX CONCURRENTLY is PostgreSQL's")
def test_concurrent_index_is_not_lock_free_and_needs_no_raw_sql_but_no_transaction(populated):
    myth = Table("myth", MetaData(), Column("id", Integer, primary_key=True), Column("x", Integer))
    index = Index("ix_myth_x", myth.c.x, postgresql_concurrently=True)  # no raw SQL
    with populated.connect() as connection, pytest.raises(InternalError, match="inside a transaction"):
        index.create(connection)  # SQLAlchemy opened a transaction: refused
    job = populated.connect()
    job.execute(text("INSERT INTO myth VALUES (0, 0)"))  # a writer's transaction, open: CIC waits for it
    seen: list[str] = []
    builder = threading.Thread(target=build, args=(populated, index, seen))
    builder.start()
    try:
        with populated.connect() as watcher:
            deadline = time.monotonic() + 10
            while not seen and time.monotonic() < deadline:
                seen += watcher.scalars(
                    text(
                        "SELECT l.mode FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.granted "
                        "AND l.relation = 'myth'::regclass AND a.query LIKE 'CREATE INDEX CONCURRENTLY%'"
                    )
                ).all()
                watcher.rollback()  # pg_stat_activity is a snapshot per transaction: take a new one
                time.sleep(0.02)
            watcher.execute(text("INSERT INTO myth VALUES (-1, -1)"))  # another writer: not blocked by it
            watcher.commit()
    finally:
        job.commit()
        job.close()
        builder.join(10)
    assert seen and seen[0] == "ShareUpdateExclusiveLock", seen  # a lock all the same, not none
    assert "ix_myth_x" in [index["name"] for index in inspect(populated).get_indexes("myth")]


def build(engine, index, seen: list[str]) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        index.create(connection)  # CREATE INDEX CONCURRENTLY, outside any transaction


# ---- drop-column --------------------------------------------------------------------------------------


def test_drop_column_create_all_never_alters_an_existing_table(engine):
    old = MetaData()
    Table("myth", old, Column("id", Integer, primary_key=True), Column("nickname", String(100)))
    old.create_all(engine)
    new = MetaData()  # the model after a release: nickname dropped, created_at added
    Table("myth", new, Column("id", Integer, primary_key=True), Column("power", String(100)))
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    new.create_all(engine)
    assert not [statement for statement in seen if "ALTER" in statement or "CREATE" in statement]
    assert [column["name"] for column in inspect(engine).get_columns("myth")] == ["id", "nickname"]
