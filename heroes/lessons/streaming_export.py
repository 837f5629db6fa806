"""Streaming export: every hero as NDJSON or CSV, without holding the table in memory

Symptom: GET /lessons/streaming-export/bad?rows=100000 answers the right bytes, but its memory grows
with the table (compare's peak memory: about ten times more for ten times the rows) and nothing is
sent until the whole document is built. /bad/offset streams, but its database time grows with the
square of the table: 1 + N/1000 + 1 statements, page k walking past k x 1000 rows again.
Cause: .all() turns every row into an ORM object held by the session (secret_name and all), then the
handler builds one document from them. OFFSET is not a position: each page re-reads all it skips.
Fix: stream, from a generator that opens its own session. It runs after the handler has returned, so
it must not borrow the request's (a yield dependency with Depends(scope="function") is closed by
then), and it must be closed when a client hangs up (Starlette leaves the abandoned iterator, and its
pooled connection, to the garbage collector; heroes.export closes it). It reads the public columns
through a server-side cursor (execution_options(yield_per=2000): stream_results, a named cursor on
PostgreSQL) and yields each batch as lines: memory stays flat whatever N is (/fixed). Faster,
/fixed/copy: the database writes the lines, 2,000 heroes to a row, Python only passes bytes on
(PostgreSQL COPY (SELECT ...) TO STDOUT, SQLite one query). GET /heroes/export is built that way, as a
reference should be the best: over HTTP 6 to 10 times /fixed's rows/s (heroes bench export), the same
bytes, memory as flat; /fixed stays the lesson, the ORM's way for any query. COPY is one statement: the
export sets its own timeout (SET LOCAL statement_timeout, in its transaction), or 15 s would cut it short.
Evidence: X-Query-Count leaves with the first byte, so a streamed route counts only the statements
before it (0 for /fixed, 1 for /bad); compare also counts the generator's (/fixed: 1, its FETCHes are
not statements nor in db ms; /fixed/copy: 1, 2 with PostgreSQL's SET LOCAL, db ms its whole stream).
Peak memory: tracemalloc's (Python only); heroes bench export measures resident memory too.
Data: the demo data by default; ?rows=N (up to 1,000,000) builds a scratch database of N heroes.
Bounded on purpose (422): /bad refuses more than 200,000 (it would hold 1.7 GB at a million) and
/bad/offset more than 100,000 (its pages would skip 500 million rows at a million).
"""

from collections.abc import Iterator
from hashlib import sha256
from itertools import count

from fastapi import Depends, Request, Response
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from heroes import export
from heroes.export import Format, export_response
from heroes.lab import Call, Lab, Lesson, Size, demo_or_scratch, session_on
from heroes.lab.check import Probe
from heroes.models import Hero
from heroes.problems import Problem, problem_responses
from heroes.seed import seed_bulk

lesson = Lesson(
    __name__,
    __doc__,
    size=Size("rows", "heroes in the lesson's scratch database", 1_000_000, demo=(10_000, 100_000)),
)
router = lesson.router()
# not its symptom: on PostgreSQL, a ?rows= so large that building or reading it outlasts the timeout
PITFALLS = {"*": ("OperationalError", "QueryCanceled: canceling statement due to statement timeout")}
HEROES_PER_TEAM = 100
PAGE = 1_000
OFFSET_MAX = 100_000
BAD_MAX = 200_000


