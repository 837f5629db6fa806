"""What every lesson shares: the catalogue read from the lesson modules, scratch databases, `compare`.

A lesson module (heroes/lessons/<slug>.py) provides:

    its docstring   the lesson: a title line, then `Symptom:`, `Cause:`, `Fix:` (and optional
                    sections such as `Data:`), each a paragraph; a section starts at a line that
                    begins with one capitalised word and a colon
    router          APIRouter(prefix="/lessons/<slug>", tags=["lesson: <slug>"], route_class=LessonRoute)
                    with a `bad` and a `fixed` route (and named variants, `fixed/joinedload`)
    ENGINES         the engines it runs on, ("sqlite", "postgresql") for most
    SIZE            a `Size` when an instructor can grow the data (`?teams=1000`, `--size 1000`), else None
    calls(size)     the requests `compare` makes, bad first: a list of `Call`

`compare` serves those requests in-process through the whole app (middleware included) and reports
for each: outcome, statements, database time, wall time and, where memory is the point, peak memory.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import anyio
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from starlette.exceptions import HTTPException as StarletteHTTPException

from heroes.config import Settings
from heroes.db import create_db_engine, is_sqlite
from heroes.evidence import not_recorded, request_log
from heroes.problems import Problem, logger, problem_response

# ---- the lesson text and its routes --------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    """The knob an instructor turns: a query parameter of the routes and `--size` of the CLI."""

    param: str  # the query parameter the routes take, e.g. "teams"
    meaning: str  # "teams in the lesson's scratch database"
    maximum: int
    demo: tuple[int, ...] = ()  # sizes worth showing side by side


@dataclass(frozen=True)
class Call:
    """One request `compare` makes."""

    variant: str  # "bad", "fixed", "fixed/joinedload"
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    clients: int = 1  # > 1: that many identical requests at once (a race)
    memory: bool = False  # also measure peak memory (a second, traced run)
    summary: Callable[[int, Any], str] | None = None  # (status, body) -> one line for the outcome


SECTIONS = ("Symptom", "Cause", "Fix")


@dataclass(frozen=True)
class Lesson:
    slug: str
    title: str
    text: dict[str, str]  # Symptom, Cause, Fix, and any further sections, in docstring order
    engines: tuple[str, ...]
    size: Size | None
    module: ModuleType

    @property
    def router(self):
        return self.module.router

    def calls(self, size: int | None = None) -> list[Call]:
        return self.module.calls(size)


def lesson_from(module: ModuleType) -> Lesson:
    """Read a lesson module: its docstring is the text, its router's prefix the slug."""
    doc = (module.__doc__ or "").strip()
    title, _, body = doc.partition("\n")
    text_: dict[str, str] = {}
    for match in re.finditer(r"^([A-Z][a-z]+):\s*(.*?)(?=^[A-Z][a-z]+:|\Z)", body, re.S | re.M):
        text_[match[1]] = " ".join(match[2].split())
    missing = [name for name in SECTIONS if name not in text_]
    if missing:
        raise ValueError(f"{module.__name__}: the docstring has no {', '.join(missing)} section")
    slug = module.router.prefix.removeprefix("/lessons/")
    return Lesson(slug, title.strip().rstrip("."), text_, tuple(module.ENGINES), module.SIZE, module)


def lesson_type(slug: str) -> str:
    """The `type` of a lesson's problems: a link to the lesson in the catalogue."""
    return f"/lessons/{slug}"


