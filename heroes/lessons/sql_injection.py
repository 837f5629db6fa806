"""SQL injection: a name, a sort key or a search term pasted into the SQL

Symptom: GET /lessons/sql-injection/bad?name=Loki finds Loki, but name=x' OR '1'='1 answers every
villain, and a name with a quote (Mad O'Hara) is a 500. /bad/sort?sort_by=(a subquery) runs the
caller's SQL; /bad/search?q=% answers every villain, q=_ too, where one with a literal % or _ was meant.
Cause: text(f"... WHERE name = '{name}'") makes the input part of the statement: the quote ends the
string and the rest is SQL. order_by(text(sort_by)) (or getattr(Villain, sort_by)) does the same for
a column name. LIKE gives % and _ a meaning of their own even in a bound parameter.
Fix: bound parameters (select(...).where(villain.c.name == name): the value travels apart from the
SQL, whatever it holds); an allowlist of sort keys, anything else a 422 before the database sees it
(/fixed/sort); contains(q, autoescape=True), which escapes % and _ so they match themselves
(/fixed/search).
Data: a scratch table of the lesson's own, villain(id, name, city), ten public rows. The bad routes
really are injectable, so they run sandboxed: on PostgreSQL as a role that may only read that table
(its schema's other tables and the reference API's: permission denied) with a statement_timeout; on
SQLite on a read-only file that holds only that table (anything else: no such table). A UNION SELECT
of hero's private column or a DROP TABLE fails there: no private value, no reference row is reached.
"""

import secrets
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, create_engine, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import Column, MetaData, Table
from sqlalchemy.types import Integer, String

from heroes.db import create_db_engine, is_sqlite
from heroes.evidence import instrument
from heroes.lab import Call, Lab, Lesson, lab_of, scratch_engine, session_on
from heroes.lab.check import Probe
from heroes.lab.scratch import _alive
from heroes.models import Text
from heroes.problems import problem_responses

lesson = Lesson(__name__, __doc__)
router = lesson.router()
villain = Table(  # the lesson's own table, on its own metadata: never in the reference schema
    "villain", MetaData(), Column("id", Integer, primary_key=True), Column("name", String(100)),
    Column("city", String(100)),
)  # fmt: skip
VILLAINS = ["Doctor Doom", "Red Skull", "Loki", "Magneto", "Mystique", "Ultron", "Thanos",
            "100% Evil", "Mr_Sinister", "Mad O'Hara"]  # fmt: skip
_sandboxes: dict[Engine, Engine] = {}  # scratch engine -> its sandbox


class Villain(BaseModel):
    id: int
    name: str
    city: str


def reader(connection: Connection) -> tuple[str, str]:
    """PostgreSQL: a role that may read the villain table of this scratch schema and nothing else."""
    schema, password = connection.scalar(text("SELECT current_schema()")), secrets.token_hex(16)
    role = f"{schema}_reader"
    exists = connection.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    connection.execute(text(f"{'ALTER' if exists else 'CREATE'} ROLE {role} LOGIN PASSWORD '{password}'"))
    connection.execute(text(f"ALTER ROLE {role} SET statement_timeout = '2s'"))
    connection.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {role}"))
    connection.execute(text(f"GRANT SELECT ON villain TO {role}"))
    for (stale,) in connection.execute(text(r"SELECT rolname FROM pg_roles WHERE rolname ~ '^lab_p\d+_'")):
        if stale.endswith("_sql_injection_reader") and not _alive(int(stale[5:].split("_")[0])):
            with suppress(DBAPIError), connection.begin_nested():  # still granted in another database
                connection.execute(text(f"DROP ROLE {stale}"))
    url = connection.engine.url.set(username=role, password=password).render_as_string(hide_password=False)
    return url, schema


def populate(engine: Engine) -> None:
    """The villain table (plain DDL), its rows, and the sandbox the bad routes read it through."""
    rows = [{"id": i, "name": name, "city": f"City {i}"} for i, name in enumerate(VILLAINS, 1)]
    with engine.begin() as connection:
        villain.create(connection)
        connection.execute(insert(villain), rows)
        url, schema = (None, None) if is_sqlite(engine) else reader(connection)
    if is_sqlite(engine):  # its own file, holding only the villain table, opened read-only
        path = Path(f"{engine.url.database}-sandbox")  # beside the scratch file: dropped with it
        path.unlink(missing_ok=True)
        with create_engine(f"sqlite:///{path}").begin() as connection:
            villain.create(connection)
            connection.execute(insert(villain), rows)
        sandbox = instrument(create_engine(f"sqlite:///file:{path}?mode=ro&uri=true"))
    else:
        sandbox = create_db_engine(url, search_path=schema, pool_size=1, max_overflow=2, pool_timeout=5)
    if (old := _sandboxes.pop(engine, None)) is not None:
        old.dispose()
    _sandboxes[engine] = sandbox


