"""`heroes db lint`: squawk on each revision's PostgreSQL SQL. The reference chain is clean because its
revisions bound their waits and say why they break a rule, not because the linter sees nothing."""

import re

import psycopg
import pytest
from conftest import libpq_url
from sqlalchemy import exc as sa_exc
from typer.testing import CliRunner

from heroes import migrate
from heroes.cli import app
from heroes.lint import lint_chain, revision_sql, squawk

runner = CliRunner()


def test_the_reference_chain_is_clean():
    result = runner.invoke(app, ["db", "lint"])

    assert result.exit_code == 0, result.output
    revisions = re.findall(r"^(\d{4})  .*  clean$", result.output, flags=re.M)
    assert revisions == ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]
    assert "7 revisions, 0 finding(s); squawk --pg-version=16" in result.output


def test_without_its_ignore_comments_each_deliberate_break_is_found():
    revisions = {revision.revision: revision for revision in lint_chain()}
    found = {}
    for name, revision in revisions.items():
        bare = re.sub(r"^-- squawk-ignore .*\n", "", revision.sql, flags=re.M)
        found[name] = sorted({finding.rule for finding in squawk(bare, f"{name}.sql")})

    assert found == {
        "0001": [],
        "0002": [],
        "0003": [],
        "0004": [],
        "0005": ["ban-drop-constraint"],  # the CHECK that spared SET NOT NULL its scan
        "0006": [],
        "0007": ["ban-drop-column"],  # nickname's deprecation cycle, last step
    }


def test_every_ignore_gives_its_reason_on_the_line_above():
    for revision in lint_chain():
        lines = revision.sql.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("-- squawk-ignore "):
                reason = lines[i - 1]
                assert reason.startswith("-- ") and len(reason) > 20, (revision.revision, reason)


def test_without_the_timeouts_every_ddl_revision_is_flagged():
    sql = revision_sql("0002", "0001")
    assert "SET lock_timeout = '5s';" in sql and "SET statement_timeout = '15min';" in sql

    bare = re.sub(r"^SET (lock|statement)_timeout = .*\n", "", sql, flags=re.M)
    rules = {finding.rule for finding in squawk(bare, "0002.sql")}
    assert rules == {"require-lock-timeout", "require-statement-timeout"}


@pytest.mark.postgres_only(reason="lock_timeout is PostgreSQL's; SQLite migrations lock the whole file")
def test_a_migration_behind_a_long_reader_gives_up_instead_of_queueing_everyone(database_url):
    """lock-queue: 0007's downgrade (ADD COLUMN) needs ACCESS EXCLUSIVE on hero; a reader holds ACCESS SHARE.
    Without lock_timeout it would wait as long as the reader, and every query after it would wait too."""
    with psycopg.connect(libpq_url(database_url)) as reader:
        reader.execute("SELECT count(*) FROM hero")  # the reader's transaction stays open: ACCESS SHARE
        with pytest.raises(sa_exc.OperationalError) as raised:
            migrate.downgrade(database_url, "0006")
        reader.rollback()

    assert raised.value.orig.sqlstate == "55P03"  # lock_not_available, after MIGRATION_LOCK_TIMEOUT
    migrate.downgrade(database_url, "0006")  # the reader gone, the same revision runs


def test_the_lessons_revisions_are_clean():
    result = runner.invoke(app, ["db", "lint", "--lessons"])

    assert result.exit_code == 0, result.output
    revisions = lint_chain(lessons=True)
    assert revisions and f"{len(revisions)} revisions, 0 finding(s)" in result.output
