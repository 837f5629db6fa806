"""Partial updates: a PATCH that nulls what the client did not send, a JSON change that is never saved

Symptom: PATCH /lessons/partial-update/bad?sidekick_id=1 with {"name": "Bucky Barnes"} answers 200,
and the sidekick's age and power are now null: the client sent one field and lost two. (Leave out the
name and the copy sets it to null too: a NOT NULL column answers 500.) POST .../bad/tags?sidekick_id=1
with {"tag": "shield"} answers 200 without the tag: no UPDATE was sent (X-Query-Count 2: the SELECT
and the refresh).
Cause: SidekickUpdate gives every field a default (None) so a client may leave any out; the bad route
copies model_dump(), every field, onto the row, so a field left out and a field sent as null look
alike. The tags are a JSON column: sidekick.tags.append(tag) changes the list in place, the attribute
still holds the same list object, and SQLAlchemy sees no change event, so the flush has nothing to
write and commit() saves nothing.
Fix: copy only what the client sent, update.model_dump(exclude_unset=True), with
sidekick.sqlmodel_update(data) (PATCH .../fixed, as the reference PATCH /heroes/{id} does): an explicit
null still clears a nullable field. For JSON, tell SQLAlchemy: flag_modified(sidekick, "tags") after
an in-place change (POST .../fixed/tags), assign a new list (sidekick.tags = [*sidekick.tags, tag]), or
map the column as MutableList.as_mutable(JSON) (MutableDict for objects), which sends the change
events itself; it tracks the list's own items, not objects nested inside them.
Data: a table of the lesson's own, sidekick (3 rows), created by plain DDL in its scratch database.
"""

from http import HTTPStatus
from typing import Annotated

from fastapi import Query
from pydantic import StrictInt
from sqlalchemy import JSON, Engine, insert
from sqlalchemy.orm import registry
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Field, Session, SQLModel

from heroes.lab import Call, Lab, Lesson, scratch_engine, session_on
from heroes.lab.check import Probe
from heroes.models import Text
from heroes.problems import Problem, problem_responses

lesson = Lesson(__name__, __doc__)
router = lesson.router()


class LessonModel(SQLModel, registry=registry()):  # own metadata: never SQLModel.metadata, nor Alembic's
    pass


