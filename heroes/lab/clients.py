"""Concurrent clients for the transaction lessons: threads with their own sessions, the race forced.

    results = read_then_write(engine, 20, work)          # work(session, i): no write before every read
    results = in_step(engine, "FOR UPDATE", move, items)  # every client's first lock before any second
    retries = retried(transaction, attempts=3)            # a deadlock's victim, run again (jittered)
    answer, ms = meanwhile(0.5, deposit)                  # slow work while another client writes

Each client is a thread of its own (its own Session, so its own connection and transaction) running in
a copy of the request's context, so its statements are the request's evidence. The interleavings the
lessons show are forced on every run, never left to timing:
- `read_then_write` (lost-update, isolation-level): a client's first write (INSERT, UPDATE or DELETE)
  waits until every client has arrived, so whatever a client reads before it writes, every other
  client has read too. A client arrives at its first write, at a locking read (`FOR UPDATE`, SQLite's
  `BEGIN IMMEDIATE`: it may wait in the database for another's lock, so nobody waits for it), or when
  it ends.
- `in_step` (deadlock): each client's first `rounds` statements containing a fragment wait for every
  client to reach the same one.
Every wait is bounded (`timeout`); threads of anything else on the engine are never held.
"""

import contextvars
import random
import threading
import time
import warnings
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any

from sqlalchemy import Engine, MetaData, event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlmodel import Session

from heroes.db import BACKOFF_SECONDS, retryable
from heroes.evidence import not_recorded
from heroes.lab.scratch import create_lesson_tables
from heroes.problems import safe_message

LOCKS = ("FOR UPDATE", "BEGIN IMMEDIATE")
WRITES = ("INSERT", "UPDATE", "DELETE")
_local = threading.local()  # the race a client's thread is in


def _each_client(clients: int, run: Callable[[int], Any]) -> list[Any]:
    """`run(i)` for i in range(clients), each in a thread of its own in a copy of the caller's context (its
    statements count in the request's evidence); each result, or the exception it raised, in order."""

    def guarded(i: int) -> Any:
        try:
            return run(i)
        except Exception as exc:  # the caller decides what each failure means
            return exc

    contexts = [contextvars.copy_context() for _ in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda i: contexts[i].run(guarded, i), range(clients)))


class _Race:
    def __init__(self, clients: int, timeout: float) -> None:
        self.clients, self.timeout, self.arrived = clients, timeout, set()
        self.lock, self.ready = threading.Lock(), threading.Event()

    def arrive(self) -> None:
        with self.lock:
            self.arrived.add(threading.get_ident())
            if len(self.arrived) >= self.clients:
                self.ready.set()


def _hold(conn, cursor, statement: str, parameters, context, executemany) -> None:
    race = getattr(_local, "race", None)
    if race is None:
        return
    if any(lock in statement for lock in LOCKS):
        race.arrive()  # a locking read: it may wait in the database, so it counts as arrived now
    elif statement.lstrip().upper().startswith(WRITES):
        race.arrive()
        race.ready.wait(race.timeout)  # every client has read what it reads before it writes


def read_then_write(
    engine: Engine, clients: int, work: Callable[[Session, int], Any], timeout: float = 10.0
) -> tuple[list[Any], int]:
    """`work(session, i)` in `clients` threads at once, each its own Session, no write before every client
    has read: what each call returned, or the exception it raised, in order, and the retries the clients
    counted in `session.info["retries"]`."""
    if not event.contains(engine, "before_cursor_execute", _hold):
        event.listen(engine, "before_cursor_execute", _hold, insert=True)  # before the statement timers
    race, retries = _Race(clients, timeout), []

    def client(i: int) -> Any:
        _local.race = race
        try:
            with Session(engine, info={"retries": 0}) as session:
                try:
                    return work(session, i)
                finally:
                    retries.append(session.info["retries"])
        finally:
            _local.race = None
            race.arrive()  # done, or failed: nobody waits for it

    return _each_client(clients, client), sum(retries)


def in_step(
    engine: Engine, fragment: str, function: Callable[[Any], Any], items: list, rounds: int = 2, timeout=2.0
) -> list:
    """`function(item)` for every item at once, each call's first `rounds` statements containing
    `fragment` in step; each call's result, or the exception it raised."""
    barriers = [threading.Barrier(len(items), timeout=timeout) for _ in range(rounds)]
    mine = threading.local()  # only this call's threads are held, whatever else runs on the engine

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        step = getattr(mine, "step", None)
        if step is not None and step < rounds and fragment in statement:
            mine.step = step + 1
            with suppress(threading.BrokenBarrierError):
                barriers[step].wait()

    def run(i: int) -> Any:
        mine.step = 0
        return function(items[i])

    event.listen(engine, "before_cursor_execute", before)
    try:
        return _each_client(len(items), run)
    finally:
        event.remove(engine, "before_cursor_execute", before)


