"""Async lazy load: touching hero.team on an AsyncSession raises MissingGreenlet, with the session open

Symptom: GET /lessons/async-lazy-load/bad?hero_id=2 answers 500: StatementError, "(sqlalchemy.exc.
MissingGreenlet) greenlet_spawn has not been called; can't call await_() here. Was IO attempted in an
unexpected place?" (SQLAlchemy 2.1's words; 1.4 and 2.0 said await_only()). The hero was loaded, the
session is open and inside its transaction; only its team is missing. A hero without a team (hero 15)
answers 200: with team_id NULL there is nothing to load, so the bug hides until the data has a team.
On SQLite, aiosqlite warns as well: "coroutine 'Connection.cursor' was never awaited" (the lazy load's).
Cause: a lazy relationship loads on attribute access: `hero.team` runs a SELECT inside a plain getattr,
which cannot be awaited. An AsyncSession runs its sync core in a greenlet only while one of its own
awaited methods runs (exec, get, refresh...); an attribute read outside them finds no greenlet to switch
to the event loop, and SQLAlchemy refuses rather than block it.
Fix: load what the response needs in the query. selectinload(Hero.team) (GET .../fixed): 2 statements,
the hero, then SELECT team WHERE team.id IN (...) for every team the loaded heroes point to.
joinedload(Hero.team) (.../fixed/joinedload): 1, a LEFT OUTER JOIN. Or await the load where it happens:
with the AsyncAttrs mixin on the models, `await hero.awaitable_attrs.team` (.../fixed/awaitable-attrs,
2 statements: the lazy SELECT, awaited). To find the loads you forgot before a user does, declare the
relationship lazy="raise" (.../guard): the same access fails on every engine and in sync tests too, with
InvalidRequestError "'GuardedHero.team' is not available due to lazy='raise'", and runs no SQL; hero
15's too, whose team_id is NULL.
Myth: "MissingGreenlet means the session was closed". It is raised with the session open and in its
transaction (a closed session gives DetachedInstanceError instead), and AsyncAttrs.awaitable_attrs makes
the very same lazy load work on that open session.
Data: the demo cast in the lesson's own scratch database, read through its async driver, mapped by the
lesson's own classes on the hero and team tables (AsyncAttrs needs to be a base of the model).
"""

from typing import Annotated

from fastapi import Query
from sqlalchemy.ext.asyncio import AsyncAttrs, AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, joinedload, relationship, selectinload
from sqlmodel import select

from heroes.lab import Call, Lab, Lesson
from heroes.lab.check import Probe
from heroes.lab.deps import async_sessions
from heroes.models import INT32_MAX, Hero, HeroPublicWithTeam, Team, TeamPublic
from heroes.problems import Problem, problem_responses
from heroes.seed import seed_demo

lesson = Lesson(__name__, __doc__)
router = lesson.router()
MISSING_GREENLET = (
    "(sqlalchemy.exc.MissingGreenlet) greenlet_spawn has not been called; can't call await_() here. "
    "Was IO attempted in an unexpected place?"
)
PITFALLS = {  # heroes/docs.py
    "GET /bad": ("StatementError", MISSING_GREENLET),
    "GET /guard": ("InvalidRequestError", "'GuardedHero.team' is not available due to lazy='raise'"),
}


class Base(AsyncAttrs, DeclarativeBase):  # AsyncAttrs: every model gets .awaitable_attrs
    pass


class LazyTeam(Base):
    __table__ = Team.__table__


class LazyHero(Base):  # the hero table, team lazy as by default (viewonly: this lesson only reads)
    __table__ = Hero.__table__
    team: Mapped[LazyTeam | None] = relationship(viewonly=True)


class GuardedHero(Base):
    __table__ = Hero.__table__
    team: Mapped[LazyTeam | None] = relationship(lazy="raise", viewonly=True)


async def scratch(lab: Lab) -> AsyncEngine:
    return await lab.async_engine(lesson.name, seed_demo)


LessonSessions = async_sessions(scratch)
HeroId = Annotated[int, Query(ge=1, le=INT32_MAX, description="a hero of the demo cast, 1 to 15")]
FAILS, RESPONSES = problem_responses(404, 422, 500), problem_responses(404, 422)


