"""The `heroes` command's app and what its commands share: serve, up, the database options."""

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
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
console = Console()  # what a command reports (stdout)
err_console = Console(stderr=True)  # progress and errors: stdout stays the report (`--json` stays JSON)

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
