"""Load only what you use: a list of three columns that reads a 20 KB column per row it never shows

Symptom: GET /lessons/load-only/bad?rows=1000 answers id, name and age of each profile, in one
statement, yet its peak memory grows with a column the response never shows: 20 KB of `bio` per row
(compare's peak memory: about 21 MiB at 1,000 rows, against well under 1 MiB for /fixed).
/bad/deferred defers bio, then one line reads it per row (it skips profiles with no bio): 1 + N
statements, the N+1 again, and the bios are read all the same.
Cause: select(Profile) loads whole entities: every mapped column is in the SELECT, every value is
read, sent and turned into a Python string held by the session until it closes. defer() leaves a
column out of the SELECT, but reading it later is a lazy load: one SELECT of that row's bio, per row.
Fix: say which columns the query needs. options(load_only(Profile.id, Profile.name, Profile.age))
keeps the entities (/fixed), a column select(Profile.id, Profile.name, Profile.age) returns plain rows
(/fixed/columns): one statement, bio never read. To make the slip loud, defer(Profile.bio,
raiseload=True): reading it is an InvalidRequestError a test sees, not a silent SELECT (/guard).
Data: a scratch table of the lesson's own, profile(id, name, age, bio), ?rows=N profiles (default
1,000, up to 5,000) with 20 KB of bio each, built in the lesson's scratch database; never the
reference API's tables.
"""

from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy import Engine, Integer, String, Text, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, defer, load_only, mapped_column
from sqlmodel import SQLModel

from heroes.lab import Call, Lab, Lesson, Size, lab_of, session_on
from heroes.lab.check import Probe
from heroes.problems import problem_responses

lesson = Lesson(
    __name__,
    __doc__,
    size=Size("rows", "profiles (20 KB of bio each) in the lesson's scratch table", 5000, (100, 1000), 1000),
)
router = lesson.router()
PITFALLS = {"GET /guard": ("InvalidRequestError", "'Profile.bio' is not available due to raiseload=True")}
BIO_BYTES = 20_000


class Base(DeclarativeBase):  # the lesson's own metadata: the reference schema and its revisions never see it
    pass


class Profile(Base):
    __tablename__ = "profile"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    age: Mapped[int | None] = mapped_column(Integer)
    bio: Mapped[str] = mapped_column(Text)  # 20 KB a row, and the list never shows it


class ProfilePublic(SQLModel):
    id: int
    name: str
    age: int | None


def populate(engine: Engine, rows: int) -> None:
    """The profile table (plain DDL, in the scratch database only) and `rows` profiles."""
    filler = "".join(chr(97 + (i * 7) % 26) for i in range(BIO_BYTES))
    with engine.begin() as connection:
        Profile.__table__.create(connection)
        for start in range(1, rows + 1, 500):
            batch = range(start, min(start + 500, rows + 1))
            values = [dict(id=i, name=f"Profile {i}", age=20 + i % 50, bio=f"{i} {filler}") for i in batch]
            connection.execute(insert(Profile), values)


def scratch(lab: Lab, rows: int) -> Engine:
    return lesson.scratch(lab, rows, lambda engine: populate(engine, rows))


def prepare(lab: Lab, size: int | None) -> None:
    scratch(lab, size or lesson.size.default)


Rows = Annotated[int, Query(ge=1, le=lesson.size.maximum, description=lesson.size.meaning)]


def profiles(request: Request, rows: Rows = lesson.size.default) -> Engine:
    return scratch(lab_of(request), rows)


LessonSession = session_on(Annotated[Engine, Depends(profiles)])  # ?rows=N: the scratch table of N profiles
RESPONSES = problem_responses(422)


@router.get("/bad", response_model=list[ProfilePublic], responses=RESPONSES)
def bad(session: LessonSession) -> list[Profile]:
    """Whole entities for a list of three columns: every bio read and held, 20 KB a row."""
    query = select(Profile)  # whole entities: every column, bio included
    return session.scalars(query.order_by(Profile.id)).all()


@router.get("/bad/deferred", response_model=list[ProfilePublic], responses=RESPONSES)
def bad_deferred(session: LessonSession) -> list[Profile]:
    """bio deferred, then read per row (skipping profiles with no bio): one more SELECT per row, 1 + N."""
    query = select(Profile).options(defer(Profile.bio))
    listed = session.scalars(query.order_by(Profile.id)).all()
    return [profile for profile in listed if profile.bio]  # a deferred column read: one SELECT per row


@router.get("/fixed", response_model=list[ProfilePublic], responses=RESPONSES)
def fixed(session: LessonSession) -> list[Profile]:
    """Only the three columns the response shows: one statement, bio never read."""
    query = select(Profile).options(load_only(Profile.id, Profile.name, Profile.age))  # the 3 columns only
    return session.scalars(query.order_by(Profile.id)).all()


@router.get("/fixed/columns", response_model=list[ProfilePublic], responses=RESPONSES)
def fixed_columns(session: LessonSession) -> list[ProfilePublic]:
    """A column select: plain rows of three values, no entities, no identity map."""
    listed = session.execute(select(Profile.id, Profile.name, Profile.age).order_by(Profile.id))  # 3 columns
    return [ProfilePublic(id=id, name=name, age=age) for id, name, age in listed]


@router.get("/guard", response_model=list[ProfilePublic], responses=problem_responses(422, 500))
def guard(session: LessonSession) -> list[Profile]:
    """/bad/deferred under defer(..., raiseload=True): the slip is an error, not N silent SELECTs."""
    query = select(Profile).options(defer(Profile.bio, raiseload=True))  # reading bio raises
    listed = session.scalars(query.order_by(Profile.id)).all()
    return [profile for profile in listed if profile.bio]


def calls(size: int | None) -> list[Call]:
    params = {"rows": size or lesson.size.default}
    variants = ("bad", "bad/deferred", "fixed", "fixed/columns", "guard")
    return [Call(variant, "GET", f"/{variant}", params, memory=variant != "guard") for variant in variants]


def expected(engine: Engine) -> list[dict]:
    with Session(engine) as session:
        listed = session.execute(select(Profile.id, Profile.name, Profile.age).order_by(Profile.id))
        return [{"id": id, "name": name, "age": age} for id, name, age in listed]


async def check(probe: Probe) -> None:
    """The right profiles in 1 statement, a peak well under the bios' size: 200 rows, then 150 unseen."""
    for rows in (200, 150):
        answer = await probe.call(params={"rows": rows}, memory=True)
        right = answer.status == 200 and answer.json == expected(scratch(probe.lab, rows))
        probe.expect(f"the {rows} profiles' id, name and age", right, answer.outcome)
        probe.expect(f"1 statement at {rows} rows", answer.statements == 1, f"{answer.statements} statements")
        bios = rows * BIO_BYTES
        evidence = f"peak {answer.peak_bytes / 2**20:.2f} MiB; the bios alone are {bios / 2**20:.1f} MiB"
        probe.expect(f"bio not read at {rows} rows", answer.peak_bytes < bios / 4, evidence)
