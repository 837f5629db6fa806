"""Unique violation: creating a team whose name is taken answers 500, or races past its own check

Symptom: POST /lessons/unique-violation/bad with a name that exists answers 500, its detail the
driver's own words (SQLite "UNIQUE constraint failed: team.name", PostgreSQL "UniqueViolation ... Key
(name)=(...) already exists"). POST .../bad/check-then-insert answers a tidy 409 to one client, but of
20 clients creating one new name at once, one gets 201, most get 409 and, in most runs, some get a 500
because they passed the check and then lost at the constraint.
Cause: the unique constraint on team.name is what refuses the second row, and it does so at commit as
an IntegrityError; nothing catches it, and the session stays unusable until it is rolled back. A
SELECT beforehand does not help, because between a client's check and its INSERT another client
inserts the name, so several clients pass the check and the constraint still refuses all but one.
Fix: let the constraint decide, atomically for everyone: INSERT, catch the IntegrityError, roll back,
and answer 409 naming the field `name` (POST .../fixed; the reference API does the same in
heroes/api/teams.py, commit_or_conflict). 20 concurrent creates of one name: one 201, 19 409s.
Myth: "SELECT first, in the same transaction, and the INSERT is safe". Two transactions that each
find the name free, then both INSERT: the second still fails at the constraint, on PostgreSQL (READ
COMMITTED) as on SQLite. A SELECT takes no lock on a row that does not exist; the constraint decides.
Data: the lesson's own scratch database (a SQLite file beside the lab's, or a PostgreSQL schema of its
own) holding the demo teams, so teams created here never appear in GET /teams. compare starts it
afresh and sends ?size=N (default 20, up to 50) concurrent clients per race.
"""

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from heroes.lab import Call, Lab, Lesson, Size, scratch_engine, session_on
from heroes.lab.check import Probe, all_reach
from heroes.models import Team, TeamCreate, TeamPublic
from heroes.problems import Problem, integrity_kind, problem_responses
from heroes.seed import seed_demo

lesson = Lesson(
    __name__,
    __doc__,
    size=Size("clients", "concurrent clients creating one name (compare only)", 50, (20, 50), default=20),
)
router = lesson.router()
PITFALLS = {"*": ("IntegrityError", "IntegrityError: UNIQUE constraint failed: team.name")}  # SQLite's


def scratch(lab: Lab, fresh: bool = False) -> Engine:
    """The demo teams, in the lesson's own database (built once; again when `fresh`)."""
    return lesson.scratch(lab, populate=seed_demo, fresh=fresh)


def prepare(lab: Lab, size: int | None) -> None:
    """A fresh scratch database for every compare run: its races are on names nobody has taken yet."""
    scratch(lab, fresh=True)


LessonSession = session_on(scratch_engine(scratch))


@router.post("/bad", status_code=201, response_model=TeamPublic, responses=problem_responses(400, 422, 500))
def bad(team_in: TeamCreate, session: LessonSession) -> Team:
    """Insert and commit: a name that is taken escapes as an IntegrityError, a 500."""
    team = Team.model_validate(team_in)
    session.add(team)
    session.commit()  # unhandled: the unique violation escapes as a 500, the session needs a rollback
    session.refresh(team)
    return team


@router.post(
    "/bad/check-then-insert",
    status_code=201,
    response_model=TeamPublic,
    responses=problem_responses(400, 409, 422, 500),
)
def bad_check_then_insert(team_in: TeamCreate, session: LessonSession) -> Team:
    """SELECT the name, INSERT if free: right for one client, a race for several (losers get 500)."""
    if session.exec(select(Team).where(Team.name == team_in.name)).first() is not None:  # the check races
        raise Problem(409, f"A team named {team_in.name!r} already exists.", field="name")
    team = Team.model_validate(team_in)
    session.add(team)
    session.commit()
    session.refresh(team)
    return team


@router.post("/fixed", status_code=201, response_model=TeamPublic, responses=problem_responses(400, 409, 422))
def fixed(team_in: TeamCreate, session: LessonSession) -> Team:
    """Insert and let the unique constraint decide: 201, or 409 naming `name`; never a 500."""
    team = Team.model_validate(team_in)
    session.add(team)
    try:
        session.commit()  # the constraint decides, atomically, for every client at once
    except IntegrityError as exc:
        session.rollback()  # the session is usable again
        if integrity_kind(exc)[0] != "unique":
            raise
        raise Problem(409, f"A team named {team_in.name!r} already exists.", field="name") from None
    session.refresh(team)
    return team


def calls(size: int | None) -> list[Call]:
    clients = size or lesson.size.default
    return [
        Call("bad", "POST", "/bad", json={"name": "Preventers", "headquarters": "Elsewhere"}),
        Call(
            "bad/check-then-insert",
            "POST",
            "/bad/check-then-insert",
            json={"name": "Fantastic Four", "headquarters": "Baxter Building"},
            clients=clients,
        ),
        Call(
            "fixed",
            "POST",
            "/fixed",
            json={"name": "Thunderbolts", "headquarters": "Watchtower"},
            clients=clients,
        ),
    ]


async def check(probe: Probe) -> None:
    """A taken name: 409 naming `name`; a new one: 201; 20 clients racing for one name: one 201, 19 409s."""
    engine = scratch(probe.lab, fresh=True)
    taken = await probe.call(json={"name": "Preventers", "headquarters": "Elsewhere"})
    probe.expect(
        "a taken name answers 409 naming name", taken.status == 409 and taken.field() == "name", taken.outcome
    )
    new = await probe.call(json={"name": "Sinister Six", "headquarters": "Ravencroft"})
    probe.expect("a new name answers 201", new.status == 201, new.outcome)
    with all_reach(engine, "INSERT INTO team", 20):  # every client does what it does first, then all insert
        statuses = await probe.race(20, json={"name": "Masters of Evil", "headquarters": "Hidden"})
    seen = ", ".join(f"{n}x {status}" for status, n in sorted(statuses.items()))
    probe.expect("20 clients, one new name: one 201, 19 409s", statuses == {201: 1, 409: 19}, seen)
