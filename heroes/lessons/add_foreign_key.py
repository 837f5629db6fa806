"""Adding a foreign key to a populated table: every writer waits while each row is checked

Symptom: POST /lessons/add-foreign-key/bad runs ADD CONSTRAINT ... FOREIGN KEY (team_id) REFERENCES
team in one revision on a legacy hero table (1000 heroes, 10 orphans) while a batch job's write
transaction is open on hero. It waits for the job, and a writer that comes next (an INSERT, as POST
/heroes runs) waits behind it. Once the job commits it reads every hero, meets an orphan and fails
(ForeignKeyViolation): the writer waited for nothing. The report: writer_blocked, lock_wait_ms, orphans.
Cause: a validated ADD FOREIGN KEY takes SHARE ROW EXCLUSIVE on hero and on team (see pg_locks) until
its transaction ends, through the check of every row: INSERT, UPDATE and DELETE on either table wait;
reads go on. While it waits for that lock, everyone after it waits too.
Fix: three revisions (migrations/lessons/add_foreign_key_*.py). fk_1: ADD CONSTRAINT ... NOT VALID, the
same lock for an instant, no row read, new rows checked (an orphan INSERT is refused). fk_2: the
orphans, listed in the report first, get team_id NULL: the heroes stay, teamless. fk_3, in its own
transaction: VALIDATE CONSTRAINT reads every row under SHARE UPDATE EXCLUSIVE, which no writer
conflicts with. POST .../fixed runs them, fk_3 in bad's situation: the writer is not blocked. fk_1's
instant lock still wants a quiet moment and a lock_timeout (lock-queue). SQLite: fk_3 copies the table.
Myth: "NOT VALID then VALIDATE is safe wherever they run". In one transaction NOT VALID's lock is held
until commit, so VALIDATE scans under it and writers wait as in bad: separate revisions. squawk flags
it (constraint-missing-not-valid), saying reads are blocked: they are not, writes are.
Commands: heroes db lint --lessons lints fk_1..fk_3 (clean); squawk flags bad's SQL.
Data: a PostgreSQL schema at the reference head, ?heroes=N heroes (1000 unless said) in team 1, rebuilt
per request; legacy: its key on hero.team_id dropped (never declared; the API is unchanged) and every
100th hero in team 2, which does not exist. The lesson's key is named fk_hero_team_id_legacy, so its
revisions also run beside the schema's own.
"""

from alembic.migration import MigrationContext
from alembic.operations import Operations
from fastapi import Request
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from heroes import migrate
from heroes.lab import POSTGRESQL, Call, Lesson
from heroes.lessons._migration import (
    DEFAULT_HEROES,
    SCRATCH_SIZE,
    Heroes,
    MigrationReport,
    Run,
    message,
    race,
    scratch,
    squawk_operations,
    squawk_revisions,
    summary,
)
from heroes.problems import problem_responses

lesson = Lesson(__name__, __doc__, engines=POSTGRESQL, size=SCRATCH_SIZE)
router = lesson.router()
NO_EXERCISE = (
    "its fix is revisions, not a route: the exercise will be to edit one until squawk (its finding is in "
    "the report) is silent and the writer is not blocked"
)
FOREIGN_KEY = "fk_hero_team_id_legacy"
ORPHANS = "SELECT id FROM hero WHERE team_id IS NOT NULL AND team_id NOT IN (SELECT id FROM team) ORDER BY id"
RESPONSES = problem_responses(409, 422)
INSERT = text("INSERT INTO hero (name, secret_name, team_id, version) VALUES (:name, 'x', :team, 1)")


class ForeignKeyReport(MigrationReport):
    orphans: list[int]  # heroes whose team_id names no team, before the migration
    orphans_after: int
    writer_blocked: bool  # the writer's INSERT was seen waiting for a lock
    lock_wait_ms: float  # how long the writer's INSERT took


