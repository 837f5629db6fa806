"""Helpers the test modules share: the problem+json assertion, deterministic races, reading rows back."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event, pool, text

from heroes.lab.check import before_first
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


@contextmanager
def once_before(engine: Engine, fragment: str, action: Callable[[Connection], None]) -> Iterator[None]:
    """support.once_after's twin: `action` commits right *before* the first statement containing `fragment`.

    The fixed route runs no SELECT before its INSERT, so "another client wrote first" goes here. It is
    heroes.lab.check.before_first (what the workshop checks use), asserting that it happened.
    """
    with before_first(engine, fragment, action) as done:
        yield
    assert done, f"no statement contained {fragment!r}"


def rows(url: str, sql: str) -> list[tuple]:
    """Every row `sql` returns from the database at `url`, through a connection of its own."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def scratch_rows(app, name: str, sql: str) -> list[tuple]:
    """Every row `sql` returns from a lesson's scratch database (the one its route built, cached)."""
    with app.state.lab.engine(name).connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def report(response) -> dict:
    """A migration lesson's 200 report."""
    assert response.status_code == 200, response.text
    return response.json()
