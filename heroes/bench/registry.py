"""The one case registry of every suite: SQLAlchemy examples/performance's `Profiler`, in a few lines.

    @case("export", engines=("postgresql",))
    def raw_copy(target: ExportTarget) -> int:
        \"\"\"ceiling for COPY: the driver reads the export's COPY and drops the bytes\"\"\"   <- its label

A case is a plain function registered under its suite; the suite decides what the function is given
and what it returns, runs its cases and reports them slowest first (`slowest_first`).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

ENGINES = ("sqlite", "postgresql")
T = TypeVar("T")


@dataclass(frozen=True)
class Case:
    suite: str
    name: str  # the function's name: what `--case` and the tables say
    label: str  # its docstring, on one line
    run: Callable[..., Any]
    engines: tuple[str, ...] = ENGINES
    max_size: int | None = None  # beyond this size the case refuses (a route that answers 422)

    def refuses(self, size: int) -> str | None:
        """Why the case does not run at this size, or None."""
        if self.max_size is not None and size > self.max_size:
            return f"refuses more than {self.max_size:,} rows"
        return None


CASES: dict[str, list[Case]] = {}  # suite -> its cases, in the order they were registered


def case(suite: str, *, engines: tuple[str, ...] = ENGINES, max_size: int | None = None):
    """Register the decorated function as a case of `suite`; its docstring is its label."""

    def register(run: Callable[..., T]) -> Callable[..., T]:
        label = " ".join((run.__doc__ or run.__name__).split())
        CASES.setdefault(suite, []).append(Case(suite, run.__name__, label, run, engines, max_size))
        return run

    return register


def cases(suite: str, engine: str | None = None, names: Iterable[str] | None = None) -> list[Case]:
    """The suite's cases, those for `engine` (a dialect name) and, if given, only those `names`."""
    wanted = set(names or ())
    return [
        c
        for c in CASES.get(suite, [])
        if (engine is None or engine in c.engines) and (not wanted or c.name in wanted)
    ]


def slowest_first(results: Iterable[T], rate: Callable[[T], float | None]) -> list[T]:
    """Results sorted slowest first; those with no rate (refused, failed) before all."""
    return sorted(results, key=lambda result: rate(result) or 0.0)
