"""The catalogue (GET /lessons), `compare`, and resetting a lesson's data."""

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from heroes.lab import Lesson
from heroes.lab.catalogue import LessonInfo, describe
from heroes.lab.compare import Comparison, compare
from heroes.lessons import BY_SLUG, LESSONS
from heroes.problems import Problem, problem_responses

router = APIRouter(prefix="/lessons", tags=["lessons"])

Slug = Annotated[
    str,
    Path(
        max_length=50,
        description="A lesson's slug (GET /lessons lists them).",
        json_schema_extra={"enum": list(BY_SLUG)},
    ),
]


class ResetReport(BaseModel):
    lessons: list[str]
    dropped: list[str]  # scratch databases dropped; each is rebuilt from its starting data on next use


def find(slug: str) -> Lesson:
    lesson = BY_SLUG.get(slug)
    if lesson is None:
        raise Problem(404, f"No lesson {slug!r}. The lessons are: {', '.join(BY_SLUG)}.")
    return lesson


def reset_lessons(request: Request, lessons: list[Lesson]) -> ResetReport:
    lab = request.app.state.lab
    dropped = []
    for lesson in lessons:
        lesson.reset(lab)  # what the lesson keeps besides its scratch data (leaked sessions, say)
        dropped += lab.drop(lesson.name)
    return ResetReport(lessons=[lesson.slug for lesson in lessons], dropped=dropped)


@router.get("", response_model=list[LessonInfo])
def read_lessons(request: Request) -> list[LessonInfo]:
    """Every lesson, in curriculum order: its text, engines, routes and ready commands."""
    return [describe(lesson, str(request.base_url)) for lesson in LESSONS]


@router.post("/reset", response_model=ResetReport)
async def reset_all(request: Request) -> ResetReport:
    """Every lesson back to its starting data: the scratch databases go, and are rebuilt on next use."""
    return await to_thread.run_sync(reset_lessons, request, list(LESSONS))


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


@router.post("/{slug}/reset", response_model=ResetReport, responses=problem_responses(404, 422))
async def reset_lesson(slug: Slug, request: Request) -> ResetReport:
    """The lesson back to its starting data (what its bad routes changed is gone)."""
    return await to_thread.run_sync(reset_lessons, request, [find(slug)])
