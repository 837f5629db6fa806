"""Soft delete: a query that forgets deleted_at IS NULL, and a unique name a deleted row still holds

Symptom: GET /lessons/soft-delete/bad lists 5 squads, 2 of them deleted (their deleted_at is set): one
query forgot the filter. POST .../bad/recreate with {"name": "Legion of Doom"}, a squad that was
deleted, answers 409: the name is taken, by a row nobody can see.
Cause: a soft delete is an UPDATE that sets deleted_at; the row stays, so every query must add
`WHERE deleted_at IS NULL`, and the one that does not shows deleted rows. A plain UNIQUE (name) counts
deleted rows too, so a deleted squad keeps its name forever.
Fix: apply the filter to every query the session runs, in one place: a do_orm_execute hook adding
with_loader_criteria(SoftDeleted, lambda cls: cls.deleted_at.is_(None), include_aliases=True) to each
SELECT (GET .../fixed: 3 squads, the same query). A query that must see deleted rows (an admin's undo,
a purge) opts out with .execution_options(include_deleted=True). And make the name unique among live
rows only, a partial unique index: CREATE UNIQUE INDEX ... ON live_squad (name) WHERE deleted_at IS
NULL (both engines support it; SQLAlchemy renders it from Index(..., unique=True, sqlite_where=...,
postgresql_where=...)), so POST .../fixed/recreate answers 201, and a live duplicate still 409.
Data: tables of the lesson's own, squad (UNIQUE (name)) and live_squad (the partial index), the same 5
squads, 2 deleted, by plain DDL in its scratch database (no migration: lesson tables only).
"""

from datetime import UTC, datetime

from sqlalchemy import Engine, Index, String, UniqueConstraint, event, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    mapped_column,
    with_loader_criteria,
)
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import UTCDateTime

from heroes.lab import Call, Lab, Lesson, create_lesson_tables, scratch_engine
from heroes.lab.check import Probe
from heroes.models import Text
from heroes.problems import Problem, problem_responses

lesson = Lesson(__name__, __doc__)
router = lesson.router()


class Base(DeclarativeBase):  # the lesson's own metadata: the reference schema and its revisions never see it
    pass


class SoftDeleted:
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    deleted_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime
    )  # aware on both engines (SQLModel's type)


class Squad(SoftDeleted, Base):
    __tablename__ = "squad"
    __table_args__ = (UniqueConstraint("name"),)  # deleted rows hold their names too


class LiveSquad(SoftDeleted, Base):
    __tablename__ = "live_squad"
    live = text("deleted_at IS NULL")
    __table_args__ = (
        Index("uq_live_squad_name", "name", unique=True, sqlite_where=live, postgresql_where=live),
    )


class SquadPublic(SQLModel):
    id: int
    name: str
    deleted_at: datetime | None


class SquadCreate(SQLModel):
    name: Text = Field(min_length=1, max_length=100)


def not_deleted(state: ORMExecuteState) -> None:
    """do_orm_execute: every SELECT of a soft-deleted class gets deleted_at IS NULL, unless it opts out."""
    if state.is_select and not state.execution_options.get("include_deleted", False):
        live = with_loader_criteria(SoftDeleted, lambda cls: cls.deleted_at.is_(None), include_aliases=True)
        state.statement = state.statement.options(live)


GONE = datetime(2024, 1, 1, tzinfo=UTC)
SQUADS = ["Justice League", "Legion of Doom", "Injustice Gang", "Teen Titans", "Suicide Squad"]


def populate(engine: Engine) -> None:
    with engine.begin() as connection:  # plain DDL in the scratch database only
        create_lesson_tables(connection, Base.metadata)
        for i, name in enumerate(SQUADS, 1):  # ids 1 to 5 from each table's own sequence
            row = {"name": name, "deleted_at": GONE if i in (2, 5) else None}
            connection.execute(insert(Squad).values(row))
            connection.execute(insert(LiveSquad).values(row))


def scratch(lab: Lab, fresh: bool = False) -> Engine:
    return lesson.scratch(lab, populate=populate, fresh=fresh)


def prepare(lab: Lab, size: int | None) -> None:
    scratch(lab, fresh=True)


ScratchEngine = scratch_engine(scratch)
CONFLICT = problem_responses(400, 409, 422)


@router.get("/bad", response_model=list[SquadPublic])
def bad(engine: ScratchEngine) -> list[Squad]:
    """List the squads, forgetting deleted_at IS NULL: the deleted ones come back."""
    with Session(engine) as session:
        return list(session.scalars(select(Squad).order_by(Squad.id)))  # no deleted_at IS NULL


@router.get("/fixed", response_model=list[SquadPublic])
def fixed(engine: ScratchEngine) -> list[Squad]:
    """The same query, in a session whose do_orm_execute hook adds deleted_at IS NULL to every SELECT."""
    with Session(engine) as session:
        event.listen(session, "do_orm_execute", not_deleted)  # the filter, everywhere, in one place
        return list(session.scalars(select(Squad).order_by(Squad.id)))


def create(engine: Engine, model: type[Squad] | type[LiveSquad], squad_in: SquadCreate) -> Squad:
    with Session(engine) as session:
        squad = model(name=squad_in.name)
        session.add(squad)
        try:
            session.commit()
        except IntegrityError:
            raise Problem(409, f"A squad named {squad_in.name!r} already exists.", field="name") from None
        session.refresh(squad)
        return squad


@router.post(
    "/bad/recreate", status_code=201, response_model=SquadPublic, responses=problem_responses(400, 409, 422)
)
def bad_recreate(squad_in: SquadCreate, engine: ScratchEngine) -> Squad:
    """Create a squad under UNIQUE (name): a deleted squad's name is still taken, 409."""
    return create(engine, Squad, squad_in)


@router.post(
    "/fixed/recreate", status_code=201, response_model=SquadPublic, responses=problem_responses(400, 409, 422)
)
def fixed_recreate(squad_in: SquadCreate, engine: ScratchEngine) -> LiveSquad:
    """Create a squad under a unique index of live rows only: a deleted squad's name is free again, 201."""
    return create(engine, LiveSquad, squad_in)


def listed(status: int, body) -> str:  # compare's outcome line
    if status >= 400:
        return f"{status}: {body['detail']}"
    rows = body if isinstance(body, list) else [body]
    deleted = sum(row["deleted_at"] is not None for row in rows)
    return f"{status}: {len(rows)} squad(s), {deleted} deleted"


def calls(size: int | None) -> list[Call]:
    doom = {"name": "Legion of Doom"}
    return [
        Call("bad", "GET", "/bad", summary=listed),
        Call("fixed", "GET", "/fixed", summary=listed),
        Call("bad/recreate", "POST", "/bad/recreate", json=doom, summary=listed),
        Call("fixed/recreate", "POST", "/fixed/recreate", json=doom, summary=listed),
    ]


async def check(probe: Probe) -> None:
    """The live squads only, after deleting one the learner never saw deleted (Teen Titans)."""
    engine = scratch(probe.lab, fresh=True)
    with engine.begin() as connection:
        connection.execute(Squad.__table__.update().where(Squad.id == 4).values(deleted_at=GONE))
    answer = await probe.call()
    names = [row["name"] for row in answer.json] if answer.status == 200 else []
    live = ["Justice League", "Injustice Gang"]
    probe.expect("the live squads, in order", names == live, f"{answer.outcome}: {names}")
