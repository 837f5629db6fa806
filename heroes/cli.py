"""The `heroes` command (also `python -m heroes`): serve the lab, seed data, migrate."""

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.engine import make_url

from heroes import migrate
from heroes.config import get_settings

app = typer.Typer(
    help="heroes: a hands-on lab of SQLModel/SQLAlchemy pitfalls behind FastAPI.", no_args_is_help=True
)
db_app = typer.Typer(
    help="Migrate the database with Alembic (DATABASE_URL selects it).", no_args_is_help=True
)
app.add_typer(db_app, name="db")
console = Console()

Host = Annotated[str, typer.Option(help="Address to listen on (loopback by default).")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]
Postgres = Annotated[
    bool, typer.Option(help="PostgreSQL: DATABASE_URL if it is one, else an embedded server in .pgdata/.")
]


def shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def use_database(url: str) -> None:
    """Point this process (and uvicorn's reloader children) at `url`."""
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()


def use_postgres() -> None:
    """DATABASE_URL if it is PostgreSQL already, else the embedded server (data in .pgdata/)."""
    if not get_settings().database_url.startswith("postgresql"):
        from heroes.embedded_pg import embedded_database_url

        console.print("starting the embedded PostgreSQL server (data in .pgdata/) ...")
        use_database(embedded_database_url(Path(".pgdata").resolve()))


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000, reload: bool = False) -> None:
    """Serve the lab (expects a migrated database: `heroes db upgrade`)."""
    import uvicorn

    console.print(f"heroes on [bold]http://{host}:{port}[/]  docs: http://{host}:{port}/docs")
    console.print(f"database: {shown(get_settings().database_url)}")
    uvicorn.run("heroes.main:create_app", factory=True, host=host, port=port, reload=reload)


@app.command()
def up(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    postgres: Postgres = False,
) -> None:
    """Everything `make run` does: migrate, seed the demo data if the database is empty, serve."""
    if postgres:
        use_postgres()
    migrate.upgrade()
    seed()
    serve(host=host, port=port)


def _ready() -> None:
    """Migrate, and seed the demo data into an empty database: what a lesson run needs."""
    from heroes.db import create_db_engine
    from heroes.seed import count_rows, seed_demo

    migrate.upgrade()
    engine = create_db_engine()
    try:
        if not any(count_rows(engine)):
            seed_demo(engine)
    finally:
        engine.dispose()


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


def _memory(size: int | None) -> str:
    return "" if size is None else f"{size / 2**20:,.1f} MiB"


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

    from heroes.lab import compare
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


