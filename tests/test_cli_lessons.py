"""`heroes lesson SLUG` for a room (80 columns, the text first, --sql, --json), `heroes lab reset`."""

import importlib
import io
import json
import os
import re
import socket
import subprocess
import sys

import pytest
from rich.console import Console
from sqlalchemy import text
from typer.testing import CliRunner

from heroes.cli import app as cli
from heroes.cli.app import shown
from heroes.config import get_settings
from heroes.lessons import BY_SLUG, LESSONS
from heroes.seed import DEMO_HEROES

from support import rows

runner = CliRunner()


@pytest.fixture
def cli_database(database_url: str, monkeypatch) -> str:
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def heroes(*args: str, code: int = 0, columns: int = 80):
    # rich reads the width from COLUMNS (click's terminal_width is for its own help)
    result = runner.invoke(cli, list(args), env={"COLUMNS": str(columns)}, terminal_width=columns)
    assert result.exit_code == code, result.output
    return result


def words(output: str) -> str:
    return " ".join(output.split())


def lesson_text(slug: str) -> str:
    """What the command prints before its first table, whitespace aside."""
    lesson = BY_SLUG[slug]
    sections = ["Symptom", "Cause", "Fix"] + (["Myth"] if lesson.myth else [])
    return words(" ".join([lesson.title] + [f"{name}: {lesson.text[name]}" for name in sections]))


def tables(output: str) -> list[list[list[str]]]:
    """Each table in `output` as its rows of cells (a cell wrapped over lines joined), checked whole."""
    found = []
    for block in re.findall(r"^┏.*?^└[^\n]*$", output, re.S | re.M):
        lines = block.splitlines()
        assert len({len(line) for line in lines}) == 1 and len(lines[0]) <= 80, block  # square, 80 at most
        assert all(line[0] in "┏┃┡│└" and line[-1] in "┓┃┩│┘" for line in lines), block  # every border there
        table: list[list[str]] = []
        for line in lines:
            if line.startswith("│"):
                cells = [cell.strip() for cell in line[1:-1].split("│")]
                if cells[0]:
                    table.append(cells)
                else:  # the row goes on: its wrapped cells
                    table[-1] = [f"{a} {b}".strip() for a, b in zip(table[-1], cells, strict=True)]
        found.append(table)
    return found


def fits(output: str) -> None:
    assert max(len(line) for line in output.splitlines()) <= 80, output


# ---- heroes lessons, heroes lesson -------------------------------------------------------------------


def test_heroes_lessons_lists_the_catalogue(cli_database):
    output = heroes("lessons").output
    fits(output)
    assert [table[0] for table in tables(output)[0]] == [str(n) for n in range(1, len(LESSONS) + 1)]
    assert [table[1] for table in tables(output)[0]] == [lesson.slug for lesson in LESSONS]


JOINEDLOAD = ["fixed/joinedload", "200 OK", "1"]


def test_heroes_lesson_prints_the_text_then_a_table_per_size(cli_database):
    output = heroes("lesson", "n-plus-one", "--size", "10", "--size", "20").output
    fits(output)
    before, engine = output.split("┏")[0], "sqlite" if cli_database.startswith("sqlite") else "postgresql"
    meaning = BY_SLUG["n-plus-one"].size.meaning
    assert words(before) == f"{lesson_text('n-plus-one')} n-plus-one on {engine}, size 10 ({meaning})"
    assert output.count("Myth:") == 1  # n-plus-one's, printed after its Fix
    ten, twenty = tables(output)
    assert [row[:3] for row in ten] == [["bad", "200 OK", "11"], ["fixed", "200 OK", "2"], JOINEDLOAD]
    assert [row[:3] for row in twenty] == [["bad", "200 OK", "21"], ["fixed", "200 OK", "2"], JOINEDLOAD]


def test_a_myth_is_printed_after_the_fix(cli_database, monkeypatch):
    myth = "joinedload is always faster than selectinload, so use it everywhere."
    monkeypatch.setitem(BY_SLUG["n-plus-one"].text, "Myth", myth)
    output = heroes("lesson", "n-plus-one", "--size", "10").output
    text_, fix = words(output.split("┏")[0]), words(BY_SLUG["n-plus-one"].text["Fix"])
    assert text_.startswith(f"{lesson_text('n-plus-one')} n-plus-one on ")
    assert f"Fix: {fix} Myth: {myth} n-plus-one on " in text_


