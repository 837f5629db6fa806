"""Exporting every hero as NDJSON or CSV without holding them all: the code the export routes share.

    COLUMNS             what an export holds: HeroPublic's fields (`secret_name` is never even selected)
    encode(rows, fmt)   rows (tuples in COLUMNS order) as NDJSON lines or CSV lines, one bytes chunk
    stream_export       the fixed way: a generator that opens its own session and reads through a
                        server-side cursor (`yield_per`), one chunk per batch; memory stays flat
    copy_export         the fastest: the database writes the lines (PostgreSQL `COPY (...) TO STDOUT`,
                        SQLite `json_object` on the driver's cursor); Python only passes bytes along
    export_response     a body (bytes) or a stream (chunks) as a download with the format's media type;
                        a stream's generator is closed when the response ends, even if the client left

A streamed body is produced after the handler has returned: the generator owns its session (opened
inside it, closed when it ends or the client leaves) rather than borrow the request's. Every
way writes the same bytes: NDJSON as compact JSON (what PostgreSQL's row_to_json and SQLite's
json_object write), CSV with a header row and "\\n" line ends (what COPY ... CSV HEADER writes).
"""

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import anyio
from fastapi import Query
from sqlalchemy import Connection, Engine, Integer
from sqlmodel import Session, select
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from heroes.models import Hero

Format = Literal["ndjson", "csv"]
FormatQuery = Annotated[Format, Query(description="ndjson (one JSON object per line) or csv")]
COLUMNS = ("id", "name", "age", "team_id", "version")  # HeroPublic's fields, in a stable order
MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv"}
BATCH = 2_000  # rows per chunk: one thread hop and one send per chunk, never per row
CHUNK_BYTES = 64 * 1024

PUBLIC_ROWS = select(*(getattr(Hero, column) for column in COLUMNS)).order_by(Hero.id)
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Every hero, streamed: one JSON object per line (NDJSON), or CSV with a header row.",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


def header(fmt: Format) -> bytes:
    return f"{','.join(COLUMNS)}\n".encode() if fmt == "csv" else b""


def encode(rows: Iterable[Sequence[Any]], fmt: Format) -> bytes:
    """Rows (in COLUMNS order) as one chunk of NDJSON or CSV lines."""
    if fmt == "ndjson":
        return "".join(f"{_json(dict(zip(COLUMNS, row, strict=True)))}\n" for row in rows).encode()
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def stream_export(engine: Engine, fmt: Format) -> Iterator[bytes]:
    """The fixed export: its own session, a server-side cursor, a chunk per BATCH rows."""
    if fmt == "csv":
        yield header(fmt)
    with Session(engine) as session:  # opened here, inside the generator: it lives as long as the stream
        result = session.exec(PUBLIC_ROWS.execution_options(yield_per=BATCH))  # a server-side cursor
        for rows in result.partitions():
            yield encode(rows, fmt)


# ---- the fastest: the database writes the lines, BATCH heroes to a row -------------------------------

EXPORT_STATEMENT_TIMEOUT = "1h"  # PostgreSQL: the export's own bound (SET LOCAL), not a request's 15 s
_FUNCTIONS = {"postgresql": {"find": "strpos", "char": "chr"}, "sqlite": {"find": "instr", "char": "char"}}


def _field(name: str, dialect: str, fmt: Format) -> str:
    """One value of a line, as SQL that writes what Python's json or csv module writes for it."""
    column = Hero.__table__.c[name]
    number = isinstance(column.type, Integer)
    if fmt == "ndjson":  # PostgreSQL: to_json escapes a string as json does; || costs a third of row_to_json
        value = f"{name}::text" if number else f"to_json({name})::text"
        return f"""'"{name}":' || {f"coalesce({value}, 'null')" if column.nullable else value}"""
    if number:
        value = f"{name}::text" if dialect == "postgresql" else name  # SQLite's || writes a number itself
        return f"coalesce({value}, '')" if column.nullable else value
    find, char = _FUNCTIONS[dialect]["find"], _FUNCTIONS[dialect]["char"]
    special = " OR ".join(f"{find}({name}, {c}) > 0" for c in ("','", "'\"'", f"{char}(10)", f"{char}(13)"))
    return f"""CASE WHEN {special} THEN '"' || replace({name}, '"', '""') || '"' ELSE {name} END"""


def line_sql(dialect: str, fmt: Format) -> str:
    """A hero's NDJSON or CSV line, its newline included, as an SQL expression on the hero table."""
    newline = f"{_FUNCTIONS[dialect]['char']}(10)"
    if fmt == "ndjson" and dialect == "sqlite":  # SQLite's json_object writes the line in C
        pairs = ", ".join(f"'{column}', {column}" for column in COLUMNS)
        return f"json_object({pairs}) || {newline}"
    fields = " || ',' || ".join(_field(column, dialect, fmt) for column in COLUMNS)
    return f"'{{' || {fields} || '}}' || {newline}" if fmt == "ndjson" else f"{fields} || {newline}"


