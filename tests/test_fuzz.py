"""Generated input, valid and invalid, for every operation in the OpenAPI schema: never a 5xx.

Schemathesis turns the schema into Hypothesis strategies: `positive` draws input the schema allows,
`negative` input it forbids (wrong types, out-of-range numbers, missing fields...). `derandomize=True`
draws the same examples on every run, so a failure reproduces. Every response must match the schema
(documented status, content type, body), invalid input must be refused, and errors are problem+json.
Not checked: that schema-valid input is always accepted, because a well-formed `team_id` naming no
team is refused with 422 by design.

Lesson routes are fuzzed too. Two allowances, both narrow: a lesson's size knob (`?teams=`, `?rows=`,
compare's `size`) is pinned to SMALL whenever the drawn value is valid, so a draw of 900,000 does not
build a table that big and every draw reuses one scratch database (each lesson's tests cover its
sizes); and a 500 passes only on a route that documents it (a bad route whose symptom it is) and only
as the lesson's own problem, `type: /lessons/<slug>`. A lesson route draws 6 valid and 20 invalid
examples, not 50 of each: there are 27 lessons with more than 90 routes, many of which rebuild a scratch
database per request (a migration lesson migrates one), and the suite must stay well inside CI's time.
For the same reason a lesson's own routes are fuzzed on one engine, not two: PostgreSQL where the lesson
runs on it (the stricter engine: a NUL in a string, an integer past 32 bits, an invalid timestamp are
errors there, where SQLite stores or converts them), SQLite where the lesson is SQLite's alone. The
reference API and the lab's own routes (`/lessons`, `/lessons/{slug}/compare`...) are fuzzed on both.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, positive_data_acceptance

from heroes.config import Settings
from heroes.lessons import BY_SLUG, LESSONS
from heroes.main import create_app

SIZE_PARAMS = {lesson.size.param for lesson in LESSONS if lesson.size} | {"size"}
SMALL = 3


def _engines(path: str) -> list[str]:
    """Both engines, but one for a lesson's own route: PostgreSQL if the lesson runs there, else SQLite."""
    parts = path.split("/")
    lesson = BY_SLUG.get(parts[2]) if len(parts) > 3 and parts[1] == "lessons" else None
    if lesson is None:
        return ["sqlite", "postgresql"]
    return ["postgresql" if "postgresql" in lesson.engines else "sqlite"]


def _cases() -> list[tuple[str, str, GenerationMode]]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(database_url="sqlite://")))
    cases = []
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [GenerationMode.POSITIVE]
        if list(operation.iter_parameters()) or operation.body:  # no input, nothing to get wrong
            modes.append(GenerationMode.NEGATIVE)
        engines = _engines(operation.path)
        cases += [(engine, operation.label, mode) for engine in engines for mode in modes]
    return cases


def _bounds(schema: dict) -> tuple[int, int]:
    """(minimum, maximum) of an integer parameter's schema (`int | None` is an anyOf)."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "integer":
            return option.get("minimum", -(2**63)), option.get("maximum", 2**63)
    return 1, 0  # not an integer: nothing to pin


@pytest.mark.parametrize(
    ("engine_name", "label", "mode"), _cases(), ids=lambda v: getattr(v, "value", v), indirect=["engine_name"]
)
def test_no_server_error(app, seeded, label, mode):
    operation = schemathesis.openapi.from_asgi("/openapi.json", app).find_operation_by_label(label)

    method, path = label.split(" ", 1)
    spec = app.openapi()["paths"][path][method.lower()]
    documented = spec["responses"]
    knobs = {p["name"]: _bounds(p["schema"]) for p in spec.get("parameters", []) if p["name"] in SIZE_PARAMS}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=(6 if mode is GenerationMode.POSITIVE else 20) if path.startswith("/lessons/") else 50,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def never_5xx(case):
        for name, (low, high) in knobs.items():  # a valid size becomes SMALL; an invalid one stays
            value = (case.query or {}).get(name)
            if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
                case.query[name] = SMALL
        fails = any(status.startswith("5") for status in documented)  # a 500, or 503 (an emptied pool)
        excluded = [positive_data_acceptance] + ([not_a_server_error] if fails else [])
        response = case.call_and_validate(excluded_checks=excluded)
        if response.status_code >= 400:
            assert response.headers["content-type"] == ["application/problem+json"]
        if response.status_code >= 500:  # only a lesson's documented symptom
            assert str(response.status_code) in documented, response.text
            assert response.json()["type"] == "/".join(path.split("/")[:3]), response.text

    never_5xx()
