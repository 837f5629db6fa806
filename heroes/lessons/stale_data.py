"""Stale data: a session answers from its identity map, not from what another client just committed

Symptom: POST /lessons/stale-data/bad {"hero_id": 1, "name": "Deadpond II"}: session A reads hero 1
("Deadpond"), another client renames it to "Deadpond II" and commits, A reads hero 1 again: "Deadpond".
get() sends no SELECT the second time (2 statements: A's read, the other client's UPDATE). POST
.../bad/select sends a SELECT, gets the new row, and still answers the old name. POST
.../bad/autoflush-off adds a hero and looks it up by name in the same session: not found.
Cause: a Session keeps one object per row (the identity map). get() answers from it without asking the
database; a query asks, but keeps the loaded attributes of an object it already holds and drops the
row's new values (unless expired), so that unflushed changes are never overwritten. The map holds
objects weakly: one nobody references any more is loaded afresh. With autoflush=False a query no
longer flushes the session's pending objects first, so it cannot find them.
Fix: reload what may have changed, or do not keep the session: session.refresh(hero) (POST .../fixed),
session.expire(hero) then read (.../fixed/expire), a query with populate_existing
(.../fixed/populate-existing), or a new session per unit of work (.../fixed/new-session: what a
session per request gives). Each costs one SELECT: 3 statements where bad's get() sends 2. On
PostgreSQL under REPEATABLE READ even refresh() answers the old name inside the same transaction (the
snapshot is the transaction's): end it, commit or rollback, to see the new row.
Myth: "autoflush=False is faster": it saves nothing worth having, and queries stop seeing the session's
own pending rows (.../bad/autoflush-off; the default autoflush finds the hero). "autocommit=True" no
longer exists in SQLAlchemy 2.x: Session(engine, autocommit=True) raises ArgumentError.
Data: the demo cast in the lesson's own database; the other client is the route itself.
"""

from sqlalchemy import Engine, update
from sqlmodel import Field, Session, SQLModel, select

from heroes.lab import Call, Lab, Lesson, scratch_engine
from heroes.lab.check import Probe
from heroes.models import INT32_MAX, NAME_MAX, Hero, Text
from heroes.problems import Problem, problem_responses
from heroes.seed import seed_demo

lesson = Lesson(__name__, __doc__)
router = lesson.router()
RESPONSES = problem_responses(400, 404, 422)


def scratch(lab: Lab, fresh: bool = False) -> Engine:
    return lesson.scratch(lab, populate=seed_demo, fresh=fresh)


def prepare(lab: Lab, size: int | None) -> None:
    scratch(lab, fresh=True)  # every compare starts from the demo names


LessonEngine = scratch_engine(scratch)


class HeroRenamedMeanwhile(SQLModel):
    hero_id: int = Field(1, ge=1, le=INT32_MAX, description="The hero another client renames.")
    name: Text = Field(min_length=1, max_length=NAME_MAX, description="The name it gives the hero.")


class StaleReading(SQLModel):
    read_first: str  # what session A read
    renamed_to: str  # what another client committed meanwhile
    read_again: str  # what session A answers now


def read(session: Session, hero_id: int) -> Hero:
    hero = session.get(Hero, hero_id)
    if hero is None:
        raise Problem(404, f"No hero with id {hero_id}.", field="hero_id")
    return hero


def another_client_renames(engine: Engine, rename: HeroRenamedMeanwhile) -> str:
    with engine.begin() as other:  # its own connection and transaction, committed
        other.execute(update(Hero).where(Hero.id == rename.hero_id).values(name=rename.name))
    return rename.name


@router.post("/bad", response_model=StaleReading, responses=RESPONSES)
def bad(rename: HeroRenamedMeanwhile, engine: LessonEngine) -> StaleReading:
    """Read, let another client rename, read again with get(): the identity map's old name."""
    with Session(engine) as session:
        hero = read(session, rename.hero_id)
        first = hero.name
        renamed = another_client_renames(engine, rename)
        again = read(session, rename.hero_id).name  # the identity map answers: no SELECT, the old name
        return StaleReading(read_first=first, renamed_to=renamed, read_again=again)


@router.post("/bad/select", response_model=StaleReading, responses=RESPONSES)
def bad_select(rename: HeroRenamedMeanwhile, engine: LessonEngine) -> StaleReading:
    """The same with a SELECT: the new row comes back, the object keeps its old name."""
    with Session(engine) as session:
        hero = read(session, rename.hero_id)
        first = hero.name
        renamed = another_client_renames(engine, rename)
        again = session.exec(select(Hero).where(Hero.id == rename.hero_id)).one().name  # loaded: kept
        return StaleReading(read_first=first, renamed_to=renamed, read_again=again)


