"""The lessons, in curriculum order. Each module's docstring is its text and its router its routes
(the contract is in heroes/lab.py); adding a lesson is adding a module here."""

from heroes.lab import Lesson, lesson_from
from heroes.lessons import (
    concurrent_index,
    detached_instance,
    drop_column,
    foreign_key,
    n_plus_one,
    not_null_column,
    streaming_export,
    unique_violation,
)

LESSONS: tuple[Lesson, ...] = tuple(
    lesson_from(module)
    for module in (
        n_plus_one,
        detached_instance,
        unique_violation,
        foreign_key,
        streaming_export,
        not_null_column,
        concurrent_index,
        drop_column,
    )
)
BY_SLUG: dict[str, Lesson] = {lesson.slug: lesson for lesson in LESSONS}
