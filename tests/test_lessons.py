"""The catalogue (GET /lessons), compare's contract, the lessons' scratch databases."""

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from heroes.lab import SECTIONS, safe_message
from heroes.lessons import LESSONS, TRACKS
from heroes.main import create_app
from heroes.seed import count_rows, seed_bulk

from support import assert_problem

SLUGS = [lesson.slug for lesson in LESSONS]
CURRICULUM = [
    "n-plus-one",
    "detached-instance",
    "unique-violation",
    "foreign-key",
    "streaming-export",
    "load-only",
    "missing-index",
    "sql-injection",
    "connection-leak",
    "stale-connection",
    "stale-data",
    "pending-rollback",
    "already-attached",
    "shared-session",
    "engine-per-request",
    "background-task-session",
    "commit-in-loop",
    "lost-update",
    "deadlock",
    "isolation-level",
    "upsert",
    "transaction-boundary",
    "database-is-locked",
    "not-null-column",
    "concurrent-index",
    "drop-column",
    "add-foreign-key",
    "lock-queue",
    "rename-column",
    "change-column-type",
    "add-unique-constraint",
    "autogenerate-blind-spots",
    "blocking-event-loop",
    "missing-await",
    "async-lazy-load",
    "cascade-delete",
    "soft-delete",
    "table-model-validation",
    "relationship-response",
    "column-defaults",
    "partial-update",
]  # ../shared/CURRICULUM.md, lessons 1 to 41


def test_the_lessons_are_in_curriculum_order():
    assert len(CURRICULUM) == 41 and set(SLUGS) <= set(CURRICULUM)
    assert sorted(SLUGS, key=CURRICULUM.index) == SLUGS
    assert list(LESSONS) == [lesson for track in TRACKS.values() for lesson in track]


@pytest.mark.parametrize("lesson", LESSONS, ids=SLUGS)
def test_every_lesson_module_keeps_the_contract(lesson):
    module = lesson.module
    assert module.lesson is lesson and module.router is lesson.router()  # one declaration, one router
    assert lesson.slug == module.__name__.rsplit(".", 1)[-1].replace("_", "-")  # from the module's name
    assert lesson.router().prefix == f"/lessons/{lesson.slug}"
    assert lesson.router().tags == [f"lesson: {lesson.slug}"]
    assert all(lesson.text[section] for section in SECTIONS)
    assert "PLACEHOLDER" not in lesson.title
    paths = [route.path for route in lesson.routes]
    assert all(route.lesson is lesson for route in lesson.routes)  # each route is handed its lesson
    assert paths.count(f"/lessons/{lesson.slug}/bad") == 1  # exactly one bad and one fixed
    assert paths.count(f"/lessons/{lesson.slug}/fixed") == 1
    assert set(lesson.engines) <= {"sqlite", "postgresql"} and lesson.engines
    calls = lesson.calls(None)
    assert calls[0].variant == "bad" and "fixed" in [call.variant for call in calls]
    assert all(not call.path.startswith("/lessons") for call in module.calls(None))  # written relative
    for call in calls:  # each call is one of the lesson's own routes
        assert any(call.method in r.methods and r.path_regex.match(call.path) for r in lesson.routes)
    source = Path(module.__file__).read_text()
    code = source.split('"""', 2)[2]  # the slug is never typed, neither in a path nor as a name
    assert f'"{lesson.slug}' not in code and f"/lessons/{lesson.slug}" not in code
    lines = len(source.splitlines())
    assert 60 <= lines <= 180, f"{lesson.slug}: {lines} lines"  # 150 of lesson, and its check


def test_the_catalogue_lists_every_lesson_with_ready_commands(client):
    response = client.get("/lessons")
    assert response.status_code == 200
    catalogue = response.json()
    assert [entry["slug"] for entry in catalogue] == SLUGS
    for entry, lesson in zip(catalogue, LESSONS, strict=True):
        assert entry["title"] == lesson.title
        assert (entry["symptom"], entry["cause"], entry["fix"]) == tuple(lesson.text[s] for s in SECTIONS)
        assert entry["compare"] == f"/lessons/{lesson.slug}/compare"
        assert entry["cli"].startswith(f"heroes lesson {lesson.slug}")
        routes = {(r["method"], r["path"]) for r in entry["routes"]}
        assert routes == {(m, r.path) for r in lesson.routes for m in r.methods}
        for route in entry["routes"]:
            assert route["summary"]
            assert route["curl"].startswith("curl -i ")
            example = re.search(r"http://testserver(\S+)", route["curl"])[1]  # `{team_id}` filled in
            assert re.fullmatch(re.sub(r"\{\w+\}", r"[^/]+", route["path"]), example)
            assert route["httpie"].startswith("http ") and example in route["httpie"]
            if route["method"] != "GET":
                assert f"-X {route['method']}" in route["curl"]
                assert f"http {route['method']} " in route["httpie"] or " --raw " in route["httpie"]


def test_one_lesson_and_an_unknown_one(client):
    entry = client.get("/lessons/n-plus-one").json()
    assert entry == client.get("/lessons").json()[0]
    assert entry["size"] == {
        "param": "teams",
        "meaning": "teams (3 heroes each) in the lesson's scratch database",
        "maximum": 5000,
        "demo": [10, 100, 1000],
        "default": None,
    }
    assert "Data" in entry["more"]
    body = assert_problem(client.get("/lessons/n-plus-two"), 404)
    assert "n-plus-one" in body["detail"]  # it says what there is
    assert_problem(client.get("/lessons/n-plus-two/compare"), 404)
    assert_problem(client.get(f"/lessons/{'x' * 51}"), 422, field="slug", location="path")


