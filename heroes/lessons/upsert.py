"""Upsert: "create or update by name" as a read then a write races, and session.merge() is no cure

Symptom: POST /lessons/upsert/bad stores a team's hideout by name: it updates the row if the name is
there, inserts it if not. One client at a time it is right. 20 clients saving one new name at once,
each having read before any writes: one 200 and 19 500s, the unique key refusing the other INSERTs
(SQLite "UNIQUE constraint failed: hideout.name", PostgreSQL "UniqueViolation"). POST .../bad/merge,
session.merge(), fails the same way: 1x 200, 19x 500.
Cause: the decision "insert or update" is made in Python, from a SELECT that saw no row; between that
SELECT and the INSERT, another client inserts the name. A SELECT takes no lock on a row that does not
exist (PostgreSQL READ COMMITTED, or SQLite outside a write transaction), so every client decides
"insert" and all but one lose at the primary key. Two statements: SELECT, then INSERT or UPDATE.
Fix: one statement that lets the database decide, atomically: the dialect's INSERT ... ON CONFLICT
(name) DO UPDATE SET location = excluded.location, sqlalchemy.dialects.postgresql.insert or
sqlalchemy.dialects.sqlite.insert with .on_conflict_do_update() (POST .../fixed: 20 clients, 20x
200, one row holding the last value; 1 statement per call instead of 2). It is a Core statement: the
session's identity map does not see its result. A Hideout the session already holds keeps its old
location, even when the statement's RETURNING hands that very object back; ask for
execution_options(populate_existing=True), or refresh it, to read what was stored.
Myth: "session.merge() is an upsert". It is a SELECT by primary key, then an INSERT or an UPDATE at
the flush: the same race as doing it by hand. And merge() of a new (transient) object returns a copy
attached to the session; the object passed in stays unattached, so changes made to it later are lost.
Data: the lesson's own table hideout (name primary key, location), created in its scratch database
with the demo teams' headquarters. compare starts it afresh and sends ?size=N concurrent clients per
variant (default and most 20: every one holds a connection of the scratch pool, 25, while it waits),
each variant on a name nobody has stored yet; a barrier holds every client's INSERT until all of them
have read, so the race happens on every run.
"""

from contextlib import AbstractContextManager

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel, func, select

from heroes.lab import Call, Lab, Lesson, Size, create_lesson_tables, scratch_engine, session_on
from heroes.lab.check import Probe, all_reach
from heroes.models import NAME_MAX, Text
from heroes.problems import problem_responses
from heroes.seed import DEMO_TEAMS

lesson = Lesson(
    __name__,
    __doc__,
    size=Size("clients", "concurrent clients saving one new name (compare only)", 20, (5, 20), default=20),
)
router = lesson.router()
PITFALLS = {"*": ("IntegrityError", "IntegrityError: UNIQUE constraint failed: hideout.name")}  # SQLite's


class LessonModel(SQLModel, registry=registry()):  # own metadata: never SQLModel.metadata, nor Alembic's
    pass


class Hideout(LessonModel, table=True):
    name: str = Field(primary_key=True, max_length=NAME_MAX)  # the key a client saves by
    location: str = Field(max_length=NAME_MAX)


class HideoutPublic(SQLModel):
    name: Text = Field(min_length=1, max_length=NAME_MAX)
    location: Text = Field(min_length=1, max_length=NAME_MAX)


def create_hideouts(engine: Engine) -> None:
    with engine.begin() as connection:  # plain DDL and the demo teams' headquarters, in the scratch database
        create_lesson_tables(connection, LessonModel.metadata)
        rows = [{"name": name, "location": headquarters} for name, headquarters in DEMO_TEAMS]
        connection.execute(Hideout.__table__.insert(), rows)


def scratch(lab: Lab, fresh: bool = False) -> Engine:
    return lesson.scratch(lab, populate=create_hideouts, fresh=fresh)


