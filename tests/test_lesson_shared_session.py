"""Lesson shared-session: one Session for every request; 20 real clients against a live server, the
interleavings forced (a statement or an add() held until the others have answered); both engines."""

import re
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx2
import pytest
from sqlalchemy import event
from sqlmodel import Session

from heroes.lessons.shared_session import scratch, shared, stored

URL = "/lessons/shared-session"
CLIENTS = 20
PROVISIONING = "This session is provisioning a new connection; concurrent operations are not permitted"
DEMO = {1: "Preventers", 2: "Z-Force", 3: "Avengers", 4: "Justice League", 5: "Guardians"}
pytestmark = pytest.mark.filterwarnings("default::sqlalchemy.exc.SAWarning")  # as in production: a warning


def http(base_url: str) -> httpx2.Client:
    return httpx2.Client(base_url=base_url, timeout=30, trust_env=False)


def create_at_once(base_url: str, route: str, names: list[str], answered=None) -> list[httpx2.Response]:
    """One real client per name, all POSTing at the same moment; `answered(n)` after each response."""
    start, lock, done = threading.Barrier(len(names), timeout=10), threading.Lock(), [0]

    def one(name: str) -> httpx2.Response:
        with http(base_url) as client:
            start.wait()
            response = client.post(f"{URL}/{route}", json={"name": name, "headquarters": "HQ"})
        with lock:
            done[0] += 1
            if answered:
                answered(done[0])
        return response

    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(one, names))


def wrong_answers(responses: list[httpx2.Response], names: list[str], rows: dict[int, str]) -> list[str]:
    """Answers the database contradicts: a 201 whose team is not stored as answered, a failure whose is."""
    wrong = []
    for name, response in zip(names, responses, strict=True):
        if response.status_code == 201:
            body = response.json()
            if rows.get(body["id"]) != name:
                wrong.append(f"201 for {name}, not stored")
        elif name in rows.values():
            wrong.append(f"{response.status_code} for {name}, stored all the same")
    return wrong


# ---- one client at a time, it works ------------------------------------------------------------------


def test_bad_one_client_at_a_time_works(client, seeded, app):
    created = client.post(f"{URL}/bad", json={"name": "Alpha", "headquarters": "HQ"})
    assert (created.status_code, created.json()) == (201, {"name": "Alpha", "headquarters": "HQ", "id": 6})
    assert created.headers["x-query-count"] == "2"  # INSERT, refresh
    taken = client.post(f"{URL}/bad", json={"name": "Preventers", "headquarters": "HQ"})
    assert (taken.status_code, taken.json()["errors"][0]["field"]) == (409, "name")
    again = client.post(f"{URL}/bad", json={"name": "Beta", "headquarters": "HQ"})
    assert again.status_code == 201  # its 409 rolled the session back: still usable
    assert [t["name"] for t in client.get(f"{URL}/bad/teams").json()] == [*DEMO.values(), "Alpha", "Beta"]
    assert set(stored(app.state.lab, "bad").values()) == {*DEMO.values(), "Alpha", "Beta"}


# ---- 20 clients at once ----------------------------------------------------------------------------------


