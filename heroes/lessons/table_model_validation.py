"""Table models do not validate: Recruit(**body) stores what Field(max_length=..., ge=...) forbids

Symptom: POST /lessons/table-model-validation/bad with {"name": <120 characters>, "age": -5}. SQLite
answers 201 Created and stores both (X-Invalid-Rows 1). PostgreSQL answers 500, StringDataRightTruncation,
because its VARCHAR(100) refuses the name; with a short name it stores age -5 too.
Cause: the route builds the row with Recruit(**body), and Recruit is a table=True model. SQLModel skips
validation when a table model is constructed, so max_length, ge and le (declared on the class, shown in
/docs) are never checked and a wrong type is not even converted. Declaring the table model as the body
parameter skips it too. Only Recruit.model_validate(...) and non-table models (RecruitCreate) validate.
With the tutorial's RecruitPublic(RecruitBase), which carries the same bounds, the response would fail
instead, a 500 after the row is stored.
Fix: accept a non-table RecruitCreate (FastAPI validates it: 422 naming the field, nothing reaches the
database) and build the row with Recruit.model_validate(recruit_in) (POST .../fixed). The backstop: CHECK
constraints (POST .../fixed/constraints: the same Recruit(**body), on a table with CHECK (length(name)
BETWEEN 1 AND 100) and CHECK (age BETWEEN 0 AND 10000), the IntegrityError answered as a 422 naming the
constraint's column). The code gives the client a per-field answer; the database holds on every path.
Myth: a table=True model validates its input like any Pydantic model. It does not (checked on SQLModel
0.0.50: Recruit(name="x" * 200, age=-5) constructs without a word); model_validate and non-table models do.
Data: tables of the lesson's own (recruit, checked_recruit), created by plain DDL in its scratch database.
"""

from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Body, Response
from pydantic import StrictInt
from sqlalchemy import CheckConstraint, Engine, Text, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from heroes.lab import Call, Lab, Lesson, create_lesson_tables, scratch_engine, session_on
from heroes.lab.check import Probe
from heroes.models import Text as Printable
from heroes.problems import Problem, problem_responses

lesson = Lesson(__name__, __doc__)
router = lesson.router()
PITFALLS = {
    "POST /bad": ("DataError", "StringDataRightTruncation: value too long for type character varying(100)")
}


class LessonModel(SQLModel, registry=registry()):  # own metadata: never SQLModel.metadata, nor Alembic's
    pass


class RecruitBase(LessonModel):
    name: Printable = Field(min_length=1, max_length=100)
    age: StrictInt | None = Field(default=None, ge=0, le=10_000)


class Recruit(RecruitBase, table=True):
    id: int | None = Field(default=None, primary_key=True)


class CheckedRecruit(RecruitBase, table=True):
    __tablename__ = "checked_recruit"
    __table_args__ = (
        CheckConstraint("length(name) BETWEEN 1 AND 100", name="name"),  # named after the column it guards
        CheckConstraint("age BETWEEN 0 AND 10000", name="age"),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=Text)  # no VARCHAR limit: the CHECK is what refuses, on both engines


class RecruitCreate(RecruitBase):
    pass


class RecruitPublic(SQLModel):
    id: int
    name: str
    age: int | None


def create_tables(engine: Engine) -> None:
    with engine.begin() as connection:  # plain DDL in the scratch database only
        create_lesson_tables(connection, LessonModel.metadata)


def scratch(lab: Lab, fresh: bool = False) -> Engine:
    return lesson.scratch(lab, populate=create_tables, fresh=fresh)


def prepare(lab: Lab, size: int | None) -> None:
    scratch(lab, fresh=True)


def invalid_rows(connection, table=Recruit.__table__) -> int:
    """Rows the model's bounds forbid: a name outside 1 to 100 characters, an age outside 0 to 10,000."""
    invalid = ~func.length(table.c.name).between(1, 100) | ~table.c.age.between(0, 10_000)
    return connection.scalar(select(func.count()).select_from(table).where(invalid))


