"""Dropping a column: the code still reading it breaks, and its data is gone for good

Symptom: POST /lessons/drop-column/bad drops hero.nickname (revision 0007) while the previous release
still runs. Every query of that release now fails, not only the ones that use nicknames (SQLite: no
such column: hero.nickname; PostgreSQL: column hero.nickname does not exist). Rolling back with heroes
db downgrade 0006 brings the column back, empty: 1000 nicknames before, 0 after.
Cause: an ORM selects every column its model maps, used or not, so the old Hero model names
hero.nickname in each SELECT and INSERT. And DROP COLUMN takes the values with it; a downgrade can
only add an empty column, as 0007's docstring says.
Fix: the deprecation cycle. Stop reading and stop writing: release the model without the attribute
(the column must be nullable or have a default first, or that release cannot insert). Wait until no
running code maps the column. Only then drop it. POST /lessons/drop-column/fixed runs that order on
the same data: the new release reads and writes heroes before and after the drop. The downgrade still
cannot bring the nicknames back: export them before the drop if anyone may need them.
Myth: "create_all keeps the database in step with the models". It creates the tables that are
missing and never alters one that exists: a column dropped from (or added to) a model stays (or stays
missing) in the database, without a statement or an error. Only a migration changes a table.
Commands: heroes db upgrade 0007 and heroes db downgrade 0006 run it on your database; alembic upgrade
0006:0007 --sql prints the DROP COLUMN without running it.
Data: a scratch database (a SQLite file beside the lab's, or a PostgreSQL schema of its own) migrated
to 0006, with ?heroes=N heroes (1000 unless said), each nicknamed "Nick <id>", rebuilt on every
request. The reference API's data is never touched.
"""

from alembic.operations import Operations
from fastapi import Request
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, text
from sqlmodel import Session, select

from heroes.lab import Call, Lesson
from heroes.lessons._migration import (
    DEFAULT_HEROES,
    SCRATCH_SIZE,
    Heroes,
    MigrationReport,
    scratch,
    squawk_operations,
    squawk_revisions,
    summary,
)
from heroes.models import Hero
from heroes.problems import problem_responses

lesson = Lesson(__name__, __doc__, size=SCRATCH_SIZE)
router = lesson.router()
NO_EXERCISE = (
    "its fix is a revision, not a route: the exercise will be to edit one until squawk (the PostgreSQL "
    "migration linter: its findings are in the report) is silent and nothing breaks"
)
RESPONSES = problem_responses(422)
COUNT = "SELECT count(nickname) FROM hero"
# the previous release's model of the hero table: it still maps nickname
OLD_HERO = Table("hero", MetaData(), Column("id", Integer, primary_key=True), Column("nickname", String))


class DropReport(MigrationReport):
    nicknames_before: int  # heroes with a nickname before the drop
    nicknames_after: int  # ... after the drop and a downgrade


def drop_nickname(op: Operations) -> None:
    op.drop_column("hero", "nickname")


def name_them(connection: Connection) -> None:
    connection.execute(text("UPDATE hero SET nickname = 'Nick ' || id"))


def old_release_reads(engine: Engine) -> str:
    with engine.connect() as connection:
        heroes = connection.execute(select(OLD_HERO)).all()  # SELECT hero.id, hero.nickname FROM hero
    return f"{len(heroes)} heroes read"


def new_release_reads(engine: Engine) -> str:
    with Session(engine) as session:
        heroes = session.exec(select(Hero)).all()  # SELECT hero.name, hero.age, ...: no nickname
    return f"{len(heroes)} heroes read"


def new_release_writes(engine: Engine) -> str:
    with Session(engine) as session:
        session.add(Hero(name="Nightcrawler", secret_name="Kurt Wagner"))  # INSERT without nickname
        session.commit()
    return "a hero created, its nickname NULL"


@router.post("/bad", response_model=DropReport, responses=RESPONSES)
def bad(request: Request, heroes: Heroes = DEFAULT_HEROES) -> DropReport:
    """Drop hero.nickname while the release that maps it still runs; then roll back with a downgrade."""
    with scratch(request, lesson, "bad", "0006", heroes, name_them) as run:
        before = run.scalar(COUNT)
        run.step("the running release reads heroes (its model maps nickname)", old_release_reads)
        run.migrate("0007", "0007: DROP COLUMN nickname, that release still running", lambda: "dropped")
        run.squawk = squawk_operations(drop_nickname)  # a plain DROP COLUMN: nobody said the cycle is done
        run.step("the running release reads heroes again", old_release_reads)  # the pitfall: it breaks
        run.migrate("0006", "roll back: downgrade to 0006", lambda: "the column is back", down=True)
        return DropReport(**run.report(), nicknames_before=before, nicknames_after=run.scalar(COUNT))


@router.post("/fixed", response_model=DropReport, responses=RESPONSES)
def fixed(request: Request, heroes: Heroes = DEFAULT_HEROES) -> DropReport:
    """Stop reading, stop writing, then drop: nothing breaks. The downgrade still brings back no value."""
    with scratch(request, lesson, "fixed", "0006", heroes, name_them) as run:
        before = run.scalar(COUNT)
        run.step("stop reading: the new release (no nickname in its model) reads heroes", new_release_reads)
        run.step("stop writing: the new release creates a hero", new_release_writes)
        run.migrate("0007", "0007: DROP COLUMN nickname, once no running code maps it", lambda: "dropped")
        run.squawk = squawk_revisions("0006", "0007")  # 0007 says why, above squawk's ignore comment
        run.step("the new release reads heroes again", new_release_reads)
        run.migrate("0006", "downgrade to 0006", lambda: "the column is back", down=True)
        return DropReport(**run.report(), nicknames_before=before, nicknames_after=run.scalar(COUNT))


def drop_summary(status: int, body) -> str:
    line = summary(status, body)
    if status == 200:
        line += f"; nicknames {body['nicknames_before']} -> {body['nicknames_after']} after the downgrade"
    return line


def calls(size: int | None) -> list[Call]:
    params = {"heroes": size} if size else {}
    return [
        Call("bad", "POST", "/bad", params, summary=drop_summary),
        Call("fixed", "POST", "/fixed", params, summary=drop_summary),
    ]
