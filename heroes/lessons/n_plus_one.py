"""N+1 queries: listing teams with their heroes costs one SELECT per team

Symptom: GET /lessons/n-plus-one/bad returns the right JSON, but X-Query-Count grows with the data:
1 + N statements for N teams (6 on the demo data, 1001 with ?teams=1000).
Cause: Team.heroes is a lazy relationship. The query loads the teams only; building each team's
response touches team.heroes, and SQLAlchemy runs one SELECT for that team's heroes, then the next.
Fix: say in the query what the response needs. selectinload(Team.heroes) loads every team's heroes
in one more SELECT ... WHERE team_id IN (...): 2 statements, however many heroes (it sends the ids
500 to an IN list, so 3 statements from 501 teams, 3 at 1000: still not N). For the many-to-one side,
joinedload(Hero.team) adds a JOIN: heroes with their team in 1 statement. In tests, raiseload("*")
turns a lazy load you forgot into an error (GET /lessons/n-plus-one/guard).
Myth: "joinedload is the one-query fix everywhere, and selectinload is the same query". With a 2.x
select(), joinedload of a collection gives one row per hero, and the result refuses to hand out the
teams until .unique() is called (InvalidRequestError: "The unique() method must be invoked");
selectinload is a second SELECT, one more for every 500 parents (3 statements at 501 teams).
Data: the demo data by default; ?teams=N (up to 5000) builds a scratch database of N teams with 3
heroes each (a SQLite file beside the lab's, or a PostgreSQL schema of its own), so the
reference API's data is never touched.
"""

from sqlalchemy import Engine
from sqlalchemy.orm import joinedload, raiseload, selectinload
from sqlmodel import Session, select

from heroes.lab import Call, Lab, Lesson, Size, demo_or_scratch, session_on
from heroes.lab.check import Probe
from heroes.models import Hero, HeroPublicWithTeam, Team, TeamPublicWithHeroes
from heroes.problems import problem_responses
from heroes.seed import seed_bulk

lesson = Lesson(
    __name__,
    __doc__,
    size=Size("teams", "teams (3 heroes each) in the lesson's scratch database", 5000, demo=(10, 100, 1000)),
)
router = lesson.router()
PITFALLS = {  # what GET /guard answers (heroes/docs.py documents it)
    "GET /guard": (
        "ValidationError",
        "heroes: Error extracting attribute: InvalidRequestError: 'Team.heroes' is not available due to "
        "lazy='raise'",
    ),
}
HEROES_PER_TEAM = 3


def scratch(lab: Lab, teams: int) -> Engine:
    """N teams of 3 heroes each, in the lesson's own database (built once, then reused)."""
    return lesson.scratch(lab, teams, lambda engine: seed_bulk(engine, teams, HEROES_PER_TEAM))


def prepare(lab: Lab, size: int | None) -> None:
    if size:
        scratch(lab, size)


LessonSession = session_on(demo_or_scratch(lesson, scratch))  # the demo data, or ?teams=N
FAILS = problem_responses(422, 500)  # the guard's documented symptom is a 500
RESPONSES = problem_responses(422)


@router.get("/bad", response_model=list[TeamPublicWithHeroes], responses=RESPONSES)
def bad(session: LessonSession) -> list[TeamPublicWithHeroes]:
    """Teams, then each team's heroes loaded lazily while the response is built: 1 + N statements."""
    teams = session.exec(select(Team).order_by(Team.id)).all()
    return [TeamPublicWithHeroes.model_validate(team) for team in teams]  # team.heroes: one SELECT per team


@router.get("/fixed", response_model=list[TeamPublicWithHeroes], responses=RESPONSES)
def fixed(session: LessonSession) -> list[TeamPublicWithHeroes]:
    """Teams and all their heroes: 2 statements (one more per 500 teams beyond the first 500)."""
    teams = session.exec(select(Team).options(selectinload(Team.heroes)).order_by(Team.id)).all()  # 1 more
    return [TeamPublicWithHeroes.model_validate(team) for team in teams]


@router.get("/fixed/joinedload", response_model=list[HeroPublicWithTeam], responses=RESPONSES)
def fixed_joinedload(session: LessonSession) -> list[HeroPublicWithTeam]:
    """The many-to-one side: every hero with its team, in 1 statement (a LEFT OUTER JOIN)."""
    heroes = session.exec(select(Hero).options(joinedload(Hero.team)).order_by(Hero.id)).all()  # the JOIN
    return [HeroPublicWithTeam.model_validate(hero) for hero in heroes]


@router.get("/guard", response_model=list[TeamPublicWithHeroes], responses=FAILS)
def guard(session: LessonSession) -> list[TeamPublicWithHeroes]:
    """The bad route's code under raiseload("*"): the first lazy load is an error, not a silent SELECT."""
    teams = session.exec(select(Team).options(raiseload("*")).order_by(Team.id)).all()  # lazy loads raise
    return [TeamPublicWithHeroes.model_validate(team) for team in teams]


def calls(size: int | None) -> list[Call]:
    params = {"teams": size} if size else {}
    return [
        Call("bad", "GET", "/bad", params),
        Call("fixed", "GET", "/fixed", params),
        Call("fixed/joinedload", "GET", "/fixed/joinedload", params),
    ]


def teams_with_heroes(engine: Engine) -> list[dict]:
    """What the route must answer, read straight from the database."""
    with Session(engine) as session:
        teams = session.exec(select(Team).options(selectinload(Team.heroes)).order_by(Team.id)).all()
        return [TeamPublicWithHeroes.model_validate(team).model_dump(mode="json") for team in teams]


async def check(probe: Probe) -> None:
    """Right answer, and a number of statements that does not grow with the teams (10, then 23 unseen)."""
    for teams in (10, 23):
        answer = await probe.call(params={"teams": teams})
        right = answer.status == 200 and answer.json == teams_with_heroes(scratch(probe.lab, teams))
        probe.expect(f"the {teams} teams with their heroes", right, answer.outcome)
        evidence = f"statements: {answer.statements}, the fixed route needs at most 3"
        probe.expect(f"statements at {teams} teams", answer.statements <= 3, evidence)
