"""Every error is `application/problem+json` (RFC 9457): one mapping from exceptions to answers.

    validation            422  with `errors`: one entry per field, never echoing the input
    a body that is not JSON  415  naming the Content-Type it came with (curl -d sends a form's)
    not found             404
    unique violation      409  naming the field
    foreign key           409/422 naming the field
    precondition failed   412  (If-Match against a stale version)
    pool exhausted        503  + Retry-After
    database unreachable  503  + Retry-After  (a statement over the statement timeout too)
    lock wait too long    503  + Retry-After  (PostgreSQL's lock_timeout, SQLite's busy timeout)
    write conflict        503  + Retry-After  (a write still aborted after its retries: WriteConflict)
    anything else         500  that never echoes SQL, parameters or a secret

Routes raise `Problem(status, detail, field=...)` where they know better than this module.
"""

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("heroes")

PROBLEM_JSON = "application/problem+json"
PROBLEM_SCHEMA = "#/components/schemas/ProblemDetails"
GENERIC_500 = "Something went wrong on our side; it has been logged."
UNAVAILABLE = "The database is unavailable or did not answer in time; try again shortly."
LOCKED = "Another transaction held a lock this request needed past the lock timeout; try again shortly."
RETRY_AFTER_SECONDS = "2"


def write_conflict_detail(attempts: int) -> str:
    return (
        f"This write conflicted with concurrent transactions (a serialization failure or a deadlock) "
        f"and was tried {attempts} times; try again shortly."
    )


class Problem(StarletteHTTPException):
    """An HTTP error with a human `detail`, optionally naming the field it is about."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        field: str | None = None,
        location: str = "body",
        type: str = "about:blank",
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.type = type
        self.title = title
        self.extra = extra or {}
        self.errors = [field_error(field, location, detail, "invalid")] if field else None


class WriteConflict(Exception):
    """A write the database aborted (serialization failure, deadlock) on every one of its `attempts`."""

    def __init__(self, attempts: int) -> None:
        super().__init__(write_conflict_detail(attempts))
        self.attempts = attempts


def field_error(field: str, location: str, message: str, kind: str) -> dict[str, Any]:
    return {"field": field, "location": location, "message": message, "type": kind}


# ---- the shape, for the OpenAPI schema (/docs) ------------------------------------------------------


class FieldError(BaseModel):
    field: str = Field(examples=["name"])
    location: str = Field(examples=["body"], description="body, query, path or header")
    message: str = Field(examples=["String should have at most 100 characters"])
    type: str = Field(examples=["string_too_long"])


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 application/problem+json (each route's errors carry their own examples)."""

    type: str = Field(default="about:blank", description="about:blank, or the lesson whose pitfall this is")
    title: str = Field(description="The HTTP status phrase, or the exception a lesson's bad route let escape")
    status: int
    detail: str = Field(description="What went wrong, for a human")
    instance: str | None = Field(default=None, description="The path that answered")
    errors: list[FieldError] | None = Field(default=None, description="Bad input: one entry per field")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: these statuses answer ProblemDetails (main.py files them as problem+json)."""
    return {
        status: {"model": ProblemDetails, "description": HTTPStatus(status).phrase} for status in statuses
    }


def problems_as_problem_json(schema: dict[str, Any]) -> dict[str, Any]:
    """In an OpenAPI schema, move every 4xx/5xx body from application/json to application/problem+json."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return schema


# ---- examples, for the OpenAPI schema: each documented error shows what its route answers --------------


