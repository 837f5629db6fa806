"""Foreign keys: a hero whose team does not exist

Symptom: POST /lessons/foreign-key/bad with {"team_id": 99}, a team that does not exist. PostgreSQL
answers 500, the raw ForeignKeyViolation. SQLite is worse. It answers 201 Created and stores the
orphan; the header X-Orphans (1) counts the orphans this request made (PRAGMA foreign_key_check).
From the other side, DELETE /lessons/foreign-key/bad/teams/1 makes SQLite delete the team and orphan
its 3 heroes (X-Orphans 3), and PostgreSQL answer 500.
Cause: SQLite enforces FOREIGN KEY clauses only on a connection that ran PRAGMA foreign_keys=ON. The
default is off, per connection, so one plain connection writes orphans. PostgreSQL always enforces
them, but the route neither checks the team nor catches the IntegrityError.
Fix: turn foreign keys on for every connection (heroes/db.py does, on connect), then check the parent
in a dependency. An unknown team_id answers 422 naming `team_id`, as POST /heroes does (a field of the
body is wrong, the URL is not, so no 404). A team deleted between the check and the INSERT makes the
foreign key refuse, and that is mapped to the same 422, never a 500. Deleting a team that has heroes
has one behaviour, DELETE /teams/{id} answers 409 until they are moved or deleted (no cascade, no SET
NULL).
Myth: "SQLite enforces a FOREIGN KEY the schema declares, once PRAGMA foreign_keys=ON has run". The
pragma is off on every new connection, holds for that connection only, and is a silent no-op inside
an open transaction: run it on connect, outside any transaction (heroes/db.py does).
Data: the demo data (5 teams, 15 heroes) copied into the lesson's own database (a SQLite file beside the
lab's, or a PostgreSQL
schema of its own), never the reference API's. The bad routes leave
orphans there, so compare starts from a fresh copy, and POST /lessons/foreign-key/reset makes one.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Annotated

from fastapi import Depends, Path, Request, Response
from sqlalchemy import Connection, Engine, create_engine, delete, insert, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from heroes.db import is_sqlite
from heroes.evidence import instrument
from heroes.lab import Call, Lab, Lesson, lab_of, scratch_engine, session_on
from heroes.lab.check import Probe, before_first
from heroes.models import INT32_MAX, Hero, HeroCreate, HeroPublic, Team
from heroes.problems import Problem, integrity_kind, problem_responses
from heroes.seed import seed_demo

lesson = Lesson(__name__, __doc__)
router = lesson.router()
KEY_99 = '(team_id)=(99) is not present in table "team"'
KEY_1 = '(id)=(1) is still referenced from table "hero"'
TEAM = 'update or delete on table "team"'
FK = 'ForeignKeyViolation: {} violates foreign key constraint "fk_hero_team_id_team"{} DETAIL: Key {}.'
PITFALLS = {  # what the bad routes answer on PostgreSQL (heroes/docs.py documents it)
    "POST /bad": ("IntegrityError", FK.format('insert or update on table "hero"', "", KEY_99)),
    "DELETE /bad/teams/{team_id}": ("IntegrityError", FK.format(TEAM, ' on table "hero"', KEY_1)),
}
TeamId = Annotated[int, Path(ge=1, le=INT32_MAX, description="A team's id (1 to 2147483647).")]


def scratch(lab: Lab, fresh: bool = False) -> Engine:
    """The demo data in the lesson's own database."""
    return lesson.scratch(lab, populate=seed_demo, fresh=fresh)


def prepare(lab: Lab, size: int | None) -> None:
    scratch(lab, fresh=True)  # the bad routes leave orphans behind: every compare starts clean


@contextmanager
def unenforced(request: Request) -> Iterator[Engine]:
    """The lesson's database as a careless app opens it. PostgreSQL enforces foreign keys regardless."""
    engine = scratch(lab_of(request))
    plain = instrument(create_engine(engine.url)) if is_sqlite(engine) else None  # no foreign_keys=ON
    try:
        yield plain or engine
    finally:
        if plain is not None:
            plain.dispose()  # its own engine: the app's are never touched


def orphans(connection: Connection) -> int:
    """SQLite: the heroes PRAGMA foreign_key_check finds whose team does not exist."""
    return len(connection.exec_driver_sql("PRAGMA foreign_key_check(hero)").all())


@contextmanager
def orphans_made(connection: Callable[[], Connection], response: Response) -> Iterator[None]:
    """SQLite: X-Orphans, how many orphans the block made. PostgreSQL refuses orphans: no header."""
    sqlite = connection().dialect.name == "sqlite"
    before = orphans(connection()) if sqlite else 0
    yield
    if sqlite:
        response.headers["X-Orphans"] = str(orphans(connection()) - before)