def safe_message(exc: BaseException) -> str:
    """What an exception says, without the SQL or the parameters SQLAlchemy appends (secrets, maybe)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        message = f"{type(exc.orig).__name__}: {exc.orig}"
    elif isinstance(exc, ValidationError):  # building a response model: its messages, never its input
        message = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
        )
    else:
        message = str(exc)
    message = re.split(r"\[SQL:|\[parameters:|Original exception was:", message)[0]
    message = re.sub(
        r"secret_name=('[^']*'|\"[^\"]*\"|\S+)", "secret_name=<hidden>", message
    )  # a model's repr
    return " ".join(message.split()) or type(exc).__name__


class LessonRoute(APIRoute):
    """A lesson route: an exception it lets escape is answered as the lesson's documented failure.

    The answer is a 500 problem+json whose `type` links the lesson and whose `detail` is the
    exception's own message (never the SQL or its parameters), instead of the app's generic 500
    or the reference API's IntegrityError mapping, which would hide the pitfall.
    """

    def get_route_handler(self):
        handler = super().get_route_handler()
        slug = self.path.split("/")[2]

        async def lesson_handler(request: Request):
            try:
                return await handler(request)
            except (StarletteHTTPException, RequestValidationError):
                raise
            except Exception as exc:
                logger.info(
                    "lesson %s: %s raised %s (the pitfall)", slug, request.url.path, type(exc).__name__
                )
                return problem_response(
                    request,
                    500,
                    safe_message(exc),
                    type=lesson_type(slug),
                    title=f"{type(exc).__name__}: the pitfall this lesson shows",
                    extra={"exception": type(exc).__name__},
                )

        return lesson_handler


def require_postgresql(slug: str):
    """A dependency for a route that needs a real server: on SQLite, a 409 that says how to get one."""

    def dependency(request: Request) -> None:
        if is_sqlite(request.app.state.engine):
            raise Problem(
                409,
                f"The lesson {slug} needs PostgreSQL (row locks, a real server); this lab runs on SQLite. "
                "Start it with `make run-postgres` (or DATABASE_URL=postgresql+psycopg://... make run).",
                type=lesson_type(slug),
            )

    return dependency


# ---- scratch databases: a lesson's own data, away from the reference API's ----------------------------


class Lab:
    """The scratch databases of one app: a SQLite file next to the main one, or a PostgreSQL schema.

    Each is built by `alembic upgrade` (the real migrations), filled by the lesson, cached by name,
    and removed when the app stops.
    """

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.main = engine
        self.settings = settings
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()
        self._tmp: Path | None = None

    def engine(
        self, name: str, populate: Callable[[Engine], Any] = lambda e: None, *, fresh: bool = False,
        revision: str = "head",
    ) -> Engine:  # fmt: skip
        """The scratch database `name`, migrated to `revision` and populated once (again if `fresh`)."""
        if not re.fullmatch(r"[a-z0-9_]{1,50}", name):
            raise ValueError(f"scratch database names are [a-z0-9_]: {name!r}")
        with self._lock:
            engine = self._engines.get(name)
            if engine is not None and not fresh:
                return engine
            with not_recorded():  # building the data is not what the lesson's evidence is about
                if engine is not None:
                    self._drop(name, engine)
                engine = self._create(name, revision)
                populate(engine)
            self._engines[name] = engine
            return engine

    def _sqlite_path(self, name: str) -> Path:
        database = make_url(str(self.main.url)).database
        if database in (None, "", ":memory:"):
            self._tmp = self._tmp or Path(tempfile.mkdtemp(prefix="heroes-lab-"))
            return self._tmp / f"{name}.db"
        return Path(f"{database}.lab") / f"{name}.db"

    def _create(self, name: str, revision: str) -> Engine:
        from heroes import migrate

        if is_sqlite(self.main):
            path = self._sqlite_path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in path.parent.glob(f"{name}.db*"):
                stale.unlink()
            url = f"sqlite:///{path}"
            migrate.upgrade(url, revision)
            return create_db_engine(url, self.settings, pool_size=5, max_overflow=20)
        schema = f"lab_{name}"
        with self.main.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        url = self.main.url.render_as_string(hide_password=False)
        engine = create_db_engine(url, self.settings, search_path=schema, pool_size=5, max_overflow=20)
        with engine.connect() as connection:  # alembic_version lands in the scratch schema too
            migrate.upgrade_connection(connection, revision)
            connection.commit()
        return engine

    def _drop(self, name: str, engine: Engine) -> None:
        engine.dispose()
        if is_sqlite(self.main):
            for file in self._sqlite_path(name).parent.glob(f"{name}.db*"):
                file.unlink(missing_ok=True)
        else:
            with self.main.begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS lab_{name} CASCADE"))

    def close(self) -> None:
        """Drop every scratch database (the app is stopping)."""
        with self._lock:
            for name, engine in list(self._engines.items()):
                try:
                    self._drop(name, engine)
                except sa_exc.SQLAlchemyError as exc:  # the main database may be gone already
                    logger.warning("could not drop the scratch database %s: %s", name, type(exc).__name__)
            self._engines.clear()
            if is_sqlite(self.main) and self._tmp is None:
                directory = self._sqlite_path("x").parent
                if directory.is_dir() and not any(directory.iterdir()):
                    directory.rmdir()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)


def lab_of(request: Request) -> Lab:
    return request.app.state.lab


# ---- compare: bad and fixed served in-process, side by side ---------------------------------------


class VariantResult(BaseModel):
    variant: str
    request: str  # "GET /lessons/n-plus-one/bad?teams=100"
    clients: int
    outcome: str
    statuses: dict[str, int]
    statements: int
    db_ms: float
    wall_ms: float
    peak_memory_bytes: int | None = None
    body_bytes: int


class Comparison(BaseModel):
    lesson: str
    title: str
    engine: str
    size: int | None
    size_meaning: str | None
    variants: list[VariantResult]


@dataclass
class _Response:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    body_bytes: int = 0

    KEEP = 256 * 1024  # keep this much of a body for the outcome line; count the rest

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


async def serve_in_process(app, call: Call) -> _Response:
    """One request straight through the ASGI app (middleware and all), no sockets."""
    body = b"" if call.json is None else json.dumps(call.json).encode()
    query = urlencode(call.params).encode()
    headers = [
        (b"host", b"lab"),
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": call.method,
        "scheme": "http", "path": call.path, "raw_path": call.path.encode(), "root_path": "",
        "query_string": query, "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    sent = False
    response = _Response()

    async def receive() -> dict:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # nothing more to read: wait as a real client would
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            response.body_bytes += len(chunk)
            if len(response.body) < _Response.KEEP:
                response.body += chunk[: _Response.KEEP - len(response.body)]

    await app(scope, receive, send)
    return response


def _outcome(call: Call, responses: list[_Response]) -> str:
    if len(responses) > 1:
        counts = Counter(r.status for r in responses)
        return ", ".join(f"{n}× {status}" for status, n in sorted(counts.items()))
    response = responses[0]
    body = response.json()
    if call.summary is not None:
        return call.summary(response.status, body)
    line = f"{response.status} {HTTPStatus(response.status).phrase}"
    if response.status >= 400 and isinstance(body, dict) and body.get("detail"):
        line += f": {body['detail']}"
    return line


async def run_call(app, call: Call) -> VariantResult:
    """Serve `call` (its `clients` copies at once), counting every statement it causes on any engine."""
    started = time.perf_counter()
    with request_log(keep_statements=False) as log:
        responses = await asyncio.gather(*(serve_in_process(app, call) for _ in range(call.clients)))
    wall = time.perf_counter() - started
    peak = None
    if call.memory:  # a second run, traced: tracemalloc slows Python down, so it is not timed
        tracing = tracemalloc.is_tracing()
        if not tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        await asyncio.gather(*(serve_in_process(app, call) for _ in range(call.clients)))
        peak = tracemalloc.get_traced_memory()[1] - baseline
        if not tracing:
            tracemalloc.stop()
    query = f"?{urlencode(call.params)}" if call.params else ""
    return VariantResult(
        variant=call.variant,
        request=f"{call.method} {call.path}{query}",
        clients=call.clients,
        outcome=_outcome(call, responses),
        statuses=dict(Counter(str(r.status) for r in responses)),
        statements=log.count,
        db_ms=round(log.db_seconds * 1000, 2),
        wall_ms=round(wall * 1000, 2),
        peak_memory_bytes=peak,
        body_bytes=sum(r.body_bytes for r in responses),
    )


async def compare(app, lesson: Lesson, size: int | None = None) -> Comparison:
    """Run the lesson's calls one after another, bad first, and report them side by side."""
    if not app.state.settings.evidence:
        raise Problem(409, "compare counts statements with the evidence recorder: set HEROES_EVIDENCE=true.")
    engine = "sqlite" if is_sqlite(app.state.engine) else "postgresql"
    if engine not in lesson.engines:
        raise Problem(
            409,
            f"The lesson {lesson.slug} runs on {', '.join(lesson.engines)}; this lab runs on {engine}. "
            "Start the PostgreSQL mode with `make run-postgres`.",
            type=lesson_type(lesson.slug),
        )
    if size is not None and lesson.size is None:
        raise Problem(422, f"The lesson {lesson.slug} has no size to change.", field="size", location="query")
    if size is not None and not 1 <= size <= lesson.size.maximum:
        raise Problem(
            422,
            f"size must be 1 to {lesson.size.maximum} ({lesson.size.meaning}).",
            field="size",
            location="query",
        )
    prepare = getattr(lesson.module, "prepare", None)
    if prepare is not None:  # build the scratch data first, so no variant's timing includes it
        await anyio.to_thread.run_sync(prepare, app.state.lab, size)
    results = [await run_call(app, call) for call in lesson.calls(size)]
    return Comparison(
        lesson=lesson.slug,
        title=lesson.title,
        engine=engine,
        size=size,
        size_meaning=lesson.size.meaning if lesson.size else None,
        variants=results,
    )


def examples(lesson: Lesson, base_url: str) -> Iterator[tuple[APIRoute, str, str, str]]:
    """(route, curl, HTTPie) for every route of the lesson, with the body `compare` sends as the example."""
    calls = lesson.calls(None)
    base = base_url.rstrip("/")
    host = re.sub(r"^https?://(127\.0\.0\.1|localhost)", "", base)  # HTTPie: `:8000` means localhost
    for route in lesson.router.routes:
        for method in sorted(route.methods):
            call = next((c for c in calls if c.method == method and route.path_regex.match(c.path)), None)
            path = call.path if call is not None else route.path  # `/bad/teams/1`, not `{team_id}`
            curl = f"curl -i {'' if method == 'GET' else f'-X {method} '}{base}{path}"
            httpie = f"http {'' if method == 'GET' else f'{method} '}{host}{path}"
            if call is not None and call.json is not None:
                curl += f" -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(call.json))}"
                for key, value in call.json.items():  # key=value is a JSON string, key:=value raw JSON
                    item = f"{key}={value}" if isinstance(value, str) else f"{key}:={json.dumps(value)}"
                    httpie += f" {shlex.quote(item)}"
            yield route, method, curl, httpie
