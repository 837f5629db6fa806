"""The interactive docs: /docs and /redoc served offline, and an OpenAPI schema that tells the truth.

    add_offline_docs(app)   Swagger UI and ReDoc, their scripts, styles and icon from the fastapi-offline
                            wheel (a pip dependency), never from a CDN
    openapi(app)            the schema: every 4xx/5xx as problem+json with an example true for its route,
                            each lesson route's request example the one compare makes
    operation_id(route)     readable operationIds: `teams-create_team`, `lesson-n-plus-one-bad`

A lesson route's documented 500 (or 503) names the exception its pitfall lets escape and the detail it
answers; the lesson says which, in its module's PITFALLS: {"GET /guard": (exception, detail)} for one
route, {"*": ...} for all of them (tests/test_docs.py holds each against the route's real answer).
"""

import re
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import exc as orm_exc

from heroes.db import WRITE_ATTEMPTS
from heroes.lab import Lesson
from heroes.lab.catalogue import document_examples
from heroes.lab.routes import POSTGRES_HINT, needs_postgresql
from heroes.lessons import BY_SLUG, LESSONS
from heroes.migrate import head_revision
from heroes.problems import (
    Problem,
    document_problems,
    field_error,
    generic_example,
    problem_example,
    problems_as_problem_json,
    write_conflict_detail,
)

TAKEN = "A team named 'Preventers' already exists."
# What the reference API answers where the generic examples would say less (heroes/api/*.py)
ERRORS = {
    (409, "POST /teams"): (TAKEN, "name"),
    (409, "PATCH /teams/{team_id}"): (TAKEN, "name"),
    (409, "DELETE /teams/{team_id}"): ("Team 1 still has 3 hero(es): move or delete them first.", None),
    (422, "POST /heroes"): ("No team with id 99.", "team_id"),
    (412, "PATCH /heroes/{hero_id}"): ("Hero 1 is at version 2 now: read it again, then retry.", None),
}
# The writes' 503: a serialization failure or a deadlock on every attempt (heroes.db.run_in_transaction)
WRITES = ("POST /teams", "PATCH /teams/{team_id}", "DELETE /teams/{team_id}")
WRITES += ("POST /heroes", "PATCH /heroes/{hero_id}", "DELETE /heroes/{hero_id}")
ERRORS |= {(503, write): (write_conflict_detail(WRITE_ATTEMPTS), None) for write in WRITES}


def pitfall(lesson: Lesson, method: str, path: str, status: int) -> tuple[str, str]:
    """(exception, detail) of a lesson route's documented failure: its lesson's PITFALLS entry; for a
    lesson that has none, the exception its text names first (a 503 is a pool's TimeoutError), and its
    symptom."""
    pitfalls: dict[str, tuple[str, str]] = getattr(lesson.module, "PITFALLS", {})
    if found := pitfalls.get(f"{method} {path.removeprefix(lesson.prefix)}") or pitfalls.get("*"):
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


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, errors documented as problem+json with true examples, lesson examples added."""
    schema = problems_as_problem_json(FastAPI.openapi(app))
    return document_examples(document_problems(schema, error_example), LESSONS)


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


def swagger_ui(request: Request) -> HTMLResponse:
    assets = request.scope.get("root_path", "") + DOCS_ASSETS
    return get_swagger_ui_html(
        openapi_url=request.scope.get("root_path", "") + request.app.openapi_url,
        title=f"{request.app.title}: Swagger UI",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
    )


def redoc(request: Request) -> HTMLResponse:
    assets = request.scope.get("root_path", "") + DOCS_ASSETS
    return get_redoc_html(
        openapi_url=request.scope.get("root_path", "") + request.app.openapi_url,
        title=f"{request.app.title}: ReDoc",
        redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png",
        with_google_fonts=False,  # FastAPI's default links fonts.googleapis.com
    )


def docs_asset(name: str) -> FileResponse:
    if name not in ASSET_TYPES:
        raise Problem(404, f"No docs asset {name!r}; there are {', '.join(ASSET_TYPES)}.")
    return FileResponse(ASSET_FILES / name, media_type=ASSET_TYPES[name])


def add_offline_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc, whose scripts, styles and icon come from this app, not from a CDN.

    The endpoints are module functions that read the app from the request: FastAPI caches facts about
    each endpoint by identity (a bounded lru_cache), and a closure over `app` there kept every app a
    process ever built alive (the test suite builds one per test).
    """
    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    app.add_api_route(DOCS_ASSETS + "/{name}", docs_asset, methods=["GET"], include_in_schema=False)


def operation_id(route: APIRoute) -> str:
    """`teams-create_team`, `lesson-n-plus-one-bad`: FastAPI's default appends the path and the method."""
    tag = re.sub(r"[^a-z0-9]+", "-", str(route.tags[0]).lower()).strip("-") if route.tags else "app"
    return f"{tag}-{route.name}"