def legacy(connection: Connection) -> None:
    """A hero table whose foreign key was never declared, and heroes of a team deleted meanwhile."""
    with Operations(MigrationContext.configure(connection)).batch_alter_table("hero") as batch:
        batch.drop_constraint("fk_hero_team_id_team", type_="foreignkey")
    connection.execute(text("UPDATE hero SET team_id = 2 WHERE id % 100 = 0"))  # team 2: deleted


def add_foreign_key(op: Operations) -> None:
    op.create_foreign_key(FOREIGN_KEY, "hero", "team", ["team_id"], ["id"])  # checks every row, writers wait


def one_step(connection: Connection) -> None:
    with connection.begin():
        add_foreign_key(Operations(MigrationContext.configure(connection)))


def validate(connection: Connection) -> None:
    migrate.upgrade_connection(connection, "fk_3", lessons=True)  # VALIDATE CONSTRAINT: writers go on
    connection.commit()


def orphans(run: Run) -> list[int]:
    return list(run.scalar(f"SELECT array_agg(id ORDER BY id) FROM ({ORPHANS}) o") or [])


def new_orphan(engine: Engine) -> str:
    try:
        with engine.begin() as connection:
            connection.execute(INSERT, {"name": "Orphan", "team": 2})
    except IntegrityError as exc:
        return f"refused: {message(exc)}"
    return "stored: nothing checks it"


@router.post("/bad", response_model=ForeignKeyReport, responses=RESPONSES)
def bad(request: Request, heroes: Heroes = DEFAULT_HEROES) -> ForeignKeyReport:
    """One step, ADD FOREIGN KEY validated at once, while a write transaction is open: the writer waits."""
    with scratch(request, lesson, "bad", "head", heroes, legacy) as run:
        found = orphans(run)
        action = f"ADD CONSTRAINT {FOREIGN_KEY} FOREIGN KEY, validated, in one revision"
        blocked, ms = race(run, one_step, action, team=1)
        run.squawk = squawk_operations(add_foreign_key)
        after = len(orphans(run))
        return ForeignKeyReport(
            **run.report(), writer_blocked=blocked, lock_wait_ms=ms, orphans=found, orphans_after=after
        )


@router.post("/fixed", response_model=ForeignKeyReport, responses=RESPONSES)
def fixed(request: Request, heroes: Heroes = DEFAULT_HEROES) -> ForeignKeyReport:
    """fk_1 NOT VALID, fk_2 orphans to NULL, then fk_3 VALIDATE in the same situation: the writer goes on."""
    with scratch(request, lesson, "fixed", "head", heroes, legacy) as run:
        found, still = orphans(run), lambda: f"{len(orphans(run))} orphans"  # noqa: E731
        run.migrate("fk_1", "fk_1: ADD CONSTRAINT ... NOT VALID", still, lessons=True)
        run.step("a new orphan: INSERT a hero of team 2", new_orphan)
        run.step("the orphans, listed in the report", lambda _: f"{len(found)} heroes of no team")
        run.migrate("fk_2", "fk_2: the orphans' team_id set to NULL", still, lessons=True)
        blocked, ms = race(run, validate, f"fk_3: VALIDATE CONSTRAINT {FOREIGN_KEY}", team=1)
        run.squawk = squawk_revisions(None, "fk_3", lessons=True)
        after = len(orphans(run))
        return ForeignKeyReport(
            **run.report(), writer_blocked=blocked, lock_wait_ms=ms, orphans=found, orphans_after=after
        )


def fk_summary(status: int, body) -> str:
    if status != 200:
        return summary(status, body)
    state = "blocked" if body["writer_blocked"] else "not blocked"
    orphans = f"orphans {len(body['orphans'])} -> {body['orphans_after']}"
    return (
        f"{summary(status, body)}; {orphans}; writer {state}, its INSERT took {body['lock_wait_ms']:.0f} ms"
    )


def calls(size: int | None) -> list[Call]:
    params = {"heroes": size} if size else {}
    return [
        Call("bad", "POST", "/bad", params, summary=fk_summary),
        Call("fixed", "POST", "/fixed", params, summary=fk_summary),
    ]
