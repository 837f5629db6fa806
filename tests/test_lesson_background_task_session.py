"""Lesson background-task-session: on the pinned FastAPI the request's session outlives its background
tasks, so bad's jobs hold the lesson's pool, fixed's hold nothing; the order itself checked; both engines."""

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import httpx2
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.testclient import TestClient

from heroes.lessons import background_task_session as lesson_module
from heroes.lessons.background_task_session import lesson_engine

URL = "/lessons/background-task-session"
ROUTES = ["bad", "bad/default-scope", "fixed"]
HELD = {"bad": 3, "bad/default-scope": 3, "fixed": 0}  # connections out while 3 jobs run at once


# ---- the order, on the pinned FastAPI (the Myth) ---------------------------------------------------------


def test_myth_the_yield_dependency_exits_after_the_background_task():
    """dependency enter, route, task, dependency exit; with scope="function": enter, route, exit, task."""
    log: list[str] = []

    def dependency():
        log.append("enter")
        yield
        log.append("exit")

    app = FastAPI()

    @app.get("/request")
    def request_scope(tasks: BackgroundTasks, _: Annotated[None, Depends(dependency)]) -> None:
        log.append("route")
        tasks.add_task(log.append, "task")

    @app.get("/function")
    def function_scope(
        tasks: BackgroundTasks, _: Annotated[None, Depends(dependency, scope="function")]
    ) -> None:
        log.append("route")
        tasks.add_task(log.append, "task")

    with TestClient(app) as client:
        client.get("/request")
        assert log == ["enter", "route", "task", "exit"]
        log.clear()
        client.get("/function")
        assert log == ["enter", "route", "exit", "task"]


# ---- three jobs at once, forced to overlap --------------------------------------------------------------


@pytest.fixture
def overlapping(monkeypatch):
    """The first 3 jobs' slow parts meet (every route has answered), each reads the pool, and none goes on
    before all 3 have read it (bounded waits); `hold`, once cleared, keeps them there until it is set."""
    arrived, sampled, hold = (
        threading.Barrier(3, timeout=10),
        threading.Barrier(3, timeout=10),
        threading.Event(),
    )
    hold.set()
    jobs = []

    def slow_email(engine, seconds):
        jobs.append(engine)
        if len(jobs) > 3:  # a later job (the next request's): not held
            return engine.pool.checkedout()
        arrived.wait()
        busy = engine.pool.checkedout()
        sampled.wait()
        hold.wait(timeout=10)
        return busy

    monkeypatch.setattr(lesson_module, "slow_email", slow_email)
    return hold


def post_at_once(base_url: str, route: str, n: int = 3, hero_id: int = 1) -> list[httpx2.Response]:
    start = threading.Barrier(n, timeout=10)

    def one(_: int) -> httpx2.Response:
        with httpx2.Client(base_url=base_url, timeout=30, trust_env=False) as http:
            start.wait()
            return http.post(f"{URL}/{route}", params={"hero_id": hero_id, "seconds": 0.5})

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.parametrize("route", ROUTES)
def test_connections_checked_out_while_the_jobs_run(live_server, seeded, app, overlapping, route):
    answers = post_at_once(live_server, route)
    assert [a.status_code for a in answers] == [202] * 3
    assert all(a.json()["hero"] == "Deadpond" for a in answers)
    engine = lesson_engine(app.state.lab)
    for _ in range(200):  # the jobs end after the responses: wait (bounded) for them
        if len(lesson_module._sent.get(engine, ())) == 3 and not engine.pool.checkedout():
            break
        threading.Event().wait(0.05)
    assert engine.pool.checkedout() == 0  # when they are done, everything is back
    if route == "bad/default-scope":  # the 3 connections wait for the jobs, the jobs for a connection
        sent = list(lesson_module._sent[engine])  # the first to time out frees a connection for the last
        assert len(sent) == 3 and {busy for busy, _ in sent} == {3} and sent[0] == (3, "failed: TimeoutError")
        assert {line for _, line in sent} <= {"failed: TimeoutError", "to Deadpond"}
    else:
        assert list(lesson_module._sent[engine]) == [(HELD[route], "to Deadpond")] * 3  # every job worked


@pytest.mark.parametrize(("route", "status"), [("bad", 503), ("bad/default-scope", 503), ("fixed", 202)])
def test_the_next_request_while_three_jobs_run(live_server, seeded, app, overlapping, route, status):
    """Jobs held in their slow part: bad's have taken the pool of 3, so a 4th request times out (2 s)."""
    overlapping.clear()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post_at_once, live_server, route)
        engine = lesson_engine(app.state.lab)
        for _ in range(200):  # until the three responses are out (bounded)
            if first.done() or (route != "fixed" and engine.pool.checkedout() == 3):
                break
            threading.Event().wait(0.05)
        with httpx2.Client(base_url=live_server, timeout=30, trust_env=False) as http:
            fourth = http.post(f"{URL}/{route}", params={"hero_id": 2, "seconds": 0.1})
        overlapping.set()
        assert [a.status_code for a in first.result()] == [202] * 3
    assert fourth.status_code == status, fourth.text
    if status == 503:
        body = fourth.json()
        assert (body["type"], body["exception"]) == (URL, "TimeoutError")
        assert "QueuePool limit of size 3 overflow 0 reached" in body["detail"]
        assert fourth.headers["retry-after"]
    else:
        assert fourth.json()["hero"] == "Rusty-Man"


def test_the_reference_api_gives_its_connection_back_with_the_response(client, seeded, engine):
    """The reference API hands no session to background work: after each request nothing is checked out."""
    for path in ("/teams/1", "/heroes/1", "/heroes"):
        assert client.get(path).status_code == 200
        assert engine.pool.checkedout() == 0


def test_an_unknown_hero_is_404_and_seconds_are_bounded(client, seeded):
    for route in ROUTES:
        body = client.post(f"{URL}/{route}", params={"hero_id": 99}).json()
        assert (body["status"], body["errors"][0]["field"]) == (404, "hero_id")
        for seconds in (0, 1.6, -1):
            body = client.post(f"{URL}/{route}", params={"seconds": seconds}).json()
            assert (body["status"], body["errors"][0]["field"]) == (422, "seconds")


def test_compare(client, seeded, engine_name):
    response = client.get(f"{URL}/compare")
    assert response.status_code == 200, response.text
    result = response.json()
    assert [(v["variant"], v["clients"]) for v in result["variants"]] == [(route, 4) for route in ROUTES]
    bad, default_scope, fixed = result["variants"]
    assert bad["statuses"] == fixed["statuses"] == {"202": 4}
    assert bad["outcome"].startswith("4× 202: the slowest 202 waited ")  # the 4th, until a job ended
    assert fixed["outcome"].startswith("4× 202: the slowest 202 waited ")
    # the 3 jobs wait for a connection the 3 requests hold for them: the 4th times out first (2 s vs 2.5 s)
    assert default_scope["statuses"] == {"202": 3, "503": 1}
    assert default_scope["outcome"].startswith("3× 202, 1× 503: the slowest 202 waited ")


def test_catalogue_lists_the_routes_and_the_myth(client):
    lesson = client.get(URL).json()
    assert [(r["method"], r["path"]) for r in lesson["routes"]] == [("POST", f"{URL}/{r}") for r in ROUTES]
    assert lesson["myth"].startswith('"the session is already closed in a background task"')
