"""K clients at once, each a thread with its own session, none writing before every client has read.

    results, errors = read_then_write(engine, 20, work)    # work(session) in 20 threads at once

The interleaving that loses updates, forced on every run: each client's first write (an UPDATE) waits
until every client has arrived, so whatever a client reads before it writes, every other client has
read too. A client arrives at its first UPDATE, or at a locking read (`FOR UPDATE`, SQLite's
`BEGIN IMMEDIATE`: it may wait in the database for another's lock, so nobody waits for it), or when it
ends. Waits are bounded (`timeout`); threads of anything else on the engine are never held.
"""

import contextvars
import threading
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import Engine, MetaData, event
from sqlmodel import Session

from heroes.evidence import not_recorded
from heroes.lab.scratch import create_lesson_tables
from heroes.problems import safe_message

_local = threading.local()  # the race a client's thread is in


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
    if "FOR UPDATE" in statement or statement.startswith("BEGIN IMMEDIATE"):
        race.arrive()  # a locking read: it may wait in the database, so it counts as arrived now
    elif statement.startswith("UPDATE"):
        race.arrive()
        race.ready.wait(race.timeout)  # every client has read what it reads before it writes


def read_then_write(
    engine: Engine, clients: int, work: Callable[[Session], Any], timeout: float = 10.0
) -> tuple[list[Any], Counter]:
    """`work(session)` in `clients` threads at once, each its own Session; what the calls returned, and
    the failures counted by their safe message ("OperationalError: database is locked")."""
    if not event.contains(engine, "before_cursor_execute", _hold):
        event.listen(engine, "before_cursor_execute", _hold, insert=True)  # before the statement timers
    race, results, errors = _Race(clients, timeout), [], Counter()

    def client() -> None:
        _local.race = race
        try:
            with Session(engine) as session:
                result = work(session)
            with race.lock:
                results.append(result)
        except Exception as exc:
            with race.lock:
                errors[safe_message(exc)] += 1
        finally:
            _local.race = None
            race.arrive()  # done, or failed: nobody waits for it

    # each thread in a copy of the request's context: its statements are the request's evidence
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(client,)) for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


WAIT = 20  # seconds a client may wait for a lock, on either engine


def _lock_timeout(dbapi_connection, record) -> None:
    dbapi_connection.execute(f"SET lock_timeout = '{WAIT}s'")
    dbapi_connection.commit()


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
    if not sqlite and not event.contains(engine, "connect", _lock_timeout):
        event.listen(engine, "connect", _lock_timeout)
    return engine


def count_up(engine: Engine, clients: int, model: type, increment: Callable[[Session, int], Any]):
    """A new row of `model` (a counter: `n`) at 0, then `increment(session, row_id)` by `clients` clients at
    once (read_then_write); the row's `n` after, the retries they returned (ints), their failures."""
    with not_recorded(), Session(engine) as session:  # set-up and read-back: nobody's evidence
        session.add(counter := model(n=0))
        session.commit()
        counter_id = counter.id
    retries, errors = read_then_write(engine, clients, lambda session: increment(session, counter_id))
    with not_recorded(), Session(engine) as session:
        return session.get(model, counter_id).n, sum(r or 0 for r in retries), dict(errors)
