"""Helpers the test modules share: the problem+json assertion, and a deterministic race."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, event

from heroes.problems import PROBLEM_JSON


def assert_problem(response, status: int, field: str | None = None, location: str | None = None) -> dict:
    """An RFC 9457 problem with this status, naming `field` first when given; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"] and body["detail"]
    assert body["instance"] == response.request.url.path
    if field is not None:
        assert body["errors"][0]["field"] == field, body
        assert set(body["errors"][0]) == {"field", "location", "message", "type"}
    if location is not None:
        assert body["errors"][0]["location"] == location, body
    return body


@contextmanager
def once_after(engine: Engine, fragment: str, action: Callable[[Connection], None]) -> Iterator[None]:
    """Run `action` in its own committed transaction right after the first statement containing `fragment`.

    That is "another client wrote between this request's check and its write", made deterministic.
    """
    done = []

    def after(conn, cursor, statement, parameters, context, executemany) -> None:
        if not done and fragment in statement:
            done.append(statement)
            with engine.begin() as other:
                action(other)

    event.listen(engine, "after_cursor_execute", after)
    try:
        yield
    finally:
        event.remove(engine, "after_cursor_execute", after)
    assert done, f"no statement contained {fragment!r}"
