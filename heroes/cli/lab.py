"""heroes lab reset [SLUG]: the lessons' starting data again, on the running lab and in DATABASE_URL.

A serving lab (`make run`) keeps its lessons' scratch databases (the orphans foreign-key's bad route
stored, the teams unique-violation created...). `heroes lab reset SLUG` asks it to drop that lesson's
(POST /lessons/SLUG/reset); they are rebuilt from their starting data on next use. Without SLUG, every
lesson's, and the demo data in DATABASE_URL is written again (what `heroes seed --reset` does), so the
README's examples answer as printed.
"""

import json
import urllib.error
import urllib.request
from typing import Annotated

import typer
from rich.text import Text

from heroes.cli.app import Postgres, app, console, err_console, shown, use_postgres
from heroes.config import get_settings

lab_app = typer.Typer(help="The running lab: put the lessons' data back.", no_args_is_help=True)
app.add_typer(lab_app, name="lab")

LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the lab is local: no proxy


def post(url: str) -> dict:
    """POST with no body; the JSON answer. Raises OSError (urllib's URLError) when nothing answers."""
    request = urllib.request.Request(url, data=b"", method="POST", headers={"accept": "application/json"})
    with LOCAL.open(request, timeout=60) as response:
        return json.loads(response.read())


def reset_server(base: str, slug: str | None) -> bool:
    """Ask the lab at `base` to drop the lesson's scratch databases (every lesson's without a slug)."""
    url = f"{base.rstrip('/')}/lessons/{slug}/reset" if slug else f"{base.rstrip('/')}/lessons/reset"
    try:
        report = post(url)
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")
        try:
            detail = json.loads(body)["detail"]  # a problem+json answer
        except (ValueError, KeyError, TypeError):
            detail = body[:200]
        err_console.print(Text(f"{url} answered {error.code}: {detail}", style="red"))
        return False
    except (OSError, ValueError) as error:  # refused, timed out, not HTTP, not JSON
        reason = getattr(error, "reason", error)
        console.print(Text(f"no lab answers at {base} ({reason}): nothing to reset there."))
        return True
    lessons = ", ".join(report["lessons"]) if slug else f"all {len(report['lessons'])} lessons"
    dropped = ", ".join(report["dropped"])
    done = f"dropped {dropped} (rebuilt from the starting data on next use)" if dropped else "nothing to drop"
    console.print(Text(f"{base}: reset {lessons}; {done}."))
    return True


def reset_demo_data() -> None:
    """DATABASE_URL migrated, emptied and given the demo cast again (ids from 1)."""
    from heroes import migrate
    from heroes.db import create_db_engine
    from heroes.seed import count_rows, seed_demo
    from heroes.seed import reset as reset_all

    migrate.upgrade()
    engine = create_db_engine()
    try:
        reset_all(engine)
        seed_demo(engine)
        teams, heroes = count_rows(engine)
    finally:
        engine.dispose()
    console.print(
        f"the demo data is back in {shown(get_settings().database_url)}: {teams} teams, {heroes} heroes."
    )


@lab_app.command("reset")
def reset(
    slug: Annotated[
        str | None, typer.Argument(help="One lesson (default: every lesson, and the demo data).")
    ] = None,
    url: Annotated[str, typer.Option(help="The running lab.")] = "http://127.0.0.1:8000",
    postgres: Postgres = False,
) -> None:
    """A lesson back to its starting data on the running lab; without SLUG, every lesson and the demo data."""
    from heroes.lessons import BY_SLUG

    if slug is not None and slug not in BY_SLUG:
        raise typer.BadParameter(f"no lesson {slug!r}; choose from {', '.join(BY_SLUG)}")
    answered = reset_server(url, slug)
    if slug is None:
        if postgres:
            use_postgres()
        reset_demo_data()
    if not answered:
        raise typer.Exit(1)
