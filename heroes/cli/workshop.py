"""heroes workshop [SLUG]: fix a lesson's bad route yourself, and let the lab tell you when it is fixed."""

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.syntax import Syntax

from heroes.cli.app import Postgres, _ready, app, console, use_postgres
from heroes.config import get_settings


def listing(where: Path) -> None:
    from rich.table import Table

    from heroes.lab import workshop
    from heroes.lessons import LESSONS

    done = workshop.progress(where)
    table = Table(title=f"heroes workshop: the exercises (your files in {where}/)")
    for column in ("lesson", "your progress", "run"):
        table.add_column(column)
    for lesson in LESSONS:
        if not workshop.has_exercise(lesson):
            continue
        mine = done.get(lesson.slug)
        state = "not started"
        if mine:
            state = "passed" if mine["passed"] else f"working on it ({mine['checks']} checks)"
        table.add_row(lesson.slug, state, f"heroes workshop {lesson.slug}")
    console.print(table)
    for lesson in LESSONS:
        if not workshop.has_exercise(lesson):
            why = getattr(lesson.module, "NO_EXERCISE", "its check is not written yet")
            console.print(f"no exercise for {lesson.slug}: {why}.")


def run_once(slug: str, where: Path) -> bool:
    """Check workshop/<slug>.py in a fresh app: each criterion with its evidence. True when all pass."""
    from heroes.lab import workshop
    from heroes.lab.check import run_check
    from heroes.lessons import BY_SLUG
    from heroes.main import create_app
    from heroes.problems import Problem

    lesson = BY_SLUG[slug]
    lab = create_app()
    try:
        with console.status(f"checking {workshop.path(lesson, where)} ..."):
            result = asyncio.run(run_check(lab, lesson, "mine"))
    except Problem as problem:
        console.print(f"[red]{escape(problem.detail)}[/]")
        raise typer.Exit(2) from None
    finally:
        lab.state.lab.close()
        lab.state.engine.dispose()
    if result.error:
        console.print(f"[red]✗ {escape(result.error)}[/]")
    for criterion in result.criteria:
        mark = "[green]✓[/]" if criterion.passed else "[red]✗[/]"
        console.print(f"{mark} {escape(criterion.name)}: {escape(criterion.evidence)}")
    checks = workshop.progress(where).get(slug, {}).get("checks", 0) + 1
    workshop.record(where, slug, passed=result.passed, checks=checks)
    if result.passed:
        console.print(f"[bold green]passed[/]: {slug} is fixed. `heroes workshop` lists the others.")
    else:
        console.print(f"not yet: edit {workshop.path(lesson, where)}; `heroes workshop {slug} --hint` helps.")
    return result.passed


@app.command("workshop")
def workshop_command(
    slug: Annotated[
        str | None, typer.Argument(help="The exercise, e.g. n-plus-one; none: list them.")
    ] = None,
    watch: Annotated[bool, typer.Option(help="Check again on every save of your file.")] = False,
    hint: Annotated[
        bool, typer.Option(help="The next hint: symptom, cause, fix, then the fixed route.")
    ] = False,
    reset: Annotated[
        bool, typer.Option(help="Start again from the bad route (your file goes to .bak).")
    ] = False,
    postgres: Postgres = False,
) -> None:
    """Fix a lesson's bad route in workshop/SLUG.py; the lesson's own check says when it is fixed.

    The file is served at /lessons/SLUG/mine by a running `make run` too (edits are picked up on the next
    request), and appears as "mine" beside bad and fixed in compare and on the lesson's page.
    """
    from heroes.lab import workshop
    from heroes.lessons import BY_SLUG

    where = Path(get_settings().workshop_dir)
    if slug is None:
        listing(where)
        return
    lesson = BY_SLUG.get(slug)
    if lesson is None or not workshop.has_exercise(lesson):
        choices = ", ".join(s for s, one in BY_SLUG.items() if workshop.has_exercise(one))
        raise typer.BadParameter(f"no exercise {slug!r}; choose from {choices}")
    if hint:
        taken = workshop.progress(where).get(slug, {}).get("hints", 0)
        ladder = workshop.hints(lesson)
        title, text = ladder[min(taken, len(ladder) - 1)]
        console.print(f"[bold]hint {min(taken, len(ladder) - 1) + 1} of {len(ladder)}: {title}[/]")
        if title == "The fixed route":
            console.print(Syntax(text, "python"))
        else:
            console.print(escape(text))
        workshop.record(where, slug, hints=min(taken + 1, len(ladder)))
        return
    file, written = workshop.write_start(lesson, where, overwrite=reset)
    if written:
        console.print(f"wrote {file}: the bad route as it runs, renamed `mine`. Fix it, then check again.")
    if reset:
        return
    if postgres:
        use_postgres()
    _ready()
    passed = run_once(slug, where)
    if not watch:
        raise typer.Exit(0 if passed else 1)
    from watchfiles import watch as changes

    console.print(f"watching {file} (Ctrl+C to stop)")
    for _ in changes(file):
        console.rule(f"{file} changed")
        run_once(slug, where)