def test_each_lesson_has_its_tag_in_the_docs_with_its_text():
    schema = create_app().openapi()
    tags = {tag["name"]: tag["description"] for tag in schema["tags"]}
    for lesson in LESSONS:
        description = tags[f"lesson: {lesson.slug}"]
        assert lesson.title in description and lesson.text["Symptom"] in description
        for route in lesson.routes:
            for operation in schema["paths"][route.path].values():
                assert operation["tags"] == [f"lesson: {lesson.slug}"]


def test_compare_refuses_a_size_the_lesson_does_not_have(client):
    body = assert_problem(client.get("/lessons/n-plus-one/compare", params={"size": 5001}), 422, field="size")
    assert "1 to 5000" in body["detail"]
    assert_problem(client.get("/lessons/n-plus-one/compare", params={"size": 0}), 422, field="size")
    sizeless = next(lesson.slug for lesson in LESSONS if lesson.size is None)
    assert_problem(client.get(f"/lessons/{sizeless}/compare", params={"size": 10}), 422, field="size")


def test_compare_needs_the_evidence_recorder(database_url, seeded):
    from fastapi.testclient import TestClient

    from heroes.config import Settings

    app = create_app(Settings(database_url=database_url, evidence=False))
    with TestClient(app) as client:
        body = assert_problem(client.get("/lessons/n-plus-one/compare"), 409)
    assert "HEROES_EVIDENCE" in body["detail"]


# ---- scratch databases -------------------------------------------------------------------------------


def scratch_tables(lab, name: str) -> set[str]:
    with lab.engine(name).connect() as connection:
        return set(inspect(connection).get_table_names())


def test_a_scratch_database_is_migrated_filled_and_dropped(app, seeded):
    lab = app.state.lab
    scratch = lab.engine("test_scratch", lambda engine: seed_bulk(engine, 3, 2))
    assert scratch is not seeded
    assert count_rows(scratch) == (3, 6)
    assert count_rows(seeded) == (5, 15)  # the reference data is untouched
    assert {"team", "hero", "alembic_version"} <= scratch_tables(lab, "test_scratch")
    assert lab.engine("test_scratch") is scratch  # cached: populated once
    fresh = lab.engine("test_scratch", lambda engine: seed_bulk(engine, 1, 1), fresh=True)
    assert count_rows(fresh) == (1, 1)
    lab.close()
    if seeded.dialect.name == "sqlite":
        assert not Path(f"{seeded.url.database}.lab").exists()
    else:
        with seeded.connect() as connection:
            schemas = connection.scalars(text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'lab_%'"))
            assert list(schemas) == []


def test_scratch_names_are_checked(app):
    with pytest.raises(ValueError, match="scratch database names"):
        app.state.lab.engine("x; DROP TABLE hero")


def test_the_lesson_problem_never_carries_sql_parameters_or_secrets(engine):
    statement = "INSERT INTO hero (name, secret_name) VALUES (?, ?)"
    error = IntegrityError(statement, ("Deadpond", "Dive Wilson"), Exception("UNIQUE constraint failed: x"))
    message = safe_message(error)
    assert message == "Exception: UNIQUE constraint failed: x"
    leaky = RuntimeError("Hero(name='Deadpond', secret_name='Dive Wilson', id=1) [SQL: SELECT 1]")
    assert safe_message(leaky) == "Hero(name='Deadpond', secret_name=<hidden>, id=1)"


# ---- the ready commands (the CLI's tests: tests/test_cli_lessons.py) ------------------------------


def test_the_ready_commands_survive_the_shell(client):
    """Pasted into a shell, each command sends compare's body: quotes and spaces included."""
    import shlex

    for entry, lesson in zip(client.get("/lessons").json(), LESSONS, strict=True):
        bodies = {}
        for call in lesson.calls(None):  # the first call to a route is its example
            bodies.setdefault((call.method, call.path), call.json)
        for route in entry["routes"]:
            curl, httpie = shlex.split(route["curl"]), shlex.split(route["httpie"])
            path = curl[-1] if "-d" not in curl else curl[curl.index("-H") - 1]
            body = bodies.get((route["method"], path.removeprefix("http://testserver")))
            if body is None:
                assert "-d" not in curl and httpie[-1].endswith(path.removeprefix("http://testserver"))
                continue
            assert json.loads(curl[curl.index("-d") + 1]) == body
            if "--raw" in httpie:  # a body that is not an object (a list) goes as it is
                assert json.loads(httpie[httpie.index("--raw") + 1]) == body
                continue
            items = dict(item.split("=", 1) for item in httpie[3 if route["method"] != "GET" else 2 :])
            assert {k.rstrip(":"): json.loads(v) if k.endswith(":") else v for k, v in items.items()} == body


POSTGRESQL_ONLY = [lesson for lesson in LESSONS if lesson.engines == ("postgresql",)]


@pytest.mark.sqlite_only(reason="the answer of a SQLite lab to a PostgreSQL lesson")
@pytest.mark.parametrize("lesson", POSTGRESQL_ONLY, ids=lambda lesson: lesson.slug)
def test_a_postgresql_lesson_on_sqlite_says_how_to_start_postgresql(client, lesson):
    """Every route of a PostgreSQL lesson, and its compare, answer 409 naming `make run-postgres`."""
    for route in lesson.routes:
        for method in route.methods:
            response = client.request(method, route.path)
            assert response.status_code == 409, (route.path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == lesson.prefix, route.path
            assert "make run-postgres" in response.json()["detail"], route.path
    compare = client.get(f"{lesson.prefix}/compare")
    assert compare.status_code == 409 and "make run-postgres" in compare.json()["detail"]