def test_bad_under_20_concurrent_clients_every_request_fails(live_server, seeded, app):
    """The first INSERT is held until the 19 others have answered: finding a commit in progress on the one
    session, each of them fails; and the first finds its transaction closed under it."""
    names = [f"Team {n:02}" for n in range(CLIENTS)]
    others_answered, held = threading.Event(), []

    def hold_first_insert(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("INSERT INTO team") and not held:
            held.append(statement)
            others_answered.wait(timeout=10)

    engine = shared(app.state.lab).get_bind()
    event.listen(engine, "before_cursor_execute", hold_first_insert)
    try:
        last = lambda n: n == CLIENTS - 1 and others_answered.set()  # noqa: E731
        responses = create_at_once(live_server, "bad", names, last)
    finally:
        event.remove(engine, "before_cursor_execute", hold_first_insert)
    statuses = Counter(r.status_code for r in responses)  # the held one: 500 on SQLite, 201 on PostgreSQL
    assert statuses[500] >= CLIENTS - 1 and statuses[500] + statuses[201] == CLIENTS  # errors: 19 or 20
    errors = {
        r.json()["exception"]: r.json()["detail"].split(" (Background")[0]
        for r in responses
        if r.status_code == 500
    }
    assert errors and set(errors) <= {"IllegalStateChangeError", "InvalidRequestError", "ResourceClosedError"}
    assert errors.get("InvalidRequestError", PROVISIONING) == PROVISIONING
    assert errors.get("ResourceClosedError", "This transaction is closed") == "This transaction is closed"
    assert errors.get(
        "IllegalStateChangeError", "Method 'commit()' can't be called here; method "
    ).startswith("Method 'commit()' can't be called here; method ")
    rows = stored(app.state.lab, "bad")
    failed = [name for name, r in zip(names, responses, strict=True) if r.status_code == 500]
    wrong = wrong_answers(responses, names, rows)  # the first commit flushed everyone's team, or nobody's
    assert wrong in ([], [f"500 for {name}, stored all the same" for name in failed]), wrong
    assert set(rows.values()) - set(DEMO.values()) <= set(names)


def test_fixed_under_20_concurrent_clients_answers_true(live_server, seeded, app):
    """Every INSERT held until all 20 are there (all 20 transactions open at once): 20x 201, all stored."""
    names = [f"Team {n:02}" for n in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS, timeout=10)

    def all_insert_together(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("INSERT INTO team"):
            barrier.wait()

    engine = scratch(app.state.lab)
    event.listen(engine, "before_cursor_execute", all_insert_together)
    try:
        responses = create_at_once(live_server, "fixed", names)
    finally:
        event.remove(engine, "before_cursor_execute", all_insert_together)
    assert Counter(r.status_code for r in responses) == {201: CLIENTS}  # errors: 0
    rows = stored(app.state.lab)
    assert wrong_answers(responses, names, rows) == []  # wrong answers: 0
    assert sorted(rows.values()) == sorted([*DEMO.values(), *names])


def test_the_reference_api_under_20_concurrent_clients_answers_true(live_server, seeded):
    names = [f"Team {n:02}" for n in range(CLIENTS)]
    start = threading.Barrier(CLIENTS, timeout=10)

    def one(name: str) -> httpx2.Response:
        with http(live_server) as client:
            start.wait()
            return client.post("/teams", json={"name": name, "headquarters": "HQ"})

    with ThreadPoolExecutor(CLIENTS) as pool:
        responses = list(pool.map(one, names))
    assert Counter(r.status_code for r in responses) == {201: CLIENTS}
    with http(live_server) as client:
        teams = client.get("/teams", params={"limit": 100}).json()
    created = {r.json()["id"]: name for r, name in zip(responses, names, strict=True)}
    assert {t["id"]: t["name"] for t in teams} == created | DEMO


# ---- one request's failure, another request's work -------------------------------------------------------


@contextmanager
def held_after_add(name: str) -> Iterator[tuple[list, threading.Event]]:
    """The request that adds a team called `name` (in any session) waits right after its add() until the
    event is set (bounded)."""
    held, go = [], threading.Event()

    def after_attach(session, instance) -> None:
        if getattr(instance, "name", None) == name and not held:
            held.append(name)
            go.wait(timeout=10)

    event.listen(Session, "after_attach", after_attach)
    try:
        yield held, go
    finally:
        go.set()
        event.remove(Session, "after_attach", after_attach)


def while_held(app, base_url: str, route: str, name: str, meanwhile) -> tuple[httpx2.Response, list]:
    """POST `name` to `route`, hold it after its add(), run `meanwhile(client)`, let it go; both answers."""
    shared(app.state.lab), scratch(app.state.lab)  # built (and seeded) before anything is held
    with held_after_add(name) as (held, go), ThreadPoolExecutor(1) as pool, http(base_url) as client:
        first = pool.submit(client.post, f"{URL}/{route}", json={"name": name, "headquarters": "HQ"})
        for _ in range(200):
            if held:
                break
            threading.Event().wait(0.05)
        assert held, "the first request never added its team"
        with http(base_url) as other:
            answers = meanwhile(other)
        go.set()
        return first.result(), answers


@pytest.mark.parametrize("route", ["bad", "fixed"])
def test_one_requests_taken_name_and_anothers_new_team(live_server, seeded, app, route):
    """A adds "Alpha" and waits; B adds the taken "Preventers" and commits. bad: the flush writes both,
    fails on B's, and B's rollback takes A's team with it: B 409, A 500. fixed: B 409, A 201."""
    a, [b] = while_held(
        app,
        live_server,
        route,
        "Alpha",
        lambda c: [c.post(f"{URL}/{route}", json={"name": "Preventers", "headquarters": "HQ"})],
    )
    assert (b.status_code, b.json()["errors"][0]["field"]) == (409, "name")
    if route == "bad":
        assert (a.status_code, a.json()["exception"]) == (500, "InvalidRequestError")
        assert re.fullmatch(
            r"Instance '<Team at 0x[0-9a-f]+>' is not persistent within this Session", a.json()["detail"]
        )
        assert stored(app.state.lab, "bad") == DEMO  # A's team, lost to B's rollback
    else:
        assert (a.status_code, a.json()["name"]) == (201, "Alpha")
        assert stored(app.state.lab) == {**DEMO, a.json()["id"]: "Alpha"}


@pytest.mark.parametrize("route", ["bad", "fixed"])
def test_a_reader_while_another_request_has_added_a_team(live_server, seeded, app, route):
    """bad's reader lists "Alpha" before anyone committed it (autoflush wrote it into the one transaction)."""
    a, [view] = while_held(app, live_server, route, "Alpha", lambda c: [c.get(f"{URL}/{route}/teams")])
    names = [t["name"] for t in view.json()]
    assert names == ([*DEMO.values(), "Alpha"] if route == "bad" else list(DEMO.values()))
    assert a.status_code == 201


def test_bad_one_failure_poisons_the_session_for_everyone(live_server, seeded, app):
    """A adds the taken "Preventers" and waits; a reader's autoflush fails on it: the reader gets A's
    IntegrityError, then A and every request after it PendingRollbackError, until the lesson is reset."""
    later = lambda c: [  # noqa: E731
        c.get(f"{URL}/bad/teams"),
        *(c.post(f"{URL}/bad", json={"name": f"Later {n}", "headquarters": "HQ"}) for n in range(3)),
    ]
    a, [reader] = while_held(app, live_server, "bad", "Preventers", lambda c: [c.get(f"{URL}/bad/teams")])
    assert (reader.status_code, reader.json()["exception"]) == (500, "IntegrityError")
    with http(live_server) as client:
        after = [a, *later(client)]
        assert [(r.status_code, r.json()["exception"]) for r in after] == [(500, "PendingRollbackError")] * 5
        assert after[1].json()["detail"] == (
            "This Session's transaction has been rolled back due to a previous exception during flush. "
            "To begin a new transaction with this Session, first issue Session.rollback()."
        )
        assert client.post(f"{URL}/reset").status_code in (200, 204)
        assert (
            client.post(f"{URL}/bad", json={"name": "After Reset", "headquarters": "HQ"}).status_code == 201
        )
    assert "Later 0" not in stored(app.state.lab, "bad").values()


# ---- compare, the catalogue --------------------------------------------------------------------------------


def test_compare(client, seeded, engine_name):
    response = client.get(f"{URL}/compare")
    assert response.status_code == 200, response.text
    bad, fixed = response.json()["variants"]
    assert (bad["variant"], bad["clients"], sum(bad["statuses"].values())) == ("bad", 20, 20)
    assert set(bad["statuses"]) <= {"201", "409", "500"}
    assert bad["outcome"].startswith(
        f"{sum(n for s, n in bad['statuses'].items() if s == '500')} of 20 failed: "
    )
    assert (fixed["variant"], fixed["statuses"]) == ("fixed", {"201": 1, "409": 19})
    assert fixed["outcome"] == "0 of 20 failed: 1× 201, 19× 409"


def test_catalogue_lists_the_routes(client):
    lesson = client.get(URL).json()
    assert [(r["method"], r["path"]) for r in lesson["routes"]] == [
        ("POST", f"{URL}/bad"),
        ("POST", f"{URL}/fixed"),
        ("GET", f"{URL}/bad/teams"),
        ("GET", f"{URL}/fixed/teams"),
    ]
    assert lesson["engines"] == ["sqlite", "postgresql"] and list(lesson["more"]) == ["Data"]
