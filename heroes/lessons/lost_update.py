"""Lost update: K clients each add one to a counter, and it ends far below K

Symptom: POST /lessons/lost-update/bad?clients=20: 20 clients, each its own session and connection, read
the counter, add one, write it back; every one answers OK and the counter ends at 1 (`lost` 19).
Cause: between a client's read and its write the others read the same old value, and each writes old + 1
over the rest. A plain SELECT locks nothing (PostgreSQL, READ COMMITTED). On SQLite, sqlite3 sends BEGIN
only before the UPDATE: the read is in no transaction (begun before it, the 19 stale writers are refused,
"database is locked" at once, whatever the busy timeout). The lab makes every client read before any
writes, so it shows on every run; in production, under load and silently.
Fix: let the database serialise the read-modify-write. /fixed: one atomic `UPDATE counter SET n = n + 1`
(no read: best for a counter). /fixed/for-update: `SELECT ... FOR UPDATE` locks the row as it is read;
SQLAlchemy renders no FOR UPDATE on SQLite, so there it sends `BEGIN IMMEDIATE` first (the write lock;
the others wait on the busy timeout, past it "database is locked"). /fixed/version: `version_id_col` (in
SQLModel a `sa_column`, named in `__mapper_args__`) puts `WHERE version = :read` in the UPDATE; 0 rows
raise StaleDataError, and the client reads again, a bounded number of times (`retries`). Over HTTP the
version is an ETag: PATCH /heroes/{id} with If-Match answers 412 to a stale one. All end at K.
Myth: "compare the version, then write": checked in Python (/bad/version-check) it still races, as every
client checks before any writes: 1 of 20. The check belongs in the UPDATE's WHERE (version_id_col, or
`UPDATE ... WHERE version = :v`), where the database decides it for one writer at a time.
Data: a new counter per request, in the lesson's own tables; ?clients=K threads (up to 200); 20 s lock waits.
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy import Column, Integer, text, update
from sqlalchemy.orm import registry
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Field, Session, SQLModel, select

from heroes.db import is_sqlite
from heroes.lab import Call, Lab, Lesson, Size, lab_of
from heroes.lab.check import Probe
from heroes.lab.clients import count_up, race_engine
from heroes.problems import Problem, problem_responses

lesson = Lesson(__name__, __doc__, size=Size("clients", "clients adding one", 200, (20, 200), default=20))
router = lesson.router()
ATTEMPTS = 200  # optimistic: each conflict means another client's increment landed, so K attempts do


class LessonModel(SQLModel, registry=registry()):  # own metadata: never SQLModel.metadata, nor Alembic's
    pass


class Counter(LessonModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    n: int = 0


VERSION = Column("version", Integer, nullable=False)


class VersionedCounter(LessonModel, table=True):
    __tablename__ = "versioned_counter"
    id: int | None = Field(default=None, primary_key=True)
    n: int = 0
    version: int | None = Field(default=None, sa_column=VERSION)  # a Column, to name it in the mapper args
    __mapper_args__ = {"version_id_col": VERSION}  # UPDATE ... WHERE version = :read; 0 rows: StaleDataError


class Tally(SQLModel):
    clients: int
    final: int  # the counter after every client added one
    lost: int  # clients - final
    retries: int  # optimistic conflicts, read again and retried
    errors: dict[str, int]  # failed increments by message ("OperationalError: database is locked")


def race(request: Request, clients: Annotated[int, Query(ge=1, le=200)] = 20) -> Callable[..., Tally]:
    """`clients` clients at once, each its own session, running `increment` on a new counter at 0."""
    engine = race_engine(lab_of(request), lesson.name, LessonModel.metadata)  # tables of its own

    def run(model: type[Counter | VersionedCounter], increment) -> Tally:
        final, retries, errors = count_up(engine, clients, model, increment)
        return Tally(clients=clients, final=final, lost=clients - final, retries=retries, errors=errors)

    return run


LessonRace = Annotated[Callable[..., Tally], Depends(race)]


@router.post("/bad", response_model=Tally, responses=problem_responses(422))
def bad(race: LessonRace) -> Tally:
    """Read the counter, add one in Python, write it back: the clients overwrite each other."""

    def increment(session: Session, counter_id: int) -> None:
        counter = session.get(Counter, counter_id)
        counter.n = counter.n + 1  # read, add, write: the value read is stale once another client writes
        session.commit()

    return race(Counter, increment)


@router.post("/bad/version-check", response_model=Tally, responses=problem_responses(422))
def bad_version_check(race: LessonRace) -> Tally:
    """Read, check the version is still the one read, then write: the check passes for everyone."""

    def increment(session: Session, counter_id: int) -> None:
        counter = session.get(VersionedCounter, counter_id)
        now = session.exec(select(VersionedCounter.version).where(VersionedCounter.id == counter_id)).one()
        if now != counter.version:  # checked in Python: nobody has written yet, every client passes
            raise Problem(409, "The counter changed meanwhile.")
        values = {"n": counter.n + 1, "version": counter.version + 1}
        session.execute(update(VersionedCounter).where(VersionedCounter.id == counter_id).values(**values))
        session.commit()

    return race(VersionedCounter, increment)


@router.post("/fixed", response_model=Tally, responses=problem_responses(422))
def fixed(race: LessonRace) -> Tally:
    """One atomic UPDATE: the database adds one to whatever the row holds when it writes."""

    def increment(session: Session, counter_id: int) -> None:
        session.execute(update(Counter).where(Counter.id == counter_id).values(n=Counter.n + 1))  # no read
        session.commit()

    return race(Counter, increment)


@router.post("/fixed/for-update", response_model=Tally, responses=problem_responses(422))
def fixed_for_update(race: LessonRace) -> Tally:
    """Lock the row as it is read (PostgreSQL FOR UPDATE; SQLite: BEGIN IMMEDIATE): one client at a time."""

    def increment(session: Session, counter_id: int) -> None:
        if is_sqlite(session.get_bind()):
            session.execute(text("BEGIN IMMEDIATE"))  # SQLite renders no FOR UPDATE: take the write lock now
        query = select(Counter).where(Counter.id == counter_id).with_for_update()  # the others wait here
        counter = session.exec(query).one()
        counter.n = counter.n + 1
        session.commit()

    return race(Counter, increment)


@router.post("/fixed/version", response_model=Tally, responses=problem_responses(422))
def fixed_version(race: LessonRace) -> Tally:
    """Optimistic: version_id_col puts the version read in the UPDATE's WHERE; a conflict reads again."""

    def increment(session: Session, counter_id: int) -> int:
        for attempt in range(ATTEMPTS):
            counter = session.get(VersionedCounter, counter_id)
            counter.n = counter.n + 1
            try:
                session.commit()  # UPDATE ... WHERE version = :read: 0 rows is StaleDataError
                return attempt
            except StaleDataError:
                session.rollback()  # another client wrote first: read again and retry
        raise Problem(409, "Too many conflicts.")

    return race(VersionedCounter, increment)


def outcome(status: int, body) -> str:
    if status != 200:
        return f"{status}: {body.get('detail')}"
    errors = "".join(f", {n}x {message}" for message, n in body["errors"].items())
    return "counter {final} of {clients}: {lost} lost, {retries} retries".format(**body) + errors


def calls(size: int | None) -> list[Call]:
    params = {"clients": size or lesson.size.default}
    variants = [route.variant for route in lesson.routes]  # bad, bad/version-check, fixed, fixed/...
    return [Call(variant, "POST", f"/{variant}", params, summary=outcome) for variant in variants]


def reset(lab: Lab) -> None:
    lab.release(lesson.name)  # the lesson's engine disposed (made again on next use)


async def check(probe: Probe) -> None:
    """No increment lost: 23 clients, then 41 (sizes never shown), each adding one; the counter ends at K."""
    for clients in (23, 41):
        answer = await probe.call(params={"clients": clients})
        body = answer.json if answer.status == 200 else {}
        seen = f"{answer.outcome}; counter {body.get('final')}, errors {body.get('errors')}"
        probe.expect(f"{clients} clients: the counter ends at {clients}", body.get("final") == clients, seen)
