"""compare: a lesson's variants served in-process, one after another, bad first, and reported side by side.

For each variant: the outcome (status and error), the statements it caused on any engine (a streamed
body's too, and those on scratch engines), grouped by shape with a count (SQL text only, never its
parameters), database time, wall time and, where memory is the point, a tracemalloc peak from a
second run.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from http import HTTPStatus
from urllib.parse import urlencode

import anyio
from pydantic import BaseModel, Field

from heroes.db import is_sqlite
from heroes.evidence import peak_memory, request_log
from heroes.lab.asgi import InProcessResponse, serve
from heroes.lab.lesson import Call, Lesson
from heroes.lab.routes import POSTGRES_HINT
from heroes.problems import Problem


class StatementGroup(BaseModel):
    sql: str = Field(description="The statement's text, placeholders as `?` (never its parameters).")
    count: int = Field(description="How many times a statement of this shape ran.")


class VariantResult(BaseModel):
    variant: str
    request: str  # "GET /lessons/n-plus-one/bad?teams=100"
    clients: int
    outcome: str
    statuses: dict[str, int]
    statements: int
    sql: list[StatementGroup] = Field(description="The statements, grouped by shape, most frequent first.")
    other_statements: int = Field(0, description="Statements of shapes beyond the first 40 kept.")
    db_ms: float = Field(
        description="Time in the database, summed over every statement: with concurrent clients it can "
        "exceed wall_ms, as their statements overlap."
    )
    wall_ms: float
    peak_memory_bytes: int | None = None
    body_bytes: int


class Comparison(BaseModel):
    lesson: str
    title: str
    engine: str
    size: int | None = Field(description="The size knob used; null: the demo data.")
    size_meaning: str | None
    variants: list[VariantResult]


def _outcome(call: Call, responses: list[InProcessResponse]) -> str:
    if call.summary_all is not None:
        return call.summary_all([(r.status, r.json()) for r in responses])
    if len(responses) > 1:
        counts = Counter(r.status for r in responses)
        return ", ".join(f"{n}× {status}" for status, n in sorted(counts.items()))
    response = responses[0]
    body = response.json()
    if call.summary is not None:
        return call.summary(response.status, body)
    line = f"{response.status} {HTTPStatus(response.status).phrase}"
    if response.status >= 400 and isinstance(body, dict) and body.get("detail"):
        line += f": {body['detail']}"
    return line


async def _serve_all(app, call: Call) -> list[InProcessResponse]:
    one = {"params": call.params, "json": call.json}
    if call.sequential:
        return [await serve(app, call.method, call.path, **one) for _ in range(call.clients)]
    return await asyncio.gather(*(serve(app, call.method, call.path, **one) for _ in range(call.clients)))


async def run_call(app, call: Call) -> VariantResult:
    """Serve `call` (its `clients` copies at once), recording every statement it causes on any engine."""
    started = time.perf_counter()
    race = call.race(app) if call.race is not None else nullcontext()
    with request_log(keep_statements=False, keep_shapes=True) as log, race:
        responses = await _serve_all(app, call)
    wall = time.perf_counter() - started
    peak = None
    if call.memory:  # a second run, traced: tracemalloc slows Python down, so it is not timed
        with peak_memory() as traced:
            await _serve_all(app, call)
        peak = traced.bytes
    query = f"?{urlencode(call.params)}" if call.params else ""
    return VariantResult(
        variant=call.variant,
        request=f"{call.method} {call.path}{query}",
        clients=call.clients,
        outcome=_outcome(call, responses),
        statuses=dict(Counter(str(r.status) for r in responses)),
        statements=log.count,
        sql=[StatementGroup(sql=sql, count=count) for sql, count in log.grouped()],
        other_statements=log.other_statements,
        db_ms=round(log.db_seconds * 1000, 2),
        wall_ms=round(wall * 1000, 2),
        peak_memory_bytes=peak,
        body_bytes=sum(r.body_bytes for r in responses),
    )


def mine(app, lesson: Lesson, size: int | None) -> list[Call]:
    """The learner's route (workshop mode), beside bad and fixed, when their file exists and loads."""
    from heroes.lab import workshop

    if not workshop.has_exercise(lesson) or not workshop.path(lesson, workshop.folder(app)).exists():
        return []
    bad = next(call for call in lesson.calls(size) if call.variant == "bad")
    return [replace(bad, variant="mine", path=bad.path.removesuffix("/bad") + "/mine")]


def engine_name(app) -> str:
    return "sqlite" if is_sqlite(app.state.engine) else "postgresql"


def check(app, lesson: Lesson, size: int | None) -> None:
    """What compare refuses, before it builds anything: no recorder, a wrong engine, a size out of range."""
    if not app.state.settings.evidence:
        raise Problem(409, "compare counts statements with the evidence recorder: set HEROES_EVIDENCE=true.")
    engine = engine_name(app)
    if engine not in lesson.engines:
        raise Problem(
            409,
            f"The lesson {lesson.slug} runs on {', '.join(lesson.engines)}; this lab runs on {engine}. "
            + POSTGRES_HINT.format(slug=lesson.slug),
            type=lesson.type,
        )
    if size is not None and lesson.size is None:
        raise Problem(422, f"The lesson {lesson.slug} has no size to change.", field="size", location="query")
    if size is not None and not 1 <= size <= lesson.size.maximum:
        raise Problem(
            422,
            f"size must be 1 to {lesson.size.maximum} ({lesson.size.meaning}).",
            field="size",
            location="query",
        )


async def compare(
    app, lesson: Lesson, size: int | None = None, progress: Callable[[str], None] | None = None
) -> Comparison:
    """Run the lesson's calls one after another, bad first, and report them side by side.

    `progress` hears what is happening ("building the scratch data", "bad", "fixed", ...).
    """
    check(app, lesson, size)
    say = progress or (lambda step: None)
    say("building the scratch data")
    # the scratch data first, so no variant's timing includes building it
    await anyio.to_thread.run_sync(lesson.prepare, app.state.lab, size)
    results = []
    for call in lesson.calls(size) + mine(app, lesson, size):
        say(call.variant)
        results.append(await run_call(app, call))
    return Comparison(
        lesson=lesson.slug,
        title=lesson.title,
        engine=engine_name(app),
        size=size if size is not None else lesson.size.default if lesson.size else None,
        size_meaning=lesson.size.meaning if lesson.size else None,
        variants=results,
    )
