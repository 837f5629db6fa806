"""Lesson unique-violation: bad is the driver's 500, check-then-insert races, fixed is 409; both engines."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from sqlalchemy import Engine, event, insert
from sqlmodel import Session, select

from heroes.lessons.unique_violation import scratch
from heroes.models import Team
from heroes.problems import PROBLEM_JSON
from heroes.seed import count_rows

from support import assert_problem, once_after, once_before

URL = "/lessons/unique-violation"
TEAMS = [
    {"id": 1, "name": "Preventers", "headquarters": "Sharp Tower"},
    {"id": 2, "name": "Z-Force", "headquarters": "Sister Margaret's Bar"},
    {"id": 3, "name": "Avengers", "headquarters": "Avengers Mansion"},
    {"id": 4, "name": "Justice League", "headquarters": "Hall of Justice"},
    {"id": 5, "name": "Guardians", "headquarters": "Knowhere"},
]
CLIENTS = 20
HQ = "Hidden HQ 7f3a"  # a parameter value: it must never be echoed by an error


def unique_violation_detail(engine_name: str, name: str) -> str:
    """The driver's own message, as LessonRoute reports it (no SQL, no parameters)."""
    if engine_name == "sqlite":
        return "IntegrityError: UNIQUE constraint failed: team.name"
    return (
        'UniqueViolation: duplicate key value violates unique constraint "uq_team_name" '
        f"DETAIL: Key (name)=({name}) already exists."
    )


def assert_lesson_500(response, engine_name: str, name: str) -> None:
    """The documented failure: 500 problem+json typed as the lesson, the driver's message, nothing private."""
    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == URL
    assert body["status"] == 500
    assert body["exception"] == "IntegrityError"
    assert body["title"] == "IntegrityError: the pitfall this lesson shows"
    assert body["detail"] == unique_violation_detail(engine_name, name)
    for private in ("secret", "INSERT", "[SQL", "[parameters", HQ):
        assert private not in response.text


def scratch_names(app, name: str) -> list[str]:
    """Headquarters of every team called `name` in the lesson's scratch database."""
    with Session(scratch(app.state.lab)) as session:
        return list(session.exec(select(Team.headquarters).where(Team.name == name)))


def assert_reference_untouched(client, engine: Engine) -> None:
    assert client.get("/teams", params={"limit": 100}).json() == TEAMS
    assert count_rows(engine) == (5, 15)


def race(base_url: str, path: str, body: dict, clients: int = CLIENTS) -> list[httpx2.Response]:
    """`clients` real HTTP clients, each on its own thread and connection, POSTing at the same moment."""
    start = threading.Barrier(clients, timeout=10)

    def one(_: int) -> httpx2.Response:
        with httpx2.Client(base_url=base_url, timeout=30, trust_env=False) as http:
            start.wait()
            return http.post(path, json=body)

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(clients)))


# ---- bad: the commit nobody handles ---------------------------------------------------------------


def test_bad_with_a_taken_name_is_the_documented_500(client, seeded, engine_name):
    response = client.post(f"{URL}/bad", json={"name": "Preventers", "headquarters": HQ})
    assert_lesson_500(response, engine_name, "Preventers")
    assert response.headers["x-query-count"] == "1"  # the INSERT the constraint refused


def test_bad_with_a_free_name_creates_in_the_scratch_database(client, seeded, app):
    response = client.post(f"{URL}/bad", json={"name": "Fantastic Four", "headquarters": "Baxter Building"})
    assert response.status_code == 201
    assert response.json() == {"id": 6, "name": "Fantastic Four", "headquarters": "Baxter Building"}
    assert response.headers["x-query-count"] == "2"  # INSERT, then the refresh
    assert scratch_names(app, "Fantastic Four") == ["Baxter Building"]


def test_after_bad_fails_the_server_answers_normally(client, seeded, app, engine, engine_name):
    """More failures than the scratch pool has connections (5 + 20): each is rolled back and returned."""
    for _ in range(30):
        assert_lesson_500(
            client.post(f"{URL}/bad", json={"name": "Z-Force", "headquarters": HQ}), engine_name, "Z-Force"
        )

    assert_reference_untouched(client, engine)
    created = client.post(f"{URL}/fixed", json={"name": "Thunderbolts", "headquarters": "Watchtower"})
    assert created.status_code == 201
    again = client.post(f"{URL}/bad", json={"name": "Inhumans", "headquarters": "Attilan"})
    assert again.status_code == 201
    assert scratch(app.state.lab).pool.checkedout() == 0


