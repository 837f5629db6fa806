"""The lesson route: a pitfall that escapes a bad route is answered as the lesson's documented failure.

The answer is a 500 problem+json whose `type` links the lesson and whose `detail` is the exception's
own message (never the SQL or its parameters), instead of the app's generic 500 or the reference
API's IntegrityError mapping, which would hide the pitfall. A pool that a bad route emptied on
purpose (a lesson's own small engine) answers 503, as the reference API answers its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from heroes.db import is_sqlite
from heroes.problems import RETRY_AFTER_SECONDS, Problem, logger, problem_response, safe_message

if TYPE_CHECKING:
    from heroes.lab.lesson import Lesson

POSTGRES_HINT = (
    "Start the lab on PostgreSQL with `make run-postgres` (the CLI: `heroes lesson {slug} --postgres`)."
)


def variant_of(lesson: Lesson, path: str) -> str:
    """`/lessons/n-plus-one/fixed/joinedload` -> `fixed/joinedload`."""
    return path.removeprefix(lesson.prefix).strip("/") or "/"


class LessonRoute(APIRoute):
    """A route of one lesson (the lesson's router sets `lesson`): its summary says which variant it is."""

    lesson: ClassVar[Lesson]

    def __init__(self, path: str, endpoint, **kwargs) -> None:
        if kwargs.get("summary") is None:  # "fixed/joinedload: The many-to-one side: ..."
            first = (endpoint.__doc__ or "").strip().split("\n")[0]
            kwargs["summary"] = f"{variant_of(self.lesson, path)}: {first}" if first else None
        super().__init__(path, endpoint, **kwargs)

    @property
    def variant(self) -> str:
        return variant_of(self.lesson, self.path)

    def get_route_handler(self):
        handler = super().get_route_handler()
        lesson = self.lesson

        async def lesson_handler(request: Request):
            try:
                return await handler(request)
            except (StarletteHTTPException, RequestValidationError):
                raise
            except Exception as exc:
                name = type(exc).__name__
                logger.info("lesson %s: %s raised %s (the pitfall)", lesson.slug, request.url.path, name)
                pool_empty = isinstance(exc, sa_exc.TimeoutError)  # a lesson's own pool, emptied on purpose
                return problem_response(
                    request,
                    503 if pool_empty else 500,
                    safe_message(exc),
                    type=lesson.type,
                    title=f"{type(exc).__name__}: the pitfall this lesson shows",
                    headers={"Retry-After": RETRY_AFTER_SECONDS} if pool_empty else None,
                    extra={"exception": type(exc).__name__},
                )

        return lesson_handler


def needs_postgresql(lesson: Lesson) -> Problem:
    return Problem(
        409,
        f"The lesson {lesson.slug} needs PostgreSQL (row locks, a real server); this lab runs on SQLite. "
        + POSTGRES_HINT.format(slug=lesson.slug),
        type=lesson.type,
    )


def engine_required(lesson: Lesson):
    """A dependency for the routes of a lesson that needs a real server: on SQLite, a 409 saying how."""

    def dependency(request: Request) -> None:
        if is_sqlite(request.app.state.engine):
            raise needs_postgresql(lesson)

    return dependency