def test_long_outcomes_wrap_inside_an_80_column_table(cli_database):
    """foreign-key's outcomes are longer than their column: the cells wrap, the table stays whole."""
    output = heroes("lesson", "foreign-key").output
    fits(output)
    (table,) = tables(output)
    if cli_database.startswith("sqlite"):  # PRAGMA foreign_key_check before and after the INSERT and its read
        bad = ["bad", "201 Created: hero 16 stored with team_id 99, which does not exist", "4"]
        delete = ["bad/delete-team", "204 No Content", "3"]
    else:
        violation = 'ForeignKeyViolation: {} violates foreign key constraint "fk_hero_team_id_team"'
        insert = violation.format('insert or update on table "hero"')
        missing = 'DETAIL: Key (team_id)=(99) is not present in table "team".'
        bad = ["bad", f"500 Internal Server Error: {insert} {missing}", "1"]
        delete_ = violation.format('update or delete on table "team"') + ' on table "hero"'
        referenced = 'DETAIL: Key (id)=(1) is still referenced from table "hero".'
        delete = ["bad/delete-team", f"500 Internal Server Error: {delete_} {referenced}", "1"]
    fixed = ["fixed", "422 Unprocessable Entity: No team with id 99.", "1"]
    assert [row[:3] for row in table] == [bad, fixed, delete]


def listing(output: str) -> dict[str, tuple[int, list[list]]]:
    """--sql's listing: {variant: (statements, [[count, sql], ...])}, wrapped lines joined."""
    found: dict[str, tuple[int, list[list]]] = {}
    shapes: list[list] = []
    for line in output.splitlines():
        if heading := re.fullmatch(r"(\S+): ([\d,]+) statements?", line.rstrip()):
            shapes = []
            found[heading[1]] = (int(heading[2].replace(",", "")), shapes)
        elif shape := re.fullmatch(r" +([\d,]+)× (.*)", line.rstrip()):
            shapes.append([int(shape[1].replace(",", "")), shape[2]])
        elif line.strip():
            shapes[-1][1] += " " + line.strip()
    return found


def test_sql_lists_each_variants_statements_by_shape_after_its_table(cli_database):
    output = heroes("lesson", "n-plus-one", "--size", "10", "--sql").output
    fits(output)
    after = output[output.index("└") :].split("\n", 1)[1]
    shown = listing(after)
    assert {variant: (n, [count for count, _ in shapes]) for variant, (n, shapes) in shown.items()} == {
        "bad": (11, [10, 1]),
        "fixed": (2, [1, 1]),
        "fixed/joinedload": (1, [1]),
    }
    report = json.loads(heroes("lesson", "n-plus-one", "--size", "10", "--json").stdout)
    for variant in report["variants"]:  # the text is compare's, whole, with its count
        expected = [[group["count"], words(group["sql"])] for group in variant["sql"]]
        assert shown[variant["variant"]] == (variant["statements"], expected)
    assert "hero.<private>" in after and "secret_name" not in after


def test_json_is_pure_json_and_progress_goes_to_stderr(cli_database, monkeypatch):
    progress = io.StringIO()
    terminal = Console(file=progress, force_terminal=True, width=80)  # the status shows on a terminal only
    monkeypatch.setattr(importlib.import_module("heroes.cli.lessons"), "err_console", terminal)
    result = heroes("lesson", "n-plus-one", "--size", "10", "--size", "20", "--json")
    reports = json.loads(result.stdout)  # nothing else on stdout: no text, no status
    assert [report["size"] for report in reports] == [10, 20]
    assert [(v["variant"], v["statements"]) for v in reports[1]["variants"]] == [
        ("bad", 21),
        ("fixed", 2),
        ("fixed/joinedload", 1),
    ]
    shown = progress.getvalue()
    for step in ("building the scratch data", "running bad", "running fixed", "running fixed/joinedload"):
        assert f"n-plus-one, size 10: {step}" in shown and f"n-plus-one, size 20: {step}" in shown


def test_heroes_lesson_json_on_the_demo_data(cli_database):
    report = json.loads(heroes("lesson", "n-plus-one", "--json").stdout)
    assert report["size"] is None
    assert [(v["variant"], v["statements"]) for v in report["variants"]] == [
        ("bad", 6),
        ("fixed", 2),
        ("fixed/joinedload", 1),
    ]


