"""A lesson's proof that a route is fixed, written once and used twice.

Each lesson with an exercise defines, in its module:

    async def check(probe: Probe) -> None:
        answer = await probe.call(params={"teams": 10})
        probe.expect("statements at 10 teams", answer.statements <= 3, f"{answer.statements}, ...")

The test suite runs it against the lesson's `fixed` route (it must pass) and its `bad` route (it must
fail); the workshop runs it against the learner's `mine` route. The probe serves the route under test
in-process through the whole app (heroes.lab.asgi), on the lesson's data, counting every statement the
request causes; a check also runs it on data the learner never sees (another size, other names), so
a route that returns a memorised answer fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, event

from heroes.evidence import peak_memory, request_log
from heroes.lab.asgi import serve
from heroes.lab.compare import check as refuse
from heroes.lab.lesson import Lesson


class Criterion(BaseModel):
    name: str  # what is checked: "statements at 10 teams"
    passed: bool
    evidence: str  # what was seen: "1001 statements; the fixed route needs at most 3"


class CheckResult(BaseModel):
    lesson: str
    variant: str  # the route checked: "fixed", "bad", "mine"
    engine: str
    criteria: list[Criterion]
    error: str | None = None  # the check could not run the route (the learner's file does not load, say)

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.criteria) and all(c.passed for c in self.criteria)


@dataclass
class Answer:
    """What the route under test answered, and what it cost."""

    status: int
    json: Any
    headers: dict[str, str]
    statements: int
    sql: list[tuple[str, int]]
    body_bytes: int
    sha256: str
    peak_bytes: int | None = None

    @property
    def outcome(self) -> str:
        line = f"{self.status} {HTTPStatus(self.status).phrase}"
        if self.status >= 400 and isinstance(self.json, dict) and self.json.get("detail"):
            line += f": {self.json['detail']}"
        return line

    def field(self) -> str | None:
        """The field a problem names first, if any."""
        errors = self.json.get("errors") if isinstance(self.json, dict) else None
        return errors[0]["field"] if errors else None


@dataclass
class Probe:
    """The route under test (`variant` of `lesson`), in-process through `app`."""

    app: Any
    lesson: Lesson
    variant: str
    method: str
    criteria: list[Criterion] = field(default_factory=list)

    @property
    def lab(self):
        return self.app.state.lab

    @property
    def engine(self) -> Engine:
        """The reference API's engine (the demo data)."""
        return self.app.state.engine

    @property
    def path(self) -> str:
        return f"{self.lesson.prefix}/{self.variant}"

    def expect(self, name: str, passed: bool, evidence: str) -> bool:
        self.criteria.append(Criterion(name=name, passed=bool(passed), evidence=evidence))
        return bool(passed)

    async def call(
        self, *, params: dict[str, Any] | None = None, json: Any = None, memory: bool = False
    ) -> Answer:
        """One request to the route under test; with `memory`, a second, traced run measures its peak."""
        digest = hashlib.sha256()
        with request_log(keep_statements=False, keep_shapes=True) as log:
            response = await serve(
                self.app, self.method, self.path, params=params, json=json, on_chunk=digest.update
            )
        peak = None
        if memory:  # a second run, traced
            with peak_memory() as traced:
                await serve(self.app, self.method, self.path, params=params, json=json, keep=0)
            peak = traced.bytes
        return Answer(
            status=response.status,
            json=response.json(),
            headers=response.headers,
            statements=log.count,
            sql=log.grouped(),
            body_bytes=response.body_bytes,
            sha256=digest.hexdigest(),
            peak_bytes=peak,
        )

    async def race(self, clients: int, *, json: Any = None, params: dict[str, Any] | None = None) -> Counter:
        """`clients` identical requests at once; the statuses they got."""
        calls = (serve(self.app, self.method, self.path, params=params, json=json) for _ in range(clients))
        return Counter(response.status for response in await asyncio.gather(*calls))


@contextmanager
def all_reach(engine: Engine, fragment: str, parties: int, timeout: float = 10.0) -> Iterator[list[str]]:
    """Hold each statement containing `fragment` on `engine` until `parties` of them wait (an interleaving).

    Every client of a race has then done whatever it does before its write (a check, say) before any of
    them writes, so a race that can happen happens on every run. A client that never gets there (it
    answered early) breaks the barrier after `timeout` and the others go on. Yields the statements held.
    """
    barrier = threading.Barrier(parties, timeout=timeout)
    held: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        if fragment in statement:
            held.append(statement)
            with suppress(threading.BrokenBarrierError):
                barrier.wait()

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield held
    finally:
        event.remove(engine, "before_cursor_execute", before)


@contextmanager
def before_first(engine: Engine, fragment: str, action) -> Iterator[list[str]]:
    """Run `action(connection)` in a committed transaction of its own right before the first statement
    containing `fragment` on `engine`: "another client wrote just before this one", on every run."""
    done: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        if not done and fragment in statement:
            done.append(statement)
            with engine.begin() as other:
                action(other)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield done
    finally:
        event.remove(engine, "before_cursor_execute", before)


def exercise_route(lesson: Lesson):
    """The route a learner starts from: the lesson's `bad`."""
    return next(route for route in lesson.routes if route.variant == "bad")


async def run_check(app, lesson: Lesson, variant: str) -> CheckResult:
    """Run the lesson's check against one of its routes: `fixed`, `bad`, or the learner's `mine`."""
    check = getattr(lesson.module, "check", None)
    if check is None:
        raise ValueError(f"the lesson {lesson.slug} has no exercise: {lesson.module.NO_EXERCISE}")
    refuse(app, lesson, None)  # the evidence recorder on, the right engine
    method = sorted(exercise_route(lesson).methods)[0]
    probe = Probe(app, lesson, variant, method)
    engine = "sqlite" if app.state.engine.dialect.name == "sqlite" else "postgresql"
    error = None
    if variant == "mine":
        from heroes.lab import workshop

        error = workshop.refresh(app, lesson)
    if error is None:
        await check(probe)
    criteria = probe.criteria
    return CheckResult(lesson=lesson.slug, variant=variant, engine=engine, criteria=criteria, error=error)