ScratchSession = session_on(scratch_engine(scratch))


def valid_team_id(hero_in: HeroCreate, session: ScratchSession) -> HeroCreate:
    """Dependency: the hero to create, once its team is known to exist; 422 naming team_id otherwise."""
    if hero_in.team_id is not None and session.get(Team, hero_in.team_id) is None:  # check the parent
        raise Problem(422, f"No team with id {hero_in.team_id}.", field="team_id")
    return hero_in


@router.post("/bad", status_code=201, response_model=HeroPublic, responses=problem_responses(400, 422, 500))
def bad(hero_in: HeroCreate, request: Request, response: Response) -> Hero:
    """Insert the hero as sent: SQLite stores an orphan, PostgreSQL's violation escapes as a 500."""
    with unenforced(request) as engine, Session(engine) as session:
        with orphans_made(session.connection, response):
            hero = Hero.model_validate(hero_in)
            session.add(hero)
            session.commit()  # no check, no except: whatever the database says (or not) goes to the client
            session.refresh(hero)
        return hero


@router.post("/fixed", status_code=201, response_model=HeroPublic, responses=problem_responses(400, 422))
def fixed(hero_in: Annotated[HeroCreate, Depends(valid_team_id)], session: ScratchSession) -> Hero:
    """Insert the hero once its team exists; a team deleted meanwhile answers 422 too, never a 500."""
    hero = Hero.model_validate(hero_in)
    session.add(hero)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        if integrity_kind(exc)[0] == "foreign_key":  # the team went between the check and the INSERT
            raise Problem(422, f"No team with id {hero.team_id} (just deleted).", field="team_id") from None
        raise
    session.refresh(hero)
    return hero


@router.delete("/bad/teams/{team_id}", status_code=204, responses=problem_responses(422, 500))
def bad_delete_team(team_id: TeamId, request: Request) -> Response:
    """Delete the team as asked: SQLite orphans its heroes, PostgreSQL's violation escapes as a 500."""
    response = Response(status_code=204)
    with unenforced(request) as engine, engine.begin() as db, orphans_made(lambda: db, response):
        db.execute(delete(Team).where(Team.id == team_id))  # its heroes now point at nothing
    return response


def orphan_stored(status: int, body) -> str:
    """compare's outcome line for bad: what was stored, or the error."""
    if status == 201:
        return f"201 Created: hero {body['id']} stored with team_id {body['team_id']}, which does not exist"
    return f"{status} {HTTPStatus(status).phrase}: {body['detail']}"


ORPHAN = {"name": "Orphan", "secret_name": "Nobody Knows", "age": 30, "team_id": 99}


def calls(size: int | None) -> list[Call]:
    return [
        Call("bad", "POST", "/bad", json=ORPHAN, summary=orphan_stored),
        Call("fixed", "POST", "/fixed", json=ORPHAN),
        Call("bad/delete-team", "DELETE", "/bad/teams/1"),
    ]


def orphans_in(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM hero WHERE team_id NOT IN (SELECT id FROM team)"))


async def check(probe: Probe) -> None:
    """No team: 422 naming team_id, nothing stored; a team: 201; a team deleted meanwhile: 422, no orphan."""
    engine = scratch(probe.lab, fresh=True)
    missing = await probe.call(json={**ORPHAN, "team_id": 1234})
    named = missing.status == 422 and missing.field() == "team_id"
    probe.expect("a team that does not exist: 422 naming team_id", named, missing.outcome)
    probe.expect("no orphan stored", orphans_in(engine) == 0, f"orphans: {orphans_in(engine)}")
    joined = await probe.call(json={**ORPHAN, "team_id": 2})
    probe.expect("a team that exists: 201", joined.status == 201, joined.outcome)
    with engine.begin() as db:
        doomed = db.execute(insert(Team).values(name="Doomed", headquarters="-")).inserted_primary_key[0]
    with before_first(
        engine, "INSERT INTO hero", lambda db: db.execute(delete(Team).where(Team.id == doomed))
    ):
        gone = await probe.call(json={**ORPHAN, "name": "Too Late", "team_id": doomed})
    named = gone.status == 422 and gone.field() == "team_id"
    probe.expect("a team deleted before the INSERT: 422 naming team_id", named, gone.outcome)
    probe.expect("still no orphan", orphans_in(engine) == 0, f"orphans: {orphans_in(engine)}")