def found(hero, hero_id: int):
    if hero is None:
        raise Problem(404, f"No hero {hero_id} in the lesson's demo cast (1 to 15).")
    return hero


def answer(hero, team) -> HeroPublicWithTeam:
    public = HeroPublicWithTeam.model_validate(hero)
    return public.model_copy(update={"team": TeamPublic.model_validate(team) if team else None})


@router.get("/bad", response_model=HeroPublicWithTeam, responses=FAILS)
async def bad(sessions: LessonSessions, hero_id: HeroId = 2) -> HeroPublicWithTeam:
    """A hero and its team: the team lazy-loaded on an open AsyncSession."""
    async with sessions() as session:
        hero = found(await session.get(LazyHero, hero_id), hero_id)
        team = hero.team  # a lazy load: a SELECT inside an attribute read, which nothing can await
        return answer(hero, team)


@router.get("/fixed", response_model=HeroPublicWithTeam, responses=RESPONSES)
async def fixed(sessions: LessonSessions, hero_id: HeroId = 2) -> HeroPublicWithTeam:
    """A hero and its team: the team loaded by the query (selectinload, 2 statements)."""
    async with sessions() as session:
        hero = found(await session.get(LazyHero, hero_id, options=[selectinload(LazyHero.team)]), hero_id)
        team = hero.team  # already loaded by selectinload: no IO here
        return answer(hero, team)


@router.get("/fixed/joinedload", response_model=HeroPublicWithTeam, responses=RESPONSES)
async def fixed_joinedload(sessions: LessonSessions, hero_id: HeroId = 2) -> HeroPublicWithTeam:
    """A hero and its team in one statement (a LEFT OUTER JOIN)."""
    async with sessions() as session:
        hero = found(await session.get(LazyHero, hero_id, options=[joinedload(LazyHero.team)]), hero_id)
        team = hero.team  # loaded by the JOIN
        return answer(hero, team)


@router.get("/fixed/awaitable-attrs", response_model=HeroPublicWithTeam, responses=RESPONSES)
async def fixed_awaitable_attrs(sessions: LessonSessions, hero_id: HeroId = 2) -> HeroPublicWithTeam:
    """A hero, then its team lazy-loaded, awaited (AsyncAttrs)."""
    async with sessions() as session:
        hero = found(await session.get(LazyHero, hero_id), hero_id)
        team = await hero.awaitable_attrs.team  # the lazy load, awaited: it runs in a greenlet
        return answer(hero, team)


@router.get("/guard", response_model=HeroPublicWithTeam, responses=FAILS)
async def guard(sessions: LessonSessions, hero_id: HeroId = 2) -> HeroPublicWithTeam:
    """The bad route on a relationship declared lazy="raise": the forgotten load fails, no SQL runs."""
    async with sessions() as session:
        hero = found(await session.get(GuardedHero, hero_id), hero_id)
        team = hero.team  # lazy="raise": InvalidRequestError, on every engine and in sync tests too
        return answer(hero, team)


def outcome(status: int, body) -> str:
    if status == 200:
        return f"200 OK: {body['name']} of {(body['team'] or {}).get('name')}"
    return f"{status}: {body.get('exception')}: {body.get('detail')}"


def calls(size: int | None) -> list[Call]:
    variants = ("bad", "fixed", "fixed/joinedload", "fixed/awaitable-attrs", "guard")
    return [Call(v, "GET", f"/{v}", params={"hero_id": 2}, summary=outcome) for v in variants]


def prepare(lab: Lab, size: int | None) -> None:
    lesson.scratch(lab, populate=seed_demo)  # built before compare times bad


async def check(probe: Probe) -> None:
    """Heroes of three teams answered with their own team, in at most 2 statements each."""
    with lesson.scratch(probe.lab, populate=seed_demo).connect() as connection:  # read apart from the route
        rows = connection.execute(
            select(Hero.id, Team.name).join(Team).where(Hero.id.in_((5, 9, 13))).order_by(Hero.id)
        ).all()
    for hero_id, team in rows:
        got = await probe.call(params={"hero_id": hero_id})
        said = ((got.json or {}).get("team") or {}).get("name")
        probe.expect(
            f"hero {hero_id} with its team, at most 2 statements",
            got.status == 200 and said == team and got.statements <= 2,
            f"{got.outcome}; team {said!r} (the database: {team!r}); {got.statements} statements",
        )
