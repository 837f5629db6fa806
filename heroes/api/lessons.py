"""The catalogue: every lesson's text, its routes with ready curl and HTTPie commands, and `compare`."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from heroes.lab import Comparison, Lesson, compare, examples
from heroes.lessons import BY_SLUG, LESSONS
from heroes.problems import Problem, problem_responses

router = APIRouter(prefix="/lessons", tags=["lessons"])

Slug = Annotated[str, Path(max_length=50, description="A lesson's slug, e.g. n-plus-one.")]


class LessonRouteInfo(BaseModel):
    method: str
    path: str
    summary: str
    curl: str
    httpie: str


class SizeInfo(BaseModel):
    param: str
    meaning: str
    maximum: int
    demo: list[int]


class LessonInfo(BaseModel):
    slug: str
    title: str
    symptom: str
    cause: str
    fix: str
    more: dict[str, str]
    engines: list[str]
    size: SizeInfo | None
    routes: list[LessonRouteInfo]
    compare: str
    cli: str


def describe(lesson: Lesson, base_url: str) -> LessonInfo:
    text = dict(lesson.text)
    size = lesson.size
    return LessonInfo(
        slug=lesson.slug,
        title=lesson.title,
        symptom=text.pop("Symptom"),
        cause=text.pop("Cause"),
        fix=text.pop("Fix"),
        more=text,
        engines=list(lesson.engines),
        size=SizeInfo(param=size.param, meaning=size.meaning, maximum=size.maximum, demo=list(size.demo))
        if size
        else None,
        routes=[
            LessonRouteInfo(
                method=method,
                path=route.path,
                summary=(route.description or route.summary or "").strip().split("\n")[0],
                curl=curl,
                httpie=httpie,
            )
            for route, method, curl, httpie in examples(lesson, base_url)
        ],
        compare=f"/lessons/{lesson.slug}/compare",
        cli=f"heroes lesson {lesson.slug}" + (f" --size {size.demo[0]}" if size and size.demo else ""),
    )


def find(slug: str) -> Lesson:
    lesson = BY_SLUG.get(slug)
    if lesson is None:
        raise Problem(404, f"No lesson {slug!r}. The lessons are: {', '.join(BY_SLUG)}.")
    return lesson


@router.get("", response_model=list[LessonInfo])
def read_lessons(request: Request) -> list[LessonInfo]:
    """Every lesson, in curriculum order: its text, engines, routes and ready commands."""
    return [describe(lesson, str(request.base_url)) for lesson in LESSONS]


@router.get("/{slug}", response_model=LessonInfo, responses=problem_responses(404, 422))
def read_lesson(slug: Slug, request: Request) -> LessonInfo:
    """One lesson: its text, engines, routes and ready commands."""
    return describe(find(slug), str(request.base_url))


@router.get("/{slug}/compare", response_model=Comparison, responses=problem_responses(404, 409, 422))
async def compare_lesson(
    slug: Slug,
    request: Request,
    size: Annotated[int | None, Query(ge=1, le=10_000_000, description="The lesson's size knob.")] = None,
) -> Comparison:
    """Run the lesson's bad and fixed routes on the same data, side by side: outcome, statements, times."""
    return await compare(request.app, find(slug), size)
