"""Concurrent clients in threads of their own, their locking statements forced into step.

    results = in_step(engine, "FOR UPDATE", transfer, [a_to_b, b_to_a])
    retries = retried(transfer_once, attempts=3)         # a deadlock's victim, run again (jittered)
    answer = meanwhile(0.5, deposit)                       # slow work while another client writes

Each call runs in its own thread (its own session, its own connection); each thread's first `rounds`
statements containing `fragment` wait until every thread reaches the same one, so every client takes
its first lock before any takes its second: a deadlock that can happen happens on every run. A thread
that never gets there (it finished, or waits on a lock) breaks the barrier after `timeout`.
`retried` runs a transaction again when PostgreSQL aborted it for a deadlock or a serialization
failure; `meanwhile` is slow work during which another client acts; `on_every_connection` sets a
lesson's own engine up (lock_timeout, deadlock_timeout).
"""

import random
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError


def in_step(
    engine: Engine, fragment: str, function: Callable[[Any], Any], items: list, rounds: int = 2, timeout=2.0
) -> list:
    """`function(item)` for every item at once; each call's result, or the exception it raised."""
    barriers = [threading.Barrier(len(items), timeout=timeout) for _ in range(rounds)]
    mine = threading.local()  # only this call's threads are held, whatever else runs on the engine

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        step = getattr(mine, "step", None)
        if step is not None and step < rounds and fragment in statement:
            mine.step = step + 1
            with suppress(threading.BrokenBarrierError):
                barriers[step].wait()

    def run(item):
        mine.step = 0
        try:
            return function(item)
        except Exception as exc:  # the caller decides what each failure means
            return exc

    event.listen(engine, "before_cursor_execute", before)
    try:
        with ThreadPoolExecutor(len(items)) as pool:
            return list(pool.map(run, items))
    finally:
        event.remove(engine, "before_cursor_execute", before)


RETRYABLE = {"40P01", "40001"}  # deadlock_detected, serialization_failure: the transaction lost a race


def sqlstate(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def retried(function: Callable[[], Any], attempts: int = 3, codes=RETRYABLE) -> int:
    """Call `function()` (a whole transaction) again while the database aborts it with one of `codes`, at
    most `attempts` times in all, a jittered pause before each retry; how many retries it took."""
    for attempt in range(attempts):
        try:
            function()
            return attempt
        except Exception as exc:
            if sqlstate(exc) not in codes or attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.01, 0.05) * 2**attempt)  # jitter: the two do not collide again
    raise AssertionError("unreachable")


def meanwhile(seconds: float, function: Callable[[], Any], timeout: float = 5.0) -> tuple[Any, int]:
    """Slow work (a sleep standing in for an HTTP call of `seconds`) while `function()` runs in another
    thread, as another client would: its result or exception (None if not done within `timeout`), and
    how many ms it took."""
    result: list = []

    def other() -> None:
        start = time.monotonic()
        try:
            result.append(function())
        except Exception as exc:  # the caller decides what it means (described() says it)
            result.append(exc)
        result.append(round((time.monotonic() - start) * 1000))

    thread = threading.Thread(target=other)
    thread.start()
    time.sleep(seconds)
    thread.join(timeout=timeout)
    return (result[0], result[1]) if len(result) == 2 else (None, round(timeout * 1000))


def described(result: Any) -> str:
    """What became of one client of in_step: "done", "done after 1 retries", "DeadlockDetected (40P01)";
    an error other than the database's is raised again."""
    if isinstance(result, DBAPIError):
        return f"{type(result.orig).__name__} ({sqlstate(result)})"
    if isinstance(result, Exception):
        raise result
    return f"done after {result} retries" if result else "done"


def on_every_connection(engine: Engine, sql: str) -> Engine:
    """Run `sql` (session settings: `SET lock_timeout = '300ms'`) on every new connection of `engine`."""

    def connect(dbapi_connection, record) -> None:
        dbapi_connection.execute(sql)
        dbapi_connection.commit()  # a SET inside a transaction rolled back would be undone

    with _lock:
        if engine not in _set_up:
            _set_up.add(engine)
            event.listen(engine, "connect", connect)
    return engine


_set_up: weakref.WeakSet = weakref.WeakSet()
_lock = threading.Lock()
