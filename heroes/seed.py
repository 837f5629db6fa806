"""Deterministic demo data: the same teams and heroes on every run, on both engines.

`seed_demo` writes the small cast the README's examples use. `seed_bulk` writes N teams with M heroes
each (names `Team 000001`, `Hero 000001-0001`), fast enough for 1,000,000 heroes: one transaction,
PostgreSQL `COPY ... FROM STDIN`, SQLite `executemany` in large batches.
"""

from collections.abc import Callable, Iterator
from itertools import islice

from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlmodel import Session

from heroes.models import Hero, Team

DEMO_TEAMS = [
    ("Preventers", "Sharp Tower"),
    ("Z-Force", "Sister Margaret's Bar"),
    ("Avengers", "Avengers Mansion"),
    ("Justice League", "Hall of Justice"),
    ("Guardians", "Knowhere"),
]
DEMO_HEROES = [  # name, secret_name, age, team
    ("Deadpond", "Dive Wilson", None, "Z-Force"),
    ("Rusty-Man", "Tommy Sharp", 48, "Preventers"),
    ("Spider-Boy", "Pedro Parqueador", 18, "Preventers"),
    ("Tarantula", "Natalia Roman-on", 32, "Preventers"),
    ("Black Lion", "Trevor Challa", 35, "Z-Force"),
    ("Dr. Weird", "Steve Weird", 36, "Z-Force"),
    ("Captain North America", "Esteban Rogelios", 93, "Avengers"),
    ("Iron Woman", "Antonia Stark", 45, "Avengers"),
    ("Thunder Girl", "Thora Odinsdottir", 1500, "Avengers"),
    ("Super Person", "Clarke Kent", 35, "Justice League"),
    ("Bat Person", "Bruno Wayne", 42, "Justice League"),
    ("Wonder Lady", "Diane Prince", 5000, "Justice League"),
    ("Rocket Raccoon", "Rocky", 9, "Guardians"),
    ("Star-Lord", "Pedro Quill", 38, "Guardians"),
    ("Lone Ranger", "John Reid", 40, None),
]

BATCH = 10_000
HERO_COLUMNS = ("name", "secret_name", "age", "team_id", "version")


def count_rows(engine: Engine) -> tuple[int, int]:
    """(teams, heroes) in the database."""
    with engine.connect() as connection:
        teams = connection.scalar(select(func.count()).select_from(Team))
        heroes = connection.scalar(select(func.count()).select_from(Hero))
    return teams or 0, heroes or 0


def reset(engine: Engine) -> None:
    """Delete every hero and team, and start ids from 1 again."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("TRUNCATE hero, team RESTART IDENTITY"))
        else:  # SQLite: plain INTEGER PRIMARY KEY reuses max(id) + 1, so an empty table starts at 1
            connection.execute(text("DELETE FROM hero"))
            connection.execute(text("DELETE FROM team"))


def seed_demo(engine: Engine) -> int:
    """The small demo cast; returns the number of heroes written."""
    with Session(engine) as session:
        teams = {name: Team(name=name, headquarters=hq) for name, hq in DEMO_TEAMS}
        session.add_all(teams.values())
        for name, secret_name, age, team in DEMO_HEROES:
            session.add(Hero(name=name, secret_name=secret_name, age=age, team=teams.get(team)))
        session.commit()
    return len(DEMO_HEROES)


def _hero_rows(team_ids: list[int], per_team: int, start: int = 1) -> Iterator[tuple]:
    """Heroes named after their team's number (`Hero 000004-0001` belongs to `Team 000004`)."""
    for t, team_id in enumerate(team_ids, start=start):
        for h in range(1, per_team + 1):
            age = None if (t + h) % 10 == 0 else (t * 7 + h * 13) % 90 + 10
            yield (f"Hero {t:06d}-{h:04d}", f"Secret {t:06d}-{h:04d}", age, team_id, 1)


def _batches(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    while batch := list(islice(rows, size)):
        yield batch


def _insert_teams(connection: Connection, teams: int, start: int) -> list[int]:
    values = [{"name": f"Team {t:06d}", "headquarters": f"Tower {t}"} for t in range(start, start + teams)]
    statement = insert(Team).returning(Team.id, sort_by_parameter_order=True)
    return list(connection.scalars(statement, values))


def _copy_heroes(connection: Connection, rows: Iterator[tuple], progress: Callable[[int], None]) -> None:
    """PostgreSQL: COPY streams rows into the table; the fastest way in."""
    cursor = connection.connection.driver_connection.cursor()
    columns = ", ".join(HERO_COLUMNS)
    with cursor.copy(f"COPY hero ({columns}) FROM STDIN") as copy:
        for batch in _batches(rows, BATCH):
            for row in batch:
                copy.write_row(row)
            progress(len(batch))


def _executemany_heroes(
    connection: Connection, rows: Iterator[tuple], progress: Callable[[int], None]
) -> None:
    """SQLite: one prepared INSERT, many parameter sets, one transaction."""
    sql = f"INSERT INTO hero ({', '.join(HERO_COLUMNS)}) VALUES (?, ?, ?, ?, ?)"
    cursor = connection.connection.driver_connection.cursor()
    for batch in _batches(rows, BATCH):
        cursor.executemany(sql, batch)
        progress(len(batch))


def seed_bulk(
    engine: Engine, teams: int, heroes_per_team: int, progress: Callable[[int], None] = lambda n: None
):
    """`teams` teams with `heroes_per_team` heroes each, in one transaction; returns (teams, heroes)."""
    with engine.begin() as connection:
        existing = connection.scalar(select(func.count()).select_from(Team)) or 0
        team_ids = _insert_teams(connection, teams, start=existing + 1)
        rows = _hero_rows(team_ids, heroes_per_team, start=existing + 1)
        if connection.dialect.name == "postgresql":
            _copy_heroes(connection, rows, progress)
        else:
            _executemany_heroes(connection, rows, progress)
    return teams, teams * heroes_per_team
