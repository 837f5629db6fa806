"""create_app(): the routers, the problem+json error handlers and the evidence middleware."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import exc as orm_exc
from sqlalchemy.orm.exc import DetachedInstanceError
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from heroes import __version__
from heroes.api import health, heroes, lessons, teams
from heroes.config import Settings, get_settings
from heroes.db import create_db_engine
from heroes.evidence import EvidenceMiddleware
from heroes.lab import Lab, Lesson
from heroes.lab.catalogue import document_examples
from heroes.lab.pages import install as install_pages
from heroes.lab.routes import POSTGRES_HINT, needs_postgresql
from heroes.lab.workshop import WorkshopMiddleware
from heroes.lessons import BY_SLUG, LESSONS
from heroes.migrate import head_revision
from heroes.problems import (
    Problem,
    UnhandledErrorMiddleware,
    document_problems,
    field_error,
    generic_example,
    install_problem_handlers,
    problem_example,
    problems_as_problem_json,
)

DESCRIPTION = """
A hands-on lab of the database pitfalls people hit with SQLModel and SQLAlchemy behind FastAPI.

**Start here.** `GET /teams` and `GET /heroes` are the reference API, done right. Every response
carries the evidence of what it cost the database:

* `X-Query-Count`: how many SQL statements the request executed;
* `Server-Timing`: `db;dur=<ms>;desc="N queries", app;dur=<ms>` (your browser's dev tools show it too).

Try `GET /teams/1`: the team and all its heroes in exactly 2 statements. Errors are always
`application/problem+json` with a human `detail` and, for bad input, the field at fault.
`secret_name` is accepted on create and update and never returned.

**The lessons.** Each lesson is a tag below, `lesson: <slug>` (`lesson: n-plus-one`, ...): its text,
then its `bad` and `fixed` routes, whose Try-it-out sends the request that shows the symptom.
`GET /lessons` lists them with ready curl and HTTPie commands; `GET /lessons/{slug}/compare` runs bad
and fixed side by side (outcome, statements, times); the lesson pages, [/lab](/lab) and
`/lab/{slug}`, show each lesson with its code and its evidence.

These docs (and [/redoc](/redoc)) work offline: the lab serves their scripts and styles itself.
"""

TAGS = [
    {"name": "teams", "description": "Teams: unique names, heroes eager-loaded, no orphans on delete."},
    {"name": "heroes", "description": "Heroes: filters and paging, ETag / If-Match optimistic locking."},
    {"name": "health", "description": "Liveness, readiness and connection-pool statistics."},
    {
        "name": "lessons",
        "description": "The catalogue of lessons, and `compare`: bad and fixed side by side.",
    },
]


def lesson_tag(lesson: Lesson) -> dict[str, str]:
    """A lesson's tag in /docs carries its text."""
    text = "\n\n".join(f"**{name}.** {paragraph}" for name, paragraph in lesson.text.items())
    engines = ", ".join(lesson.engines)
    return {"name": lesson.tag, "description": f"**{lesson.title}** ({engines})\n\n{text}"}


TAKEN = "A team named 'Preventers' already exists."
# What the reference API answers where the generic examples would say less (heroes/api/*.py)
ERRORS = {
    (409, "POST /teams"): (TAKEN, "name"),
    (409, "PATCH /teams/{team_id}"): (TAKEN, "name"),
    (409, "DELETE /teams/{team_id}"): ("Team 1 still has 3 hero(es): move or delete them first.", None),
    (422, "POST /heroes"): ("No team with id 99.", "team_id"),
    (412, "PATCH /heroes/{hero_id}"): ("Hero 1 is at version 2 now: read it again, then retry.", None),
}
# What a lesson route's documented 500 (or 503) says: the exception that escaped, and its message as
# `detail` gives it (tests/test_docs.py holds each 500 against the route's real answer, an object's
# address aside); a route that is not here has its lesson's entry
FOREIGN_KEY = 'ForeignKeyViolation: {} violates foreign key constraint "fk_hero_team_id_team"'
PITFALLS = {
    "GET /lessons/n-plus-one/guard": (
        "ValidationError",
        "heroes: Error extracting attribute: InvalidRequestError: 'Team.heroes' is not available due to "
        "lazy='raise'",
    ),
    "GET /lessons/detached-instance/bad": (
        "DetachedInstanceError",
        str(
            DetachedInstanceError(
                "Parent instance <Hero at 0x7f3e5c1d2a90> is not bound to a Session; lazy load operation of "
                "attribute 'team' cannot proceed"
            )
        ),
    ),
    "PATCH /lessons/detached-instance/bad/expired": (
        "DetachedInstanceError",
        str(
            DetachedInstanceError(
                "Instance <Hero at 0x7f3e5c1d2a90> is not bound to a Session; attribute refresh operation "
                "cannot proceed"
            )
        ),
    ),
    "unique-violation": ("IntegrityError", "IntegrityError: UNIQUE constraint failed: team.name"),
    "POST /lessons/foreign-key/bad": (
        "IntegrityError",
        FOREIGN_KEY.format('insert or update on table "hero"')
        + ' DETAIL: Key (team_id)=(99) is not present in table "team".',
    ),
    "DELETE /lessons/foreign-key/bad/teams/{team_id}": (
        "IntegrityError",
        FOREIGN_KEY.format('update or delete on table "team"') + ' on table "hero" DETAIL: Key (id)=(1) is '
        'still referenced from table "hero".',
    ),
    "GET /lessons/load-only/guard": (
        "InvalidRequestError",
        "'Profile.bio' is not available due to raiseload=True",
    ),
    # not its symptom: on PostgreSQL, a ?rows= so large that building or reading it outlasts the timeout
    "streaming-export": ("OperationalError", "QueryCanceled: canceling statement due to statement timeout"),
    "connection-leak": (  # a 503: the lesson's own pool, emptied on purpose
        "TimeoutError",
        str(
            sa_exc.TimeoutError(
                "QueuePool limit of size 2 overflow 0 reached, connection timed out, timeout 1.00"
            )
        ),
    ),
}


def pitfall(lesson: Lesson, method: str, path: str, status: int) -> tuple[str, str]:
    """The route's entry in PITFALLS, or its lesson's; for a lesson not there yet, the exception its text
    names first (a 503 is always a pool's TimeoutError), and its symptom."""
    if found := PITFALLS.get(f"{method} {path}") or PITFALLS.get(lesson.slug):
        return found
    named = re.findall(r"\b[A-Z]\w+Error\b", " ".join(lesson.text.values()))
    named = [name for name in named if hasattr(sa_exc, name) or hasattr(orm_exc, name)]
    if status == 503:
        named = ["TimeoutError"]
    return (named[0] if named else "Exception"), lesson.text["Symptom"]


def error_example(method: str, path: str, status: int, operation: dict, schemas: dict) -> dict:
    """The example of one documented error of one route: what that route answers with that status."""
    lesson = next((lesson for lesson in LESSONS if path.startswith(lesson.prefix + "/")), None)
    if lesson is not None and status in (500, 503):  # heroes/lab/routes.py: the lesson's own problem
        name, detail = pitfall(lesson, method, path, status)
        title = f"{name}: the pitfall this lesson shows"
        return problem_example(status, path, detail, type=lesson.type, title=title, extra={"exception": name})
    if lesson is not None and status == 409 and "sqlite" not in lesson.engines:
        return problem_example(409, path, needs_postgresql(lesson).detail, type=lesson.type)
    if lesson is not None and status == 409:  # unique-violation: a name already taken
        return problem_example(409, path, TAKEN, errors=[field_error("name", "body", TAKEN, "invalid")])
    if path.startswith("/lessons/{slug}") and status == 404:
        return problem_example(404, path, f"No lesson 'n-plus-two'. The lessons are: {', '.join(BY_SLUG)}.")
    if path == "/lessons/{slug}/compare" and status == 409:
        detail = "The lesson concurrent-index runs on postgresql; this lab runs on sqlite. "
        detail += POSTGRES_HINT.format(slug="concurrent-index")
        return problem_example(409, path, detail, type="/lessons/concurrent-index")
    if path == "/health/ready" and status == 503:
        detail = (
            f"The database schema is at nothing, the code expects {head_revision()}: run `heroes db upgrade`."
        )
        return problem_example(503, path, detail)
    if (status, f"{method} {path}") in ERRORS:
        detail, field = ERRORS[status, f"{method} {path}"]
        errors = [field_error(field, "body", detail, "invalid")] if field else None
        return problem_example(status, path, detail, errors=errors)
    return generic_example(method, path, status, operation, schemas)


DOCS_ASSETS = "/docs/assets"
# Swagger UI 5, ReDoc 2 and FastAPI's favicon, from the fastapi-offline wheel (a pip dependency), served
# with fixed media types (mimetypes would guess per machine)
ASSET_FILES = Path(fastapi_offline.__file__).parent / "static"
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}