def problem_example(
    status: int,
    instance: str,
    detail: str,
    *,
    type: str = "about:blank",
    title: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A problem body as `problem_response` writes it, for /docs."""
    example = {"type": type, "title": title or HTTPStatus(status).phrase, "status": status, "detail": detail}
    example["instance"] = instance
    return example | ({"errors": errors} if errors else {}) | (extra or {})


def _refused(schema: dict[str, Any]) -> tuple[str, str] | None:
    """(message, type) pydantic gives for a value out of this schema's bounds, if it has bounds."""
    for option in schema.get("anyOf", [schema]):
        if "maximum" in option:
            return f"Input should be less than or equal to {option['maximum']}", "less_than_equal"
        if "maxLength" in option:
            return f"String should have at most {option['maxLength']} characters", "string_too_long"
        if "maxItems" in option:
            too_many = option["maxItems"] + 1
            return (
                f"List should have at most {option['maxItems']} items after validation, not {too_many}",
                "too_long",
            )
        if "enum" in option:
            choices = [repr(choice) for choice in option["enum"]]
            listed = " or ".join(filter(None, [", ".join(choices[:-1]), choices[-1]]))
            return f"Input should be {listed}", "literal_error"
    return None


def invalid_input(operation: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any] | None:
    """A field error this operation gives: a path or query parameter out of bounds, else a body field."""
    candidates = [
        (parameter["name"], parameter["in"], parameter.get("schema", {}))
        for parameter in operation.get("parameters", [])
        if parameter["in"] in ("path", "query")
    ]
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    body = schemas.get(body.get("$ref", "").rsplit("/", 1)[-1], body)
    fields = body.get("properties", {})
    candidates += [(name, "body", field) for name, field in fields.items() if name != "secret_name"]
    if body.get("type") == "array":  # a list as the whole body: pydantic names it `body`
        candidates.append(("body", "body", body))
    for name, location, schema in candidates:
        if refused := _refused(schema):
            return field_error(name, location, *refused)
    required = [name for name in body.get("required", []) if name != "secret_name"]
    if required:
        return field_error(required[0], "body", "Field required", "missing")
    if body.get("type") == "object":  # a free-form object: a JSON array or string instead
        return field_error("body", "body", "Input should be a valid dictionary", "dict_type")
    return None


def generic_example(method: str, path: str, status: int, operation: dict, schemas: dict) -> dict[str, Any]:
    """What the handlers of this module answer with `status` on this route, when the route says no more."""
    detail, errors = HTTPStatus(status).description + ".", None
    if status == 400:
        detail = "There was an error parsing the body"  # FastAPI's words, e.g. for a body that is not UTF-8
    elif status == 404:
        ids = [
            p for p in operation.get("parameters", []) if p["name"].endswith("_id") and p["in"] != "header"
        ]
        detail = (
            f"No {ids[0]['name'].removesuffix('_id')} with id 99." if ids else f"Nothing at {method} {path}."
        )
        if ids and ids[0]["in"] == "query":
            errors = [field_error(ids[0]["name"], "query", detail, "invalid")]
    elif status == 415:
        detail = unsupported_media_type_detail("application/x-www-form-urlencoded")
        errors = [field_error("Content-Type", "header", detail, "unsupported_media_type")]
    elif status == 422 and (error := invalid_input(operation, schemas)) is not None:
        detail, errors = (
            f"Invalid request. {error['field']} ({error['location']}): {error['message']}",
            [error],
        )
    elif status == 500:
        detail = GENERIC_500
    elif status == 503:
        detail = UNAVAILABLE
    return problem_example(status, path, detail, errors=errors)


def document_problems(schema: dict[str, Any], example=generic_example) -> dict[str, Any]:
    """Every operation that takes a JSON body documents 415; every documented error gets its own example.

    `example(method, path, status, operation, schemas)` writes it (generic_example by default).
    """
    schemas = schema.get("components", {}).get("schemas", {})
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.get("responses", {})
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                responses.setdefault("415", {"description": HTTPStatus(415).phrase, "content": {}})
                responses["415"]["content"][PROBLEM_JSON] = {"schema": {"$ref": PROBLEM_SCHEMA}}
            for status, response in responses.items():
                content = response.get("content", {}).get(PROBLEM_JSON)
                if status[0] in "45" and content is not None:
                    content["example"] = example(method.upper(), path, int(status), operation, schemas)
    return schema


def problem_response(
    request: Request | None,
    status: int,
    detail: str,
    *,
    type: str = "about:blank",
    title: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def safe_message(exc: BaseException) -> str:
    """What an exception says, without the SQL or the parameters SQLAlchemy appends (secrets, maybe)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        message = f"{type(exc.orig).__name__}: {exc.orig}"
    elif isinstance(exc, ValidationError | ResponseValidationError):  # its messages, never its input
        message = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in (exc.errors(include_input=False) if isinstance(exc, ValidationError) else exc.errors())
        )
    else:
        message = str(exc)
    message = re.split(r"\[SQL:|\[parameters:|Original exception was:", message)[0]
    message = re.sub(r"\nLINE \d+:.*?(?=\n(?:DETAIL|HINT):|\Z)", "", message, flags=re.S)  # the SQL quoted
    message = re.sub(
        r"secret_name=('[^']*'|\"[^\"]*\"|\S+)", "secret_name=<hidden>", message
    )  # a model's repr
    return " ".join(message.split()) or type(exc).__name__


# ---- handlers -------------------------------------------------------------------------------------


async def http_exception_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).description
    if exc.status_code == 404 and not isinstance(exc, Problem):
        detail = f"Nothing at {request.method} {request.url.path}."
    headers = exc.headers
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        detail = f"{request.method} is not allowed on {request.url.path}; it answers {', '.join(allowed)}."
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    return problem_response(
        request,
        exc.status_code,
        detail,
        type=getattr(exc, "type", "about:blank"),
        title=getattr(exc, "title", None),
        errors=getattr(exc, "errors", None),
        headers=headers,
        extra=getattr(exc, "extra", None),
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's own 405 names only the first route's)."""
    methods = set()
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            methods.add(method)
    return sorted(methods)


def _field_name(loc: tuple[Any, ...]) -> tuple[str, str]:
    """('body', 'team_id') -> ('team_id', 'body'); ('query', 'limit') -> ('limit', 'query')."""
    location = str(loc[0]) if loc else "request"
    rest = [str(part) for part in loc[1:]]
    return (".".join(rest) if rest else location), location


def takes_json(request: Request) -> bool:
    """The matched route reads a JSON body (a body model, not a form)."""
    body = getattr(request.scope.get("route"), "body_field", None)
    return body is not None and not isinstance(body.field_info, params.Form)


def is_json(content_type: str | None) -> bool:
    """`application/json` or any `application/*+json`, parameters (charset) aside: what FastAPI parses."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def unsupported_media_type_detail(content_type: str | None) -> str:
    sent = f"`{content_type}`" if content_type else "none"
    if (content_type or "").startswith("application/x-www-form-urlencoded"):
        sent += " (what curl -d sends unless told otherwise)"
    ask = "This route takes a JSON body: send it with `Content-Type: application/json`"
    return f"{ask}; this request sent {sent}."


def unsupported_media_type(request: Request) -> JSONResponse | None:
    """A body in another media type than JSON, on a route that takes JSON: 415, not a puzzling 422.

    FastAPI hands such a body to validation as raw bytes ("Input should be a valid dictionary").
    """
    content_type = request.headers.get("content-type")
    sent_a_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if not sent_a_body or is_json(content_type) or not takes_json(request):
        return None
    detail = unsupported_media_type_detail(content_type)
    accept = {"PATCH": "Accept-Patch", "POST": "Accept-Post"}.get(request.method)  # RFC 5789, W3C LDP
    return problem_response(
        request,
        415,
        detail,
        errors=[field_error("Content-Type", "header", detail, "unsupported_media_type")],
        headers={accept: "application/json"} if accept else None,
    )


async def validation_exception_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    if (response := unsupported_media_type(request)) is not None:
        return response
    errors = []
    for error in exc.errors():  # `input` and `ctx` are dropped on purpose: they may hold a secret
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":  # ('body', 34): 34 is a character position, not a field
            loc = loc[:1]
        field, location = _field_name(loc)
        message = error.get("msg", "is invalid").removeprefix("Value error, ")
        errors.append(field_error(field, location, message, error.get("type", "invalid")))
    summary = "; ".join(f"{e['field']} ({e['location']}): {e['message']}" for e in errors)
    return problem_response(request, 422, f"Invalid request. {summary}", errors=errors)


# IntegrityError classification, per engine: the column is in the name our naming convention gave the
# constraint (uq_team_name, fk_hero_team_id_team)
_CONSTRAINT = re.compile(r"^(uq|fk)_(team|hero)_(?P<column>[a-z_]+?)(_team)?$")
_SQLITE_COLUMN = re.compile(r"constraint failed: (?P<table>\w+)\.(?P<column>\w+)")


def integrity_kind(exc: sa_exc.IntegrityError) -> tuple[str, str | None]:
    """('unique' | 'foreign_key' | 'not_null' | 'check' | 'integrity', field or None), on both engines."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:  # psycopg
        kinds = {"23505": "unique", "23503": "foreign_key", "23502": "not_null", "23514": "check"}
        diag = getattr(orig, "diag", None)
        column = getattr(diag, "column_name", None)
        constraint = getattr(diag, "constraint_name", None) or ""
        match = _CONSTRAINT.match(constraint)
        if match and not column:
            column = match["column"]
        return kinds.get(sqlstate, "integrity"), column
    message = str(orig)  # sqlite3: "UNIQUE constraint failed: team.name", "FOREIGN KEY constraint failed"
    match = _SQLITE_COLUMN.search(message)
    column = match["column"] if match else None  # SQLite names no column for a foreign key
    for marker, kind in (("UNIQUE", "unique"), ("FOREIGN KEY", "foreign_key"), ("NOT NULL", "not_null")):
        if message.startswith(marker):
            return kind, column
    return ("check" if message.startswith("CHECK") else "integrity"), column


async def integrity_error_handler(request: Request, exc: sa_exc.IntegrityError) -> JSONResponse:
    """The net under the routes: they catch the violations they expect and say more."""
    kind, field = integrity_kind(exc)
    status, detail = {
        "unique": (409, "A row with this value already exists."),
        "foreign_key": (409, "This change would break a reference between a hero and a team."),
    }.get(kind, (422, "The database refused a value that broke one of its constraints."))
    errors = [field_error(field, "body", detail, kind)] if field else None
    return problem_response(request, status, detail, errors=errors)


async def pool_timeout_handler(request: Request, exc: sa_exc.TimeoutError) -> JSONResponse:
    return problem_response(
        request,
        503,
        "Every database connection is in use and none came free in time; try again shortly.",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def _missing_schema(exc: sa_exc.DBAPIError) -> bool:
    text = str(exc.orig)
    return getattr(exc.orig, "sqlstate", None) == "42P01" or "no such table" in text


# sqlite3 primary result codes that mean "cannot serve now", not "this statement is wrong":
# BUSY, LOCKED, NOMEM, INTERRUPT, IOERR, FULL, CANTOPEN
_SQLITE_UNAVAILABLE = {5, 6, 7, 9, 10, 13, 14}


def _lock_wait(exc: sa_exc.DBAPIError) -> bool:
    """PostgreSQL's lock_not_available (lock_timeout), SQLite's SQLITE_BUSY (busy timeout): a lock held."""
    if getattr(exc.orig, "sqlstate", None) == "55P03":
        return True
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == 5


def _unavailable(exc: sa_exc.DBAPIError) -> bool:
    """The database is down, busy or too slow: worth a retry, unlike a bug in a statement (500)."""
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    # sqlite3 raises OperationalError for syntax errors and unknown columns too; its code tells them apart
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code is None or code & 0xFF in _SQLITE_UNAVAILABLE


async def database_error_handler(request: Request, exc: sa_exc.DBAPIError) -> JSONResponse:
    if _missing_schema(exc):
        detail = "The database has no schema yet or an old one: run `heroes db upgrade`."
        return problem_response(request, 503, detail, headers={"Retry-After": RETRY_AFTER_SECONDS})
    if isinstance(exc, sa_exc.OperationalError) and _lock_wait(exc):
        logger.warning("lock wait timed out: %s", type(exc.orig).__name__)
        return problem_response(request, 503, LOCKED, headers={"Retry-After": RETRY_AFTER_SECONDS})
    if _unavailable(exc):
        logger.warning("database unavailable: %s", type(exc.orig).__name__)
        return problem_response(request, 503, UNAVAILABLE, headers={"Retry-After": RETRY_AFTER_SECONDS})
    return await unhandled_exception_handler(request, exc)


async def write_conflict_handler(request: Request, exc: WriteConflict) -> JSONResponse:
    return problem_response(request, 503, str(exc), headers={"Retry-After": RETRY_AFTER_SECONDS})


async def unhandled_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, GENERIC_500)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    app.add_exception_handler(sa_exc.IntegrityError, integrity_error_handler)
    app.add_exception_handler(sa_exc.TimeoutError, pool_timeout_handler)
    app.add_exception_handler(sa_exc.DBAPIError, database_error_handler)
    app.add_exception_handler(WriteConflict, write_conflict_handler)


class UnhandledErrorMiddleware:
    """Any exception no handler took becomes a logged 500 problem+json, answered here.

    Starlette's own catch-all answers from its outermost middleware, outside the evidence
    middleware, so a 500 would lose X-Query-Count; create_app puts this one inside it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late for a response of our own
                raise
            response = await unhandled_exception_handler(Request(scope), exc)
            await response(scope, receive, send)
