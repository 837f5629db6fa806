"""heroes up (what `make run` runs), heroes seed, heroes db ...: the data and the schema."""

import time
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from heroes import migrate
from heroes.cli.app import Host, Port, Postgres, app, console, db_app, serve, shown, use_postgres
from heroes.config import get_settings


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
    """Apply migrations up to REVISION (default: head); Alembic logs each revision it runs."""
    migrate.upgrade(revision=revision, quiet=False)
    console.print(f"database at {revision} ({shown(get_settings().database_url)})")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, or -1.")] = "-1") -> None:
    """Revert migrations down to REVISION (default: one step); Alembic logs each revision it reverts."""
    migrate.downgrade(revision=revision, quiet=False)
    console.print(f"database downgraded to {revision}")


@db_app.command("lint")
def db_lint(
    lessons: Annotated[
        bool, typer.Option("--lessons", help="The migration lessons' own revisions (migrations/lessons).")
    ] = False,
) -> None:
    """Lint each revision's PostgreSQL SQL with squawk (`alembic upgrade A:B --sql`; no server needed)."""
    from heroes.lint import PG_VERSION, STYLE_RULES, lint_chain

    revisions = lint_chain(lessons=lessons)
    for revision in revisions:
        count = len(revision.findings)
        verdict = f"[red]{count} finding(s)[/]" if count else "[green]clean[/]"
        console.print(f"{revision.revision}  {revision.title}  {verdict}", highlight=False, soft_wrap=True)
        for finding in revision.findings:
            console.print(f"      line {finding.line}: {finding.rule}: {finding.message}", highlight=False)
    found = sum(len(revision.findings) for revision in revisions)
    console.print(
        f"{len(revisions)} revisions, {found} finding(s); squawk --pg-version={PG_VERSION}, style rules "
        f"left out: {', '.join(STYLE_RULES)}",
        highlight=False,
    )
    if found:
        raise typer.Exit(1)


@db_app.command("current")
def db_current() -> None:
    """Show the revision the database is at, and the one the code expects."""
    from heroes.db import create_db_engine

    engine = create_db_engine()
    with engine.connect() as connection:
        current = migrate.current_revision(connection)
    engine.dispose()
    console.print(f"database: {current or '(none)'}   code expects: {migrate.head_revision()}")


@app.command()
def up(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    postgres: Postgres = False,
) -> None:
    """Everything `make run` does: migrate, seed the demo data if the database is empty, serve."""
    if postgres:
        use_postgres()
    migrate.upgrade()  # quiet: Alembic's logging stays unconfigured in the server, whose lessons migrate too
    console.print(f"database at {migrate.head_revision()}, the code's revision")
    seed()
    serve(host=host, port=port)
