"""The catalogue: what GET /lessons says of each lesson, the ready curl and HTTPie commands, and the
examples /docs shows (the request compare makes, so Try-it-out reproduces the symptom)."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel

from heroes.lab.lesson import SECTIONS, Call, Lesson


class LessonRouteInfo(BaseModel):
    method: str
    path: str
    variant: str
    summary: str
    curl: str
    httpie: str


class SizeInfo(BaseModel):
    param: str
    meaning: str
    maximum: int
    demo: list[int]
    default: int | None


class LessonInfo(BaseModel):
    slug: str
    title: str
    symptom: str
    cause: str
    fix: str
    myth: str | None
    more: dict[str, str]
    engines: list[str]
    size: SizeInfo | None
    routes: list[LessonRouteInfo]
    compare: str
    reset: str
    page: str
    cli: str


def call_for(route: APIRoute, method: str, calls: Iterable[Call]) -> Call | None:
    """The request compare makes to this route, if it makes one."""
    return next((c for c in calls if c.method == method and route.path_regex.match(c.path)), None)


def examples(lesson: Lesson, base_url: str) -> Iterator[tuple[APIRoute, str, str, str]]:
    """(route, method, curl, HTTPie) for every route of the lesson, with compare's request as the example."""
    calls = lesson.calls(None)
    base = base_url.rstrip("/")
    host = re.sub(r"^https?://(127\.0\.0\.1|localhost)", "", base)  # HTTPie: `:8000` means localhost
    for route in lesson.routes:
        for method in sorted(route.methods):
            call = call_for(route, method, calls)
            path = call.path if call is not None else route.path  # `/bad/teams/1`, not `{team_id}`
            curl = f"curl -i {'' if method == 'GET' else f'-X {method} '}{base}{path}"
            httpie = f"http {'' if method == 'GET' else f'{method} '}{host}{path}"
            if call is not None and call.json is not None:
                body = shlex.quote(json.dumps(call.json))
                curl += f" -H 'Content-Type: application/json' -d {body}"
                if not isinstance(call.json, dict):  # a list: HTTPie sends it as it is
                    httpie = f"http --raw {body} {httpie.removeprefix('http ')}"
                    yield route, method, curl, httpie
                    continue
                for key, value in call.json.items():  # key=value is a JSON string, key:=value raw JSON
                    item = f"{key}={value}" if isinstance(value, str) else f"{key}:={json.dumps(value)}"
                    httpie += f" {shlex.quote(item)}"
            yield route, method, curl, httpie


def describe(lesson: Lesson, base_url: str) -> LessonInfo:
    text = dict(lesson.text)
    symptom, cause, fix = (text.pop(section) for section in SECTIONS)
    myth = text.pop("Myth", None)
    size = lesson.size
    return LessonInfo(
        slug=lesson.slug,
        title=lesson.title,
        symptom=symptom,
        cause=cause,
        fix=fix,
        myth=myth,
        more=text,
        engines=list(lesson.engines),
        size=SizeInfo(
            param=size.param,
            meaning=size.meaning,
            maximum=size.maximum,
            demo=list(size.demo),
            default=size.default,
        )
        if size
        else None,  # fmt: skip
        routes=[
            LessonRouteInfo(
                method=method,
                path=route.path,
                variant=route.variant,
                summary=route.summary or "",
                curl=curl,
                httpie=httpie,
            )
            for route, method, curl, httpie in examples(lesson, base_url)
        ],
        compare=f"{lesson.prefix}/compare",
        reset=f"{lesson.prefix}/reset",
        page=f"/lab/{lesson.slug}",
        cli=f"heroes lesson {lesson.slug}" + (f" --size {size.demo[0]}" if size and size.demo else ""),
    )


def document_examples(schema: dict[str, Any], lessons: Iterable[Lesson]) -> dict[str, Any]:
    """In the OpenAPI schema: each lesson route's request example is the one compare makes.

    Try-it-out in /docs then sends the request that shows the symptom (a name that is taken, a team
    that does not exist), not random characters.
    """
    for lesson in lessons:
        calls = lesson.calls(None)
        for route in lesson.routes:
            for method in route.methods:
                call = call_for(route, method, calls)
                operation = schema["paths"].get(route.path, {}).get(method.lower())
                if call is None or operation is None:
                    continue
                if call.json is not None and "requestBody" in operation:
                    for content in operation["requestBody"]["content"].values():
                        content["example"] = call.json
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "query" and parameter["name"] in call.params:
                        parameter["example"] = call.params[parameter["name"]]
                    if parameter["in"] == "path":
                        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", route.path)
                        found = re.fullmatch(pattern, call.path)
                        if found and parameter["name"] in found.groupdict():
                            value = found[parameter["name"]]
                            parameter["example"] = int(value) if value.isdigit() else value
    return schema