# ---- bad/check-then-insert: the check that races ----------------------------------------------------


def test_check_then_insert_answers_409_from_its_check_to_one_client(client, seeded):
    """One request at a time, the check looks right: that is why it survives code review."""
    response = client.post(f"{URL}/bad/check-then-insert", json={"name": "Avengers", "headquarters": HQ})
    body = assert_problem(response, 409, "name", "body")
    assert "Avengers" in body["detail"]
    assert response.headers["x-query-count"] == "1"  # the SELECT only

    created = client.post(f"{URL}/bad/check-then-insert", json={"name": "X-Men", "headquarters": "Mansion"})
    assert created.status_code == 201
    assert created.headers["x-query-count"] == "3"  # SELECT, INSERT, refresh


def test_check_then_insert_loses_when_a_client_inserts_after_the_check(
    client, seeded, app, engine, engine_name
):
    """Deterministic race: the name is committed right after the check's SELECT; the INSERT is refused."""
    intruder = insert(Team).values(name="Defenders", headquarters="Sanctum")
    with once_after(scratch(app.state.lab), "FROM team", lambda other: other.execute(intruder)):
        response = client.post(f"{URL}/bad/check-then-insert", json={"name": "Defenders", "headquarters": HQ})

    assert_lesson_500(response, engine_name, "Defenders")
    assert scratch_names(app, "Defenders") == ["Sanctum"]
    assert_reference_untouched(client, engine)


def test_fixed_answers_409_to_the_same_interleaving(client, seeded, app, engine):
    """The competitor commits the name just before our INSERT: the constraint refuses it, fixed says 409."""
    intruder = insert(Team).values(name="Defenders", headquarters="Sanctum")
    with once_before(scratch(app.state.lab), "INSERT INTO team", lambda other: other.execute(intruder)):
        response = client.post(f"{URL}/fixed", json={"name": "Defenders", "headquarters": HQ})

    body = assert_problem(response, 409, "name", "body")
    assert body["detail"] == "A team named 'Defenders' already exists."
    assert HQ not in response.text
    assert scratch_names(app, "Defenders") == ["Sanctum"]
    assert_reference_untouched(client, engine)


def test_check_then_insert_races_with_real_concurrent_clients(live_server, seeded, app, engine_name):
    """20 real clients, one new name, and every check answered before any insert (a barrier right after
    the check's SELECT): every check passes, so exactly one INSERT wins and 19 hit the constraint: 500s."""
    scratch_engine = scratch(app.state.lab)
    checked = threading.Barrier(CLIENTS, timeout=20)
    checks = Counter()
    lock = threading.Lock()

    def after_check(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM team" in statement:
            with lock:
                checks["seen"] += 1
                first_round = checks["seen"] <= CLIENTS  # the winner's refresh SELECT comes later
            if first_round:
                checked.wait()  # this request passed its check; wait until every other one has too

    event.listen(scratch_engine, "after_cursor_execute", after_check)
    try:
        body = {"name": "Runaways", "headquarters": HQ}
        responses = race(live_server, f"{URL}/bad/check-then-insert", body)
    finally:
        event.remove(scratch_engine, "after_cursor_execute", after_check)

    assert Counter(r.status_code for r in responses) == {201: 1, 500: CLIENTS - 1}
    for response in responses:  # statements: 201 SELECT+INSERT+refresh, 500 SELECT+INSERT
        assert response.headers["x-query-count"] == {201: "3", 500: "2"}[response.status_code]
        if response.status_code == 500:
            assert_lesson_500(response, engine_name, "Runaways")
    assert scratch_names(app, "Runaways") == [HQ]


# ---- fixed: the constraint decides ------------------------------------------------------------------


def test_fixed_20_concurrent_creates_give_one_201_and_19_409(live_server, seeded, app, engine):
    responses = race(live_server, f"{URL}/fixed", {"name": "Thunderbolts", "headquarters": "Watchtower"})

    assert Counter(r.status_code for r in responses) == {201: 1, 409: CLIENTS - 1}
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "name", "body")
            assert response.headers["x-query-count"] == "1"
        else:
            assert response.json()["name"] == "Thunderbolts"
            assert response.headers["x-query-count"] == "2"
    assert scratch_names(app, "Thunderbolts") == ["Watchtower"]
    with httpx2.Client(base_url=live_server, timeout=10, trust_env=False) as http:
        assert http.get("/teams").json() == TEAMS
    assert count_rows(engine) == (5, 15)


