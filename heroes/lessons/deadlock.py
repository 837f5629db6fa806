"""Deadlock: two transfers lock two accounts in opposite orders, and PostgreSQL kills one of them

Symptom: POST /lessons/deadlock/bad runs transfers A to B and B to A at once, each in its own
transaction: one is done, the other dies with DeadlockDetected (40P01 deadlock_detected) after
deadlock_timeout (1 s by default; 100 ms here). POST .../bad/slow-work holds A's row lock during slow
work (a sleep standing in for an HTTP call): a deposit into A waits, then gives up (55P03, lock_timeout).
Cause: each transfer locks its source, then its target: one holds A and waits for B, the other holds B
and waits for A. After deadlock_timeout PostgreSQL finds the cycle and aborts one. A row lock lasts
until the transaction ends, so whatever the transaction waits on, every writer of that row waits too.
Fix: one lock order for everyone: SELECT ... WHERE id IN (...) ORDER BY id FOR UPDATE (POST
.../fixed). Or retry the victim of a deadlock (40P01) or serialization failure (40001) a few times,
with jitter (POST .../fixed/retry). Do slow work before the transaction (POST .../fixed/slow-work);
bound every wait: lock_timeout (300 ms here), statement_timeout.
Myth: "sort the ids, then session.get() each, and the order is consistent": a plain get() takes no
lock at all; a consistent order needs FOR UPDATE. And a deadlock does not hang: one side gets 40P01.
Data: accounts 1 to 4 (100 each) in the lesson's own schema and engine. A barrier (heroes/lab/clients.py)
has every transfer take its first lock before any takes its second: bad deadlocks on every run. On
SQLite, a 409; SQLite locks the whole file: "database is locked", at once with a busy timeout of 0.
"""

from typing import Annotated

from fastapi import Body
from sqlalchemy import Engine, insert, update
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel, select

from heroes.lab import POSTGRESQL, Call, Lab, Lesson, create_lesson_tables, scratch_engine
from heroes.lab.check import Probe
from heroes.lab.clients import described, in_step, meanwhile, on_every_connection, retried
from heroes.problems import problem_responses

lesson = Lesson(__name__, __doc__, engines=POSTGRESQL)
router = lesson.router()
RESPONSES, WORK = problem_responses(400, 409, 422), 0.5  # the slow work: half a second


class LessonModel(SQLModel, registry=registry()):  # own metadata: never SQLModel.metadata
    pass


class Account(LessonModel, table=True):
    id: int = Field(primary_key=True)
    balance: int


class Transfer(SQLModel):
    source: int = Field(ge=1, le=4)
    target: int = Field(ge=1, le=4)
    amount: int = Field(ge=1, le=50)


class TransferReport(SQLModel):
    outcomes: list[str]  # each transfer's: "done", "done after 1 retries", "DeadlockDetected (40P01)"
    balances: dict[int, int]  # their sum is 400, whatever happens


def populate(engine: Engine) -> None:
    with engine.begin() as connection:
        create_lesson_tables(connection, LessonModel.metadata)
        connection.execute(insert(Account), [{"id": i, "balance": 100} for i in range(1, 5)])


def lesson_engine(lab: Lab) -> Engine:
    engine = lab.own_engine(lesson.name, lesson.name, populate, pool_size=6, max_overflow=0, pool_timeout=5)
    return on_every_connection(engine, "SET deadlock_timeout = '100ms'; SET lock_timeout = '300ms'")


LessonEngine = scratch_engine(lesson_engine)
Transfers = Annotated[list[Transfer], Body(min_length=2, max_length=4)]  # at once, a connection each


def at_once(engine: Engine, transfers: list[Transfer], move) -> TransferReport:
    """Every `move(transfer)` in a thread of its own, each first lock taken before any second one."""
    outcomes = [described(result) for result in in_step(engine, "FOR UPDATE", move, transfers)]
    with Session(engine) as session:
        balances = dict(session.exec(select(Account.id, Account.balance).order_by(Account.id)).all())
    return TransferReport(outcomes=outcomes, balances=balances)


@router.post("/bad", response_model=TransferReport, responses=RESPONSES)
def bad(transfers: Transfers, engine: LessonEngine) -> TransferReport:
    """Each transfer locks its source, then its target: opposite transfers deadlock, one dies (40P01)."""

    def transfer(t: Transfer) -> None:
        with Session(engine) as session, session.begin():
            source = session.get(Account, t.source, with_for_update=True)  # locks in the request's order
            target = session.get(Account, t.target, with_for_update=True)
            source.balance -= t.amount
            target.balance += t.amount

    return at_once(engine, transfers, transfer)


