"""The lesson pages, for a room: /lab (the lessons by track) and /lab/{slug} (one lesson).

Server-rendered with Jinja2 and nothing from the internet, so they work on a projector with no Wi-Fi:
the code shown is the code that runs (`inspect.getsource` of each route's endpoint, highlighted by
Pygments, its CSS inlined), and the compare button, the results table and the chart are a few lines
of our own JS (static/lab.js) over `GET /lessons/{slug}/compare`.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from heroes.db import is_sqlite
from heroes.lab.lesson import SECTIONS, Lesson
from heroes.lab.routes import LessonRoute, needs_postgresql
from heroes.lessons import BY_SLUG, LESSONS, TRACKS

HERE = Path(__file__).parent
ROOT = HERE.parent.parent  # sources are named relative to the project: heroes/lessons/n_plus_one.py:48
PRIVATE = ("secret_name", "<private>")  # the private column, named as the SQL listings name it (evidence.py)
STYLE = "default"  # Pygments' default style: dark enough on white to survive a projector
CODE_CSS = HtmlFormatter(style=STYLE).get_style_defs(".code")

STATIC = "/lab/static"


def paths(request: Request) -> dict:
    """What every template may call: `path("lesson_page", slug=...)`, `static("lab.css")`."""
    return {"path": request.app.url_path_for, "static": lambda name: f"{STATIC}/{name}"}


templates = Jinja2Templates(directory=HERE / "templates", context_processors=[paths])
router = APIRouter(prefix="/lab", include_in_schema=False)


def private(text: str) -> str:
    return text.replace(*PRIVATE)


def paragraph(text: str) -> Markup:
    """A lesson paragraph as HTML: escaped, `backticks` as code."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(private(text)))))


@dataclass
class Source:
    """One route of a lesson as the page shows it: the endpoint's own source, from its module."""

    variant: str
    method: str
    path: str
    where: str  # heroes/lessons/n_plus_one.py:48
    start: int  # its first line in the module
    text: str
    comparable: list[str]  # its lines with its own name and path blanked, for the diff
    docstring: set[int]  # 1-based lines left out of the diff: the docstring says how they differ

    @property
    def link(self) -> bool:
        """A GET without path parameters: the page links it, so a click shows its JSON."""
        return self.method == "GET" and "{" not in self.path

    def html(self, marked: set[int] = frozenset()) -> Markup:
        formatter = HtmlFormatter(
            style=STYLE, cssclass="code", linenos="inline", linenostart=self.start, hl_lines=sorted(marked)
        )
        return Markup(highlight(self.text, PythonLexer(), formatter))


def source_of(lesson: Lesson, route: LessonRoute) -> Source:
    lines, start = inspect.getsourcelines(route.endpoint)
    text = textwrap.dedent("".join(lines))
    function = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))
    docstring: set[int] = set()
    if ast.get_docstring(function) is not None:
        docstring = set(range(function.body[0].lineno, function.body[0].end_lineno + 1))
    relative = f'"{route.path.removeprefix(lesson.prefix)}"'  # "/fixed/joinedload"
    comparable = [
        line.replace(route.endpoint.__name__, "\0").replace(relative, "\1") for line in text.splitlines()
    ]
    file = Path(inspect.getsourcefile(route.endpoint) or "?").resolve()
    where = file.relative_to(ROOT) if file.is_relative_to(ROOT) else file.name
    return Source(
        variant=route.variant,
        method=", ".join(sorted(route.methods)),
        path=route.path,
        where=f"{where}:{start}",
        start=start,
        text=private(text),
        comparable=comparable,
        docstring=docstring,
    )


def differing(a: Source, b: Source) -> tuple[set[int], set[int]]:
    """The 1-based lines of a and of b that the other does not have (docstrings aside)."""
    matcher = difflib.SequenceMatcher(None, a.comparable, b.comparable, autojunk=False)
    in_a: set[int] = set()
    in_b: set[int] = set()
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        if tag != "equal":
            in_a.update(range(a1 + 1, a2 + 1))
            in_b.update(range(b1 + 1, b2 + 1))
    return in_a - a.docstring, in_b - b.docstring


def engine_of(request: Request) -> str:
    return "sqlite" if is_sqlite(request.app.state.engine) else "postgresql"


def summary(lesson: Lesson, engine: str) -> dict:
    """What the index (and the 404 page) says of a lesson."""
    return {
        "slug": lesson.slug,
        "title": private(lesson.title),
        "symptom": paragraph(lesson.text["Symptom"]),
        "engines": lesson.engines,
        "runs_here": engine in lesson.engines,
    }


def tracks(engine: str) -> dict[str, list[dict]]:
    return {track: [summary(lesson, engine) for lesson in lessons] for track, lessons in TRACKS.items()}


@router.get("", response_class=HTMLResponse)
def lab_index(request: Request) -> HTMLResponse:
    """Every lesson, by track, in curriculum order."""
    engine = engine_of(request)
    return templates.TemplateResponse(request, "index.html", {"engine": engine, "tracks": tracks(engine)})


@router.get("/{slug}", response_class=HTMLResponse)
def lesson_page(slug: str, request: Request) -> HTMLResponse:
    """One lesson: its text, bad and fixed side by side, the other variants, and compare."""
    engine = engine_of(request)
    lesson = BY_SLUG.get(slug)
    if lesson is None:
        context = {"engine": engine, "slug": slug, "tracks": tracks(engine)}
        return templates.TemplateResponse(request, "missing.html", context, status_code=404)
    sources = [source_of(lesson, route) for route in lesson.routes]
    bad = next(s for s in sources if s.variant == "bad")
    fixed = next(s for s in sources if s.variant == "fixed")
    bad_marked, fixed_marked = differing(bad, fixed)
    order = [lesson.slug for lesson in LESSONS]
    at = order.index(lesson.slug)
    size = lesson.size
    context = {
        "engine": engine,
        "lesson": lesson,
        "title": private(lesson.title),
        "sections": [(name, paragraph(lesson.text[name])) for name in SECTIONS],
        "myth": paragraph(lesson.myth) if lesson.myth else None,
        "more": [
            (name, paragraph(text)) for name, text in lesson.text.items() if name not in (*SECTIONS, "Myth")
        ],
        "needs_postgresql": needs_postgresql(lesson).detail if engine not in lesson.engines else None,
        "pair": [(bad, bad.html(bad_marked)), (fixed, fixed.html(fixed_marked))],
        "others": [(s, s.html()) for s in sources if s not in (bad, fixed)],
        "size": size,
        "initial_size": size.default if size and size.default is not None else "",
        "compare_url": request.app.url_path_for("compare_lesson", slug=lesson.slug),
        "previous": BY_SLUG[order[at - 1]] if at > 0 else None,
        "next": BY_SLUG[order[at + 1]] if at + 1 < len(order) else None,
        "code_css": CODE_CSS,
    }
    return templates.TemplateResponse(request, "lesson.html", context)


def install(app: FastAPI) -> None:
    """The pages (/lab, /lab/{slug}) and their static files (/lab/static/), served from the package."""
    app.mount(STATIC, StaticFiles(directory=HERE / "static"), name="lab-static")
    app.include_router(router)
