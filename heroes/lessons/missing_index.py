"""Missing index: the 20 newest rows of 100,000, found by reading and sorting all of them

Symptom: GET /lessons/missing-index/bad answers the 20 newest tickets of a kind, but its plan (in the
response) reads the whole table and sorts it: PostgreSQL's EXPLAIN (FORMAT JSON) says Limit, Sort,
Seq Scan; SQLite's EXPLAIN QUERY PLAN "SCAN ticket", "USE TEMP B-TREE FOR ORDER BY". Its db ms
grows with the table, not with the 20 rows it returns.
Cause: WHERE kind = ? ORDER BY created_at DESC LIMIT 20 has no index to read in that order, so the
database reads every row of the table, keeps those of the kind and sorts them to find the first 20.
Fix: an index that matches the filter, then the order: CREATE INDEX ix_ticket_kind_created_at ON
ticket (kind, created_at), in a revision (op.create_index; CONCURRENTLY on a live PostgreSQL, see
concurrent-index). /fixed, the same query on the same rows with it: Limit over an Index Scan Backward;
SQLite "SEARCH ticket USING INDEX ix_ticket_kind_created_at (kind=?)"; no sort, 20 rows read.
Myth: "EXPLAIN ANALYZE only explains": it executes the statement to time it, so EXPLAIN ANALYZE UPDATE
changes rows, kept unless the transaction rolls back (POST .../myth/explain-analyze: 10 rows changed,
then rolled back). SQLite has no EXPLAIN ANALYZE, and its EXPLAIN QUERY PLAN never executes (0 there).
Data: ticket(id, kind, title, created_at), ?rows=N (default 100,000, up to 200,000), in two scratch
databases of the lesson's own, one without the index and one with it; never the reference tables.
"""

from time import perf_counter
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, insert, select, text, update
from sqlalchemy.orm import Session

from heroes.db import is_sqlite
from heroes.lab import Call, Lab, Lesson, Size, lab_of, session_on
from heroes.problems import problem_responses

lesson = Lesson(
    __name__,
    __doc__,
    size=Size("rows", "tickets in each of the lesson's scratch tables", 200_000, (10_000, 100_000), 100_000),
)
router = lesson.router()
NO_EXERCISE = "The fix is an index in the schema (a revision), not code: bad and fixed run the same query."
KINDS = ("bug", "feature", "question")
# the lesson's own table, on its own metadata: the reference schema and its revisions never see it
ticket = Table(
    "ticket", MetaData(), Column("id", Integer, primary_key=True), Column("kind", String(20)),
    Column("title", String(100)), Column("created_at", Integer),  # seconds: shuffled, not in time order
)  # fmt: skip
THE_INDEX = (
    "CREATE INDEX ix_ticket_kind_created_at ON ticket (kind, created_at)"  # the fix: filter, then order
)


class Ticket(BaseModel):
    id: int
    kind: str
    title: str
    created_at: int


class Newest(BaseModel):
    tickets: list[Ticket]
    plan: list[str]  # PostgreSQL: the plan's nodes, outermost first; SQLite: EXPLAIN QUERY PLAN's lines
    db_ms: float  # the query itself, its rows fetched


def populate(engine: Engine, rows: int, indexed: bool) -> None:
    """The ticket table (plain DDL, in the scratch database only), `rows` tickets, the index if asked."""
    with engine.begin() as connection:
        ticket.create(connection)
        for start in range(0, rows, 5000):
            values = [
                dict(id=i + 1, kind=KINDS[i % 3], title=f"Ticket {i + 1}", created_at=(i * 7919) % rows)
                for i in range(start, min(start + 5000, rows))
            ]
            connection.execute(insert(ticket), values)
        if indexed:
            connection.execute(text(THE_INDEX))
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))  # the planner's statistics, as autovacuum would leave them


def scratch(lab: Lab, rows: int, indexed: bool) -> Engine:
    return lesson.scratch(lab, f"{rows}{'_indexed' if indexed else ''}", lambda e: populate(e, rows, indexed))


def prepare(lab: Lab, size: int | None) -> None:
    for indexed in (False, True):
        scratch(lab, size or lesson.size.default, indexed)


Rows = Annotated[int, Query(ge=1, le=lesson.size.maximum, description=lesson.size.meaning)]
Kind = Annotated[Literal["bug", "feature", "question"], Query(description="The tickets' kind.")]


