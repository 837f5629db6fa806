"""Workshop mode: the learner's own copy of a bad route, served at /lessons/{slug}/mine and checked.

    workshop/<slug>.py      the exercise: the bad route as it runs, renamed `mine`, the symptom on top
    workshop/.progress.json what the learner has passed, and how many hints they took
    workshop/.gitignore     `*`: nothing of the learner's is committed by accident

The folder is HEROES_WORKSHOP_DIR (default `workshop`, in the current directory). The app serves the
file's `mine` at /lessons/{slug}/mine with the bad route's method, response model and errors, and
loads it again whenever the file changes (a running `make run` server picks an edit up on the next
request); the lesson's check (heroes.lab.check) proves it.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import re
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from heroes.lab.check import exercise_route
from heroes.lab.lesson import Lesson
from heroes.problems import safe_message

MINE = re.compile(r"^/lessons/(?P<slug>[a-z0-9-]+)/mine/?$")
_loading = threading.Lock()


def folder(app_or_settings: Any = None) -> Path:
    from heroes.config import get_settings

    settings = getattr(getattr(app_or_settings, "state", None), "settings", app_or_settings) or get_settings()
    return Path(settings.workshop_dir)


def path(lesson: Lesson, where: Path) -> Path:
    return where / f"{lesson.slug}.py"


def has_exercise(lesson: Lesson) -> bool:
    return hasattr(lesson.module, "check")


# ---- the starting file ------------------------------------------------------------------------------


def starting_source(lesson: Lesson) -> str:
    """The bad route as it runs, as a module of its own: its imports, the lesson's names, `def mine`."""
    route = exercise_route(lesson)
    function = textwrap.dedent(inspect.getsource(route.endpoint))
    tree = ast.parse(function).body[0]
    start = "async def " if isinstance(tree, ast.AsyncFunctionDef) else "def "  # an async route stays async
    body = function[function.index(start) :]  # without the decorator: the workshop mounts it
    body = body.replace(f"def {tree.name}(", "def mine(", 1)
    tree.decorator_list = []  # the names the function itself uses, not its decorator's
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    module_source = Path(lesson.module.__file__).read_text()
    imports, imported = [], set()
    for node in ast.parse(module_source).body:  # the lesson's own import lines, for the names mine uses
        if isinstance(node, ast.ImportFrom | ast.Import):
            names = [alias for alias in node.names if (alias.asname or alias.name).split(".")[0] in used]
            if names:
                imported |= {(alias.asname or alias.name).split(".")[0] for alias in names}
                if isinstance(node, ast.ImportFrom):
                    listed = ", ".join(alias.name for alias in names)
                    imports.append(f"from {node.module} import {listed}")
                else:
                    imports += [f"import {alias.name}" for alias in names]
    own = sorted(name for name in used - imported if name in vars(lesson.module) and name != tree.name)
    if own:
        imports.append(f"from {lesson.module_name} import {', '.join(own)}")
    groups = [
        sorted(i for i in imports if not i.startswith("from heroes")),
        sorted(i for i in imports if i.startswith("from heroes")),
    ]
    imports_block = "\n\n".join("\n".join(group) for group in groups if group)  # libraries, then the lab
    symptom = textwrap.fill(lesson.text["Symptom"], 100)
    method = sorted(route.methods)[0]
    return f'''"""Workshop: {lesson.slug}. {lesson.title}

{symptom}

Make `mine` do the same job without the pitfall. It answers at {method} {lesson.prefix}/mine
(the bad route's address, ending in /mine instead of /bad). Check it:

    heroes workshop {lesson.slug}            each criterion, passed or not, with the evidence
    heroes workshop {lesson.slug} --watch    the same on every save
    heroes workshop {lesson.slug} --hint     the next hint
    heroes workshop {lesson.slug} --reset    start again from this file
"""

{imports_block}


{body.rstrip()}
'''


