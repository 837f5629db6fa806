"""The `heroes` command: migrate, show the revision, seed deterministic data."""

import itertools
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from heroes.cli import app
from heroes.config import get_settings
from heroes.migrate import ROOT, head_revision

from support import rows

runner = CliRunner()
HEAD = head_revision()


@pytest.fixture
def cli_database(empty_database_url, monkeypatch) -> str:
    """DATABASE_URL points the command at a fresh database with no schema."""
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    get_settings.cache_clear()
    yield empty_database_url
    get_settings.cache_clear()


def heroes(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_db_upgrade_then_current(cli_database):
    assert "database: (none)" in heroes("db", "current")
    assert "database at head" in heroes("db", "upgrade")
    assert f"database: {HEAD}   code expects: {HEAD}" in heroes("db", "current")


def test_seed_writes_the_demo_cast_once(cli_database):
    heroes("db", "upgrade")
    assert "seeded the demo cast: 15 heroes" in heroes("seed")
    assert rows(cli_database, "SELECT count(*) FROM team") == [(5,)]
    assert rows(cli_database, "SELECT count(*) FROM hero") == [(15,)]

    assert "already has 5 teams and 15 heroes; left as is" in heroes("seed")
    assert rows(cli_database, "SELECT count(*) FROM team") == [(5,)]
    assert rows(cli_database, "SELECT count(*) FROM hero") == [(15,)]


def test_seed_reset_bulk_is_deterministic(cli_database):
    heroes("db", "upgrade")
    heroes("seed")
    assert "seeded 3 teams and 12 heroes" in heroes(
        "seed", "--reset", "--teams", "3", "--heroes-per-team", "4"
    )

    assert rows(cli_database, "SELECT id, name FROM team ORDER BY id") == [
        (1, "Team 000001"),
        (2, "Team 000002"),
        (3, "Team 000003"),
    ]
    heroes_ = rows(cli_database, "SELECT id, name, team_id FROM hero ORDER BY id")
    assert [hero[0] for hero in heroes_] == list(range(1, 13))  # ids start at 1 again after --reset
    assert heroes_[0] == (1, "Hero 000001-0001", 1)
    assert heroes_[-1] == (12, "Hero 000003-0004", 3)
    assert all(name == f"Hero {team:06d}-{(id_ - 1) % 4 + 1:04d}" for id_, name, team in heroes_)

    # more teams later: their heroes carry their own team's number
    heroes("seed", "--teams", "1", "--heroes-per-team", "2")
    assert rows(cli_database, "SELECT name FROM hero WHERE team_id = 4 ORDER BY id") == [
        ("Hero 000004-0001",),
        ("Hero 000004-0002",),
    ]
    assert rows(cli_database, "SELECT name FROM team WHERE id = 4") == [("Team 000004",)]


def test_python_dash_m_heroes_help():
    result = subprocess.run(
        [sys.executable, "-m", "heroes", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: heroes" in result.stdout
    for command in ("serve", "up", "seed", "db"):
        assert command in result.stdout


def test_bench_export_runs_every_case_beside_the_raw_driver(cli_database):
    """Each case exports a scratch table of 50 heroes in its own process; your data is untouched."""
    heroes("db", "upgrade")
    output = heroes("bench", "export", "--rows", "50")
    assert "export 50 heroes as ndjson" in output
    for case in ("bad", "bad_offset", "fixed", "fixed_copy", "raw_driver"):
        assert f"│ {case} " in output
    assert rows(cli_database, "SELECT count(*) FROM hero") == [(15,)]  # the demo cast, seeded if empty


def test_seed_reset_puts_the_demo_cast_back(cli_database):
    """The README's way back to the demo data: ids from 1 again, whatever was there."""
    heroes("db", "upgrade")
    heroes("seed", "--teams", "2", "--heroes-per-team", "3")
    assert "seeded the demo cast: 15 heroes" in heroes("seed", "--reset")
    assert rows(cli_database, "SELECT id, name FROM team ORDER BY id") == [
        (1, "Preventers"),
        (2, "Z-Force"),
        (3, "Avengers"),
        (4, "Justice League"),
        (5, "Guardians"),
    ]
    assert rows(cli_database, "SELECT min(id), max(id), count(*) FROM hero") == [(1, 15, 15)]


def test_db_upgrade_says_what_it_ran_where_the_lab_keeps_quiet(cli_database, tmp_path):
    """Alembic's log lines for `heroes db upgrade` (a process of its own: logging is configured once)."""
    environment = {**os.environ, "DATABASE_URL": cli_database}
    result = subprocess.run(
        [sys.executable, "-m", "heroes", "db", "upgrade"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    ran = re.findall(
        r"^INFO  \[alembic\.runtime\.migration\] Running upgrade (\S*) -> (\S+),", result.stderr, re.M
    )
    assert ran[0] == ("", "0001") and ran[-1][1] == HEAD  # every revision, each once, in order
    assert all(before[1] == after[0] for before, after in itertools.pairwise(ran))