def chunks_sql(dialect: str, fmt: Format) -> str:
    """One row per BATCH ids, in id order: the lines of their heroes, concatenated, as bytes (NULL if none).

    One statement (one snapshot); memory stays one chunk on either side. SQLite < 3.44 has no ORDER BY in
    group_concat: it concatenates in the order the ordered subquery delivers.
    """
    line = line_sql(dialect, fmt)
    chunk = f"id >= lo AND id < lo + {BATCH}"
    if dialect == "postgresql":
        return (
            f"SELECT convert_to((SELECT string_agg({line}, '' ORDER BY id) FROM hero WHERE {chunk}), 'UTF8') "
            "FROM generate_series((SELECT min(id) FROM hero)::bigint, (SELECT max(id) FROM hero), "
            f"{BATCH}) AS lo ORDER BY lo"
        )
    return (
        f"WITH RECURSIVE chunk(lo) AS (SELECT min(id) FROM hero UNION ALL "
        f"SELECT lo + {BATCH} FROM chunk WHERE lo + {BATCH} <= (SELECT max(id) FROM hero)) "
        f"SELECT CAST((SELECT group_concat(line, '') FROM (SELECT {line} AS line FROM hero WHERE {chunk} "
        "ORDER BY id)) AS BLOB) FROM chunk"
    )


# binary COPY: each chunk arrives as its bytes (CSV or text COPY would quote or escape its newlines)
COPY_STATEMENTS = {
    fmt: f"COPY ({chunks_sql('postgresql', fmt)}) TO STDOUT (FORMAT binary)" for fmt in MEDIA_TYPES
}
SQLITE_STATEMENTS = {fmt: chunks_sql("sqlite", fmt) for fmt in MEDIA_TYPES}


@contextmanager
def _driver_statement(connection: Connection, cursor: Any, statement: str) -> Iterator[None]:
    """A statement run on the driver's own cursor, beneath SQLAlchemy: tell its listeners (the evidence)."""
    connection.dispatch.before_cursor_execute(connection, cursor, statement, (), None, False)
    try:
        yield
    finally:
        connection.dispatch.after_cursor_execute(connection, cursor, statement, (), None, False)


def copy_export(engine: Engine, fmt: Format) -> Iterator[bytes]:
    """The fastest export: the database writes every line, BATCH to a row, and Python passes them on."""
    if fmt == "csv":
        yield header(fmt)
    with engine.connect() as connection:  # its own connection, as stream_export owns its session
        if connection.dialect.name == "postgresql":
            # COPY is one statement: the requests' statement_timeout would cut a long download short
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = '{EXPORT_STATEMENT_TIMEOUT}'")
        cursor = connection.connection.driver_connection.cursor()
        try:
            if connection.dialect.name == "postgresql":
                yield from _copy_out(connection, cursor, COPY_STATEMENTS[fmt])
            else:
                yield from _sqlite_out(connection, cursor, SQLITE_STATEMENTS[fmt])
        finally:
            cursor.close()


def _copy_out(connection: Connection, cursor: Any, statement: str) -> Iterator[bytes]:
    """PostgreSQL: COPY (...) TO STDOUT, a chunk of lines per row, straight through."""
    with _driver_statement(connection, cursor, statement), cursor.copy(statement) as copy:
        copy.set_types(["bytea"])
        for (chunk,) in copy.rows():
            if chunk is not None:  # ids with no hero
                yield chunk


def _sqlite_out(connection: Connection, cursor: Any, statement: str) -> Iterator[bytes]:
    """SQLite: the same query on the driver's cursor, a chunk of lines per row."""
    with _driver_statement(connection, cursor, statement):
        for (chunk,) in cursor.execute(statement):
            if chunk is not None:
                yield chunk


class ClosingStreamingResponse(StreamingResponse):
    """A StreamingResponse that closes its generator however the response ends, a client hanging up too.

    Starlette abandons the iterator when the client goes away; the generator (and the session it owns)
    would then wait for the garbage collector, holding a pooled connection meanwhile.
    """

    def __init__(self, chunks: Iterator[bytes], **kwargs: Any) -> None:
        super().__init__(chunks, **kwargs)
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.chunks, "close", None)
            if close is not None:
                with anyio.CancelScope(shield=True):  # even when the request was cancelled
                    await anyio.to_thread.run_sync(close)  # GeneratorExit: its `with` blocks close now


def export_response(content: bytes | Iterator[bytes], fmt: Format, filename: str = "heroes") -> Response:
    """The body as a download: application/x-ndjson or text/csv, streamed when given chunks."""
    headers = {"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'}
    if isinstance(content, bytes):
        return Response(content, media_type=MEDIA_TYPES[fmt], headers=headers)
    return ClosingStreamingResponse(content, media_type=MEDIA_TYPES[fmt], headers=headers)