def test_fixed_with_a_taken_name_is_409_naming_name(client, seeded):
    response = client.post(f"{URL}/fixed", json={"name": "Preventers", "headquarters": HQ})
    body = assert_problem(response, 409, "name", "body")
    assert body["detail"] == "A team named 'Preventers' already exists."
    assert response.headers["x-query-count"] == "1"


@pytest.mark.parametrize("route", ["bad", "bad/check-then-insert", "fixed"])
@pytest.mark.parametrize(
    "body",
    [
        {"name": "x" * 101, "headquarters": "HQ"},
        {"name": "Nul\x00Team", "headquarters": "HQ"},
        {"name": "", "headquarters": "HQ"},
        {"headquarters": "HQ"},
    ],
    ids=["too-long", "nul-byte", "empty", "missing"],
)
def test_bad_input_is_422_naming_name_on_every_route(client, seeded, app, engine, route, body):
    response = client.post(f"{URL}/{route}", json=body)
    assert_problem(response, 422, "name", "body")
    assert response.headers["x-query-count"] == "0"
    assert_reference_untouched(client, engine)


def test_reference_teams_unchanged_after_every_route_creates(client, seeded, engine):
    for route, name in [("bad", "A"), ("bad/check-then-insert", "B"), ("fixed", "C")]:
        assert client.post(f"{URL}/{route}", json={"name": name, "headquarters": "HQ"}).status_code == 201
    assert_reference_untouched(client, engine)


# ---- compare ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [None, 5])
def test_compare(client, seeded, engine, engine_name, size):
    clients = size or CLIENTS
    params = {"size": size} if size else {}
    for _ in range(2):  # every run starts from a fresh scratch database: the same outcome again
        response = client.get(f"{URL}/compare", params=params)
        assert response.status_code == 200, response.text
        result = response.json()
        assert (result["engine"], result["size"]) == (engine_name, size or 20)  # 20 clients by default
        bad, check, fixed = result["variants"]

        assert (bad["variant"], bad["clients"], bad["statuses"], bad["statements"]) == (
            "bad",
            1,
            {"500": 1},
            1,
        )
        detail = unique_violation_detail(engine_name, "Preventers")
        assert bad["outcome"] == f"500 Internal Server Error: {detail}"

        assert (check["variant"], check["clients"]) == ("bad/check-then-insert", clients)
        statuses = {int(s): n for s, n in check["statuses"].items()}
        assert statuses[201] == 1 and set(statuses) <= {201, 409, 500}
        assert sum(statuses.values()) == clients
        assert check["statements"] == 3 + statuses.get(409, 0) + 2 * statuses.get(500, 0)

        assert (fixed["variant"], fixed["clients"]) == ("fixed", clients)
        assert fixed["statuses"] == {"201": 1, "409": clients - 1}
        assert fixed["outcome"] == f"1× 201, {clients - 1}× 409"
        assert fixed["statements"] == clients + 1  # the winner's INSERT and refresh, one INSERT per loser
    assert_reference_untouched(client, engine)


def test_compare_refuses_more_clients_than_the_maximum(client, seeded):
    assert_problem(client.get(f"{URL}/compare", params={"size": 51}), 422, "size", "query")


def test_catalogue_lists_the_three_routes(client):
    lesson = client.get(URL).json()
    assert [(r["method"], r["path"]) for r in lesson["routes"]] == [
        ("POST", f"{URL}/bad"),
        ("POST", f"{URL}/bad/check-then-insert"),
        ("POST", f"{URL}/fixed"),
    ]
    assert lesson["engines"] == ["sqlite", "postgresql"]
    assert list(lesson["more"]) == ["Data"]  # no stray "word:" line became a section
