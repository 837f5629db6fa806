"""The lessons, in curriculum order. Each module declares its `lesson` (heroes/lab/lesson.py has the
contract) and its router; adding a lesson is adding a module and one line in its track here."""

from heroes.lab import Lesson
from heroes.lessons import (
    already_attached,
    background_task_session,
    cascade_delete,
    column_defaults,
    commit_in_loop,
    concurrent_index,
    connection_leak,
    database_is_locked,
    detached_instance,
    drop_column,
    engine_per_request,
    foreign_key,
    isolation_level,
    load_only,
    lost_update,
    missing_index,
    n_plus_one,
    not_null_column,
    partial_update,
    pending_rollback,
    relationship_response,
    shared_session,
    soft_delete,
    sql_injection,
    stale_connection,
    stale_data,
    streaming_export,
    table_model_validation,
    transaction_boundary,
    unique_violation,
    upsert,
)

TRACKS: dict[str, tuple[Lesson, ...]] = {  # the curriculum's tracks, each in curriculum order
    "queries": (
        n_plus_one.lesson,
        detached_instance.lesson,
        unique_violation.lesson,
        foreign_key.lesson,
        streaming_export.lesson,
        load_only.lesson,
        missing_index.lesson,
        sql_injection.lesson,
    ),
    "sessions": (
        connection_leak.lesson,
        stale_connection.lesson,
        stale_data.lesson,
        pending_rollback.lesson,
        already_attached.lesson,
        shared_session.lesson,
        engine_per_request.lesson,
        background_task_session.lesson,
    ),
    "transactions": (
        commit_in_loop.lesson,
        lost_update.lesson,
        isolation_level.lesson,
        upsert.lesson,
        transaction_boundary.lesson,
        database_is_locked.lesson,
    ),
    "migrations": (
        not_null_column.lesson,
        concurrent_index.lesson,
        drop_column.lesson,
    ),
    "modelling": (
        cascade_delete.lesson,
        soft_delete.lesson,
        table_model_validation.lesson,
        relationship_response.lesson,
        column_defaults.lesson,
        partial_update.lesson,
    ),
}
LESSONS: tuple[Lesson, ...] = tuple(lesson for track in TRACKS.values() for lesson in track)
BY_SLUG: dict[str, Lesson] = {lesson.slug: lesson for lesson in LESSONS}
