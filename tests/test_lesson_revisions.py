"""The migration lessons' own revisions (migrations/lessons/): one branch per lesson, each labelled with its
lesson's slug, each revision saying what its downgrade cannot bring back, each branch run up and down on a
populated database at the reference head with every hero kept, and the reference chain never touched."""

import re

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool, text

from heroes import migrate
from heroes.lab import POSTGRESQL
from heroes.lessons import BY_SLUG, TRACKS
from heroes.seed import seed_bulk

SCRIPT = ScriptDirectory.from_config(migrate.alembic_config("sqlite://", lessons=True))
BASES = sorted(SCRIPT.get_bases())
BRANCHES = {next(iter(SCRIPT.get_revision(base).branch_labels)): base for base in BASES}


def test_each_branch_is_a_migration_lesson_with_a_straight_chain():
    migrations = {lesson.slug for lesson in TRACKS["migrations"]}
    for slug, base in BRANCHES.items():
        assert slug in migrations, slug
        assert SCRIPT.get_revision(base).down_revision is None
        chain = list(SCRIPT.walk_revisions(f"{slug}@base", f"{slug}@head"))
        for revision in chain:
            assert len(revision.revision) <= 32, revision.revision  # lesson_version.version_num
            assert revision.path.split("/")[-1].startswith(slug.replace("-", "_") + "_"), revision.path
            assert re.search(r"^Downgrade: \S", revision.module.__doc__, re.M), revision.revision
    assert len(BRANCHES) == len(BASES)  # one label per base: a branch is addressed by its lesson's slug


def test_the_reference_chain_does_not_see_them():
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    lesson_ids = {revision.revision for revision in SCRIPT.walk_revisions()}
    assert lesson_ids and not lesson_ids & {revision.revision for revision in script.walk_revisions()}


def columns(engine, table: str = "hero") -> list[str]:
    return sorted(column["name"] for column in inspect(engine).get_columns(table))


@pytest.mark.parametrize("slug", sorted(BRANCHES))
def test_every_branch_runs_up_and_down_keeping_every_hero(slug, database_url, engine_name):
    if engine_name == "sqlite" and BY_SLUG[slug].engines == POSTGRESQL:
        pytest.skip(f"{slug} is a PostgreSQL lesson: its revisions are PostgreSQL's")
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        seed_bulk(engine, 3, 10)
        before = columns(engine), columns(engine, "team")
        with engine.connect() as connection:
            migrate.upgrade_connection(connection, f"{slug}@head", lessons=True)
            connection.commit()
            assert (
                migrate.current_revision(connection, lessons=True)
                == SCRIPT.get_revision(f"{slug}@head").revision
            )
            assert connection.scalar(text("SELECT count(*) FROM hero")) == 30
            connection.commit()  # a downgrade may build CONCURRENTLY: not inside this read's transaction
            migrate.downgrade_connection(connection, f"{slug}@base", lessons=True)
            connection.commit()
            assert migrate.current_revision(connection, lessons=True) is None
            assert migrate.current_revision(connection) == migrate.head_revision()  # untouched
            assert connection.scalar(text("SELECT count(*) FROM hero")) == 30
        assert (columns(engine), columns(engine, "team")) == before
    finally:
        engine.dispose()
