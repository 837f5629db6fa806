"""heroes lessons, heroes lesson SLUG: the catalogue and compare, from the terminal."""

from typing import Annotated

import typer

from heroes.cli.app import Postgres, _ready, app, console, use_postgres


def _memory(size: int | None) -> str:
    return "" if size is None else f"{size / 2**20:,.1f} MiB"


@app.command()
def lessons() -> None:
    """List the lessons: slug, title, engines, and how to run each."""
    from rich.table import Table

    from heroes.lessons import LESSONS

    table = Table(title="heroes: the lessons (GET /lessons has the full text)")
    table.add_column("#", justify="right")
    table.add_column("lesson", no_wrap=True)
    table.add_column("what goes wrong")
    table.add_column("engines")
    for number, lesson in enumerate(LESSONS, start=1):
        table.add_row(str(number), lesson.slug, lesson.title, ", ".join(lesson.engines))
    console.print(table)
    console.print("run one: heroes lesson SLUG [--size N] (or GET /lessons/SLUG/compare)")


@app.command()
def lesson(
    slug: Annotated[str, typer.Argument(help="The lesson, e.g. n-plus-one (`heroes lessons` lists them).")],
    size: Annotated[
        list[int] | None,
        typer.Option(min=1, help="The size knob; repeat it: --size 10 --size 1000."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    postgres: Postgres = False,
) -> None:
    """Run a lesson's bad and fixed variants on the same data (DATABASE_URL) and print them side by side."""
    import asyncio
    import json

    from rich.table import Table

    from heroes.lab.compare import compare
    from heroes.lessons import BY_SLUG
    from heroes.main import create_app
    from heroes.problems import Problem

    found = BY_SLUG.get(slug)
    if found is None:
        raise typer.BadParameter(f"no lesson {slug!r}; choose from {', '.join(BY_SLUG)}")
    if postgres:
        use_postgres()
    _ready()
    app = create_app()
    try:
        for one in size or [None]:
            try:
                result = asyncio.run(compare(app, found, one))
            except Problem as problem:
                console.print(f"[red]{problem.detail}[/]")
                raise typer.Exit(1) from None
            if as_json:
                print(json.dumps(result.model_dump(), indent=2))
                continue
            memory = any(v.peak_memory_bytes is not None for v in result.variants)
            scale = f", size {one:,} ({result.size_meaning})" if one else " (the demo data)"
            table = Table(title=f"{found.title}\n{slug} on {result.engine}{scale}")
            columns = ["variant", "outcome", "statements", "db ms", "wall ms"] + (
                ["peak memory"] if memory else []
            )
            for column in columns:
                table.add_column(column, justify="left" if column in ("variant", "outcome") else "right")
            for v in result.variants:
                clients = f" ×{v.clients}" if v.clients > 1 else ""
                row = [
                    f"{v.variant}{clients}",
                    v.outcome,
                    f"{v.statements:,}",
                    f"{v.db_ms:,.1f}",
                    f"{v.wall_ms:,.1f}",
                ]
                table.add_row(*row, *([_memory(v.peak_memory_bytes)] if memory else []))
            console.print(table)
    finally:
        app.state.lab.close()
        app.state.engine.dispose()