def sqlstate(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def retried(function: Callable[[], Any], attempts: int = 3) -> int:
    """Call `function()` (a whole transaction) again while the database aborts it for a deadlock or a
    serialization failure, at most `attempts` times in all, with the reference API's jittered backoff
    (`heroes.db.run_in_transaction`); how many retries it took."""
    for attempt in range(1, attempts + 1):
        try:
            function()
            return attempt - 1
        except Exception as exc:
            if not retryable(exc) or attempt == attempts:
                raise
            time.sleep(random.uniform(0, BACKOFF_SECONDS * 2 ** (attempt - 1)))  # full jitter
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

    thread = threading.Thread(target=contextvars.copy_context().run, args=(other,))
    thread.start()
    time.sleep(seconds)
    thread.join(timeout=timeout)
    return (result[0], result[1]) if len(result) == 2 else (None, round(timeout * 1000))


def described(result: Any) -> str:
    """What became of one client: "done", "done after 1 retries", "DeadlockDetected (40P01)"; an error
    other than the database's is raised again."""
    if isinstance(result, DBAPIError):
        return f"{type(result.orig).__name__} ({sqlstate(result)})"
    if isinstance(result, Exception):
        raise result
    return f"done after {result} retries" if result else "done"


def as_outcome(result: Any) -> Any:
    """A client's result as it is, a database error as "IntegrityError: <its safe message>"; any other
    exception (a bug, not the race) raised again."""
    if isinstance(result, SQLAlchemyError):
        return f"{type(result).__name__}: {safe_message(result)}"
    if isinstance(result, Exception):
        raise result
    return result


_warnings = threading.Lock()  # the warning filters are the process's: one client changes them at a time


@contextmanager
def warned(messages: set[str]) -> Iterator[None]:
    """Keep what is warned inside `with warned(messages):` as evidence, instead of a line on stderr."""
    with _warnings, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield
    messages.update(str(warning.message) for warning in seen)


# ---- the lessons' own engines ---------------------------------------------------------------------

WAIT = 20  # seconds a client of race_engine may wait for a lock, on either engine
_set_up: weakref.WeakSet = weakref.WeakSet()
_set_up_lock = threading.Lock()


def on_every_connection(engine: Engine, sql: str) -> Engine:
    """Run `sql` (session settings: `SET lock_timeout = '300ms'`) on every new connection of `engine`."""

    def connect(dbapi_connection, record) -> None:
        dbapi_connection.execute(sql)
        dbapi_connection.commit()  # a SET inside a transaction rolled back would be undone

    with _set_up_lock:
        if engine not in _set_up:
            _set_up.add(engine)
            event.listen(engine, "connect", connect)
    return engine


def _create(metadata: MetaData, engine: Engine) -> None:
    with engine.begin() as connection:  # plain DDL in the scratch database only
        create_lesson_tables(connection, metadata)


def race_engine(lab, name: str, metadata: MetaData) -> Engine:
    """A lesson's own engine on its scratch database `name`, where `metadata`'s tables are created, with
    room for 200 clients at once, each lock wait bounded at WAIT seconds: PostgreSQL's lock_timeout,
    SQLite's busy timeout. `lab.release(name)` disposes it."""
    sqlite = lab.main.url.get_backend_name() == "sqlite"
    busy = {"connect_args": {"check_same_thread": False, "timeout": WAIT}} if sqlite else {}
    engine = lab.own_engine(name, name, partial(_create, metadata), pool_size=5, max_overflow=200, **busy)
    return engine if sqlite else on_every_connection(engine, f"SET lock_timeout = '{WAIT}s'")


def count_up(engine: Engine, clients: int, model: type, increment: Callable[[Session, int], Any]):
    """A new row of `model` (a counter: `n`) at 0, then `increment(session, row_id)` by `clients` clients at
    once (read_then_write); the row's `n` after, the retries they returned (ints), their failures counted
    by message ("OperationalError: database is locked")."""
    with not_recorded(), Session(engine) as session:  # set-up and read-back: nobody's evidence
        session.add(counter := model(n=0))
        session.commit()
        counter_id = counter.id
    results, _ = read_then_write(engine, clients, lambda session, i: increment(session, counter_id))
    errors = Counter(safe_message(r) for r in results if isinstance(r, Exception))
    retries = sum(r or 0 for r in results if not isinstance(r, Exception))
    with not_recorded(), Session(engine) as session:
        return session.get(model, counter_id).n, retries, dict(errors)