def add_offline_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc, whose scripts, styles and icon come from this app, not from a CDN."""

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        assets = request.scope.get("root_path", "") + DOCS_ASSETS
        return get_swagger_ui_html(
            openapi_url=request.scope.get("root_path", "") + app.openapi_url,
            title=f"{app.title}: Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        assets = request.scope.get("root_path", "") + DOCS_ASSETS
        return get_redoc_html(
            openapi_url=request.scope.get("root_path", "") + app.openapi_url,
            title=f"{app.title}: ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,  # FastAPI's default links fonts.googleapis.com
        )

    @app.get(DOCS_ASSETS + "/{name}", include_in_schema=False)
    def docs_asset(name: str) -> FileResponse:
        if name not in ASSET_TYPES:
            raise Problem(404, f"No docs asset {name!r}; there are {', '.join(ASSET_TYPES)}.")
        return FileResponse(ASSET_FILES / name, media_type=ASSET_TYPES[name])


def operation_id(route: APIRoute) -> str:
    """`teams-create_team`, `lesson-n-plus-one-bad`: FastAPI's default appends the path and the method."""
    tag = re.sub(r"[^a-z0-9]+", "-", str(route.tags[0]).lower()).strip("-") if route.tags else "app"
    return f"{tag}-{route.name}"


class TrailingSlashMiddleware:
    """`POST /heroes/` is served as `POST /heroes`, as the SQLModel tutorial's clients send it.

    Starlette would answer an empty 307 pointing at the path without the slash, which curl (without
    -L) and httpx do not follow: the client sees neither its hero nor an error. Only a path that no
    route takes as it is, and that one takes without its last slash, is rewritten.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path != "/" and path.endswith("/"):
            routes = scope["app"].router.routes
            stripped = {
                **scope,
                "path": path[:-1],
                "raw_path": scope.get("raw_path", b"/").removesuffix(b"/"),
            }
            if not any(route.matches(scope)[0] != Match.NONE for route in routes) and any(
                route.matches(stripped)[0] != Match.NONE for route in routes
            ):
                scope = stripped
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the lab. `engine` lets tests (and lessons) hand in their own; otherwise DATABASE_URL."""
    settings = settings or get_settings()
    owns_engine = engine is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield  # the schema is Alembic's job (`heroes db upgrade`): nothing is created here
        app.state.lab.close()  # the lessons' scratch databases
        if owns_engine:
            app.state.engine.dispose()

    app = FastAPI(
        title="heroes: database pitfalls lab",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS + [lesson_tag(lesson) for lesson in LESSONS],
        lifespan=lifespan,
        docs_url=None,  # add_offline_docs serves /docs and /redoc with their assets
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.openapi = lambda: document_examples(  # errors documented as problem+json; lesson examples
        document_problems(problems_as_problem_json(FastAPI.openapi(app)), error_example), LESSONS
    )
    app.state.engine = engine if engine is not None else create_db_engine(settings=settings)
    app.state.settings = settings
    app.state.lab = Lab(app.state.engine, settings)
    install_problem_handlers(app)
    app.add_middleware(WorkshopMiddleware)  # the learner's /lessons/{slug}/mine, loaded again when edited
    app.add_middleware(UnhandledErrorMiddleware)  # added first, so it runs inside the evidence middleware
    if settings.evidence:
        app.add_middleware(EvidenceMiddleware)
    app.add_middleware(TrailingSlashMiddleware)  # outermost: every layer sees the path the route serves
    add_offline_docs(app)
    for router in (teams.router, heroes.router, health.router, lessons.router):
        app.include_router(router)
    for lesson in LESSONS:
        app.include_router(lesson.router())
    install_pages(app)  # /lab: a page per lesson, for a room

    @app.get("/", include_in_schema=False)
    def index() -> dict[str, str]:
        return {
            "name": "heroes",
            "docs": "/docs",
            "teams": "/teams",
            "heroes": "/heroes",
            "health": "/health/ready",
            "lessons": "/lessons",
            "lab": "/lab",
        }

    return app
