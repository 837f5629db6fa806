"""Cascade delete: ON DELETE CASCADE that SQLite ignores, and an ORM cascade that deletes row by row

Symptom: DELETE /lessons/cascade-delete/bad?guild_id=1 on SQLite deletes the guild and leaves its 10
members behind, pointing at nothing (orphans: 10), though the foreign key says ON DELETE CASCADE.
PostgreSQL cascades (orphans: 0). DELETE .../bad/orm-cascade?guild_id=2 leaves no orphan, but the ORM
first loads every member, then deletes them itself (rows_deleted_by_the_orm: 1 + N; the DELETE of the
members runs once per member, an executemany of N parameter sets).
Cause: SQLite enforces foreign keys, ON DELETE CASCADE included, only on a connection that ran PRAGMA
foreign_keys=ON; the default is off, per connection. relationship(cascade="all, delete") makes the
ORM do the cascade: on session.delete(guild) it loads guild.members (one SELECT) and flushes a DELETE
for each, though the database would have done it in the guild's one DELETE.
Fix: turn foreign keys on for every SQLite connection (heroes/db.py does, on connect), declare ON
DELETE CASCADE, and tell the ORM to leave it to the database: relationship(cascade="all, delete",
passive_deletes=True): one DELETE of the guild, the members go with it, nothing loaded (DELETE
.../fixed?guild_id=3). Cascade when the children mean nothing without their parent (a guild's
memberships, an order's lines). When they matter on their own, refuse instead: the reference API
answers 409 to DELETE /teams/{id} while the team has heroes, so nobody loses heroes by deleting a team.
Myth: SQLite without PRAGMA foreign_keys=ON ignores ON DELETE CASCADE as it ignores every foreign key.
Data: tables of the lesson's own, guild and member: 3 guilds of ?members=N members each (default 10,
up to 1,000), created by plain DDL in its scratch database, fresh for each compare.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy import Engine, ForeignKey, String, create_engine, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlmodel import SQLModel

from heroes.db import is_sqlite
from heroes.evidence import instrument
from heroes.lab import Call, Lab, Lesson, Size, create_lesson_tables, lab_of
from heroes.problems import Problem, problem_responses

lesson = Lesson(
    __name__, __doc__, size=Size("members", "members in each of the lesson's 3 guilds", 1000, (10, 100), 10)
)
router = lesson.router()
NO_EXERCISE = (
    "The fix is a connection setting (PRAGMA foreign_keys=ON on every SQLite connection) and the "
    "relationship's passive_deletes=True, declared where the engine and the model are, not in a route's body."
)


class Base(DeclarativeBase):  # the lesson's own metadata: the reference schema and its revisions never see it
    pass


class Member(Base):
    __tablename__ = "member"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    guild_id: Mapped[int] = mapped_column(ForeignKey("guild.id", ondelete="CASCADE"), index=True)


class Guild(Base):
    __tablename__ = "guild"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    members: Mapped[list[Member]] = relationship(cascade="all, delete", passive_deletes=True)  # the database


class EagerGuild(Base):  # the same table, with the ORM doing the cascade itself
    __table__ = Guild.__table__
    members: Mapped[list[Member]] = relationship(cascade="all, delete", overlaps="members")


class Deleted(SQLModel):
    guild_id: int
    rows_deleted_by_the_orm: int  # the guild, plus every member the ORM loaded to delete it itself
    orphans: int  # the guild's members still there, pointing at a guild that no longer exists


def populate(engine: Engine, members: int) -> None:
    with engine.begin() as connection:  # plain DDL in the scratch database only
        create_lesson_tables(connection, Base.metadata)
        connection.execute(insert(Guild), [{"id": g, "name": f"Guild {g}"} for g in (1, 2, 3)])
        rows = [{"name": f"Member {g}.{i}", "guild_id": g} for g in (1, 2, 3) for i in range(members)]
        connection.execute(insert(Member), rows)


def scratch(lab: Lab, members: int, fresh: bool = False) -> Engine:
    return lesson.scratch(lab, members, lambda engine: populate(engine, members), fresh=fresh)


def prepare(lab: Lab, size: int | None) -> None:
    scratch(lab, size or lesson.size.default, fresh=True)


Members = Annotated[int, Query(ge=1, le=lesson.size.maximum, description=lesson.size.meaning)]


def guilds(request: Request, members: Members = lesson.size.default) -> Engine:
    return scratch(lab_of(request), members)


GuildsEngine = Annotated[Engine, Depends(guilds)]
GuildId = Annotated[int, Query(ge=1, le=3, description="A guild of the lesson's scratch database (1 to 3).")]
RESPONSES = problem_responses(404, 422)


@contextmanager
def careless(engine: Engine) -> Iterator[Engine]:
    """The scratch database as a careless app opens it on SQLite: no PRAGMA foreign_keys=ON."""
    plain = instrument(create_engine(engine.url)) if is_sqlite(engine) else None
    try:
        yield plain or engine
    finally:
        if plain is not None:
            plain.dispose()


def delete_guild(session: Session, model: type[Guild] | type[EagerGuild], guild_id: int) -> Deleted:
    guild = session.get(model, guild_id)
    if guild is None:
        raise Problem(404, f"No guild with id {guild_id}.")
    session.delete(guild)  # cascade="all, delete": without passive_deletes, loads the members right here
    deleted = len(session.deleted)
    session.commit()
    orphans = session.scalar(select(func.count()).select_from(Member).where(Member.guild_id == guild_id))
    return Deleted(guild_id=guild_id, rows_deleted_by_the_orm=deleted, orphans=orphans)


@router.delete("/bad", response_model=Deleted, responses=RESPONSES)
def bad(guild_id: GuildId, engine: GuildsEngine) -> Deleted:
    """Delete the guild on a connection without foreign keys: SQLite leaves its members as orphans."""
    with careless(engine) as plain, Session(plain) as session:  # SQLite: ON DELETE CASCADE ignored
        return delete_guild(session, Guild, guild_id)


@router.delete("/bad/orm-cascade", response_model=Deleted, responses=RESPONSES)
def bad_orm_cascade(guild_id: GuildId, engine: GuildsEngine) -> Deleted:
    """The ORM cascades itself: it loads every member, then deletes them one by one (executemany)."""
    with Session(engine) as session:
        return delete_guild(session, EagerGuild, guild_id)  # no passive_deletes: 1 + N rows, N loaded


@router.delete("/fixed", response_model=Deleted, responses=RESPONSES)
def fixed(guild_id: GuildId, engine: GuildsEngine) -> Deleted:
    """Foreign keys on, passive_deletes=True: one DELETE of the guild, the database deletes the members."""
    with Session(engine) as session:  # the app's engine: PRAGMA foreign_keys=ON on every connection
        return delete_guild(session, Guild, guild_id)


def deleted(status: int, body) -> str:  # compare's outcome line
    if status != 200:
        return f"{status}: {body['detail']}"
    return (
        f"200 OK: {body['rows_deleted_by_the_orm']} row(s) deleted by the ORM, {body['orphans']} orphans left"
    )


def calls(size: int | None) -> list[Call]:
    members = {"members": size or lesson.size.default}
    return [
        Call("bad", "DELETE", "/bad", {**members, "guild_id": 1}, summary=deleted),
        Call("bad/orm-cascade", "DELETE", "/bad/orm-cascade", {**members, "guild_id": 2}, summary=deleted),
        Call("fixed", "DELETE", "/fixed", {**members, "guild_id": 3}, summary=deleted),
    ]