class Sidekick(LessonModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    age: int | None = None
    power: str | None = Field(default=None, max_length=100)
    tags: list[str] = Field(default_factory=list, sa_type=JSON)  # plain JSON: in-place changes go unseen


class SidekickPublic(SQLModel):
    id: int
    name: str
    age: int | None
    power: str | None
    tags: list[str]


class SidekickUpdate(SQLModel):  # every field may be left out
    name: Text | None = Field(default=None, min_length=1, max_length=100)
    age: StrictInt | None = Field(default=None, ge=0, le=10_000)
    power: Text | None = Field(default=None, min_length=1, max_length=100)


class NewTag(SQLModel):
    tag: Text = Field(min_length=1, max_length=30)


CAST = [
    {"id": 1, "name": "Bucky", "age": 106, "power": "Metal arm", "tags": ["soldier"]},
    {"id": 2, "name": "Robin", "age": 17, "power": "Acrobatics", "tags": ["detective", "gotham"]},
    {"id": 3, "name": "Wong", "age": 45, "power": "Sorcery", "tags": []},
]


def populate(engine: Engine) -> None:
    with engine.begin() as connection:  # plain DDL in the scratch database only
        Sidekick.__table__.create(connection)
        connection.execute(insert(Sidekick), CAST)


def scratch(lab: Lab, fresh: bool = False) -> Engine:
    return lesson.scratch(lab, populate=populate, fresh=fresh)


def prepare(lab: Lab, size: int | None) -> None:
    scratch(lab, fresh=True)


ScratchSession = session_on(scratch_engine(scratch))
SidekickId = Annotated[int, Query(ge=1, le=2**31 - 1, description="A sidekick's id (1 to 3).")]
FAILS = problem_responses(400, 404, 422, 500)  # a NOT NULL column nulled: the bad route's documented 500
RESPONSES = problem_responses(400, 404, 422)


def found(session: Session, sidekick_id: int) -> Sidekick:  # 404 naming the id
    sidekick = session.get(Sidekick, sidekick_id)
    if sidekick is None:
        raise Problem(404, f"No sidekick with id {sidekick_id}.")
    return sidekick


@router.patch("/bad", response_model=SidekickPublic, responses=FAILS)
def bad(sidekick_id: SidekickId, update: SidekickUpdate, session: ScratchSession) -> Sidekick:
    """Copy every field of the update onto the row: what the client left out becomes null."""
    sidekick = found(session, sidekick_id)
    for field, value in update.model_dump().items():  # every field, sent or not
        setattr(sidekick, field, value)
    session.commit()
    session.refresh(sidekick)
    return sidekick


@router.patch("/fixed", response_model=SidekickPublic, responses=RESPONSES)
def fixed(sidekick_id: SidekickId, update: SidekickUpdate, session: ScratchSession) -> Sidekick:
    """Copy only the fields the client sent (an explicit null included)."""
    sidekick = found(session, sidekick_id)
    sidekick.sqlmodel_update(update.model_dump(exclude_unset=True))  # only what was sent
    session.commit()
    session.refresh(sidekick)
    return sidekick


@router.post("/bad/tags", response_model=SidekickPublic, responses=RESPONSES)
def bad_tags(sidekick_id: SidekickId, new: NewTag, session: ScratchSession) -> Sidekick:
    """Append to the JSON list in place and commit: no change event, no UPDATE, the tag is lost."""
    sidekick = found(session, sidekick_id)
    sidekick.tags.append(new.tag)  # the same list object: SQLAlchemy sees nothing to write
    session.commit()
    session.refresh(sidekick)
    return sidekick


@router.post("/fixed/tags", response_model=SidekickPublic, responses=RESPONSES)
def fixed_tags(sidekick_id: SidekickId, new: NewTag, session: ScratchSession) -> Sidekick:
    """Append, then flag the attribute as modified: one UPDATE writes the whole list."""
    sidekick = found(session, sidekick_id)
    sidekick.tags.append(new.tag)
    flag_modified(sidekick, "tags")  # the change event the in-place append did not send
    session.commit()
    session.refresh(sidekick)
    return sidekick


def after(status: int, body) -> str:  # compare's outcome line: the row after the request
    if status != 200:
        return f"{status} {HTTPStatus(status).phrase}: {body['detail']}"
    return f"200 OK: name {body['name']!r}, age {body['age']}, power {body['power']!r}, tags {body['tags']}"


def calls(size: int | None) -> list[Call]:
    rename, tag, one = {"name": "Bucky Barnes"}, {"tag": "shield"}, {"sidekick_id": 1}
    return [
        Call("bad", "PATCH", "/bad", one, json=rename, summary=after),
        Call("fixed", "PATCH", "/fixed", {"sidekick_id": 2}, json={"name": "Dick Grayson"}, summary=after),
        Call("bad/tags", "POST", "/bad/tags", {"sidekick_id": 3}, json=tag, summary=after),
        Call("fixed/tags", "POST", "/fixed/tags", {"sidekick_id": 3}, json=tag, summary=after),
    ]


def row(engine: Engine, sidekick_id: int) -> dict:
    with Session(engine) as session:
        return SidekickPublic.model_validate(session.get(Sidekick, sidekick_id)).model_dump()


async def check(probe: Probe) -> None:
    """One field sent, that one changed, the others kept; an explicit null clears; read from the database."""
    engine = scratch(probe.lab, fresh=True)
    for sidekick_id, change in ((2, {"age": 18}), (3, {"power": None}), (1, {"name": "The Winter Soldier"})):
        expected, what = (
            {**row(engine, sidekick_id), **change},
            f"sidekick {sidekick_id}, {', '.join(change)} sent",
        )
        answer = await probe.call(params={"sidekick_id": sidekick_id}, json=change)
        probe.expect(f"{what}: answered with only that changed", answer.json == expected, answer.outcome)
        stored = row(engine, sidekick_id)
        probe.expect(f"{what}: only that changed in the database", stored == expected, f"stored: {stored}")
