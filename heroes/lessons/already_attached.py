"""Already attached: a hero loaded in one session, added to another while the first is still open

Symptom: PATCH /lessons/already-attached/bad?hero_id=1 with {"name": "..."} answers 500: InvalidRequestError,
"Object '<Hero at 0x...>' is already attached to session '3' (this is '4')". Nothing is renamed.
Cause: every ORM object belongs to at most one session, the one that loaded it (or that it was added
to), until that session closes or expunges it. Here a dependency loads the hero in a session of its own
(a validation helper, a cache, another library's session) and keeps it open until the response is
sent; the route then adds the hero to the request's session. SQLAlchemy refuses: two sessions would
flush the same row, each with its own idea of what it holds.
Fix: load the object in the session that changes it (PATCH .../fixed: one SELECT, one UPDATE, the
reference API's PATCH /heroes/{id} does the same with its one session per request). Where the object
really comes from elsewhere, session.merge(hero) (PATCH .../fixed/merge) returns this session's own
copy of the row (a SELECT by primary key) with the changes carried over: change and commit the copy,
never the original.
Myth: adding the same object to a session twice does not warn: the second add does nothing (no
statement, no warning, one INSERT at commit); the real error is an object attached to another open
session. And session.merge() is not an upsert: on a transient object it returns a copy and leaves the
original unattached, so a change made to the original afterwards is never saved.
Data: the lesson's own copy of the demo cast (a SQLite file beside the lab's, or a PostgreSQL schema
of its own), so the renames never reach GET /heroes; hero_id is an id in that copy (1 to 15).
"""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel

from heroes.lab import Call, Lab, Lesson, lab_of, scratch_engine, session_on
from heroes.lab.check import Probe
from heroes.models import INT32_MAX, NAME_MAX, Hero, HeroPublic, Text
from heroes.problems import Problem, problem_responses
from heroes.seed import seed_demo

lesson = Lesson(__name__, __doc__)
router = lesson.router()
PITFALLS = {
    "PATCH /bad": (
        "InvalidRequestError",
        "Object '<Hero at 0x7f3e5c1d2a90>' is already attached to session '3' (this is '4')",
    )
}

HeroId = Annotated[int, Query(ge=1, le=INT32_MAX, description="A hero's id in the lesson's copy (1 to 15).")]
FAILS = problem_responses(400, 404, 422, 500)  # a 500 is the bad route's documented symptom
RESPONSES = problem_responses(400, 404, 422)


class Rename(SQLModel):
    """The routes' body."""

    name: Text = Field(min_length=1, max_length=NAME_MAX, description="The new name.")


def scratch(lab: Lab, fresh: bool = False) -> Engine:
    """The demo cast in the lesson's own database: the renames land there."""
    return lesson.scratch(lab, populate=seed_demo, fresh=fresh)


def prepare(lab: Lab, size: int | None) -> None:
    scratch(lab, fresh=True)


ScratchSession = session_on(scratch_engine(scratch))  # the request's session


def hero_or_404(session: Session, hero_id: int) -> Hero:
    hero = session.get(Hero, hero_id)
    if hero is None:
        raise Problem(404, f"No hero with id {hero_id}.", field="hero_id", location="query")
    return hero


def hero_in_own_session(request: Request, hero_id: HeroId = 1) -> Iterator[Hero]:
    """Dependency: the hero, loaded in a session of its own that stays open until the response is sent."""
    with Session(scratch(lab_of(request))) as own:
        yield hero_or_404(own, hero_id)


LoadedHero = Annotated[Hero, Depends(hero_in_own_session)]


@router.patch("/bad", response_model=HeroPublic, responses=FAILS)
def bad(rename: Rename, hero: LoadedHero, session: ScratchSession) -> Hero:
    """Rename the hero a dependency loaded, in the request's session: it belongs to another, a 500."""
    hero.name = rename.name
    session.add(hero)  # attached to the dependency's open session: InvalidRequestError
    session.commit()
    session.refresh(hero)
    return hero


@router.patch("/fixed", response_model=HeroPublic, responses=RESPONSES)
def fixed(rename: Rename, session: ScratchSession, hero_id: HeroId = 1) -> Hero:
    """Load the hero in the request's session and rename it there: SELECT, UPDATE, refresh."""
    hero = hero_or_404(session, hero_id)  # loaded by the session that changes it
    hero.name = rename.name
    session.add(hero)  # already in this session: a no-op, no warning
    session.commit()
    session.refresh(hero)
    return hero


@router.patch("/fixed/merge", response_model=HeroPublic, responses=RESPONSES)
def fixed_merge(rename: Rename, hero: LoadedHero, session: ScratchSession) -> Hero:
    """Merge the dependency's hero into the request's session and rename the copy merge returns."""
    hero.name = rename.name
    hero = session.merge(hero)  # this session's copy of the row (a SELECT), the new name carried over
    session.commit()
    session.refresh(hero)
    return hero


def calls(size: int | None) -> list[Call]:
    """Bad first; each rename differs from the one before it, so every fixed PATCH really writes."""
    one = {"hero_id": 1}
    return [
        Call("bad", "PATCH", "/bad", one, json={"name": "Deadpond the Attached"}),
        Call("fixed", "PATCH", "/fixed", one, json={"name": "Deadpond the Loaded"}),
        Call("fixed/merge", "PATCH", "/fixed/merge", one, json={"name": "Deadpond the Merged"}),
    ]


def stored_name(engine: Engine, hero_id: int) -> str:
    with Session(engine) as session:
        return hero_or_404(session, hero_id).name


async def check(probe: Probe) -> None:
    """Hero 1, then hero 11 (unseen): 200 with the new name, stored, by exactly one UPDATE."""
    engine = scratch(probe.lab, fresh=True)
    for hero_id, name in ((1, "Deadpond the Attached"), (11, "Bat Person Returns")):
        answer = await probe.call(params={"hero_id": hero_id}, json={"name": name})
        renamed = answer.status == 200 and answer.json.get("name") == name and answer.json["id"] == hero_id
        probe.expect(f"hero {hero_id} renamed: 200 with the new name", renamed, answer.outcome)
        stored = stored_name(engine, hero_id)
        probe.expect(f"hero {hero_id}'s new name is stored", stored == name, f"stored: {stored!r}")
        updates = sum(count for sql, count in answer.sql if sql.startswith("UPDATE hero"))
        probe.expect(f"one UPDATE for hero {hero_id}", updates == 1, f"UPDATE statements: {updates}")
