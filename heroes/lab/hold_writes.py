"""K clients in one request, each a thread with its own session, none inserting before every client has read.

    outcomes, retries = hold_writes(engine, 20, work)   # work(session, i) -> "joined" / "refused" / ...

The worst interleaving the code allows, forced on every run (write skew: count, then insert): a
client's first flush waits until every client has reached its own first flush, or asked for a lock (a
statement with FOR UPDATE, or SQLite's BEGIN IMMEDIATE: nobody can read before the lock's holder
writes, so nobody waits for them), or ended. Waits are bounded (`timeout`). The hold is a session
event of the clients' own sessions: nothing else on the engine is held. Each thread runs in a copy of
the request's context, so its statements are the request's evidence; an error is the client's outcome.
(heroes/lab/clients.py holds at an UPDATE instead, for lost updates.)
"""

import contextvars
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from heroes.problems import safe_message

LOCKS = ("FOR UPDATE", "BEGIN IMMEDIATE")
_warnings = threading.Lock()  # the warning filters are the process's: one client changes them at a time


@contextmanager
def warned(messages: set[str]) -> Iterator[None]:
    """Keep what is warned inside `with warned(messages):` as evidence, instead of a line on stderr."""
    with _warnings, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield
    messages.update(str(warning.message) for warning in seen)


class Gate:
    """Each client's first flush waits (at most `timeout` seconds) until every client has arrived."""

    def __init__(self, clients: int, timeout: float) -> None:
        self.left, self.timeout, self.done = clients, timeout, threading.Condition()

    def arrive(self, session: Session, wait: bool) -> None:
        if session.info.pop("gate", None) is None:  # each client arrives once
            return
        with self.done:
            self.left -= 1
            self.done.notify_all()
            if wait:
                self.done.wait_for(lambda: self.left <= 0, self.timeout)

    def watch(self, session: Session) -> None:
        def on_execute(state) -> None:
            if any(lock in str(state.statement) for lock in LOCKS):
                self.arrive(state.session, wait=False)

        session.info.update(gate=self, retries=0)
        event.listen(session, "before_flush", lambda s, *_: self.arrive(s, wait=True))
        event.listen(session, "do_orm_execute", on_execute)


def hold_writes(
    engine: Engine, clients: int, work: Callable[[Session, int], str], timeout: float = 10.0
) -> tuple[list[str], int]:
    """`work(session, i)` in `clients` threads at once: each one's outcome (an error: its safe message),
    and the retries they counted in `session.info["retries"]`."""
    gate, retries = Gate(clients, timeout), []

    def client(i: int) -> str:
        with Session(engine) as session:
            gate.watch(session)
            try:
                return work(session, i)
            except SQLAlchemyError as exc:
                return f"{type(exc).__name__}: {safe_message(exc)}"
            finally:
                retries.append(session.info["retries"])
                gate.arrive(session, wait=False)

    contexts = [contextvars.copy_context() for _ in range(clients)]  # the request's evidence recorder
    with ThreadPoolExecutor(clients) as pool:
        outcomes = list(pool.map(lambda i: contexts[i].run(client, i), range(clients)))
    return outcomes, sum(retries)