ScratchSession = session_on(scratch_engine(scratch))
Anything = Annotated[dict[str, Any], Body(examples=[{"name": "Deadpond", "age": 48}])]


@router.post(
    "/bad", status_code=201, response_model=RecruitPublic, responses=problem_responses(400, 422, 500)
)
def bad(body: Anything, session: ScratchSession, response: Response) -> Recruit:
    """Build the table model from the body: nothing is validated, whatever the column takes is stored."""
    recruit = Recruit(**body)  # a table model: max_length, ge, le never checked
    session.add(recruit)
    session.commit()
    session.refresh(recruit)
    response.headers["X-Invalid-Rows"] = str(invalid_rows(session.connection()))
    return recruit


@router.post("/fixed", status_code=201, response_model=RecruitPublic, responses=problem_responses(400, 422))
def fixed(recruit_in: RecruitCreate, session: ScratchSession, response: Response) -> Recruit:
    """Accept RecruitCreate (validated: 422 naming the field) and build the row with model_validate."""
    recruit = Recruit.model_validate(recruit_in)  # a non-table model in, validated; model_validate validates
    session.add(recruit)
    session.commit()
    session.refresh(recruit)
    response.headers["X-Invalid-Rows"] = str(invalid_rows(session.connection()))
    return recruit


@router.post(
    "/fixed/constraints", status_code=201, response_model=RecruitPublic, responses=problem_responses(400, 422)
)
def fixed_constraints(body: Anything, session: ScratchSession) -> CheckedRecruit:
    """The bad route's code on a table with CHECK constraints: the database refuses, answered as a 422."""
    recruit = CheckedRecruit(**body)
    session.add(recruit)
    try:
        session.commit()  # the CHECK constraints are the backstop
    except IntegrityError as exc:
        session.rollback()
        column = getattr(exc.orig.diag, "constraint_name", None) if hasattr(exc.orig, "diag") else None
        column = column or str(exc.orig).rsplit(": ", 1)[-1]  # SQLite: "CHECK constraint failed: age"
        raise Problem(
            422, f"The database refused {column}: outside its CHECK constraint.", field=column
        ) from None
    session.refresh(recruit)
    return recruit


def stored(status: int, body) -> str:
    """compare's outcome line: what was stored, or the error."""
    if status == 201:
        return f"201 Created: stored a name of {len(body['name'])} characters, age {body['age']}"
    return f"{status} {HTTPStatus(status).phrase}: {body['detail']}"


INVALID = {"name": "Deadpond " * 13 + "Jr.", "age": -5}  # 120 characters


def calls(size: int | None) -> list[Call]:
    return [
        Call("bad", "POST", "/bad", json=INVALID, summary=stored),
        Call("fixed", "POST", "/fixed", json=INVALID, summary=stored),
        Call("fixed/constraints", "POST", "/fixed/constraints", json=INVALID, summary=stored),
    ]


async def check(probe: Probe) -> None:
    """A long name: 422 naming name; age -5: 422 naming age; nothing invalid stored; a valid recruit: 201."""
    engine = scratch(probe.lab, fresh=True)
    for field, body in (
        ("name", {"name": "Rocket Raccoon " * 8, "age": 30}),
        ("age", {"name": "Groot", "age": -7}),
    ):
        answer = await probe.call(json=body)
        probe.expect(
            f"an invalid {field}: 422 naming {field}",
            answer.status == 422 and answer.field() == field,
            answer.outcome,
        )
    with engine.connect() as connection:
        invalid = invalid_rows(connection)
    probe.expect("no invalid row stored", invalid == 0, f"invalid rows stored: {invalid}")
    valid = await probe.call(json={"name": "Mantis", "age": 33})
    right = valid.status == 201 and valid.json == {"id": valid.json.get("id"), "name": "Mantis", "age": 33}
    probe.expect("a valid recruit: 201, stored as sent", right, valid.outcome)