def tickets(indexed: bool):
    def engine(request: Request, rows: Rows = lesson.size.default) -> Engine:
        return scratch(lab_of(request), rows, indexed)

    return session_on(Annotated[Engine, Depends(engine)])


Unindexed, Indexed = tickets(indexed=False), tickets(indexed=True)


def newest(kind: str):
    return select(ticket).where(ticket.c.kind == kind).order_by(ticket.c.created_at.desc()).limit(20)


def plan(session: Session, query) -> list[str]:
    """The plan the database chose for `query`, without running it."""
    sql = str(query.compile(session.bind, compile_kwargs={"literal_binds": True}))  # kind: one of KINDS
    if is_sqlite(session.bind):
        return [row.detail for row in session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
    nodes, todo = [], [session.execute(text(f"EXPLAIN (FORMAT JSON) {sql}")).scalar()[0]["Plan"]]
    while todo:
        node = todo.pop(0)
        backward = " Backward" if node.get("Scan Direction") == "Backward" else ""
        using = f" using {node['Index Name']}" if "Index Name" in node else ""
        table = f" on {node['Relation Name']}" if "Relation Name" in node else ""
        nodes.append(f"{node['Node Type']}{backward}{using}{table}")
        todo[:0] = node.get("Plans", [])
    return nodes


def answer(session: Session, query) -> Newest:
    steps = plan(session, query)
    started = perf_counter()
    rows = session.execute(query).mappings().all()
    return Newest(tickets=rows, plan=steps, db_ms=round((perf_counter() - started) * 1000, 2))


RESPONSES = problem_responses(422)


@router.get("/bad", response_model=Newest, responses=RESPONSES)
def bad(session: Unindexed, kind: Kind = "bug") -> Newest:
    """The 20 newest tickets of a kind, on the table without an index: every row read, then sorted."""
    return answer(session, newest(kind))  # the same query as /fixed, but nothing to read it in order from


@router.get("/fixed", response_model=Newest, responses=RESPONSES)
def fixed(session: Indexed, kind: Kind = "bug") -> Newest:
    """The same query on the same rows with an index on (kind, created_at): 20 rows read, no sort."""
    return answer(session, newest(kind))  # ix_ticket_kind_created_at: read backwards, stop at 20


class ExplainAnalyze(BaseModel):
    statement: str
    changed_inside: int  # rows the EXPLAIN changed, seen inside its transaction
    changed_after_rollback: int
    plan: list[str]


@router.post("/myth/explain-analyze", response_model=ExplainAnalyze, responses=RESPONSES)
def myth_explain_analyze(session: Unindexed) -> ExplainAnalyze:
    """EXPLAIN ANALYZE UPDATE in a transaction rolled back: it did change the rows (PostgreSQL)."""
    query = update(ticket).where(ticket.c.id <= 10).values(title="changed by EXPLAIN")
    sql = str(query.compile(session.bind, compile_kwargs={"literal_binds": True}))
    changed = select(func.count()).where(ticket.c.title == "changed by EXPLAIN")
    explain = "EXPLAIN QUERY PLAN" if is_sqlite(session.bind) else "EXPLAIN ANALYZE"
    lines = [str(row[-1]) for row in session.execute(text(f"{explain} {sql}"))]  # ANALYZE runs the UPDATE
    inside = session.scalar(changed)
    session.rollback()
    report = {"changed_inside": inside, "changed_after_rollback": session.scalar(changed), "plan": lines}
    return ExplainAnalyze(statement=f"{explain} {sql}", **report)


def the_plan(status: int, body) -> str:
    """compare's outcome line: the plan and the query's own time, or what EXPLAIN ANALYZE changed."""
    if status != 200:
        return f"{status}: {body.get('detail')}"
    if "changed_inside" in body:
        return f"{body['statement'].split(' UPDATE')[0]}: {body['changed_inside']} rows changed, rolled back"
    return f"{' > '.join(body['plan'])} ({body['db_ms']} ms)"


def calls(size: int | None) -> list[Call]:
    params = {"rows": size or lesson.size.default}
    return [
        Call("bad", "GET", "/bad", params, summary=the_plan),
        Call("fixed", "GET", "/fixed", params, summary=the_plan),
        Call("myth/explain-analyze", "POST", "/myth/explain-analyze", params, summary=the_plan),
    ]
