"""PLACEHOLDER concurrent-index (being written)

Symptom: -
Cause: -
Fix: -
"""

from fastapi import APIRouter

from heroes.lab import Call, LessonRoute

router = APIRouter(
    prefix="/lessons/concurrent-index", tags=["lesson: concurrent-index"], route_class=LessonRoute
)
ENGINES = ("sqlite", "postgresql")
SIZE = None


def calls(size: int | None) -> list[Call]:
    return []
