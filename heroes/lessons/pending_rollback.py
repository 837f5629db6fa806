"""Pending rollback: after a failed flush, the session refuses all further work until rolled back

Symptom: POST /lessons/pending-rollback/bad imports 10 teams whose 4th repeats the 1st's name: rows 1-3
are stored, row 4 fails (IntegrityError), and the good rows 5-10 fail too with PendingRollbackError,
"This Session's transaction has been rolled back due to a previous exception during flush": 3 of 10
stored, 6 good rows lost. POST .../bad/aborted sends plain INSERTs in one transaction and skips a
failure: SQLite stores the 9 good rows, PostgreSQL none, as every statement after the failed INSERT
fails with 25P02 "current transaction is aborted" and the final COMMIT is silently a ROLLBACK.
Cause: a flush that fails rolls the session's transaction back and leaves the session in that state
until the code calls rollback(), so that nothing can pretend the failed work happened; catching the
exception does not end it. PostgreSQL aborts a transaction at its first failed statement.
Fix: roll back, and decide what a batch means. All or nothing (POST .../fixed/all-or-nothing): at the
first failure rollback() and report the row: 0 stored, row 4 named. Or a SAVEPOINT per row (POST
.../fixed): `with session.begin_nested():` rolls a failed row back alone: 9 stored, exactly row 4
reported, with its error. SQLite's driver (pysqlite) sends no BEGIN before the first INSERT, so a
first SAVEPOINT would open the transaction and its RELEASE commit it: each row committed on its own, a
rollback of the import undoing nothing. The lesson's engine applies SQLAlchemy's documented recipe
(the driver's BEGIN off, SQLAlchemy's on), so the import is one transaction on both engines.
Myth: "PendingRollbackError follows any error": it follows a failed flush (add, then flush or commit).
A failed session.execute() leaves the session usable: SQLite carries on, while PostgreSQL refuses
everything after it with 25P02 (POST .../bad/aborted).
Data: the demo teams in the lesson's own database; each batch is the body (up to 1,000 teams).
"""

from typing import Annotated

from fastapi import Body
from sqlalchemy import Engine, event, func, insert
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, select

from heroes.db import is_sqlite
from heroes.evidence import not_recorded
from heroes.lab import Call, Lab, Lesson, safe_message, scratch_engine
from heroes.lab.check import Probe
from heroes.models import Team, TeamCreate
from heroes.problems import problem_responses
from heroes.seed import seed_demo

lesson = Lesson(__name__, __doc__)
router = lesson.router()
Batch = Annotated[list[TeamCreate], Body(min_length=1, max_length=1000, description="The teams to import.")]
RESPONSES = problem_responses(400, 422)


def lesson_engine(lab: Lab) -> Engine:
    engine = lab.own_engine(lesson.name, lesson.name, seed_demo)
    if is_sqlite(engine) and not event.contains(engine, "begin", emit_begin):  # SQLAlchemy's recipe
        event.listen(engine, "connect", lambda dbapi, record: setattr(dbapi, "isolation_level", None))
        event.listen(engine, "begin", emit_begin)
    return engine


def emit_begin(connection) -> None:
    connection.exec_driver_sql("BEGIN")  # pysqlite's own BEGIN is off: the transaction starts here


LessonEngine = scratch_engine(lesson_engine)


class RowFailure(SQLModel):
    row: int  # 1 is the batch's first team
    exception: str
    error: str


class ImportReport(SQLModel):
    rows: int
    stored: int  # teams the import added to the table
    failed: list[RowFailure]


def failure(row: int, exc: SQLAlchemyError) -> RowFailure:
    return RowFailure(row=row, exception=type(exc).__name__, error=safe_message(exc))


def teams(engine: Engine) -> int:
    with not_recorded(), Session(engine) as session:
        return session.exec(select(func.count()).select_from(Team)).one()


@router.post("/bad", response_model=ImportReport, responses=RESPONSES)
def bad(batch: Batch, engine: LessonEngine) -> ImportReport:
    """Commit each row, skip a row that fails: every row after it fails too (PendingRollbackError)."""
    before, failed = teams(engine), []
    with Session(engine) as session:
        for row, team in enumerate(batch, 1):
            try:
                session.add(Team.model_validate(team))
                session.commit()
            except SQLAlchemyError as exc:
                failed.append(failure(row, exc))  # and on to the next row, without a rollback
    return ImportReport(rows=len(batch), stored=teams(engine) - before, failed=failed)


