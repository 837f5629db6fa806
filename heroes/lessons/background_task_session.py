"""Background task session: the request's session handed to a slow job keeps its connection for the whole job

Symptom: POST /lessons/background-task-session/bad?hero_id=1 answers 202 and its job (a slow e-mail,
?seconds=0.5) works, but holds the request's pooled connection while it runs. 4 such requests at once
on the lesson's pool of 3: the 4th waits for a job to end (`waited_ms`); more, or longer jobs, and
requests fail after the pool timeout (2 s): 503, "QueuePool limit of size 3 overflow 0 reached".
Cause: on the pinned FastAPI a `yield` dependency exits after the response has been sent and after its
background tasks have run: dependency enter, route, task, dependency exit. The session the route used
is still open, inside a transaction, while the job sleeps, so its connection is not back in the pool
(PostgreSQL shows it "idle in transaction"). A job that opens its own session does not help by itself
(POST .../bad/default-scope): the route's session, which read the hero, still waits for the job, and
with 3 requests at once it is worse: the 3 connections wait for jobs that wait for a connection, until
the first jobs fail on the pool timeout (their e-mail sent, not recorded) and the 4th request gets 503.
Fix: the job opens its own short session, after the slow part, and the route's session ends before
the job starts: `Depends(lesson_session, scope="function")` exits when the route returns (POST
.../fixed). While the jobs run, 0 connections are checked out and the next request does not wait.
Myth: "the session is already closed in a background task". That was FastAPI 0.106 to 0.117, where
the dependency exited before the tasks ran; on current FastAPI it is closed after them, open and
holding its connection meanwhile (a test checks the order on the pinned version).
Data: the demo cast in the lesson's own database and engine (pool of 3, no overflow, 2 s timeout).
"""

import time
from collections import deque
from collections.abc import Iterator
from typing import Annotated, Any
from weakref import WeakKeyDictionary

from fastapi import BackgroundTasks, Depends, Query, Request
from sqlalchemy import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session, SQLModel

from heroes.lab import Call, Lab, Lesson, lab_of
from heroes.lab.check import Probe
from heroes.models import INT32_MAX, Hero
from heroes.problems import Problem, problem_responses
from heroes.seed import seed_demo

lesson = Lesson(__name__, __doc__)
router = lesson.router()
POOL = {"pool_size": 3, "max_overflow": 0, "pool_timeout": 2, "application_name": f"heroes_{lesson.name}"}
HeroId = Annotated[int, Query(ge=1, le=INT32_MAX, description="A hero's id in the lesson's copy (1 to 15).")]
Seconds = Annotated[float, Query(gt=0, le=1.5, description="How long the job's e-mail takes (<= 1.5 s).")]
RESPONSES = problem_responses(404, 422, 503)  # 503: the lesson's pool, emptied by the jobs
_sent: WeakKeyDictionary[Engine, deque] = WeakKeyDictionary()  # engine -> (checked out midway, e-mail)


def lesson_engine(lab: Lab) -> Engine:
    engine = lab.own_engine(lesson.name, lesson.name, seed_demo, **POOL)
    _sent.setdefault(engine, deque(maxlen=100))
    return engine


def lesson_session(request: Request) -> Iterator[Session]:
    with Session(lesson_engine(lab_of(request))) as session:
        yield session


LessonSession = Annotated[Session, Depends(lesson_session)]  # exits after the response and its tasks
ShortSession = Annotated[Session, Depends(lesson_session, scope="function")]  # exits when the route returns


def slow_email(engine: Engine, seconds: float) -> int:
    """The e-mail (an HTTP call...) the job waits on: a bounded sleep; the pool's checked-out count midway."""
    time.sleep(seconds / 2)
    busy = engine.pool.checkedout()
    time.sleep(seconds / 2)
    return busy


def record(session: Session, hero_id: int, busy: int) -> None:
    _sent[session.get_bind()].append((busy, f"to {session.get(Hero, hero_id).name}"))


def send_email(session: Session, hero_id: int, seconds: float) -> None:
    """The job, on the session it was handed."""
    record(session, hero_id, slow_email(session.get_bind(), seconds))


def send_email_own_session(engine: Engine, hero_id: int, seconds: float) -> None:
    """The job, on a short session of its own, opened after the slow part."""
    busy = slow_email(engine, seconds)
    try:
        with Session(engine) as session:  # its own session, for the milliseconds it needs one
            record(session, hero_id, busy)
    except PoolTimeout as exc:  # no connection: the requests hold them, waiting for their jobs
        _sent[engine].append((busy, f"failed: {type(exc).__name__}"))


