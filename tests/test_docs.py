"""/docs and /redoc load nothing from the internet, and each error they show is one the route gives."""

import re

import pytest
from fastapi.testclient import TestClient

from heroes.config import Settings
from heroes.lessons import LESSONS
from heroes.main import create_app
from heroes.problems import PROBLEM_JSON

from support import assert_problem

APP = create_app(Settings(database_url="sqlite://"))  # the pages and the schema need no database
JS, CSS, PNG = "text/javascript; charset=utf-8", "text/css; charset=utf-8", "image/png"
PAGES = {
    "/docs": {
        "/docs/assets/swagger-ui.css": CSS,
        "/docs/assets/favicon.png": PNG,
        "/docs/assets/swagger-ui-bundle.js": JS,
        "/openapi.json": "application/json",
    },
    "/redoc": {
        "/docs/assets/favicon.png": PNG,
        "/docs/assets/redoc.standalone.js": JS,
        "/openapi.json": "application/json",
    },
}
ASSET_STARTS = {  # what each asset is, by its first bytes
    "/docs/assets/swagger-ui-bundle.js": b"/*! For license information please see swagger-ui-bundle.js",
    "/docs/assets/redoc.standalone.js": b"/*! For license information please see redoc.standalone.js",
    "/docs/assets/swagger-ui.css": b".swagger-ui{",
    "/docs/assets/favicon.png": b"\x89PNG\r\n",
    "/openapi.json": b'{"openapi":"3.',
}


@pytest.fixture(scope="module")
def docs_client():
    with TestClient(APP) as client:
        yield client


@pytest.mark.parametrize("page", PAGES)
def test_the_docs_pages_name_no_other_host(docs_client, page):
    response = docs_client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert re.findall(r"(?:https?:)?//[^\s\"'<>]+", response.text) == []  # no URL with a host at all


@pytest.mark.parametrize("page", PAGES)
def test_everything_the_docs_pages_load_is_served_here(docs_client, page):
    html = docs_client.get(page).text
    loaded = re.findall(r"""(?:src|href|spec-url)="([^"]+)"|url: '([^']+)'""", html)
    assert {src or url for src, url in loaded} == set(PAGES[page])
    for path, media_type in PAGES[page].items():
        response = docs_client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == media_type, path
        assert response.content.startswith(ASSET_STARTS[path]), path


def test_an_unknown_docs_asset_is_a_problem(docs_client):
    body = assert_problem(docs_client.get("/docs/assets/swagger-ui.js"), 404)
    assert body["detail"] == (
        "No docs asset 'swagger-ui.js'; there are swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, "
        "favicon.png."
    )


def test_the_docs_say_where_the_lessons_are():
    description = APP.openapi()["info"]["description"]
    for place in ("`lesson: <slug>`", "`GET /lessons`", "`GET /lessons/{slug}/compare`", "[/lab](/lab)"):
        assert place in description
    assert "`/lab/{slug}`" in description and "[/redoc](/redoc)" in description


# ---- a lesson's documented 500 is the one its route answers ----------------------------------------


def documented_request(path: str, operation: dict) -> dict:
    """The request /docs' Try-it-out sends: the path, query and body examples the schema carries."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            path = path.replace(f"{{{parameter['name']}}}", str(parameter["example"]))
    params = {
        p["name"]: p["example"]
        for p in operation.get("parameters", [])
        if p["in"] == "query" and "example" in p
    }
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    return {"url": path, "params": params, **({"json": body["example"]} if body else {})}


FAILING = {  # lesson routes whose documented request answers 500, on each engine (others may, as they come)
    "sqlite": {
        "GET /lessons/n-plus-one/guard",
        "GET /lessons/detached-instance/bad",
        "PATCH /lessons/detached-instance/bad/expired",
        "POST /lessons/unique-violation/bad",
    },
}
FAILING["postgresql"] = FAILING["sqlite"] | {  # SQLite stores the orphan instead (foreign keys off)
    "POST /lessons/foreign-key/bad",
    "DELETE /lessons/foreign-key/bad/teams/{team_id}",
}


def engine_of(detail: str) -> str | None:
    """The engine whose words a documented detail quotes (None: the ORM's, the same on both)."""
    if detail.startswith("IntegrityError: "):  # sqlite3's class; psycopg's are named after the violation
        return "sqlite"
    return "postgresql" if "Violation: " in detail or "QueryCanceled" in detail else None


def test_a_lesson_routes_documented_500_is_what_it_answers(client, seeded, engine_name):
    schema = client.app.openapi()
    failed, wrong = set(), []
    for lesson in LESSONS:
        for route in lesson.routes:
            for method in route.methods:
                operation = schema["paths"][route.path][method.lower()]
                if "500" not in operation["responses"]:
                    continue
                example = operation["responses"]["500"]["content"][PROBLEM_JSON]["example"]
                response = client.request(method, **documented_request(route.path, operation))
                if response.status_code != 500:
                    continue
                failed.add(f"{method} {route.path}")
                body = response.json()
                assert response.headers["content-type"] == PROBLEM_JSON
                assert body["instance"] == response.request.url.path
                for key in ("type", "title", "status", "exception"):
                    if body[key] != example[key]:
                        wrong.append((method, route.path, key, body[key], example[key]))
                if engine_of(example["detail"]) in (None, engine_name):
                    said, documented = (varying(text) for text in (body["detail"], example["detail"]))
                    if said != documented:
                        wrong.append((method, route.path, "detail", said, documented))
    assert wrong == [], "\n".join(" ".join(map(str, w)) for w in wrong)
    assert failed >= FAILING[engine_name]


def varying(detail: str) -> str:
    """A detail without what changes from run to run: an object's address, a session's number."""
    return re.sub(r"(session|this is) '\d+'", r"\1 'N'", re.sub(r"0x[0-9a-f]+", "0x…", detail))