@router.post("/fixed", response_model=StaleReading, responses=RESPONSES)
def fixed(rename: HeroRenamedMeanwhile, engine: LessonEngine) -> StaleReading:
    """Read, let another client rename, refresh the hero: one SELECT, the new name."""
    with Session(engine) as session:
        hero = read(session, rename.hero_id)
        first = hero.name
        renamed = another_client_renames(engine, rename)
        session.refresh(hero)  # reloads the row: one SELECT
        return StaleReading(read_first=first, renamed_to=renamed, read_again=hero.name)


@router.post("/fixed/expire", response_model=StaleReading, responses=RESPONSES)
def fixed_expire(rename: HeroRenamedMeanwhile, engine: LessonEngine) -> StaleReading:
    """Expire the hero: its next attribute read reloads the row."""
    with Session(engine) as session:
        hero = read(session, rename.hero_id)
        first = hero.name
        renamed = another_client_renames(engine, rename)
        session.expire(hero)  # forgets the loaded values: the next read sends a SELECT
        return StaleReading(read_first=first, renamed_to=renamed, read_again=hero.name)


@router.post("/fixed/populate-existing", response_model=StaleReading, responses=RESPONSES)
def fixed_populate_existing(rename: HeroRenamedMeanwhile, engine: LessonEngine) -> StaleReading:
    """A query with populate_existing: the objects it finds are overwritten with the rows."""
    with Session(engine) as session:
        hero = read(session, rename.hero_id)
        first = hero.name
        renamed = another_client_renames(engine, rename)
        query = select(Hero).where(Hero.id == rename.hero_id).execution_options(populate_existing=True)
        again = session.exec(query).one().name  # the row's values replace the object's
        return StaleReading(read_first=first, renamed_to=renamed, read_again=again)


@router.post("/fixed/new-session", response_model=StaleReading, responses=RESPONSES)
def fixed_new_session(rename: HeroRenamedMeanwhile, engine: LessonEngine) -> StaleReading:
    """A session per unit of work: the second read starts from an empty identity map."""
    with Session(engine) as session:
        first = read(session, rename.hero_id).name
    renamed = another_client_renames(engine, rename)
    with Session(engine) as session:  # a new session: nothing held, the row is read
        again = read(session, rename.hero_id).name
    return StaleReading(read_first=first, renamed_to=renamed, read_again=again)


class PendingLookup(SQLModel):
    added: str  # the hero added to the session, not flushed
    found: str | None  # what a query by that name found in that session


@router.post("/bad/autoflush-off", response_model=PendingLookup, responses=RESPONSES)
def bad_autoflush_off(rename: HeroRenamedMeanwhile, engine: LessonEngine) -> PendingLookup:
    """Add a hero, then look it up by name in the same session with autoflush=False: not found."""
    with Session(engine, autoflush=False) as session:  # queries no longer flush pending objects first
        session.add(Hero(name=rename.name, secret_name="-"))
        found = session.exec(select(Hero.name).where(Hero.name == rename.name)).first()
        return PendingLookup(added=rename.name, found=found)  # never committed: nothing is stored


def outcome(status: int, body) -> str:
    if status != 200:
        return f"{status}: {body['detail']}"
    if "added" in body:
        return f"added {body['added']!r}, a query by that name found {body['found']!r}"
    first, renamed, again = body["read_first"], body["renamed_to"], body["read_again"]
    stale = "stale" if again != renamed else "fresh"
    return f"read {first!r}, another client committed {renamed!r}, read again: {again!r} ({stale})"


VARIANTS = ("bad", "bad/select", "fixed", "fixed/expire", "fixed/populate-existing", "fixed/new-session")


def calls(size: int | None) -> list[Call]:
    bodies = [(v, {"hero_id": n, "name": f"Renamed {n}"}) for n, v in enumerate(VARIANTS, 1)]
    bodies.append(("bad/autoflush-off", {"name": "Newcomer"}))
    return [Call(variant, "POST", f"/{variant}", json=body, summary=outcome) for variant, body in bodies]


async def check(probe: Probe) -> None:
    """Two heroes renamed by another client between two reads: the second read answers the new name."""
    scratch(probe.lab, fresh=True)
    for hero_id, name in ((4, "Tarantula Prime"), (11, "Captain Unseen")):
        answer = await probe.call(json={"hero_id": hero_id, "name": name})
        again = (answer.json or {}).get("read_again")
        probe.expect(f"hero {hero_id} read again: {name!r}", again == name, f"read again: {again!r}")