@router.post("/bad/aborted", response_model=ImportReport, responses=RESPONSES)
def bad_aborted(batch: Batch, engine: LessonEngine) -> ImportReport:
    """INSERT each row in one transaction, skip a failure: PostgreSQL refuses the rest (25P02)."""
    before, failed = teams(engine), []
    with Session(engine) as session:
        for row, team in enumerate(batch, 1):
            try:
                session.execute(insert(Team).values(**team.model_dump()))
            except SQLAlchemyError as exc:
                failed.append(failure(row, exc))  # PostgreSQL: the transaction is aborted from here on
        session.commit()  # PostgreSQL: an aborted transaction's COMMIT is a ROLLBACK, and no error
    return ImportReport(rows=len(batch), stored=teams(engine) - before, failed=failed)


@router.post("/fixed", response_model=ImportReport, responses=RESPONSES)
def fixed(batch: Batch, engine: LessonEngine) -> ImportReport:
    """A SAVEPOINT per row: a failed row is rolled back alone, the others are stored."""
    before, failed = teams(engine), []
    with Session(engine) as session:
        for row, team in enumerate(batch, 1):
            try:
                with session.begin_nested():  # SAVEPOINT; a failure rolls back to it, the rest stays
                    session.add(Team.model_validate(team))
            except SQLAlchemyError as exc:
                failed.append(failure(row, exc))
        session.commit()
    return ImportReport(rows=len(batch), stored=teams(engine) - before, failed=failed)


@router.post("/fixed/all-or-nothing", response_model=ImportReport, responses=RESPONSES)
def fixed_all_or_nothing(batch: Batch, engine: LessonEngine) -> ImportReport:
    """One transaction: at the first failure, roll back everything and report that row."""
    before, failed = teams(engine), []
    with Session(engine) as session:
        try:
            for row, team in enumerate(batch, 1):  # noqa: B007 (the except reports `row`)
                session.add(Team.model_validate(team))
                session.flush()
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()  # the whole batch undone; the session is usable again
            failed.append(failure(row, exc))
    return ImportReport(rows=len(batch), stored=teams(engine) - before, failed=failed)


def reset(lab: Lab) -> None:
    lab.release(lesson.name)  # the lesson's engine, before its database is dropped


def prepare(lab: Lab, size: int | None) -> None:
    reset(lab)
    lesson.scratch(lab, populate=seed_demo, fresh=True)


def batch(prefix: str, rows: int = 10, repeat: int = 4) -> list[dict]:
    names = [f"{prefix} {n}" for n in range(1, rows + 1)]
    names[repeat - 1] = names[0]
    return [{"name": name, "headquarters": "Imported"} for name in names]


def summary(status: int, body) -> str:
    rows: dict[str, list[str]] = {}
    for failed in body.get("failed", []):
        rows.setdefault(failed["exception"], []).append(str(failed["row"]))
    said = "".join(f"; {name} at row {', '.join(numbers)}" for name, numbers in rows.items())
    return f"{body['stored']} of {body['rows']} rows stored{said}" if status == 200 else body["detail"]


def calls(size: int | None) -> list[Call]:
    variants = ("bad", "bad/aborted", "fixed", "fixed/all-or-nothing")
    return [
        Call(v, "POST", f"/{v}", json=batch(f"Import {n}"), summary=summary) for n, v in enumerate(variants)
    ]


async def check(probe: Probe) -> None:
    """Batches the learner never saw: every good row stored, exactly the bad one reported, with its error."""
    prepare(probe.lab, None)
    for rows, repeat in ((7, 3), (12, 9)):
        answer = await probe.call(json=batch(f"Unseen {rows}", rows, repeat))
        body = answer.json if answer.status == 200 else {}
        stored, failed = body.get("stored"), [(f["row"], f["exception"]) for f in body.get("failed", [])]
        probe.expect(f"{rows - 1} of {rows} rows stored", stored == rows - 1, f"stored: {stored}")
        only = failed == [(repeat, "IntegrityError")]
        probe.expect(f"only row {repeat} (row 1's name) reported", only, f"reported: {failed}")
