"""Column defaults: default=datetime.now(timezone.utc) is evaluated once, and every row shares it

Symptom: five POST /lessons/column-defaults/bad, one after another: five tickets, all with the same
created_at, the moment the module was imported (compare: "5x 201: 1 distinct created_at in 5
tickets"). POST .../bad/unique gives the ticket a code default=uuid4().hex on a unique column: the
first request stores it, every later one is a 500, the unique constraint refusing the same code.
POST .../bad/naive (default_factory=datetime.now, naive) is a 500 on every request: "Datetime values
must have timezone information".
Cause: Field(default=datetime.now(timezone.utc)) is an ordinary Python argument. It is evaluated once,
when the class is defined, and that one value is every row's default. uuid4().hex likewise. And on
SQLModel 0.0.50 a plain `datetime` field maps to a timezone-aware type (UTCDateTime, timestamptz on
PostgreSQL) that refuses a naive value at insert, so the naive datetime.now() of many tutorials is a
500 now, on both engines.
Fix: pass the function, not its result: Field(default_factory=lambda: datetime.now(timezone.utc)) and
default_factory=lambda: uuid4().hex (POST .../fixed: five tickets, five times, five codes). Or let the
database stamp the row, server_default=func.now(): right when other writers (SQL, other services)
insert too, or the database's clock is the reference; it is the transaction's start on PostgreSQL,
and CURRENT_TIMESTAMP on SQLite, to the second. default_factory is right when the app needs the value
before the INSERT. Keep datetimes aware end to end. PostgreSQL's timestamptz stores the instant, not
the offset; on SQLite this type stores UTC text, so +02:00 comes back as the same instant in UTC.
Myth: Field(default=datetime.now()) gives each row its own time. It is evaluated once, at import.
Data: tables of the lesson's own (ticket, bad_ticket, coded_ticket, naive_ticket), created by plain
DDL in its scratch database (fresh for each compare).
"""

from collections import Counter
from datetime import UTC, datetime
from uuid import uuid4

from sqlalchemy import Engine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from heroes.lab import Call, Lab, Lesson, create_lesson_tables, scratch_engine, session_on
from heroes.lab.check import Probe
from heroes.problems import problem_responses

lesson = Lesson(__name__, __doc__)
router = lesson.router()
NAIVE = (
    "(builtins.ValueError) Datetime values must have timezone information. Use datetime.now(timezone.utc), "
)
PITFALLS = {
    "POST /bad/naive": (
        "StatementError",
        NAIVE + "or annotate the field with NaiveDatetime for naive storage.",
    )
}


class LessonModel(SQLModel, registry=registry()):  # own metadata: never SQLModel.metadata, nor Alembic's
    pass


class Ticket(LessonModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(default_factory=lambda: uuid4().hex, max_length=32, unique=True)  # called per row
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))  # called per row, aware


class BadTicket(LessonModel, table=True):
    __tablename__ = "bad_ticket"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(default_factory=lambda: uuid4().hex, max_length=32, unique=True)
    created_at: datetime = Field(default=datetime.now(UTC))  # evaluated once, at import


class CodedTicket(LessonModel, table=True):
    __tablename__ = "coded_ticket"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(default=uuid4().hex, max_length=32, unique=True)  # evaluated once: one code for all
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class NaiveTicket(LessonModel, table=True):
    __tablename__ = "naive_ticket"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(default_factory=lambda: uuid4().hex, max_length=32, unique=True)
    created_at: datetime = Field(default_factory=datetime.now)  # naive: the column refuses it


class TicketPublic(SQLModel):
    id: int
    code: str
    created_at: datetime


def create_tables(engine: Engine) -> None:
    with engine.begin() as connection:  # plain DDL in the scratch database only
        create_lesson_tables(connection, LessonModel.metadata)


def scratch(lab: Lab, fresh: bool = False) -> Engine:
    return lesson.scratch(lab, populate=create_tables, fresh=fresh)


def prepare(lab: Lab, size: int | None) -> None:
    scratch(lab, fresh=True)


ScratchSession = session_on(scratch_engine(scratch))
FAILS = problem_responses(500)  # bad/unique and bad/naive: the 500 is their documented symptom


@router.post("/bad", status_code=201, response_model=TicketPublic)
def bad(session: ScratchSession) -> BadTicket:
    """A ticket whose created_at default was computed once, when the class was defined."""
    ticket = BadTicket()  # created_at: the import's moment, for every ticket
    session.add(ticket)
    session.commit()
    session.refresh(ticket)
    return ticket


@router.post("/bad/unique", status_code=201, response_model=TicketPublic, responses=FAILS)
def bad_unique(session: ScratchSession) -> CodedTicket:
    """A ticket whose unique code default was computed once: the second one is refused."""
    ticket = CodedTicket()
    session.add(ticket)
    session.commit()
    session.refresh(ticket)
    return ticket


@router.post("/bad/naive", status_code=201, response_model=TicketPublic, responses=FAILS)
def bad_naive(session: ScratchSession) -> NaiveTicket:
    """A ticket stamped with the naive datetime.now(): the timezone-aware column refuses it."""
    ticket = NaiveTicket()
    session.add(ticket)
    session.commit()
    session.refresh(ticket)
    return ticket


@router.post("/fixed", status_code=201, response_model=TicketPublic)
def fixed(session: ScratchSession) -> Ticket:
    """A ticket whose defaults are functions, called for each row: its own time, its own code."""
    ticket = Ticket()  # default_factory: called now, for this ticket
    session.add(ticket)
    session.commit()
    session.refresh(ticket)
    return ticket


def distinct(answers: list[tuple[int, dict]]) -> str:
    """compare's outcome line over the sequential requests: statuses, then distinct values stored."""
    statuses = ", ".join(f"{n}x {status}" for status, n in sorted(Counter(s for s, _ in answers).items()))
    made = [body for status, body in answers if status == 201]
    errors = [body["detail"] for status, body in answers if status != 201]
    times, codes = len({body["created_at"] for body in made}), len({body["code"] for body in made})
    line = f"{statuses}: {times} distinct created_at, {codes} distinct codes" if made else statuses
    return f"{line}; {errors[0]}" if errors else line


TICKETS = 5


def calls(size: int | None) -> list[Call]:
    variants = ("bad", "bad/unique", "bad/naive", "fixed")
    return [
        Call(v, "POST", f"/{v}", clients=TICKETS, sequential=True, summary_all=distinct) for v in variants
    ]


async def check(probe: Probe) -> None:
    """Seven tickets in a row: seven created_at, seven codes, each aware and within a minute of now."""
    scratch(probe.lab, fresh=True)
    answers = [await probe.call() for _ in range(7)]
    made = [answer.json for answer in answers if answer.status == 201]
    probe.expect("7 requests: 7 tickets", len(made) == 7, ", ".join(answer.outcome for answer in answers[:2]))
    times = {datetime.fromisoformat(body["created_at"]) for body in made}
    probe.expect("7 distinct created_at", len(times) == 7, f"{len(times)} distinct created_at")
    codes = {body["code"] for body in made}
    probe.expect("7 distinct codes", len(codes) == 7, f"{len(codes)} distinct codes")
    now = datetime.now(UTC)
    recent = all(t.tzinfo is not None and abs((now - t).total_seconds()) < 60 for t in times)
    probe.expect(
        "each created_at aware and within a minute of now", recent, f"{sorted(times)[:1]}, now {now}"
    )
