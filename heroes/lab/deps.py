"""The lab's dependencies, defined once: which database a lesson route works on, and its session.

    Demo = demo_or_scratch(lesson, build)    the demo data, or (when the size knob is in the query,
                                             `?teams=100`) the scratch database `build(lab, 100)` makes
    Scratch = scratch_engine(build)          always the lesson's scratch database `build(lab)`
    session_on(Demo)                         a request-scoped Session on that engine, always closed
    async_sessions(build)                    the async track: an async_sessionmaker on the async engine
                                             `await build(lab)` gives (Lab.async_engine): a route opens
                                             `async with sessions() as session:` (SQLModel's AsyncSession)

Each returns an `Annotated[...]` to put on a handler's parameter, as SessionDep is for the reference
API (heroes/db.py).
"""

import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, get_args

from fastapi import Depends, Query, Request
from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from heroes.lab.lesson import Lesson
from heroes.lab.scratch import Lab


def lab_of(request: Request) -> Lab:
    """The app's scratch databases (one Lab per app, built by create_app)."""
    return request.app.state.lab


LabDep = Annotated[Lab, Depends(lab_of)]


def demo_or_scratch(lesson: Lesson, build: Callable[[Lab, int], Engine]) -> Any:
    """An engine: the demo data, or with the lesson's size parameter, the scratch database of that size."""
    size = lesson.size
    assert size is not None, f"{lesson.slug} has no size knob"

    def engine(request: Request, **query: int | None) -> Engine:
        n = query[size.param]
        return request.app.state.engine if n is None else build(lab_of(request), n)

    knob = Annotated[int | None, Query(ge=1, le=size.maximum, description=size.meaning)]
    parameters = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        inspect.Parameter(size.param, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=knob),
    ]
    engine.__signature__ = inspect.Signature(parameters)  # FastAPI reads `?teams=` from here
    return Annotated[Engine, Depends(engine)]


def scratch_engine(build: Callable[[Lab], Engine]) -> Any:
    """An engine: the lesson's own scratch database, as `build(lab)` makes (and caches) it."""

    def engine(request: Request) -> Engine:
        return build(lab_of(request))

    return Annotated[Engine, Depends(engine)]


def session_on(engine_dependency: Any) -> Any:
    """A request-scoped Session on the engine another lab dependency gives, closed after the response."""
    (_, depends) = get_args(engine_dependency)

    def session(engine: Annotated[Engine, depends]) -> Iterator[Session]:
        with Session(engine) as session:
            yield session

    return Annotated[Session, Depends(session)]


def async_sessions(build: Callable[[Lab], Awaitable[AsyncEngine]]) -> Any:
    """An async_sessionmaker of SQLModel's AsyncSession on the async engine `await build(lab)` gives.

    expire_on_commit=False, as async apps set it: after a commit, reading an attribute would be a lazy
    refresh, which an AsyncSession cannot do implicitly (the async-lazy-load lesson).
    """

    async def sessions(request: Request) -> async_sessionmaker[AsyncSession]:
        engine = await build(lab_of(request))
        return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

    return Annotated[async_sessionmaker[AsyncSession], Depends(sessions)]


def count_commits(session: Session) -> Session:
    """Count `session`'s commits from now on in `session.info["commits"]` (an after_commit listener)."""
    session.info["commits"] = 0
    event.listen(session, "after_commit", lambda s: s.info.update(commits=s.info["commits"] + 1))
    return session