def seed_rows(engine: Engine, rows: int) -> None:
    """Exactly `rows` heroes: teams of 100, and one smaller team for the rest."""
    if rows // HEROES_PER_TEAM:
        seed_bulk(engine, rows // HEROES_PER_TEAM, HEROES_PER_TEAM)
    if rows % HEROES_PER_TEAM:
        seed_bulk(engine, 1, rows % HEROES_PER_TEAM)


def scratch(lab: Lab, rows: int) -> Engine:
    return lesson.scratch(lab, rows, lambda engine: seed_rows(engine, rows))


def prepare(lab: Lab, size: int | None) -> None:
    if size:
        scratch(lab, size)


LessonEngine = demo_or_scratch(lesson, scratch)  # the demo data, or ?rows=N


LessonSession = session_on(LessonEngine)


def too_many(variant: str, heroes: int, maximum: int, why: str) -> Problem:
    detail = f"/{variant} refuses more than {maximum:,} heroes (this one has {heroes:,}): {why}. Try /fixed."
    return Problem(422, detail, field="rows", location="query")


def bounded(request: Request) -> None:
    """/bad holds every row at once: above BAD_MAX heroes it refuses before it starts."""
    rows = request.query_params.get("rows", "")  # LessonEngine answers 422 for what is not a number
    if rows.isdigit() and (rows := int(rows)) > BAD_MAX:
        raise too_many("bad", rows, BAD_MAX, f"it would hold {rows * 1700 / 2**30:,.1f} GiB of objects")


ROUTE = {"response_class": Response, "responses": {**export.RESPONSES, **problem_responses(422, 500)}}


@router.get("/bad", dependencies=[Depends(bounded)], **ROUTE)
def bad(session: LessonSession, format: export.FormatQuery = "ndjson") -> Response:
    """Every hero loaded at once, then the whole document built in memory: memory grows with the table."""
    heroes = session.exec(select(Hero).order_by(Hero.id)).all()  # every row, as ORM objects, all at once
    rows = [tuple(getattr(hero, column) for column in export.COLUMNS) for hero in heroes]
    body = export.header(format) + export.encode(rows, format)  # the whole document before its first byte
    return export_response(body, format)


def offset_pages(engine: Engine, format: Format) -> Iterator[bytes]:
    if format == "csv":
        yield export.header(format)
    with Session(engine) as session:
        for offset in count(0, PAGE):
            page = export.PUBLIC_ROWS.offset(offset).limit(PAGE)  # the database walks past `offset` rows
            rows = session.exec(page).all()
            yield export.encode(rows, format)
            if len(rows) < PAGE:
                return


@router.get("/bad/offset", **ROUTE)
def bad_offset(engine: LessonEngine, format: export.FormatQuery = "ndjson") -> Response:
    """Streamed in OFFSET pages of 1000: flat memory, but time grows with the square of the table."""
    with Session(engine) as session:
        heroes = session.scalar(select(func.count()).select_from(Hero))
    if heroes > OFFSET_MAX:
        skipped = heroes**2 // PAGE // 2
        raise too_many("bad/offset", heroes, OFFSET_MAX, f"its pages would skip {skipped:,} rows")
    return export_response(offset_pages(engine, format), format)


@router.get("/fixed", **ROUTE)
def fixed(engine: LessonEngine, format: export.FormatQuery = "ndjson") -> Response:
    """Streamed through a server-side cursor by a generator that owns its session: memory stays flat."""
    chunks = export.stream_export(engine, format)  # the generator opens its own session, yields by batch
    return export_response(chunks, format)


@router.get("/fixed/copy", **ROUTE)
def fixed_copy(engine: LessonEngine, format: export.FormatQuery = "ndjson") -> Response:
    """The database writes the lines: PostgreSQL COPY ... TO STDOUT passed through; SQLite's json_object."""
    chunks = export.copy_export(engine, format)  # COPY's bytes from the server, straight through
    return export_response(chunks, format)


def calls(size: int | None) -> list[Call]:
    params = {"rows": size} if size else {}
    variants = ["bad", "bad/offset", "fixed", "fixed/copy"]
    if size and size > OFFSET_MAX:
        variants.remove("bad/offset")  # it would refuse (422)
    return [
        Call(variant, "GET", f"/{variant}", params, memory=not (variant == "bad" and (size or 0) > BAD_MAX))
        for variant in variants
    ]


async def check(probe: Probe) -> None:
    """Every hero once, byte for byte, with memory that does not grow: 2,000 and 20,000 rows, 3,000 as CSV."""
    peaks = {}
    for rows, format in ((2_000, "ndjson"), (20_000, "ndjson"), (3_000, "csv")):  # the CSV run: unseen
        answer = await probe.call(params={"rows": rows, "format": format}, memory=True)
        with scratch(probe.lab, rows).connect() as connection:
            right = export.header(format) + export.encode(connection.execute(export.PUBLIC_ROWS), format)
        same = answer.status == 200 and answer.sha256 == sha256(right).hexdigest()
        probe.expect(
            f"{rows:,} heroes as {format}, byte for byte",
            same,
            f"{answer.outcome}, {answer.body_bytes:,} bytes",
        )
        peaks[rows] = answer.peak_bytes / 2**20
    flat = peaks[20_000] < 4 and peaks[20_000] - peaks[2_000] < 1
    evidence = f"peak {peaks[2_000]:.1f} MiB at 2,000 rows, {peaks[20_000]:.1f} at 20,000 (fixed: < 4, +< 1)"
    probe.expect("memory stays flat", flat, evidence)
