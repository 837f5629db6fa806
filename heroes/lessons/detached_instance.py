"""Detached instances: a hero's team read after its session closed

Symptom: GET /lessons/detached-instance/bad answers 500: DetachedInstanceError, "Parent instance <Hero
at 0x...> is not bound to a Session; lazy load operation of attribute 'team' cannot proceed". Its
cousin, PATCH /lessons/detached-instance/bad/expired, renames a hero, commits, then fails on the
hero's own name: "Instance <Hero at 0x...> is not bound to a Session; attribute refresh operation
cannot proceed". The rename was committed all the same: the client gets a 500 for a write that
happened.
Cause: an ORM object loads what it lacks through the session it came from. A `with Session(engine)`
block (often in a helper that returns the hero) closes that session, and hero.team, a lazy many-to-
one, was never loaded. commit() expires every attribute of every object (expire_on_commit=True, the
default) so that the next read reloads the row; once the session is closed nothing can reload it, not
even a column or a team that was eager-loaded. Returned straight to FastAPI, the error arrives wrapped
in a ResponseValidationError whose message holds the hero's repr, private fields included; these
routes read the response field by field, so the error shows as itself.
Fix: build the response while the session is open, having loaded what it needs: the request-scoped
session (SessionDep) and joinedload(Hero.team) read the hero and its team in 1 statement (GET
.../fixed). After a write, building the response inside the session pays for the reload: 3 statements
where 2 would do (PATCH .../fixed/in-session), and shows what the database now holds.
Session(expire_on_commit=False) skips the reload: 2 statements (PATCH .../fixed/expire-on-commit). It
is the right trade when the response is what you just wrote and the code must hand objects out of its
session (a helper, a background job); it loads nothing more (the team still needs its joinedload), and
it answers what Python holds, not what the database made of it (server defaults, triggers). Choose the
request-scoped session unless you have that reason.
Data: the GET routes read the reference data and never write. The PATCH routes rename a hero in the
lesson's own copy of the demo cast (a SQLite file beside the lab's, or a PostgreSQL schema of its
own), built on first use, so the reference data never changes; their hero_id is an id in that copy (1
to 15).
"""

from typing import Annotated

from fastapi import Query, Request
from sqlalchemy import Engine
from sqlalchemy.orm import joinedload
from sqlmodel import Field, Session, SQLModel

from heroes.db import EngineDep, SessionDep
from heroes.lab import Call, Lab, Lesson, lab_of, scratch_engine, session_on
from heroes.lab.check import Probe
from heroes.models import INT32_MAX, NAME_MAX, Hero, HeroPublicWithTeam, Text
from heroes.problems import Problem, problem_responses
from heroes.seed import seed_demo

lesson = Lesson(__name__, __doc__)
router = lesson.router()
PITFALLS = {  # what the bad routes answer (heroes/docs.py documents it; 0x... is any address)
    "GET /bad": (
        "DetachedInstanceError",
        "Parent instance <Hero at 0x7f3e5c1d2a90> is not bound to a Session; lazy load operation of "
        "attribute 'team' cannot proceed (Background on this error at: https://sqlalche.me/e/21/bhk3)",
    ),
    "PATCH /bad/expired": (
        "DetachedInstanceError",
        "Instance <Hero at 0x7f3e5c1d2a90> is not bound to a Session; attribute refresh operation cannot "
        "proceed (Background on this error at: https://sqlalche.me/e/21/bhk3)",
    ),
}

HeroId = Annotated[int, Query(ge=1, le=INT32_MAX, description="A hero's id (1 to 2147483647).")]


class HeroRename(SQLModel):
    """The PATCH routes' body."""

    name: Text = Field(min_length=1, max_length=NAME_MAX, description="The new name.")


FAILS = problem_responses(400, 404, 422, 500)  # a 500 is the bad routes' documented symptom
RESPONSES = problem_responses(400, 404, 422)  # 400: a PATCH body that is not JSON


def scratch(lab: Lab) -> Engine:
    """The demo cast in the lesson's own database (built once): the renames land there."""
    return lesson.scratch(lab, populate=seed_demo)


def prepare(lab: Lab, size: int | None) -> None:
    scratch(lab)


ScratchSession = session_on(scratch_engine(scratch))  # request-scoped, closed after the response


