"""The lesson contract: one declaration opens every lesson module.

    lesson = Lesson(__name__, __doc__, size=Size("teams", "...", maximum=5000, demo=(10, 100, 1000)))
    router = lesson.router()

    @router.get("/bad", ...)        # the pitfall
    @router.get("/fixed", ...)      # the same job done right; named variants beside them

    def calls(size): ...            # the requests compare makes, bad first, paths relative ("/bad")
    def prepare(lab, size): ...     # optional: build the scratch data before compare times anything
    def reset(lab): ...             # optional: the lesson's starting data again (POST .../reset)

The slug comes from the module's name (`n_plus_one` -> `n-plus-one`) and is never typed again: the
router's prefix, its /docs tag, the problem `type`, scratch database names and compare's paths all
come from here. The docstring is the lesson: a title line, then `Symptom:`, `Cause:`, `Fix:` and
optional sections (`Myth:`, `Data:`, `Commands:`), each a paragraph that starts at a line beginning
with one capitalised word and a colon.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from heroes.lab.scratch import Lab

SECTIONS = ("Symptom", "Cause", "Fix")
BOTH = ("sqlite", "postgresql")
POSTGRESQL = ("postgresql",)


@dataclass(frozen=True)
class Size:
    """The knob an instructor turns: a query parameter of the routes and `--size` of the CLI."""

    param: str  # the query parameter the routes take, e.g. "teams"
    meaning: str  # "teams in the lesson's scratch database"
    maximum: int
    demo: tuple[int, ...] = ()  # sizes worth showing side by side
    default: int | None = None  # what compare uses when no size is given (None: the demo data)


@dataclass(frozen=True)
class Call:
    """One request `compare` makes; `path` is relative to the lesson (`"/bad"`)."""

    variant: str  # "bad", "fixed", "fixed/joinedload"
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    clients: int = 1  # > 1: that many identical requests at once (a race)
    memory: bool = False  # also measure peak memory (a second, traced run)
    summary: Callable[[int, Any], str] | None = None  # (status, body) -> one line for the outcome
    summary_all: Callable[[list[tuple[int, Any]]], str] | None = None  # every client's (status, body) -> it
    sequential: bool = False  # clients > 1: one after another (a pool's reuse), not at once
    race: Callable[[Any], AbstractContextManager] | None = None  # (app) -> a barrier around the clients


def parse(doc: str, where: str) -> tuple[str, dict[str, str]]:
    """A lesson docstring: (title, {section: paragraph}) in docstring order."""
    title, _, body = (doc or "").strip().partition("\n")
    text: dict[str, str] = {}
    for match in re.finditer(r"^([A-Z][a-z]+):\s*(.*?)(?=^[A-Z][a-z]+:|\Z)", body, re.S | re.M):
        text[match[1]] = " ".join(match[2].split())
    missing = [name for name in SECTIONS if name not in text]
    if missing:
        raise ValueError(f"{where}: the docstring has no {', '.join(missing)} section")
    return title.strip().rstrip("."), text


class Lesson:
    """One lesson: its text, engines and size knob, read from the module that declares it."""

    def __init__(
        self, module: str, doc: str | None, *, engines: tuple[str, ...] = BOTH, size: Size | None = None
    ) -> None:
        self.name = module.rsplit(".", 1)[-1]  # n_plus_one: scratch databases are named after it
        self.slug = self.name.replace("_", "-")  # n-plus-one: URLs, the CLI, /docs
        self.module_name = module
        self.title, self.text = parse(doc or "", module)
        self.engines = tuple(engines)
        self.size = size
        self._router: APIRouter | None = None

    def __repr__(self) -> str:
        return f"Lesson({self.slug!r})"

    @property
    def prefix(self) -> str:
        return f"/lessons/{self.slug}"

    @property
    def tag(self) -> str:
        return f"lesson: {self.slug}"

    @property
    def type(self) -> str:
        """The `type` of the lesson's problems: a link to the lesson in the catalogue."""
        return self.prefix

    @property
    def myth(self) -> str | None:
        return self.text.get("Myth")

    @property
    def module(self) -> ModuleType:
        return sys.modules[self.module_name]

    def router(self, **kwargs: Any) -> APIRouter:
        """The lesson's router: its prefix, /docs tag and route class (each route knows its lesson).

        A lesson that needs PostgreSQL answers 409 on SQLite, saying how to start it, before any handler.
        """
        from heroes.lab.routes import LessonRoute, engine_required

        if self._router is None:
            route_class = type(f"{self.name}_route", (LessonRoute,), {"lesson": self})
            dependencies = list(kwargs.pop("dependencies", []))
            if "sqlite" not in self.engines:
                dependencies.append(Depends(engine_required(self)))
            self._router = APIRouter(
                prefix=self.prefix,
                tags=[self.tag],
                route_class=route_class,
                dependencies=dependencies,
                **kwargs,
            )
        return self._router

    @property
    def routes(self) -> list:
        return list(self.router().routes)

    def calls(self, size: int | None = None) -> list[Call]:
        """compare's requests, bad first, with their paths made absolute."""
        return [replace(call, path=self.prefix + call.path) for call in self.module.calls(size)]

    def prepare(self, lab: Lab, size: int | None) -> None:
        prepare = getattr(self.module, "prepare", None)
        if prepare is not None:
            prepare(lab, size)

    @property
    def resettable(self) -> bool:
        return hasattr(self.module, "reset")

    def reset(self, lab: Lab) -> None:
        """The lesson's starting data again; a lesson without state has nothing to reset."""
        reset = getattr(self.module, "reset", None)
        if reset is not None:
            reset(lab)

    def scratch(
        self,
        lab: Lab,
        suffix: str | int = "",
        populate: Callable[[Engine], Any] = lambda engine: None,
        *,
        fresh: bool = False,
        revision: str = "head",
    ) -> Engine:
        """The lesson's scratch database `<name>[_<suffix>]`, built by the migrations and filled once."""
        name = f"{self.name}_{suffix}" if suffix != "" else self.name
        return lab.engine(name, populate, fresh=fresh, revision=revision)