@router.post("/fixed", response_model=TransferReport, responses=RESPONSES)
def fixed(transfers: Transfers, engine: LessonEngine) -> TransferReport:
    """Each transfer locks both accounts in one statement, in id order: one waits, none dies."""

    def transfer(t: Transfer) -> None:
        with Session(engine) as session, session.begin():
            query = select(Account).where(Account.id.in_([t.source, t.target])).order_by(Account.id)
            accounts = {a.id: a for a in session.exec(query.with_for_update())}  # locked in id order
            source, target = accounts[t.source], accounts[t.target]
            source.balance -= t.amount
            target.balance += t.amount

    return at_once(engine, transfers, transfer)


@router.post("/fixed/retry", response_model=TransferReport, responses=RESPONSES)
def fixed_retry(transfers: Transfers, engine: LessonEngine) -> TransferReport:
    """The bad lock order, and a deadlock's victim retried (3 attempts at most, jittered): both done."""

    def transfer(t: Transfer) -> None:
        with Session(engine) as session, session.begin():
            source = session.get(Account, t.source, with_for_update=True)
            target = session.get(Account, t.target, with_for_update=True)
            source.balance -= t.amount
            target.balance += t.amount

    return at_once(engine, transfers, lambda t: retried(lambda: transfer(t), attempts=3))  # 40P01, 40001


class Deposit(SQLModel):
    writer: str  # a deposit into account 1 during the slow work: "done", "LockNotAvailable (55P03)"
    waited_ms: int


def deposit(engine: Engine) -> None:
    with Session(engine) as session, session.begin():  # waits for the row lock: lock_timeout at most
        session.execute(update(Account).where(Account.id == 1).values(balance=Account.balance + 1))


@router.post("/bad/slow-work", response_model=Deposit, responses=RESPONSES)
def bad_slow_work(engine: LessonEngine) -> Deposit:
    """Lock account 1, then the slow work inside the transaction: a deposit meanwhile waits, in vain."""
    with Session(engine) as session, session.begin():
        paid = session.get(Account, 1, with_for_update=True)
        writer, waited = meanwhile(WORK, lambda: deposit(engine))  # the row lock held throughout
        paid.balance -= 10
    return Deposit(writer=described(writer), waited_ms=waited)


@router.post("/fixed/slow-work", response_model=Deposit, responses=RESPONSES)
def fixed_slow_work(engine: LessonEngine) -> Deposit:
    """The slow work first, then lock and write in a short transaction: the deposit goes through."""
    writer, waited = meanwhile(WORK, lambda: deposit(engine))  # no transaction open, no lock held
    with Session(engine) as session, session.begin():
        paid = session.get(Account, 1, with_for_update=True)
        paid.balance -= 10
    return Deposit(writer=described(writer), waited_ms=waited)


def pair(a: int, b: int, there: int, back: int) -> list[dict]:
    return [{"source": a, "target": b, "amount": there}, {"source": b, "target": a, "amount": back}]


def summary(status: int, body) -> str:
    if status != 200 or "writer" in body:
        return f"{status}: {body.get('detail')}" if status != 200 else f"the deposit: {body['writer']}"
    return f"{', '.join(sorted(body['outcomes']))}; total {sum(body['balances'].values())}"


def calls(size: int | None) -> list[Call]:
    variants = ("bad", "fixed", "fixed/retry", "bad/slow-work", "fixed/slow-work")
    return [Call(v, "POST", f"/{v}", json=pair(1, 2, 30, 10), summary=summary) for v in variants]


async def check(probe: Probe) -> None:
    """Opposite transfers at once, on accounts and amounts never shown: both done, the money moved."""
    probe.lab.drop(lesson.name)  # every account back to 100
    for a, b, there, back in ((3, 4, 7, 5), (2, 1, 12, 4)):
        answer = await probe.call(json=pair(a, b, there, back))
        body = answer.json if answer.status == 200 else {}
        moved = {str(a): 100 - there + back, str(b): 100 + there - back}
        done = body.get("outcomes") == ["done"] * 2 and moved.items() <= body["balances"].items()
        probe.expect(f"{a}->{b}, {b}->{a} at once: both done", done, f"{answer.outcome}: {body}")