class Accepted(SQLModel):
    hero: str  # whom the e-mail goes to
    seconds: float
    waited_ms: int  # how long this request waited for its connection (and its SELECT)
    checked_out: int  # the lesson's pool (of 3) as the route answers


def read_hero(session: Session, hero_id: int, seconds: float) -> tuple[Hero, Accepted]:
    started = time.perf_counter()
    hero = session.get(Hero, hero_id)
    if hero is None:
        raise Problem(404, f"No hero with id {hero_id}.", field="hero_id", location="query")
    waited, busy = round((time.perf_counter() - started) * 1000), session.get_bind().pool.checkedout()
    return hero, Accepted(hero=hero.name, seconds=seconds, waited_ms=waited, checked_out=busy)


@router.post("/bad", status_code=202, response_model=Accepted, responses=RESPONSES)
def bad(
    tasks: BackgroundTasks, session: LessonSession, hero_id: HeroId = 1, seconds: Seconds = 0.5
) -> Accepted:
    """Hand the request's session to the job: it works, holding the request's connection until it ends."""
    hero, accepted = read_hero(session, hero_id, seconds)
    tasks.add_task(send_email, session, hero.id, seconds)  # the request's session, open until the job ends
    return accepted


@router.post("/bad/default-scope", status_code=202, response_model=Accepted, responses=RESPONSES)
def bad_default_scope(
    request: Request,
    tasks: BackgroundTasks,
    session: LessonSession,
    hero_id: HeroId = 1,
    seconds: Seconds = 0.5,
) -> Accepted:
    """The job opens its own session, but the route's (default scope) still waits for the job to end."""
    hero, accepted = read_hero(session, hero_id, seconds)
    tasks.add_task(send_email_own_session, lesson_engine(lab_of(request)), hero.id, seconds)
    return accepted


@router.post("/fixed", status_code=202, response_model=Accepted, responses=RESPONSES)
def fixed(
    request: Request,
    tasks: BackgroundTasks,
    session: ShortSession,
    hero_id: HeroId = 1,
    seconds: Seconds = 0.5,
) -> Accepted:
    """The route's session ends when it returns; the job opens its own, after the slow part."""
    hero, accepted = read_hero(session, hero_id, seconds)
    tasks.add_task(send_email_own_session, lesson_engine(lab_of(request)), hero.id, seconds)  # its own
    return accepted


def reset(lab: Lab) -> None:
    lab.release(lesson.name)  # the lesson's engine disposed (made again on next use), its e-mails forgotten


def waits(answers: list[tuple[int, Any]]) -> str:
    """compare's outcome: the statuses, and how long the slowest answered request waited for a connection."""
    statuses = sorted(status for status, _ in answers)
    counts = ", ".join(f"{statuses.count(s)}× {s}" for s in sorted(set(statuses)))
    worst = max((body["waited_ms"] for status, body in answers if status == 202), default=0)
    return f"{counts}: the slowest 202 waited {worst} ms for its connection"


def calls(size: int | None) -> list[Call]:
    """4 jobs at once on a pool of 3: the 4th request waits for a job to end, or not."""
    one = {"hero_id": 1, "seconds": 0.5}
    variants = ("bad", "bad/default-scope", "fixed")
    return [Call(v, "POST", f"/{v}", one, clients=4, summary_all=waits) for v in variants]


async def check(probe: Probe) -> None:
    """3 jobs at once, hero 2 then hero 9 (unseen): each e-mail sent, no connection out while they run."""
    for hero_id in (2, 9):
        reset(probe.lab)
        engine = lesson_engine(probe.lab)
        statuses = await probe.race(3, params={"hero_id": hero_id, "seconds": 0.4})
        accepted, seen = statuses == {202: 3}, f"statuses: {dict(statuses)}"
        probe.expect(f"3 requests for hero {hero_id}: 202", accepted, seen)
        with Session(engine) as session:
            name = session.get(Hero, hero_id).name
        sent = list(_sent.get(engine, ()))
        right = [line for _, line in sent] == [f"to {name}"] * 3
        probe.expect(f"3 e-mails to {name}", right, f"sent: {[line for _, line in sent]}")
        busy = max((n for n, _ in sent), default=-1)
        probe.expect("connections checked out while the jobs ran: 0", busy == 0, f"at most {busy} of 3")
    reset(probe.lab)