@app.command()
def seed(
    teams: Annotated[int, typer.Option(min=0, help="Bulk mode: this many teams ...")] = 0,
    heroes_per_team: Annotated[int, typer.Option(min=0, help="... with this many heroes each.")] = 0,
    reset: Annotated[bool, typer.Option(help="Delete every team and hero first.")] = False,
) -> None:
    """Write deterministic demo data; `--teams N --heroes-per-team M` writes many heroes fast."""
    from heroes.db import create_db_engine
    from heroes.seed import count_rows, seed_bulk, seed_demo
    from heroes.seed import reset as reset_all

    engine = create_db_engine()
    try:
        if reset:
            reset_all(engine)
        existing = count_rows(engine)
        if not teams:
            if any(existing):
                console.print(
                    f"database already has {existing[0]} teams and {existing[1]} heroes; left as is "
                    "(--reset to start again)"
                )
                return
            console.print(f"seeded the demo cast: {seed_demo(engine)} heroes")
            return
        total = teams * heroes_per_team
        started = time.perf_counter()
        with Progress(
            TextColumn("seeding heroes"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("heroes", total=total)
            seed_bulk(engine, teams, heroes_per_team, lambda n: progress.advance(task, n))
        seconds = time.perf_counter() - started
        rate = f"{total / seconds:,.0f} heroes/s" if seconds else ""
        console.print(
            f"seeded {teams:,} teams and {total:,} heroes in {seconds:.1f} s ({rate}) "
            f"on {engine.dialect.name}"
        )
    finally:
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    migrate.upgrade(revision=revision)
    console.print(f"database at {revision} ({shown(get_settings().database_url)})")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, or -1.")] = "-1") -> None:
    """Revert migrations down to REVISION (default: one step)."""
    migrate.downgrade(revision=revision)
    console.print(f"database downgraded to {revision}")


@db_app.command("current")
def db_current() -> None:
    """Show the revision the database is at, and the one the code expects."""
    from heroes.db import create_db_engine

    engine = create_db_engine()
    with engine.connect() as connection:
        current = migrate.current_revision(connection)
    engine.dispose()
    console.print(f"database: {current or '(none)'}   code expects: {migrate.head_revision()}")


def bench_export(sizes: list[int], format: str) -> None:
    from rich.table import Table

    from heroes.bench import run_export_bench

    for size in sizes:
        results = run_export_bench(get_settings().database_url, size, format)
        table = Table(title=f"export {size:,} heroes as {format} on {results[0].engine}, slowest first")
        for column in ("case", "rows/s", "seconds", "peak RSS growth", "tracemalloc peak"):
            left = column == "case"
            table.add_column(column, justify="left" if left else "right", no_wrap=left)
        for r in results:
            if r.refused:
                table.add_row(r.case, r.refused, "", "", "")
                continue
            rate = f"{r.rows_per_second:,.0f}" if r.rows_per_second else ""
            seconds = f"{r.seconds:.3f}" if r.seconds is not None else ""
            table.add_row(r.case, rate, seconds, _memory(r.rss_growth_bytes), _memory(r.traced_peak_bytes))
        console.print(table)
    for r in results:
        console.print(f"  {r.label}")
    console.print(
        "peak RSS growth: the resident high-water mark during the run minus resident memory before "
        "(C buffers included); tracemalloc peak: Python allocations only. One process per case."
    )


@app.command()
def bench(
    suite: Annotated[str, typer.Argument(help="Which benchmark: evidence or export.")] = "evidence",
    requests: Annotated[int, typer.Option(min=10, help="evidence: requests per round.")] = 2000,
    rounds: Annotated[int, typer.Option(min=1, help="evidence: rounds (the median is reported).")] = 5,
    hero_id: Annotated[int, typer.Option(help="evidence: the hero to read.")] = 1,
    rows: Annotated[
        list[int] | None, typer.Option(min=1, max=1_000_000, help="export: heroes to export; repeat it.")
    ] = None,
    format: Annotated[str, typer.Option(help="export: ndjson or csv.")] = "ndjson",
    postgres: Postgres = False,
) -> None:
    """Run a benchmark suite on DATABASE_URL and print it, slowest first.

    evidence: requests/s of GET /heroes/{id} with the evidence headers on and off (a seeded database).
    export: rows/s and peak memory of every way to export heroes, beside the raw driver's read
    (the lesson's scratch database of --rows heroes; your data is not touched).
    """
    from rich.table import Table

    from heroes.bench import SUITES, recorder_cost, run_suite

    if postgres:
        use_postgres()
    if suite == "export":
        if format not in ("ndjson", "csv"):
            raise typer.BadParameter(f"format must be ndjson or csv, not {format!r}")
        _ready()
        bench_export(rows or [10_000, 100_000, 1_000_000], format)
        return
    if suite not in SUITES:
        raise typer.BadParameter(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}")
    path = f"/heroes/{hero_id}"
    results = run_suite(suite, path, requests, rounds)
    fastest = results[-1].rate
    database = shown(get_settings().database_url)
    table = Table(title=f"GET {path}: {rounds} rounds x {requests} requests, median ({database})")
    for column in ("case", "requests/s", "wall µs/request", "CPU µs/request", "vs fastest"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for r in results:
        table.add_row(
            r.case.label,
            f"{r.rate:,.0f}",
            f"{1e6 / r.rate:,.0f}",
            f"{r.cpu * 1e6:,.0f}",
            f"{r.rate / fastest:.1%}",
        )
    console.print(table)
    if suite == "evidence":
        per_statement, per_response = recorder_cost()
        console.print(
            f"the recorder alone: {per_statement * 1e6:.2f} µs per statement, "
            f"{per_response * 1e6:.2f} µs per response (listeners and middleware timed without the app)"
        )
