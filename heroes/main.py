"""create_app(): the routers, the problem+json error handlers, the middleware (evidence, workshop, trailing
slashes), the offline docs (heroes/docs.py) and the lesson pages."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from heroes import __version__
from heroes.api import health, heroes, lessons, teams
from heroes.config import Settings, get_settings
from heroes.db import create_db_engine
from heroes.docs import add_offline_docs, openapi, operation_id
from heroes.evidence import EvidenceMiddleware
from heroes.lab import Lab, Lesson
from heroes.lab.pages import install as install_pages
from heroes.lab.workshop import WorkshopMiddleware
from heroes.lessons import LESSONS
from heroes.problems import UnhandledErrorMiddleware, install_problem_handlers

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


def include_flat(app: FastAPI, router: APIRouter) -> None:
    """app.include_router(router), each route added to the app's own router as it was declared.

    Since FastAPI 0.160 an included router stays a router: a request is matched against it, then again
    inside it, for every request (`heroes bench http`: about 110 more Python calls per GET /heroes/{id},
    6% of the request). The reference API's routes are served on every request, so they are added
    where `@app.get` would put them; the app stays their dependency_overrides_provider, as with
    include_router, so `app.dependency_overrides` works in a learner's tests.
    """
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"include_flat takes API routes only: {route!r}")
        app.router.add_api_route(
            route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            dependencies=route.dependencies,
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=route.responses,
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            route_class_override=type(route),
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
        )


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the lab. `engine` lets tests (and lessons) hand in their own; otherwise DATABASE_URL."""
    settings = settings or get_settings()
    owns_engine = engine is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield  # the schema is Alembic's job (`heroes db upgrade`): nothing is created here
        await app.state.lab.async_engines.dispose()  # the async engines, in the loop that made them
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
    app.openapi = lambda: openapi(app)  # errors as problem+json with true examples; lesson examples
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
    for router in (teams.router, heroes.router, health.router):  # the reference API: served flat
        include_flat(app, router)
    app.include_router(lessons.router)
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
