"""PLACEHOLDER foreign-key (being written)

Symptom: -
Cause: -
Fix: -
"""

from fastapi import APIRouter

from heroes.lab import Call, LessonRoute

router = APIRouter(prefix="/lessons/foreign-key", tags=["lesson: foreign-key"], route_class=LessonRoute)
ENGINES = ("sqlite", "postgresql")
SIZE = None


def calls(size: int | None) -> list[Call]:
    return []
