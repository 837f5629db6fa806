"""What every lesson shares, one job per module:

lesson.py      Lesson, Size, Call: the contract a lesson module declares (read it first)
routes.py      the lesson route class: an escaped pitfall becomes the lesson's problem response
scratch.py     scratch databases, each owned by the Lab (app, process) that built it
deps.py        the lab's engine and session dependencies, defined once
asgi.py        the one in-process ASGI driver (compare and the benchmarks use it)
compare.py     variants side by side: outcome, statements (grouped), db/wall time, memory
catalogue.py   what GET /lessons says, curl and HTTPie commands, the examples in /docs
"""

from heroes.lab.deps import LabDep, demo_or_scratch, lab_of, scratch_engine, session_on
from heroes.lab.lesson import BOTH, POSTGRESQL, SECTIONS, Call, Lesson, Size
from heroes.lab.routes import LessonRoute
from heroes.lab.scratch import Lab, create_lesson_tables
from heroes.problems import safe_message

__all__ = [
    "BOTH",
    "POSTGRESQL",
    "SECTIONS",
    "Call",
    "Lab",
    "LabDep",
    "Lesson",
    "LessonRoute",
    "Size",
    "create_lesson_tables",
    "demo_or_scratch",
    "lab_of",
    "safe_message",
    "scratch_engine",
    "session_on",
]