def write_start(lesson: Lesson, where: Path, *, overwrite: bool = False) -> tuple[Path, bool]:
    """workshop/<slug>.py with the starting code (kept if it exists unless `overwrite`); (path, written)."""
    where.mkdir(parents=True, exist_ok=True)
    ignore = where / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# the learner's workshop files: never committed\n*\n")
    target = path(lesson, where)
    if target.exists() and not overwrite:
        return target, False
    if target.exists():
        target.with_suffix(".py.bak").write_text(target.read_text())
    target.write_text(starting_source(lesson))
    return target, True


# ---- serving the learner's route ----------------------------------------------------------------


def refresh(app, lesson: Lesson) -> str | None:
    """(Re)load workshop/<slug>.py into `app` at /lessons/{slug}/mine if it changed; the error, if any."""
    target = path(lesson, folder(app))
    loaded: dict[str, tuple[float, str | None]] = app.state.__dict__.setdefault("workshop", {})
    with _loading:
        if not target.exists():
            _unmount(app, lesson)
            loaded.pop(lesson.slug, None)
            return f"there is no {target}: `heroes workshop {lesson.slug}` writes it"
        stamp = target.stat().st_mtime_ns
        if lesson.slug in loaded and loaded[lesson.slug][0] == stamp:
            return loaded[lesson.slug][1]
        error = None
        try:
            mine = _load(target, lesson)
            _mount(app, lesson, mine)
        except Exception as exc:  # the learner's code: a SyntaxError, a NameError at import...
            _unmount(app, lesson)
            line = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) else ""
            error = f"{target} does not load: {type(exc).__name__}{line}: {safe_message(exc)}"
        loaded[lesson.slug] = (stamp, error)
        return error


def _load(target: Path, lesson: Lesson):
    name = f"heroes_workshop_{lesson.name}"
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the annotations of `mine` through it
    spec.loader.exec_module(module)
    mine = getattr(module, "mine", None)
    if not callable(mine):
        raise LookupError(f"{target.name} defines no function `mine`")
    return mine


def _mount(app, lesson: Lesson, mine) -> None:
    bad = exercise_route(lesson)
    route_class = lesson.router().route_class
    route = route_class(
        f"{lesson.prefix}/mine",
        mine,
        methods=list(bad.methods),
        response_model=bad.response_model,
        status_code=bad.status_code,
        response_class=bad.response_class,
        responses=bad.responses,
        dependencies=list(lesson.router().dependencies) + list(bad.dependencies),
        summary="mine: the learner's route (workshop mode)",
        include_in_schema=False,
    )
    _unmount(app, lesson)
    app.router.routes.append(route)


def _unmount(app, lesson: Lesson) -> None:
    mine = f"{lesson.prefix}/mine"
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != mine]


class WorkshopMiddleware:
    """Before /lessons/{slug}/mine is routed, load the learner's file again if it changed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (match := MINE.match(scope["path"])):
            from heroes.lessons import BY_SLUG

            lesson = BY_SLUG.get(match["slug"])
            if lesson is not None and has_exercise(lesson):
                refresh(scope["app"], lesson)
        await self.app(scope, receive, send)


# ---- progress and hints -------------------------------------------------------------------------------


def progress(where: Path) -> dict[str, dict[str, Any]]:
    file = where / ".progress.json"
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return {}


def record(where: Path, slug: str, **changes: Any) -> dict[str, Any]:
    """Update the learner's progress for one exercise: passed, checks, hints."""
    where.mkdir(parents=True, exist_ok=True)
    everything = progress(where)
    mine = everything.setdefault(slug, {"passed": False, "checks": 0, "hints": 0})
    mine.update(changes)
    mine["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    (where / ".progress.json").write_text(json.dumps(everything, indent=2) + "\n")
    return mine


def hints(lesson: Lesson) -> list[tuple[str, str]]:
    """The ladder: what goes wrong, why, what to change, then the fixed route itself."""
    fixed = next(route for route in lesson.routes if route.variant == "fixed")
    return [
        ("Symptom", lesson.text["Symptom"]),
        ("Cause", lesson.text["Cause"]),
        ("Fix", lesson.text["Fix"]),
        ("The fixed route", textwrap.dedent(inspect.getsource(fixed.endpoint))),
    ]
