"""Shared session: one module-level Session for every request mixes their transactions and their failures

Symptom: POST /lessons/shared-session/bad creates a team, and one client at a time it works. 20 clients
at once: requests answer 500, IllegalStateChangeError ("Method 'commit()' can't be called here; method
'_prepare_impl()' is already in progress ..."), InvalidRequestError ("This session is provisioning a new
connection; concurrent operations are not permitted") or ResourceClosedError ("This transaction is
closed"), and their teams are stored all the same by another request's commit, or lost, depending on
the interleaving. One request's taken name (409) rolls back another's new team, that one answers 500. A
reader (GET .../bad/teams) lists a team nobody has committed; if that team's name is taken, the reader
gets the IntegrityError, and from then on every request answers 500 PendingRollbackError until POST
.../reset.
Cause: a Session is one unit of work: one transaction on one connection, one identity map, one list of
pending objects, and it is not thread-safe. The "global session" of many tutorials hands that one unit
of work to every request at once: FastAPI runs `def` routes in a threadpool, so their add(), commit()
and rollback() interleave. A flush writes whatever any request has added, a rollback throws away
whatever any request has flushed, autoflush lets any query see it all, and a failed flush leaves the
session refusing all work until someone calls rollback().
Fix: a session per request, from a `yield` dependency (POST .../fixed; the reference API's SessionDep
in heroes/db.py): each request its own transaction, closed after the response. 20 concurrent clients:
20 answers, every one true.
Data: the demo teams in the lesson's own database, bad's in one apart (its one session on an engine of
its own, one per lab, made on first use), so its wreckage (an open transaction, SQLite's write lock)
never reaches fixed's; POST .../reset (and every compare) closes it and starts afresh.
"""

import threading
from typing import Any

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from heroes.lab import Call, Lab, Lesson, lab_of, scratch_engine, session_on
from heroes.lab.check import Probe, all_reach
from heroes.models import Team, TeamCreate, TeamPublic
from heroes.problems import Problem, problem_responses
from heroes.seed import seed_demo

lesson = Lesson(__name__, __doc__)
router = lesson.router()
_sessions: dict[str, Session] = {}  # lab owner -> the one Session every request of bad shares
_lock = threading.Lock()


def scratch(lab: Lab, suffix: str = "") -> Engine:
    """The demo teams in the lesson's own database; bad's ("bad") apart, so its wreckage stays there."""
    return lesson.scratch(lab, suffix, populate=seed_demo)


def shared(lab: Lab) -> Session:
    """The module-level session of the tutorials (one per Lab here: tests and the server have their own)."""
    with _lock:
        if lab.owner not in _sessions:
            engine = lab.own_engine(
                lesson.name, f"{lesson.name}_bad", seed_demo, application_name="heroes_shared"
            )
            _sessions[lab.owner] = Session(engine)
            lab.hold(lesson.name, _sessions[lab.owner])  # closed on reset, or when the app stops
        return _sessions[lab.owner]


LessonSession = session_on(scratch_engine(scratch))  # one per request, closed after the response
RESPONSES = problem_responses(400, 409, 422, 500)  # 500: bad's documented symptom


def create(session: Session, team_in: TeamCreate) -> Team:
    team = Team.model_validate(team_in)
    session.add(team)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Problem(409, f"A team named {team_in.name!r} already exists.", field="name") from None
    session.refresh(team)
    return team


@router.post("/bad", status_code=201, response_model=TeamPublic, responses=RESPONSES)
def bad(team_in: TeamCreate, request: Request) -> Team:
    """Create a team in the session every request shares: right alone, wrong under concurrency."""
    session = shared(lab_of(request))  # one Session for all requests: one transaction, one connection
    return create(session, team_in)


@router.post("/fixed", status_code=201, response_model=TeamPublic, responses=RESPONSES)
def fixed(team_in: TeamCreate, session: LessonSession) -> Team:
    """Create a team in the request's own session: every answer true, whatever the concurrency."""
    return create(session, team_in)


@router.get("/bad/teams", response_model=list[TeamPublic], responses=RESPONSES)
def bad_teams(request: Request) -> list[Team]:
    """The teams, read through the shared session: its autoflush shows what others have not committed."""
    return list(shared(lab_of(request)).exec(select(Team).order_by(Team.id)))


@router.get("/fixed/teams", response_model=list[TeamPublic], responses=RESPONSES)
def fixed_teams(session: LessonSession) -> list[Team]:
    """The teams, read through the request's own session: committed rows only."""
    return list(session.exec(select(Team).order_by(Team.id)))


def reset(lab: Lab) -> None:
    """The shared session closed (made again on next use) and its engine disposed."""
    with _lock:
        _sessions.pop(lab.owner, None)
    lab.release(lesson.name)


def prepare(lab: Lab, size: int | None) -> None:
    reset(lab)
    for suffix in ("", "bad"):  # every compare starts from the 5 demo teams
        lesson.scratch(lab, suffix, populate=seed_demo, fresh=True)


def stored(lab: Lab, suffix: str = "") -> dict[int, str]:
    with Session(scratch(lab, suffix)) as session:
        return {team.id: team.name for team in session.exec(select(Team))}


def failures(answers: list[tuple[int, Any]]) -> str:
    statuses = sorted((status for status, _ in answers), key=str)
    failed = sum(status >= 500 for status in statuses)
    counts = {status: statuses.count(status) for status in statuses}
    return f"{failed} of {len(answers)} failed: " + ", ".join(f"{n}× {s}" for s, n in counts.items())


def calls(size: int | None) -> list[Call]:
    """20 clients at once, each creating a team of its own name (compare sends one body: a shared name)."""
    body = {"name": "Thunderbolts", "headquarters": "Watchtower"}
    return [Call(v, "POST", f"/{v}", json=body, clients=20, summary_all=failures) for v in ("bad", "fixed")]


async def check(probe: Probe) -> None:
    """20 clients, every INSERT held until all 20 are there: one 201, 19 409, and one row stored."""
    reset(probe.lab)
    for name in ("Masters of Evil", "Sinister Six"):
        before = stored(probe.lab)
        with all_reach(Engine, "INSERT INTO team", 20, timeout=3):  # held on every engine: bad's own too
            statuses = await probe.race(20, json={"name": name, "headquarters": "Hidden"})
        seen = ", ".join(f"{n}x {status}" for status, n in sorted(statuses.items()))
        probe.expect(f"20 clients create {name!r}: one 201, 19 409", statuses == {201: 1, 409: 19}, seen)
        new = {i: n for i, n in stored(probe.lab).items() if i not in before}
        probe.expect(f"{name!r} stored once", list(new.values()) == [name], f"new rows: {list(new.values())}")
    reset(probe.lab)
