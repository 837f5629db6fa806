"""Engine per request: create_engine inside the dependency opens a new pool, and a new connection, every time

Symptom: GET /lessons/engine-per-request/bad?team_id=1 answers the team, but `connects` grows by one
per request: 100 requests, 100 new connections (TCP, authentication, on PostgreSQL a server process
each), where GET .../fixed opens 1 and reuses it. `backends`: PostgreSQL's processes for the variant.
Cause: an Engine is a pool. create_engine() in a dependency builds a new pool per request; its first
query connects, and the engine is left, connection and all, to the garbage collector. Nothing is
reused, and the server keeps a backend for every engine not yet collected (max_connections: 100).
Fix: one engine per app, made at startup and kept in app.state (create_app in heroes/main.py; the
reference API's get_session in heroes/db.py opens each request's session on it).
Data: the reference teams, read only, through the lesson's own engines (fixed: a pool of 2). The lab
keeps bad's last 10 engines, disposing older ones; compare and POST .../reset dispose all. compare
sends ?size=N (default 100, up to 200) requests per variant, one after another.
"""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from sqlalchemy import Engine, event, text
from sqlalchemy.pool import Pool
from sqlmodel import Session, SQLModel

from heroes.db import create_db_engine, is_sqlite
from heroes.evidence import not_recorded
from heroes.lab import Call, Lab, Lesson, Size, lab_of
from heroes.lab.check import Probe
from heroes.models import INT32_MAX, Team, TeamPublic
from heroes.problems import Problem, problem_responses

lesson = Lesson(
    __name__,
    __doc__,
    size=Size("requests", "requests to each variant, one after another (compare only)", 200, (10, 100), 100),
)
router = lesson.router()
KEEP = 10  # bad's engines kept open at most: a demonstration never exhausts the server's connections
POOL = {"pool_size": 2, "max_overflow": 0}  # fixed's one engine
TeamId = Annotated[int, Query(ge=1, le=INT32_MAX, description="A team's id (1 to 5 on the demo data).")]


class Engines:
    """One variant's engines since the lesson was reset, and the connections they opened."""

    def __init__(self, key: tuple[str, str]) -> None:
        self.key, self.open, self.connects = key, [], 0  # open: the last KEEP, older ones disposed
        self.name = f"heroes_{lesson.name}_{key[1]}_{key[0]}"  # its application_name on PostgreSQL

    def add(self, engine: Engine) -> Engine:
        event.listen(engine, "connect", self.count)
        self.open.append(engine)
        while len(self.open) > KEEP:
            self.open.pop(0).dispose()
        return engine

    def count(self, *args: Any) -> None:
        self.connects += 1

    def close(self) -> None:  # Lab.release (reset) and Lab.close (the app stops) call it
        _engines.pop(self.key, None)
        while self.open:
            self.open.pop().dispose()


_engines: dict[tuple[str, str], Engines] = {}  # (lab owner, variant) -> its Engines


def engines(lab: Lab, variant: str) -> Engines:
    if (key := (lab.owner, variant)) not in _engines:
        lab.hold(lesson.name, _engines.setdefault(key, Engines(key)))  # Lab.close closes it with the app
    return _engines[key]


def new_engine_session(request: Request) -> Iterator[Session]:
    """Dependency: a new engine for this request, then a session on it."""
    lab, made = lab_of(request), engines(lab_of(request), "bad")
    engine = create_db_engine(settings=lab.settings, application_name=made.name)  # a new pool per request
    with Session(made.add(engine), info={"variant": "bad"}) as session:
        yield session


def app_engine(lab: Lab) -> Engine:
    """The app's one engine (here: its Lab's), made on first use as create_app makes app.state.engine."""
    made = engines(lab, "fixed")
    if not made.open:
        made.add(create_db_engine(settings=lab.settings, application_name=made.name, **POOL))
    return made.open[0]


