"""PLACEHOLDER not-null-column (being written)

Symptom: -
Cause: -
Fix: -
"""

from fastapi import APIRouter

from heroes.lab import Call, LessonRoute

router = APIRouter(
    prefix="/lessons/not-null-column", tags=["lesson: not-null-column"], route_class=LessonRoute
)
ENGINES = ("sqlite", "postgresql")
SIZE = None


def calls(size: int | None) -> list[Call]:
    return []
