"""The engine factory, the request-scoped session, and the per-engine set-up.

SQLite: `PRAGMA foreign_keys=ON` on every connection (SQLite ignores foreign keys otherwise),
WAL journal and a busy timeout, so readers and a writer can share the file.
PostgreSQL (psycopg 3): a pool that pings before use and recycles old connections, a short pool
timeout (a full pool answers 503 quickly instead of hanging), a statement timeout and a lock timeout
(a statement waiting for another transaction's row lock gives up: 503 too). SQLite's counterpart of the
lock timeout is its busy timeout (a writer waits that long for another writer's lock, then 503).

run_in_transaction(session, work): the reference API's writes, retried as a whole when PostgreSQL
aborts them for a serialization failure or a deadlock.
"""

import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from heroes.config import Settings, get_settings
from heroes.evidence import echo_statements, instrument
from heroes.problems import WriteConflict


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def create_db_engine(
    url: str | None = None,
    settings: Settings | None = None,
    *,
    search_path: str | None = None,
    application_name: str = "heroes",
    **overrides: Any,
) -> Engine:
    """An engine for `url` (default: the settings' DATABASE_URL), set up for its backend and instrumented.

    `search_path` (PostgreSQL): the schema unqualified names resolve to (the lessons' scratch schemas).
    `application_name` (PostgreSQL): how pg_stat_activity names its connections (a lesson's own engine
    has its own, so pg_terminate_backend can target only its connections).
    """
    settings = settings or get_settings()
    url = url or settings.database_url  # Settings normalised DATABASE_URL; other URLs come from engines
    pool = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
    }
    if is_sqlite(url):
        options: dict[str, Any] = {
            **({"poolclass": StaticPool} if _sqlite_in_memory(url) else pool),
            "connect_args": {"check_same_thread": False, "timeout": settings.sqlite_busy_timeout_ms / 1000},
        }
    else:
        options = {
            **pool,
            "pool_pre_ping": True,  # a connection the server dropped is replaced, not handed to a request
            "pool_recycle": settings.pool_recycle,
            "connect_args": {
                "application_name": application_name,
                "connect_timeout": 5,
                "options": f"-c statement_timeout={settings.statement_timeout_ms}"
                + f" -c lock_timeout={settings.lock_timeout_ms}"
                + (f" -c search_path={search_path}" if search_path else ""),
            },
        }
    options.update(overrides)
    engine = create_engine(url, **options)  # never echo=True: SQLAlchemy's echo logs the parameters too
    if is_sqlite(url):
        event.listen(engine, "connect", _sqlite_on_connect)
    if settings.echo_sql:
        echo_statements(engine)
    return instrument(engine) if settings.evidence else engine


def _sqlite_in_memory(url: str) -> bool:
    """`sqlite://`, `:memory:`, `mode=memory`: one database per connection, so every thread shares one."""
    parsed = make_url(url)
    return parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"


def _sqlite_on_connect(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # off by default, per connection: without it orphans are stored
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # SQLite's lower() folds ASCII only ('É' stays 'É'); Python's folds every letter, as PostgreSQL does
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def _lower(value: str | None) -> str | None:
    return value.lower() if isinstance(value, str) else value


def get_engine(request: Request) -> Engine:
    """The application's engine (made by create_app, one per app)."""
    return request.app.state.engine


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, always closed (returning its connection to the pool)."""
    with Session(request.app.state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
EngineDep = Annotated[Engine, Depends(get_engine)]

# ---- the reference API's writes: one unit of work, run again when the database aborts it ------------

logger = logging.getLogger("heroes")
T = TypeVar("T")

# PostgreSQL aborts one transaction of a conflicting pair; run again from the start, it usually goes through
RETRYABLE = {"40001": "serialization_failure", "40P01": "deadlock_detected"}
WRITE_ATTEMPTS = 3  # in total: the first try and 2 retries
BACKOFF_SECONDS = 0.02  # before retry n: up to 0.02 * 2**(n-1) s, jittered (0-20 ms, then 0-40 ms)


def retryable(exc: BaseException) -> bool:
    """A serialization failure or a deadlock: the transaction did nothing wrong, it lost a race."""
    return isinstance(exc, OperationalError) and getattr(exc.orig, "sqlstate", None) in RETRYABLE


def run_in_transaction(session: Session, work: Callable[[], T], *, attempts: int = WRITE_ATTEMPTS) -> T:
    """Run `work()` and commit, as one transaction; run both again if the database aborted it for a
    serialization failure or a deadlock, at most `attempts` times in all, then answer 503 (WriteConflict).

    `work` must be re-runnable: it reads what it needs itself (the rollback discards its changes and
    expires every loaded object). Any other error rolls back and propagates as it is.
    """
    for attempt in itertools.count(1):
        try:
            result = work()
            session.commit()
            return result
        except Exception as exc:
            session.rollback()
            if not retryable(exc):
                raise
            reason = RETRYABLE[exc.orig.sqlstate]  # type: ignore[attr-defined]
            if attempt >= attempts:
                logger.warning("write gave up after %d attempts: %s", attempts, reason)
                raise WriteConflict(attempts) from exc
            logger.info("write retried: %s (attempt %d of %d)", reason, attempt, attempts)
            time.sleep(random.uniform(0, BACKOFF_SECONDS * 2 ** (attempt - 1)))  # full jitter


def pool_status(engine: Engine) -> dict[str, Any]:
    """Pool statistics as JSON-able numbers (QueuePool) or the pool's own description."""
    pool = engine.pool
    stats: dict[str, Any] = {"class": type(pool).__name__}
    for name in ("size", "checkedin", "checkedout", "overflow"):
        method = getattr(pool, name, None)
        if callable(method):
            stats[name] = method()
    if "overflow" in stats:  # QueuePool counts up from -pool_size: report only connections beyond the pool
        stats["overflow"] = max(stats["overflow"], 0)
    stats["timeout"] = getattr(pool, "_timeout", None)
    return stats
