"""Workshop mode: every exercise's starting file fails its check and the lesson's fixed route passes it
(the author check), a learner's real fix passes, a memorised answer fails on the data they never saw."""

import asyncio
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from heroes.cli import app as cli
from heroes.config import get_settings
from heroes.lab import workshop
from heroes.lab.check import run_check
from heroes.lessons import LESSONS
from heroes.lessons.n_plus_one import scratch, teams_with_heroes
from heroes.problems import Problem

EXERCISES = [lesson for lesson in LESSONS if workshop.has_exercise(lesson)]


@pytest.fixture
def where(app, tmp_path: Path) -> Path:
    """The app's workshop folder, in the test's temporary directory."""
    app.state.settings.workshop_dir = str(tmp_path / "workshop")
    return tmp_path / "workshop"


def check(app, lesson, variant: str):
    return asyncio.run(run_check(app, lesson, variant))


def failed(result) -> list[str]:
    return [f"{c.name}: {c.evidence}" for c in result.criteria if not c.passed]


def test_every_lesson_has_an_exercise_or_says_why_not():
    for lesson in LESSONS:
        if not workshop.has_exercise(lesson):
            assert len(lesson.module.NO_EXERCISE) > 20, lesson.slug
    first = ["n-plus-one", "detached-instance", "unique-violation", "foreign-key", "streaming-export"]
    assert [lesson.slug for lesson in EXERCISES][:5] == first


@pytest.mark.parametrize("lesson", EXERCISES, ids=[lesson.slug for lesson in EXERCISES])
def test_author_check_the_start_fails_and_fixed_passes(app, seeded, where, lesson, engine_name):
    """rustlings' `dev check`: the exercise is not solved as given, and the lesson's fix solves it."""
    if engine_name not in lesson.engines:  # a PostgreSQL lesson on SQLite: the check says how, never runs
        with pytest.raises(Problem, match="--postgres"):
            check(app, lesson, "fixed")
        return
    fixed = check(app, lesson, "fixed")
    assert fixed.passed, failed(fixed)
    workshop.write_start(lesson, where)
    start = check(app, lesson, "mine")
    assert start.error is None  # the starting file loads and runs: it is the bad route, renamed
    assert start.criteria and not start.passed
    bad = check(app, lesson, "bad")
    assert [c.passed for c in bad.criteria] == [c.passed for c in start.criteria]  # it is the bad route


def edit(where: Path, slug: str, old: str, new: str) -> None:
    file = where / f"{slug}.py"
    source = file.read_text()
    assert old in source, source
    file.write_text(source.replace(old, new))


def solve_n_plus_one(where: Path) -> None:
    """What a learner types: selectinload in the query, and its import."""
    eager = "select(Team).options(selectinload(Team.heroes)).order_by"
    edit(where, "n-plus-one", "select(Team).order_by", eager)
    imports = "from sqlalchemy.orm import selectinload\nfrom sqlmodel import select"
    edit(where, "n-plus-one", "from sqlmodel import select", imports)


def test_a_learner_fix_of_n_plus_one_passes_every_criterion(app, seeded, where):
    lesson = next(lesson for lesson in EXERCISES if lesson.slug == "n-plus-one")
    workshop.write_start(lesson, where)
    assert not check(app, lesson, "mine").passed
    solve_n_plus_one(where)
    result = check(app, lesson, "mine")
    assert result.passed, failed(result)
    assert [c.evidence for c in result.criteria if c.name.startswith("statements")] == [
        "statements: 2, the fixed route needs at most 3",
        "statements: 2, the fixed route needs at most 3",
    ]


def test_a_memorised_answer_fails_on_the_data_the_learner_never_sees(app, seeded, where):
    lesson = next(lesson for lesson in EXERCISES if lesson.slug == "n-plus-one")
    visible = teams_with_heroes(scratch(app.state.lab, 10))
    where.mkdir(parents=True)
    (where / "n-plus-one.py").write_text(f"ANSWER = {visible!r}\n\n\ndef mine():\n    return ANSWER\n")
    result = check(app, lesson, "mine")
    assert {c.name: c.passed for c in result.criteria} == {
        "the 10 teams with their heroes": True,
        "statements at 10 teams": True,
        "the 23 teams with their heroes": False,  # the data it never saw
        "statements at 23 teams": True,
    }
    assert not result.passed


def test_a_file_that_does_not_load_is_an_error_not_a_crash(app, seeded, where, client):
    lesson = next(lesson for lesson in EXERCISES if lesson.slug == "n-plus-one")
    where.mkdir(parents=True)
    (where / "n-plus-one.py").write_text("def mine(:\n")
    result = check(app, lesson, "mine")
    assert not result.passed and "SyntaxError (line 1)" in result.error
    response = client.get("/lessons/n-plus-one/mine")
    assert response.status_code == 404  # not mounted while it does not load


def test_a_running_server_picks_the_file_up_when_it_changes(app, seeded, where):
    lesson = next(lesson for lesson in EXERCISES if lesson.slug == "n-plus-one")
    with TestClient(app) as client:
        assert client.get("/lessons/n-plus-one/mine").status_code == 404  # no file yet
        workshop.write_start(lesson, where)
        first = client.get("/lessons/n-plus-one/mine", params={"teams": 5})
        assert (first.status_code, first.headers["x-query-count"]) == (200, "6")  # the bad route: 1 + N
        solve_n_plus_one(where)
        second = client.get("/lessons/n-plus-one/mine", params={"teams": 5})
        assert (second.status_code, second.headers["x-query-count"]) == (200, "2")
        assert second.json() == first.json()
        compared = client.get("/lessons/n-plus-one/compare", params={"size": 5}).json()
        assert [(v["variant"], v["statements"]) for v in compared["variants"]] == [
            ("bad", 6), ("fixed", 2), ("fixed/joinedload", 1), ("mine", 2),
        ]  # fmt: skip


# ---- the command ------------------------------------------------------------------------------------

runner = CliRunner()


def test_heroes_workshop_from_the_starting_file_to_pass(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("HEROES_WORKSHOP_DIR", str(tmp_path / "workshop"))
    get_settings.cache_clear()
    try:
        listing = runner.invoke(cli, ["workshop"], terminal_width=100)
        assert listing.exit_code == 0, listing.output
        assert "n-plus-one" in listing.output and "not started" in listing.output
        first = runner.invoke(cli, ["workshop", "n-plus-one"], terminal_width=100)
        assert first.exit_code == 1, first.output
        assert "wrote" in first.output and "statements: 11, the fixed route needs at most 3" in first.output
        hint = runner.invoke(cli, ["workshop", "n-plus-one", "--hint"], terminal_width=100)
        assert hint.exit_code == 0 and "Symptom" in hint.output
        where = tmp_path / "workshop"
        solve_n_plus_one(where)
        passed = runner.invoke(cli, ["workshop", "n-plus-one"], terminal_width=100)
        assert passed.exit_code == 0, passed.output
        assert "passed" in passed.output
        progress = json.loads((where / ".progress.json").read_text())["n-plus-one"]
        assert (progress["passed"], progress["checks"], progress["hints"]) == (True, 2, 1)
        reset = runner.invoke(cli, ["workshop", "n-plus-one", "--reset"], terminal_width=100)
        assert reset.exit_code == 0 and "selectinload" not in (where / "n-plus-one.py").read_text()
        assert (where / ".gitignore").read_text().splitlines()[-1] == "*"
    finally:
        get_settings.cache_clear()
