"""Missing await: an AsyncSession call without `await` is a coroutine, and a forgotten commit loses the write

Symptom: POST /lessons/missing-await/bad answers 201 with the new hero's id, yet the hero is not in the
database: `stored` 0, counted by another session after the request's one closed. Nothing failed, nothing
was logged but a RuntimeWarning: "coroutine 'AsyncSession.commit' was never awaited". Reading without
await fails louder: GET .../bad/read answers 500, "'coroutine' object has no attribute 'all'" (and
`session.get(Hero, 1)` without await, "'coroutine' object has no attribute 'name'").
Cause: every AsyncSession method that talks to the database (exec, get, execute, flush, commit, refresh)
is a coroutine function: calling it only builds a coroutine object, and nothing runs until it is
awaited. `session.commit()` on its own line is a statement that does nothing; Python warns when the
unawaited coroutine is garbage-collected. The session then closes with its transaction open, and
closing rolls back: the INSERT the flush sent is undone, after the 201 has been built.
Fix: await every call (POST .../fixed: `stored` 1; GET .../fixed/read: the heroes). Let the tools find
the ones you miss. In tests, the warning as an error takes two filters (pytest 9): the warning rises in a
finalizer, so `error::RuntimeWarning` alone only makes it an "unraisable exception", which fails the
test with `error::pytest.PytestUnraisableExceptionWarning` as well. A type checker finds it before
running: mypy (2.4) reports a bare `session.commit()` as `Value of type "Coroutine[Any, Any, None]" must
be used [unused-coroutine]` and `.all()` on a coroutine as [attr-defined], "Maybe you forgot to use
await?". Ruff does not: it has no types.
Myth: "a missing await blocks the event loop". It does not block, nor wait: it returns a coroutine at once,
and a forgotten commit loses the write silently. Likewise `session.query(Hero)` on an AsyncSession is no
"blocking call": it is an AttributeError ('AsyncSession' object has no attribute 'query'). What really
blocks is a sync Session inside `async def` (blocking-event-loop).
Data: the lesson's own scratch database, 3 heroes to read, through its async driver (aiosqlite,
psycopg's async mode); POST adds one more each time it really commits.
"""

from anyio import from_thread
from sqlalchemy import Engine, func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, Session, SQLModel, select

from heroes.evidence import not_recorded
from heroes.lab import Call, Lab, Lesson
from heroes.lab.check import Probe
from heroes.lab.deps import async_sessions
from heroes.models import AGE_MAX, NAME_MAX, Hero, HeroPublic, Text
from heroes.problems import problem_responses

lesson = Lesson(__name__, __doc__)
router = lesson.router()
PITFALLS = {
    "GET /bad/read": ("AttributeError", "'coroutine' object has no attribute 'all'")
}  # heroes/docs.py
READ = [("Dash", "Quick"), ("Slowpoke", "Later"), ("Echo", "Again")]


def populate(engine: Engine) -> None:
    with Session(engine) as session:
        session.add_all(Hero(name=name, secret_name=secret) for name, secret in READ)
        session.commit()


async def scratch(lab: Lab) -> AsyncEngine:
    return await lab.async_engine(lesson.name, populate)


LessonSessions = async_sessions(scratch)


class NewHero(SQLModel):  # no team: the lesson's database has none
    name: Text = Field(min_length=1, max_length=NAME_MAX)
    secret_name: Text = Field(min_length=1, max_length=NAME_MAX)
    age: int | None = Field(default=None, ge=0, le=AGE_MAX)


class HeroStored(SQLModel):
    id: int
    name: str
    stored: int  # heroes of that name in the database once the request's session has closed


async def stored(sessions, name: str) -> int:
    """Counted by a session of its own, after the request's one closed (not the request's evidence)."""
    with not_recorded():
        async with sessions() as other:
            return (await other.exec(select(func.count()).where(Hero.name == name))).one()


@router.post("/bad", status_code=201, response_model=HeroStored, responses=problem_responses(400, 422))
async def bad(hero_in: NewHero, sessions: LessonSessions) -> HeroStored:
    """Create a hero: 201 with its id, and nothing stored."""
    async with sessions() as session:
        hero = Hero.model_validate(hero_in)
        session.add(hero)
        await session.flush()  # the INSERT, in the session's transaction: hero.id is known
        session.commit()  # no await: a coroutine object, never run; closing the session rolls back
    return HeroStored(id=hero.id, name=hero.name, stored=await stored(sessions, hero.name))


@router.post("/fixed", status_code=201, response_model=HeroStored, responses=problem_responses(400, 422))
async def fixed(hero_in: NewHero, sessions: LessonSessions) -> HeroStored:
    """Create a hero: 201 with its id, and stored."""
    async with sessions() as session:
        hero = Hero.model_validate(hero_in)
        session.add(hero)
        await session.flush()
        await session.commit()  # awaited: the COMMIT runs before the session closes
    return HeroStored(id=hero.id, name=hero.name, stored=await stored(sessions, hero.name))


@router.get("/bad/read", response_model=list[HeroPublic], responses=problem_responses(500))
async def bad_read(sessions: LessonSessions) -> list[Hero]:
    """The heroes, read without await: a 500 naming the coroutine."""
    async with sessions() as session:
        heroes = session.exec(select(Hero).order_by(Hero.id))  # no await: a coroutine, not a result
        return list(heroes.all())


@router.get("/fixed/read", response_model=list[HeroPublic])
async def fixed_read(sessions: LessonSessions) -> list[Hero]:
    """The heroes, read with await."""
    async with sessions() as session:
        heroes = await session.exec(select(Hero).order_by(Hero.id))  # awaited: a result
        return list(heroes.all())


def payload(name: str) -> dict:
    return {"name": name, "secret_name": "Unawaited", "age": 30}


def outcome(status: int, body) -> str:
    if status == 201:
        return f"201 Created: id {body['id']} answered; stored: {body['stored']}"
    if status == 200:
        return f"200 OK: {len(body)} heroes"
    return f"{status}: {body.get('detail')}"


def calls(size: int | None) -> list[Call]:
    return [
        Call("bad", "POST", "/bad", json=payload("Lost Write"), summary=outcome),
        Call("fixed", "POST", "/fixed", json=payload("Kept Write"), summary=outcome),
        Call("bad/read", "GET", "/bad/read", summary=outcome),
        Call("fixed/read", "GET", "/fixed/read", summary=outcome),
    ]


def reset(lab: Lab) -> None:
    lab.drop(lesson.name)  # the heroes created so far: the 3 to read again


async def warm(lab: Lab) -> None:
    async with (await scratch(lab)).connect():  # the database built, the async engine's first connection
        pass


def prepare(lab: Lab, size: int | None) -> None:
    reset(lab)
    from_thread.run(warm, lab)  # compare runs prepare in a worker thread: warm runs in compare's loop


async def check(probe: Probe) -> None:
    """Each created hero is answered 201 and stored, once; on names the learner never saw."""
    reset(probe.lab)
    for name in ("Mnemosyne 7", "Kept Promise 3"):
        answer = await probe.call(json=payload(name))
        seen = (answer.json or {}).get("stored")
        with probe.lab.engine(lesson.name).connect() as connection:  # read back apart from the route
            rows = connection.execute(select(func.count()).where(Hero.name == name)).scalar_one()
        probe.expect(
            f"{name!r} answered 201 and stored",
            answer.status == 201 and seen == rows == 1,
            f"{answer.outcome}; the route says stored {seen}, the database has {rows}",
        )
