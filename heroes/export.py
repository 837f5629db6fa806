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
from sqlalchemy import Connection, Engine
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
_COLUMN_LIST = ", ".join(COLUMNS)
_SQL = f"SELECT {_COLUMN_LIST} FROM hero ORDER BY id"
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


# ---- the fastest: the database writes the lines ---------------------------------------------------

_COPY = {
    "csv": f"COPY ({_SQL}) TO STDOUT WITH (FORMAT csv, HEADER)",
    # row_to_json escapes every control character, so with these never-used quote and delimiter bytes
    # CSV mode passes each JSON line through untouched (text mode would double every backslash)
    "ndjson": f"COPY (SELECT row_to_json(h) FROM ({_SQL}) AS h) TO STDOUT "
    "WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')",
}
_JSON_PAIRS = ", ".join(f"'{column}', {column}" for column in COLUMNS)
_SQLITE_JSON = f"SELECT json_object({_JSON_PAIRS}) FROM hero ORDER BY id"


@contextmanager
def _driver_statement(connection: Connection, cursor: Any, statement: str) -> Iterator[None]:
    """A statement run on the driver's own cursor, beneath SQLAlchemy: tell its listeners (the evidence)."""
    connection.dispatch.before_cursor_execute(connection, cursor, statement, (), None, False)
    try:
        yield
    finally:
        connection.dispatch.after_cursor_execute(connection, cursor, statement, (), None, False)


def copy_export(engine: Engine, fmt: Format) -> Iterator[bytes]:
    """The fastest export: PostgreSQL COPY ... TO STDOUT passed through; SQLite's own cursor and JSON."""
    with engine.connect() as connection:  # its own connection, as stream_export owns its session
        cursor = connection.connection.driver_connection.cursor()
        try:
            if connection.dialect.name == "postgresql":
                yield from _copy_out(connection, cursor, _COPY[fmt])
            else:
                yield from _sqlite_out(connection, cursor, fmt)
        finally:
            cursor.close()


def _copy_out(connection: Connection, cursor: Any, statement: str) -> Iterator[bytes]:
    """PostgreSQL sends the finished lines; libpq hands them over one row at a time: gather 64 KiB."""
    buffer = bytearray()
    with _driver_statement(connection, cursor, statement), cursor.copy(statement) as copy:
        for block in copy:
            buffer += block
            if len(buffer) >= CHUNK_BYTES:
                yield bytes(buffer)
                buffer.clear()
    yield bytes(buffer)


def _sqlite_out(connection: Connection, cursor: Any, fmt: Format) -> Iterator[bytes]:
    """SQLite: the driver's cursor, no Row objects; json_object writes each NDJSON line in C."""
    statement = _SQLITE_JSON if fmt == "ndjson" else _SQL
    if fmt == "csv":
        yield header(fmt)
    with _driver_statement(connection, cursor, statement):
        cursor.execute(statement)
        while rows := cursor.fetchmany(BATCH):
            if fmt == "ndjson":
                yield "".join(f"{line}\n" for (line,) in rows).encode()
            else:
                yield encode(rows, fmt)


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
