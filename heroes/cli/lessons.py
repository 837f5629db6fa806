"""heroes lessons, heroes lesson SLUG: the catalogue and compare, from the terminal.

`heroes lesson` is made for a room: the lesson's text first, then a table per size that fits the
terminal (at 80 columns the cells wrap, the table stays whole), a status line on stderr while the
scratch data is built and each variant runs, and with `--sql` each variant's statements grouped by
shape. The rendering functions below return rich renderables; the command only prints them.
"""

from typing import Annotated

import typer
from rich.console import Group
from rich.padding import Padding
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from heroes.cli.app import Postgres, _ready, app, console, err_console, use_postgres
from heroes.config import get_settings
from heroes.lab import Lesson
from heroes.lab.compare import Comparison


def _memory(size: int | None) -> str:
    return "" if size is None else f"{size / 2**20:,.1f} MiB"


def lesson_text(lesson: Lesson) -> Group:
    """The title, then Symptom, Cause, Fix, and Myth when the lesson has one, a paragraph each."""
    sections = [(name, lesson.text[name]) for name in ("Symptom", "Cause", "Fix")]
    if lesson.myth:
        sections.append(("Myth", lesson.myth))
    paragraphs = [Text.assemble((f"{name}: ", "bold"), text) for name, text in sections]
    return Group(
        Text(lesson.title, style="bold"), *(line for p in paragraphs for line in (Text(), p)), Text()
    )


def comparison_table(result: Comparison) -> Table:
    """One row per variant: outcome, statements, database and wall time (and peak memory, if measured)."""
    memory = any(v.peak_memory_bytes is not None for v in result.variants)
    scale = f"size {result.size:,} ({result.size_meaning})" if result.size is not None else "the demo data"
    table = Table(title=f"{result.lesson} on {result.engine}, {scale}")
    table.add_column("variant", no_wrap=True)  # whole names; the outcome wraps (min_width crops the table)
    table.add_column("outcome", overflow="fold")
    for column in ["statements", "db ms", "wall ms"] + (["peak memory"] if memory else []):
        table.add_column(column, justify="right")
    for v in result.variants:
        clients = f" ×{v.clients}" if v.clients > 1 else ""
        row = [
            f"{v.variant}{clients}",
            v.outcome,
            f"{v.statements:,}",
            f"{v.db_ms:,.1f}",
            f"{v.wall_ms:,.1f}",
        ]
        table.add_row(*(Text(cell) for cell in row), *([_memory(v.peak_memory_bytes)] if memory else []))
    return table


def sql_listing(result: Comparison) -> Group:
    """Each variant's statements grouped by shape, most frequent first: SQL text only, never parameters."""
    parts = []
    for v in result.variants:
        plural = "" if v.statements == 1 else "s"
        parts.append(Text.assemble((v.variant, "bold"), f": {v.statements:,} statement{plural}"))
        shapes = Table.grid(padding=(0, 1))
        shapes.add_column(justify="right", no_wrap=True, style="bold")
        shapes.add_column(overflow="fold")
        for group in v.sql:
            shapes.add_row(f"{group.count:,}×", Text(group.sql))
        if v.other_statements:
            shapes.add_row(f"{v.other_statements:,}×", Text("(statements of other shapes)"))
        parts.append(Padding(shapes, (0, 0, 0, 2)))
    return Group(*parts, Text())


def shown_steps() -> Progress:
    """What compare is doing (building the scratch data, running bad...) and for how long: on stderr, on a
    terminal only (else not even the blank line rich leaves), and gone when done: stdout is the report."""
    columns = SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()
    return Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal)


def wrong_engine(lesson: Lesson, url: str) -> str | None:
    """What to type instead when DATABASE_URL's engine is not one the lesson runs on."""
    from heroes.db import is_sqlite

    engine = "sqlite" if is_sqlite(url) else "postgresql"
    if engine in lesson.engines:
        return None
    postgresql = "postgresql" in lesson.engines
    instead = (
        f"heroes lesson {lesson.slug} --postgres"
        if postgresql
        else f"DATABASE_URL=sqlite:///./heroes.db heroes lesson {lesson.slug}"
    )
    only = ", ".join(lesson.engines)
    return f"{lesson.slug} runs on {only} only; DATABASE_URL is {engine}. Run it with:\n  {instead}"


@app.command()
def lessons() -> None:
    """List the lessons: slug, title, engines, and how to run each."""
    from heroes.lessons import LESSONS

    table = Table(title="heroes: the lessons (GET /lessons has the full text)")
    table.add_column("#", justify="right")
    table.add_column("lesson", no_wrap=True)
    table.add_column("what goes wrong")
    table.add_column("engines")
    for number, lesson in enumerate(LESSONS, start=1):
        table.add_row(str(number), lesson.slug, Text(lesson.title), ", ".join(lesson.engines))
    console.print(table)
    console.print("run one: heroes lesson SLUG [--size N] [--sql] (or GET /lessons/SLUG/compare)")


@app.command()
def lesson(
    slug: Annotated[str, typer.Argument(help="The lesson, e.g. n-plus-one (`heroes lessons` lists them).")],
    size: Annotated[
        list[int] | None,
        typer.Option(min=1, help="The size knob; repeat it: --size 10 --size 1000."),
    ] = None,
    sql: Annotated[
        bool, typer.Option("--sql", help="After each table, each variant's statements by shape, counted.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Only the comparison, as JSON (a list of them for several sizes).")
    ] = False,
    postgres: Postgres = False,
) -> None:
    """The lesson's text, then its bad and fixed variants run on the same data, side by side."""
    import asyncio
    import json

    from heroes.lab.compare import compare
    from heroes.lessons import BY_SLUG
    from heroes.main import create_app
    from heroes.problems import Problem

    found = BY_SLUG.get(slug)
    if found is None:
        raise typer.BadParameter(f"no lesson {slug!r}; choose from {', '.join(BY_SLUG)}")
    if postgres:
        use_postgres()
    if not as_json:
        console.print(lesson_text(found))
    instead = wrong_engine(found, get_settings().database_url)
    if instead is not None:
        err_console.print(Text(instead))
        raise typer.Exit(1)
    with err_console.status("migrating, and seeding the demo data if the database is empty"):
        _ready()
        lab = create_app()
    variants = {call.variant for one in size or [None] for call in found.calls(one)} | {"mine"}
    reports = []
    try:
        for one in size or [None]:
            where = f"{slug}, size {one:,}" if one else slug
            with shown_steps() as steps:
                task = steps.add_task(f"{where}: starting")

                def progress(step: str, where=where, steps=steps, task=task) -> None:
                    running = "running " if step in variants else ""
                    steps.update(task, description=f"{where}: {running}{step}", refresh=True)

                try:
                    result = asyncio.run(compare(lab, found, one, progress=progress))
                except Problem as problem:
                    err_console.print(Text(problem.detail, style="red"))
                    raise typer.Exit(1) from None
            if as_json:
                reports.append(result.model_dump())
                continue
            console.print(comparison_table(result))
            if sql:
                console.print(sql_listing(result))
    finally:
        lab.state.lab.close()
        lab.state.engine.dispose()
    if as_json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