def app_engine_session(request: Request) -> Iterator[Session]:
    """Dependency: a session on the app's one engine."""
    with Session(app_engine(lab_of(request)), info={"variant": "fixed"}) as session:
        yield session


NewEngineSession = Annotated[Session, Depends(new_engine_session)]
AppEngineSession = Annotated[Session, Depends(app_engine_session)]


class Visit(SQLModel):
    team: TeamPublic  # the job
    connects: int  # new database connections this variant's engines opened since the lesson was reset
    engines: int  # this variant's engines open now
    backends: int | None  # PostgreSQL: server processes under this variant's application_name


def visit(request: Request, session: Session, team_id: int) -> Visit:
    """The team, and what the engines of the session's variant did so far."""
    team = session.get(Team, team_id)
    if team is None:
        raise Problem(404, f"No team with id {team_id}.", field="team_id", location="query")
    lab, variant = lab_of(request), session.info["variant"]
    made = engines(lab, variant)
    opened = backends(lab, made.name)
    return Visit(team=team, connects=made.connects, engines=len(made.open), backends=opened)


def backends(lab: Lab, name: str) -> int | None:
    """pg_stat_activity's count for the variant's application_name (the driver's own cursor: not evidence)."""
    if is_sqlite(lab.main):
        return None
    with not_recorded(), lab.main.connect() as connection:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
        return connection.scalar(query, {"name": name})


@router.get("/bad", response_model=Visit, responses=problem_responses(404, 422))
def bad(request: Request, session: NewEngineSession, team_id: TeamId = 1) -> Visit:
    """Read a team through a session whose dependency made a new engine: one new connection per request."""
    return visit(request, session, team_id)


@router.get("/fixed", response_model=Visit, responses=problem_responses(404, 422))
def fixed(request: Request, session: AppEngineSession, team_id: TeamId = 1) -> Visit:
    """Read a team through a session on the app's one engine: its pool's connection, reused."""
    return visit(request, session, team_id)


def reset(lab: Lab) -> None:
    lab.release(lesson.name)  # every engine of the lesson disposed, its counts back to 0


def prepare(lab: Lab, size: int | None) -> None:
    reset(lab)  # every compare starts from no engine at all


def connects(answers: list[tuple[int, Any]]) -> str:
    """compare's outcome: the last of N requests says what the variant's engines did."""
    status, last = answers[-1]
    pg = f", {last['backends']} backends" if status == 200 and last["backends"] is not None else ""
    done = f"{last['connects']} connects, {last['engines']} engines open{pg}" if status == 200 else last
    return f"{len(answers)} requests, statuses {sorted({s for s, _ in answers})}: {done}"


def calls(size: int | None) -> list[Call]:
    n, one = size or lesson.size.default, {"team_id": 1}
    return [
        Call(variant, "GET", f"/{variant}", one, clients=n, sequential=True, summary_all=connects)
        for variant in ("bad", "fixed")
    ]


async def check(probe: Probe) -> None:
    """12 requests in a row open at most 1 new connection; each answers its team (2, then 4: unseen)."""
    made = Engines(("check", probe.variant))
    event.listen(Pool, "connect", made.count)  # every new connection, of any engine
    try:
        for team_id in (2, 4):
            with Session(probe.engine) as session:
                right = TeamPublic.model_validate(session.get(Team, team_id)).model_dump(mode="json")
            reset(probe.lab)
            made.connects = 0
            answers = [await probe.call(params={"team_id": team_id}) for _ in range(12)]
            teams = all(a.status == 200 and a.json["team"] == right for a in answers)
            probe.expect(f"12 requests answer team {team_id}", teams, answers[-1].outcome)
            few, seen = made.connects <= 1, f"connects: {made.connects}"
            probe.expect(f"team {team_id}: 12 requests, at most 1 connect", few, seen)
    finally:
        event.remove(Pool, "connect", made.count)
        reset(probe.lab)