def scratch(lab: Lab, fresh: bool = False) -> Engine:
    return lesson.scratch(lab, populate=populate, fresh=fresh)


def sandbox(request: Request) -> Engine:
    return _sandboxes[scratch(lab_of(request))]


Sandboxed = session_on(Annotated[Engine, Depends(sandbox)])  # read-only, this one table
LessonSession = session_on(scratch_engine(scratch))
Name = Annotated[Text, Query(max_length=200, description="A villain's name.")]
Search = Annotated[Text, Query(max_length=200, description="Part of a name.")]
FAILS = problem_responses(422, 500)  # an injected statement that fails is the documented symptom


@router.get("/bad", response_model=list[Villain], responses=FAILS)
def bad(session: Sandboxed, name: Name = "Loki") -> list[Villain]:
    """The villain of that name, the name pasted into the SQL: x' OR '1'='1 answers them all."""
    query = text(f"SELECT id, name, city FROM villain WHERE name = '{name}' ORDER BY id")  # the injection
    return session.execute(query).mappings().all()


@router.get("/fixed", response_model=list[Villain], responses=problem_responses(422))
def fixed(session: LessonSession, name: Name = "Loki") -> list[Villain]:
    """The villain of that name, sent as a bound parameter: whatever it holds, it is only a name."""
    query = select(villain).where(villain.c.name == name).order_by(villain.c.id)  # a bound parameter
    return session.execute(query).mappings().all()


@router.get("/bad/sort", response_model=list[Villain], responses=FAILS)
def bad_sort(session: Sandboxed, sort_by: str = "name") -> list[Villain]:
    """Every villain, sorted by whatever SQL the caller sends as sort_by."""
    return session.execute(select(villain).order_by(text(sort_by))).mappings().all()  # the caller's SQL


@router.get("/fixed/sort", response_model=list[Villain], responses=problem_responses(422))
def fixed_sort(session: LessonSession, sort_by: Literal["id", "name", "city"] = "name") -> list[Villain]:
    """Every villain, sorted by one of three known columns; anything else is a 422."""
    return session.execute(select(villain).order_by(villain.c[sort_by])).mappings().all()  # the allowlist


@router.get("/bad/search", response_model=list[Villain], responses=problem_responses(422))
def bad_search(session: LessonSession, q: Search = "%") -> list[Villain]:
    """Villains whose name contains q, bound but unescaped: % and _ are LIKE wildcards."""
    contains = villain.c.name.contains(q)  # bound, but % and _ are LIKE's wildcards
    query = select(villain).where(contains).order_by(villain.c.id)
    return session.execute(query).mappings().all()


@router.get("/fixed/search", response_model=list[Villain], responses=problem_responses(422))
def fixed_search(session: LessonSession, q: Search = "%") -> list[Villain]:
    """Villains whose name contains q, % and _ escaped: they match themselves."""
    contains = villain.c.name.contains(q, autoescape=True)  # % and _ escaped: they match themselves
    query = select(villain).where(contains).order_by(villain.c.id)
    return session.execute(query).mappings().all()


def found(status: int, body) -> str:
    if status != 200:
        return f"{status}: {body.get('detail')}"
    names = f": {', '.join(v['name'] for v in body)}" if 0 < len(body) < 3 else ""
    return f"{len(body)} of {len(VILLAINS)} villains{names}"


HOSTILE = "x' OR '1'='1"
UNION = "x' UNION SELECT id, secret_name, name FROM hero --"


def calls(size: int | None) -> list[Call]:
    return [
        Call("bad", "GET", "/bad", {"name": HOSTILE}, summary=found),
        Call("fixed", "GET", "/fixed", {"name": HOSTILE}, summary=found),
        Call("bad/union", "GET", "/bad", {"name": UNION}, summary=found),
        Call("bad/search", "GET", "/bad/search", {"q": "%"}, summary=found),
        Call("fixed/search", "GET", "/fixed/search", {"q": "%"}, summary=found),
    ]


async def check(probe: Probe) -> None:
    """A name finds its villain; x' OR '1'='1 and friends find none; a quote in a name is just a quote."""
    scratch(probe.lab)
    for name, expected in (("Loki", ["Loki"]), (HOSTILE, []), ("Mad O'Hara", ["Mad O'Hara"]),
                           ("' OR 'a'<'b", []), ("Thanos' --", [])):  # fmt: skip
        answer = await probe.call(params={"name": name})
        names = [v["name"] for v in answer.json] if answer.status == 200 else None
        probe.expect(f"name={name}: {expected}", names == expected, f"{answer.outcome}: {names}")
