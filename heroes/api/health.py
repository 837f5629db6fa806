"""Health: `live` says the process answers; `ready` says the database answers, with pool statistics."""

from fastapi import APIRouter
from sqlalchemy import text

from heroes.db import EngineDep, pool_status
from heroes.migrate import current_revision, head_revision
from heroes.problems import RETRY_AFTER_SECONDS, Problem, problem_responses

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
def read_live() -> dict[str, str]:
    """The process is up (no database call)."""
    return {"status": "ok"}


@router.get("/ready", responses=problem_responses(503))
def read_ready(engine: EngineDep) -> dict:
    """The database answers and its schema is the one the code expects; pool statistics as JSON."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        revision = current_revision(connection)
    expected = head_revision()
    if revision != expected:
        raise Problem(
            503,
            f"The database schema is at {revision or 'nothing'}, the code expects {expected}: "
            "run `heroes db upgrade`.",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    return {
        "status": "ok",
        "database": {"backend": engine.dialect.name, "revision": revision},
        "pool": pool_status(engine),
    }
