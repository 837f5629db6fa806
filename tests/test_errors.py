"""The generic errors: a 500 that leaks nothing, and 404/405 as problem+json."""

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from heroes.config import Settings
from heroes.db import SessionDep, create_db_engine
from heroes.main import create_app
from heroes.problems import PROBLEM_JSON

SECRET = "hunter2-b7f3c9"  # a parameter value that must never reach a client


def add_broken_routes(app) -> None:
    @app.get("/broken-sql")
    def broken_sql(session: SessionDep) -> dict:
        """A programming error: SQL the database cannot parse, with a parameter that must stay private."""
        session.execute(text("SELEC secret_name FROM hero WHERE secret_name = :secret"), {"secret": SECRET})
        return {}

    @app.get("/broken-python")
    def broken_python() -> dict:
        raise RuntimeError(f"password={SECRET}")


def assert_generic_500(response) -> None:
    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "Something went wrong on our side; it has been logged.",
        "instance": response.request.url.path,
    }
    for leak in (SECRET, "SELEC", "secret_name", "hero", "RuntimeError", "Traceback"):
        assert leak not in response.text


def test_broken_sql_answers_a_generic_500(app, caplog):
    add_broken_routes(app)
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR, "heroes"):
        response = client.get("/broken-sql")
    assert_generic_500(response)
    assert response.headers["x-query-count"] == "1"  # the failed statement still counts
    assert "SELEC" in caplog.text  # the full story goes to the log, not to the client


def test_unhandled_exception_answers_a_generic_500_with_its_evidence(app, caplog):
    add_broken_routes(app)
    with TestClient(app) as client, caplog.at_level(logging.ERROR, "heroes"):
        response = client.get("/broken-python")
    assert_generic_500(response)
    assert response.headers["x-query-count"] == "0"
    assert response.headers["server-timing"].startswith('db;dur=0.00;desc="0 queries", app;dur=')
    assert "RuntimeError" in caplog.text


def test_unknown_route_is_a_problem(client):
    response = client.get("/villains/1")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Nothing at GET /villains/1.",
        "instance": "/villains/1",
    }


def test_wrong_method_is_405_with_allow(client):
    response = client.delete("/health/live")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["allow"] == "GET"
    assert response.json() == {
        "type": "about:blank",
        "title": "Method Not Allowed",
        "status": 405,
        "detail": "DELETE is not allowed on /health/live; it answers GET.",
        "instance": "/health/live",
    }


def test_allow_names_every_method_of_the_path(client):
    """Starlette's own 405 names only the first matching route's methods (`Allow: GET` here)."""
    response = client.put("/teams/1", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert response.json()["detail"] == "PUT is not allowed on /teams/1; it answers DELETE, GET, PATCH."


@pytest.mark.postgres_only(reason="SQLite has no statement timeout; PostgreSQL's is set on every connection")
def test_a_statement_over_the_timeout_answers_503(database_url):
    settings = Settings(database_url=database_url, statement_timeout_ms=200)
    engine = create_db_engine(settings=settings)
    app = create_app(settings=settings, engine=engine)

    @app.get("/slow")
    def slow(session: SessionDep) -> dict:
        session.exec(text("SELECT pg_sleep(5)"))
        return {}

    with TestClient(app) as client:
        response = client.get("/slow")
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.headers["retry-after"] == "2"
        assert (
            response.json()["detail"]
            == "The database is unavailable or did not answer in time; try again shortly."
        )
        assert client.get("/heroes").status_code == 200  # the connection went back to the pool usable
    engine.dispose()
