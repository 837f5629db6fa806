"""Lesson engine-per-request: bad opens a new connection per request (100 per 100), fixed one per app (1);
PostgreSQL backends under the lesson's application_name; reset disposes; both engines."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from sqlalchemy import event, text

from heroes.lessons.engine_per_request import engines

URL = "/lessons/engine-per-request"
TEAM_1 = {"name": "Preventers", "headquarters": "Sharp Tower", "id": 1}


def backends_of(engine, name: str, expected: int) -> int:
    """pg_stat_activity's count for `name`, once it is `expected` (a closed backend exits a moment later)."""
    deadline = time.monotonic() + 5
    while True:
        with engine.connect() as connection:
            query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
            found = connection.scalar(query, {"name": name})
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def visits(client, route: str, n: int, team_id: int = 1) -> list[dict]:
    answers = [client.get(f"{URL}/{route}", params={"team_id": team_id}) for _ in range(n)]
    assert all(a.status_code == 200 for a in answers), answers[-1].text
    assert all(a.headers["x-query-count"] == "1" for a in answers)  # the one SELECT of the job
    return [a.json() for a in answers]


def test_bad_opens_one_connection_per_request(client, seeded, app, engine, engine_name):
    bodies = visits(client, "bad", 100)
    assert [b["connects"] for b in bodies] == list(range(1, 101))  # exactly one new connection each time
    assert [b["engines"] for b in bodies] == [min(n, 10) for n in range(1, 101)]  # the last 10 kept open
    assert bodies[-1]["team"] == TEAM_1
    if engine_name == "postgresql":
        assert backends_of(engine, engines(app.state.lab, "bad").name, 10) == 10  # one per engine alive
    else:
        assert bodies[-1]["backends"] is None


def test_fixed_opens_one_connection_for_the_app(client, seeded, app, engine, engine_name):
    bodies = visits(client, "fixed", 100)
    assert [b["connects"] for b in bodies] == [1] * 100
    assert [b["engines"] for b in bodies] == [1] * 100
    assert bodies[-1]["team"] == TEAM_1
    if engine_name == "postgresql":
        assert [b["backends"] for b in bodies] == [1] * 100
        assert backends_of(engine, engines(app.state.lab, "fixed").name, 1) == 1


def test_fixed_under_20_concurrent_clients_connects_at_most_its_pool_size(live_server, seeded, app):
    start = threading.Barrier(20, timeout=10)

    def one(_: int) -> httpx2.Response:
        with httpx2.Client(base_url=live_server, timeout=30, trust_env=False) as http:
            start.wait()
            return http.get(f"{URL}/fixed", params={"team_id": 1})

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(one, range(20)))
    assert {a.status_code for a in answers} == {200}
    assert 1 <= engines(app.state.lab, "fixed").connects <= 2  # the pool's size, whatever the load


def test_reset_disposes_every_engine_and_starts_counting_again(client, seeded, app, engine, engine_name):
    visits(client, "bad", 12)
    visits(client, "fixed", 3)
    names = [engines(app.state.lab, variant).name for variant in ("bad", "fixed")]
    assert client.post(f"{URL}/reset").status_code in (200, 204)
    if engine_name == "postgresql":
        assert [backends_of(engine, name, 0) for name in names] == [0, 0]
    assert visits(client, "bad", 1)[0]["connects"] == 1
    assert visits(client, "fixed", 1)[0]["connects"] == 1


def test_the_reference_api_reuses_the_apps_one_engine(client, seeded, engine):
    """GET /teams/1, 100 times: the app's engine connects at most its pool size (5), here once."""
    connects = []

    def connect(*args) -> None:
        connects.append(args)

    event.listen(engine, "connect", connect)
    try:
        for _ in range(100):
            assert client.get("/teams/1").status_code == 200
    finally:
        event.remove(engine, "connect", connect)
    assert len(connects) <= 1  # a connection the pool already held, or the first one


def test_an_unknown_team_is_404_naming_team_id(client, seeded):
    for route in ("bad", "fixed"):
        body = client.get(f"{URL}/{route}", params={"team_id": 99}).json()
        assert (body["status"], body["errors"][0]["field"]) == (404, "team_id")


@pytest.mark.parametrize("size", [None, 20])
def test_compare(client, seeded, engine_name, size):
    n = size or 100
    for _ in range(2):  # each run starts from no engine at all: the same counts again
        response = client.get(f"{URL}/compare", params={"size": size} if size else {})
        assert response.status_code == 200, response.text
        result = response.json()
        assert (result["engine"], result["size"]) == (engine_name, n)
        bad, fixed = result["variants"]
        assert (bad["variant"], bad["clients"], bad["statuses"], bad["statements"]) == (
            "bad",
            n,
            {"200": n},
            n,
        )
        assert (fixed["variant"], fixed["clients"], fixed["statuses"]) == ("fixed", n, {"200": n})
        kept = min(n, 10)
        if engine_name == "sqlite":
            assert bad["outcome"] == f"{n} requests, statuses [200]: {n} connects, {kept} engines open"
            assert fixed["outcome"] == f"{n} requests, statuses [200]: 1 connects, 1 engines open"
        else:  # a backend closed a moment ago may still be listed
            found = re.fullmatch(
                rf"{n} requests, statuses \[200\]: {n} connects, {kept} engines open, (\d+) backends",
                bad["outcome"],
            )
            assert found and kept <= int(found[1]) <= kept + 2, bad["outcome"]
            assert fixed["outcome"] == f"{n} requests, statuses [200]: 1 connects, 1 engines open, 1 backends"


def test_catalogue_lists_the_two_routes(client):
    lesson = client.get(URL).json()
    assert [(r["method"], r["path"]) for r in lesson["routes"]] == [
        ("GET", f"{URL}/bad"),
        ("GET", f"{URL}/fixed"),
    ]
    assert lesson["engines"] == ["sqlite", "postgresql"] and list(lesson["more"]) == ["Data"]