def prepare(lab: Lab, size: int | None) -> None:
    scratch(lab, fresh=True)


LessonSession = session_on(scratch_engine(scratch))
FAILS = problem_responses(400, 422, 500)  # 500: a client that lost the race (the lesson's symptom)


@router.post("/bad", response_model=HideoutPublic, responses=FAILS)
def bad(hideout_in: HideoutPublic, session: LessonSession) -> HideoutPublic:
    """Read the name, then insert or update: two statements, and a race between them."""
    hideout = session.get(Hideout, hideout_in.name)  # every client may find nothing, and all insert
    if hideout is None:
        session.add(Hideout.model_validate(hideout_in))
    else:
        hideout.location = hideout_in.location
    session.commit()
    return hideout_in


@router.post("/bad/merge", response_model=HideoutPublic, responses=FAILS)
def bad_merge(hideout_in: HideoutPublic, session: LessonSession) -> HideoutPublic:
    """session.merge(): a SELECT by primary key, then an INSERT or UPDATE; the same race."""
    session.merge(Hideout.model_validate(hideout_in))  # not an upsert: SELECT, then INSERT at the flush
    session.commit()
    return hideout_in


def dialect_insert(session: Session):
    """The INSERT of the session's dialect: both have on_conflict_do_update()."""
    return {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[session.get_bind().dialect.name]


@router.post("/fixed", response_model=HideoutPublic, responses=problem_responses(400, 422))
def fixed(hideout_in: HideoutPublic, session: LessonSession) -> HideoutPublic:
    """INSERT ... ON CONFLICT (name) DO UPDATE: one statement, the database decides, atomically."""
    statement = dialect_insert(session)(Hideout).values(hideout_in.model_dump())
    statement = statement.on_conflict_do_update(  # one atomic statement: insert, or update the row there
        index_elements=[Hideout.name], set_={"location": statement.excluded.location}
    )
    session.execute(statement)
    session.commit()
    return hideout_in


def calls(size: int | None) -> list[Call]:
    clients = size or lesson.size.default

    def race(app) -> AbstractContextManager:  # every client reads before any writes, on every run
        return all_reach(scratch(app.state.lab), "INSERT INTO hideout", clients)

    return [
        Call(
            variant,
            "POST",
            f"/{variant}",
            json={"name": name, "location": location},
            clients=clients,
            race=race,
        )
        for variant, name, location in (
            ("bad", "Runaways", "The Hostel"),
            ("bad/merge", "Thunderbolts", "Watchtower"),
            ("fixed", "Defenders", "Sanctum"),
        )
    ]


def stored(engine: Engine, name: str) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(Hideout.location).where(Hideout.name == name)))


async def check(probe: Probe) -> None:
    """A new name and a stored one, one statement each; 20 clients at once on one new name: no 500, 1 row."""
    engine = scratch(probe.lab, fresh=True)
    for name, location in (("Sinister Six", "Ravencroft"), ("Avengers", "Stark Tower")):
        answer = await probe.call(json={"name": name, "location": location})
        where = stored(engine, name)
        probe.expect(
            f"{name!r} saved", answer.status == 200 and where == [location], f"{answer.outcome}; {where}"
        )
        probe.expect(f"{name!r} in one statement", answer.statements == 1, f"{answer.statements} statements")
    with all_reach(engine, "INSERT INTO hideout", 20):  # every client reads what it reads, then all write
        statuses = await probe.race(20, json={"name": "Masters of Evil", "location": "Hidden"})
    seen = ", ".join(f"{n}x {status}" for status, n in sorted(statuses.items()))
    probe.expect("20 clients, one new name: 20x 200", statuses == {200: 20}, seen)
    with Session(engine) as session:
        rows = session.exec(select(func.count()).where(Hideout.name == "Masters of Evil")).one()
    probe.expect("one row for the name", rows == 1, f"{rows} rows")
