"""The async engine, beside the sync one: AsyncSession behind `async def` routes (the async track).

    create_async_db_engine(url)    the same DATABASE_URL with its async driver (`sqlite+aiosqlite`;
                                   `postgresql+psycopg` is psycopg 3's own async mode), made by
                                   create_db_engine so it is set up exactly like the sync engine:
                                   SQLite's connect hook (foreign keys on, WAL, busy timeout),
                                   PostgreSQL's statement and lock timeouts, pre-ping, pool limits,
                                   and the evidence recorder (on `engine.sync_engine`: X-Query-Count)
    AsyncSessionDep                an AsyncSession (SQLModel's own) per request, on the app's async engine

An async engine's connections belong to the event loop that opened them. A server has one loop, but
the CLI and the workshop checks run each `compare` in an `asyncio.run` of its own: `AsyncEngines`
(one per Lab, so one per app) makes each engine in the running loop on first use, and disposes it when
another loop asks (its connections closed from there) or when the app stops (Lab.close).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from heroes.config import Settings, get_settings
from heroes.db import create_db_engine


def async_url(url: str) -> str:
    """The URL with its async driver: `sqlite+aiosqlite` for SQLite; psycopg 3 serves both modes."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_async_db_engine(
    url: str | None = None, settings: Settings | None = None, **options: Any
) -> AsyncEngine:
    """An async engine for `url` (default: DATABASE_URL), set up as create_db_engine sets up the sync one.

    `options` as create_db_engine takes them (search_path=..., pool_size=2, application_name=...).
    """
    settings = settings or get_settings()
    url = async_url(url or settings.database_url)
    # what create_async_engine does: the same create_engine, told the driver is async, wrapped
    return AsyncEngine(create_db_engine(url, settings, _is_async=True, **options))


class AsyncEngines:
    """Async engines made on first use, each in the event loop that uses it, disposed when done.

    `get(key, make)` gives the engine `key` for the running loop: the one made before if that loop
    made it, otherwise a new one (the old one's connections closed first). Each Lab holds one of these
    (heroes/lab/scratch.py): the app's async engine and the lessons' async scratch engines.
    """

    def __init__(self) -> None:
        self._engines: dict[str, tuple[asyncio.AbstractEventLoop, AsyncEngine]] = {}
        self._lock = threading.Lock()

    async def get(self, key: str, make: Callable[[], AsyncEngine]) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._engines.get(key)
            if found is not None and found[0] is loop:
                return found[1]
            engine = make()
            self._engines[key] = (loop, engine)
        if found is not None:  # made in a loop that has finished (asyncio.run): close its connections
            await found[1].dispose()
        return engine

    def _pop(self, keys: Callable[[str], bool]) -> list[AsyncEngine]:
        with self._lock:
            return [self._engines.pop(key)[1] for key in list(self._engines) if keys(key)]

    async def dispose(self, keys: Callable[[str], bool] = lambda key: True) -> None:
        """Dispose the engines whose key `keys` accepts (all by default); they are made again on next use."""
        for engine in self._pop(keys):
            await engine.dispose()

    def close(self, keys: Callable[[str], bool] = lambda key: True) -> None:
        """dispose() from synchronous code: in a loop of its own, in a thread (a loop may run in this one)."""
        engines = self._pop(keys)
        if engines:

            async def dispose() -> None:
                for engine in engines:
                    await engine.dispose()

            worker = threading.Thread(target=asyncio.run, args=(dispose(),))
            worker.start()
            worker.join()


async def get_async_engine(request: Request) -> AsyncEngine:
    """The app's async engine: the database of the app's engine, through its async driver."""
    app = request.app
    url = app.state.engine.url.render_as_string(hide_password=False)
    return await app.state.lab.async_engines.get(
        "main", lambda: create_async_db_engine(url, app.state.settings)
    )


async def get_async_session(
    engine: Annotated[AsyncEngine, Depends(get_async_engine)],
) -> AsyncIterator[AsyncSession]:
    """One AsyncSession per request, always closed (its connection back to the pool)."""
    async with AsyncSession(engine) as session:
        yield session


AsyncSessionDep = Annotated[AsyncSession, Depends(get_async_session)]
AsyncEngineDep = Annotated[AsyncEngine, Depends(get_async_engine)]