def hero_or_404(session: Session, hero_id: int, *options) -> Hero:
    hero = session.get(Hero, hero_id, options=list(options))
    if hero is None:
        raise Problem(404, f"No hero with id {hero_id}.", field="hero_id", location="query")
    return hero


def public(hero: Hero) -> HeroPublicWithTeam:
    """The response, read from the ORM object field by field, as FastAPI's serializer would read it."""
    fields = {name: getattr(hero, name) for name in HeroPublicWithTeam.model_fields}
    return HeroPublicWithTeam.model_validate(fields, from_attributes=True)


@router.get("/bad", response_model=HeroPublicWithTeam, responses=FAILS)
def bad(engine: EngineDep, hero_id: HeroId = 1) -> HeroPublicWithTeam:
    """A hero from a session that is closed before the response reads hero.team: a 500."""
    with Session(engine) as session:
        hero = hero_or_404(session, hero_id)
    return public(hero)  # hero.team: a lazy load, and the session it needs is closed


@router.get("/fixed", response_model=HeroPublicWithTeam, responses=RESPONSES)
def fixed(session: SessionDep, hero_id: HeroId = 1) -> HeroPublicWithTeam:
    """The hero and its team in 1 statement, the response built while the session is open."""
    hero = hero_or_404(session, hero_id, joinedload(Hero.team))  # the team in the same SELECT
    return public(hero)


@router.patch("/bad/expired", response_model=HeroPublicWithTeam, responses=FAILS)
def bad_expired(request: Request, rename: HeroRename, hero_id: HeroId = 1) -> HeroPublicWithTeam:
    """Rename a hero in a session of its own, then read it: committed, and yet a 500."""
    with Session(scratch(lab_of(request))) as session:
        hero = hero_or_404(session, hero_id, joinedload(Hero.team))
        hero.name = rename.name
        session.commit()  # expires every attribute, the team's too: the next read must reload
    return public(hero)


@router.patch("/fixed/expire-on-commit", response_model=HeroPublicWithTeam, responses=RESPONSES)
def fixed_expire_on_commit(request: Request, rename: HeroRename, hero_id: HeroId = 1) -> HeroPublicWithTeam:
    """Rename a hero in a session that keeps its objects loaded after commit: 2 statements."""
    with Session(scratch(lab_of(request)), expire_on_commit=False) as session:  # commit expires nothing
        hero = hero_or_404(session, hero_id, joinedload(Hero.team))
        hero.name = rename.name
        session.commit()
    return public(hero)


@router.patch("/fixed/in-session", response_model=HeroPublicWithTeam, responses=RESPONSES)
def fixed_in_session(session: ScratchSession, rename: HeroRename, hero_id: HeroId = 1) -> HeroPublicWithTeam:
    """Rename a hero in the request's session and answer before it closes: 3 statements."""
    hero = hero_or_404(session, hero_id, joinedload(Hero.team))
    hero.name = rename.name
    session.commit()
    return public(hero)  # the session is still open: the expired hero and team reload in 1 SELECT


def calls(size: int | None) -> list[Call]:
    """Bad first; each rename differs from the one before it, so every PATCH really writes."""
    one = {"hero_id": 1}
    renames = {
        "bad/expired": "Deadpond the Detached",
        "fixed/expire-on-commit": "Deadpond",
        "fixed/in-session": "Deadpond Again",
    }
    return [Call("bad", "GET", "/bad", one), Call("fixed", "GET", "/fixed", one)] + [
        Call(variant, "PATCH", f"/{variant}", one, json={"name": name}) for variant, name in renames.items()
    ]


async def check(probe: Probe) -> None:
    """The hero with its team, built while the session is open: hero 1, then hero 7 (unseen)."""
    for hero_id in (1, 7):
        answer = await probe.call(params={"hero_id": hero_id})
        with Session(probe.engine) as session:
            right = public(hero_or_404(session, hero_id, joinedload(Hero.team))).model_dump(mode="json")
        probe.expect(
            f"hero {hero_id} with its team", answer.status == 200 and answer.json == right, answer.outcome
        )
        evidence = f"statements: {answer.statements}; 1 with joinedload, 2 if the team loads lazily in time"
        probe.expect(f"statements for hero {hero_id}", answer.statements <= 2, evidence)