def test_heroes_lesson_refuses_an_unknown_lesson_or_size(cli_database):
    assert "n-plus-one" in heroes("lesson", "n-plus-two", code=2).output
    result = heroes("lesson", "n-plus-one", "--size", "9999", code=1)
    meaning = BY_SLUG["n-plus-one"].size.meaning
    assert words(result.stderr) == f"size must be 1 to 5000 ({meaning})."


@pytest.mark.sqlite_only(reason="the hint is what a PostgreSQL-only lesson says when it is run on SQLite")
def test_a_postgresql_lesson_on_sqlite_says_postgres(cli_database):
    result = heroes("lesson", "concurrent-index", code=1)
    assert words(result.stdout) == lesson_text("concurrent-index")  # the text, then no table
    assert words(result.stderr) == (
        "concurrent-index runs on postgresql only; DATABASE_URL is sqlite. Run it with: "
        "heroes lesson concurrent-index --postgres"
    )


def test_in_a_terminal_of_80_columns_without_alembic_logs(database_url, tmp_path):
    """A real process, as in the room: COLUMNS=80, and no Alembic line although it migrates twice."""
    environment = {**os.environ, "DATABASE_URL": database_url, "COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-m", "heroes", "lesson", "foreign-key"],
        cwd=tmp_path,  # no .env of the project's
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no INFO [alembic.runtime.migration] ..., no status off a terminal
    fits(result.stdout)
    assert words(result.stdout.split("┏")[0]).startswith(lesson_text("foreign-key"))
    assert [row[0] for row in tables(result.stdout)[0]] == ["bad", "fixed", "bad/delete-team"]


# ---- heroes lab reset --------------------------------------------------------------------------------


def test_lab_reset_drops_a_lessons_scratch_data_on_the_running_lab(cli_database, app, seeded, live_server):
    lab = app.state.lab
    BY_SLUG["n-plus-one"].prepare(lab, 3)
    BY_SLUG["foreign-key"].prepare(lab, None)
    assert lab.names() == ["foreign_key", "n_plus_one_3"]
    output = heroes("lab", "reset", "n-plus-one", "--url", live_server).output
    assert words(output) == (
        f"{live_server}: reset n-plus-one; dropped n_plus_one_3 (rebuilt from the starting data on next use)."
    )
    assert lab.names() == ["foreign_key"]
    assert words(heroes("lab", "reset", "n-plus-one", "--url", live_server).output) == (
        f"{live_server}: reset n-plus-one; nothing to drop."
    )


def demo_cast(url: str) -> list[tuple]:
    return rows(url, "SELECT id, name FROM hero ORDER BY id")


def test_lab_reset_without_a_lesson_resets_every_lesson_and_the_demo_data(
    cli_database, app, seeded, live_server
):
    BY_SLUG["foreign-key"].prepare(app.state.lab, None)
    with seeded.begin() as connection:  # what a room did to the demo data
        connection.execute(text("DELETE FROM hero WHERE id = 1"))
        connection.execute(text("INSERT INTO team (name, headquarters) VALUES ('Room 101', 'Here')"))
    output = heroes("lab", "reset", "--url", live_server, columns=300).output
    assert words(output) == (
        f"{live_server}: reset all {len(LESSONS)} lessons; dropped foreign_key (rebuilt from the starting "
        f"data on next use). the demo data is back in {shown(cli_database)}: 5 teams, 15 heroes."
    )
    assert app.state.lab.names() == []
    assert demo_cast(cli_database) == [(n, hero[0]) for n, hero in enumerate(DEMO_HEROES, start=1)]


def test_lab_reset_with_no_lab_running_says_so_and_resets_the_demo_data(cli_database, seeded):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with seeded.begin() as connection:
        connection.execute(text("DELETE FROM hero WHERE id < 10"))
    result = heroes("lab", "reset", "--url", url, columns=300)
    assert words(result.output) == (
        f"no lab answers at {url} ([Errno 111] Connection refused): nothing to reset there. "
        f"the demo data is back in {shown(cli_database)}: 5 teams, 15 heroes."
    )
    assert result.exception is None
    assert demo_cast(cli_database) == [(n, hero[0]) for n, hero in enumerate(DEMO_HEROES, start=1)]
