"""Lesson upsert: get-then-insert and merge() race (1x 200, 19x 500, forced by a barrier), ON CONFLICT DO
UPDATE does not (20x 200); one row for the key; 2 statements a call vs 1; the merge myth and the identity
map, on the pinned versions; both engines."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx2
from sqlalchemy import event
from sqlmodel import Session, select

from heroes.lab.check import all_reach
from heroes.lessons.upsert import Hideout, dialect_insert, scratch
from heroes.problems import PROBLEM_JSON
from heroes.seed import count_rows

from support import assert_problem

URL = "/lessons/upsert"
CLIENTS = 20
ROUTES = ["bad", "bad/merge", "fixed"]
STATEMENTS = {"bad": 2, "bad/merge": 2, "fixed": 1}  # per call: SELECT then INSERT/UPDATE, or one upsert


def stored(app, name: str) -> list[str]:
    """The location of every row for `name` in the lesson's scratch database."""
    with Session(scratch(app.state.lab)) as session:
        return list(session.exec(select(Hideout.location).where(Hideout.name == name)))


def violation(engine_name: str, name: str) -> str:
    if engine_name == "sqlite":
        return "IntegrityError: UNIQUE constraint failed: hideout.name"
    return (
        'UniqueViolation: duplicate key value violates unique constraint "hideout_pkey" '
        f"DETAIL: Key (name)=({name}) already exists."
    )


def race(app, base_url: str, path: str, body: dict) -> list[httpx2.Response]:
    """CLIENTS real HTTP clients on threads of their own, each request in its own session and transaction;
    every client's INSERT waits until all have reached theirs (so every read comes before any write)."""
    start = threading.Barrier(CLIENTS, timeout=10)

    def one(_: int) -> httpx2.Response:
        with httpx2.Client(base_url=base_url, timeout=30, trust_env=False) as http:
            start.wait()
            return http.post(path, json=body)

    engine = scratch(app.state.lab)
    with all_reach(engine, "INSERT INTO hideout", CLIENTS) as held, ThreadPoolExecutor(CLIENTS) as pool:
        responses = list(pool.map(one, range(CLIENTS)))
    assert len(held) == CLIENTS  # each client sent exactly one INSERT, after every read
    return responses


# ---- one client at a time, every route is right --------------------------------------------------------


def test_one_client_at_a_time_every_route_creates_then_updates(client, seeded, app, engine):
    for n, route in enumerate(ROUTES):
        created = client.post(f"{URL}/{route}", json={"name": f"X-Men {n}", "location": "Mansion"})
        assert created.status_code == 200, created.text
        assert created.json() == {"name": f"X-Men {n}", "location": "Mansion"}
        assert created.headers["x-query-count"] == str(STATEMENTS[route])

        updated = client.post(f"{URL}/{route}", json={"name": "Avengers", "location": f"Tower {n}"})
        assert updated.status_code == 200, updated.text
        assert updated.headers["x-query-count"] == str(STATEMENTS[route])
        assert (stored(app, f"X-Men {n}"), stored(app, "Avengers")) == (["Mansion"], [f"Tower {n}"])
    assert count_rows(engine) == (5, 15)  # the reference API's rows untouched


# ---- K clients at once on one new name ----------------------------------------------------------------


def test_bad_concurrent_clients_on_a_new_name_get_500s(live_server, seeded, app, engine, engine_name):
    for route, name in [("bad", "Runaways"), ("bad/merge", "Young Avengers")]:
        responses = race(app, live_server, f"{URL}/{route}", {"name": name, "location": "The Hostel"})

        assert Counter(r.status_code for r in responses) == {200: 1, 500: CLIENTS - 1}, route
        for response in responses:
            assert response.headers["x-query-count"] == "2"  # every client: its SELECT, then its INSERT
            if response.status_code == 500:
                assert response.headers["content-type"] == PROBLEM_JSON
                body = response.json()
                assert (body["type"], body["exception"]) == (URL, "IntegrityError")
                assert body["detail"] == violation(engine_name, name)
                assert "INSERT" not in response.text and "The Hostel" not in response.text
        assert stored(app, name) == ["The Hostel"]  # one row for the key
    assert count_rows(engine) == (5, 15)


def test_fixed_concurrent_clients_on_a_new_name_all_succeed(live_server, seeded, app, engine):
    responses = race(app, live_server, f"{URL}/fixed", {"name": "Defenders", "location": "Sanctum"})

    assert Counter(r.status_code for r in responses) == {200: CLIENTS}
    assert [r.headers["x-query-count"] for r in responses] == ["1"] * CLIENTS  # one statement a call
    assert stored(app, "Defenders") == ["Sanctum"]  # one row for the key
    assert scratch(app.state.lab).pool.checkedout() == 0
    assert count_rows(engine) == (5, 15)


# ---- the myth and the identity map, on the pinned versions ----------------------------------------------


def test_myth_merge_is_a_select_then_an_insert_and_returns_a_copy(client, seeded, app):
    """session.merge() is not an upsert: SELECT by primary key, then INSERT (or UPDATE) at the flush."""
    engine = scratch(app.state.lab)
    sent: list[str] = []
    listener = lambda conn, cursor, statement, *args: sent.append(statement.split()[0])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        with Session(engine) as session:
            hideout = Hideout(name="Inhumans", location="Attilan")
            merged = session.merge(hideout)
            assert merged is not hideout and merged in session and hideout not in session  # a copy
            session.commit()
            assert sent == ["SELECT", "INSERT"]
            sent.clear()
            session.merge(Hideout(name="Inhumans", location="The Moon"))
            session.commit()
            assert sent == ["SELECT", "UPDATE"]
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert stored(app, "Inhumans") == ["The Moon"]


def test_the_identity_map_does_not_see_the_upserts_result(client, seeded, app):
    """ON CONFLICT DO UPDATE is a Core statement: a Hideout the session holds keeps its old location, even
    when RETURNING hands that very object back; populate_existing reads what was stored."""
    with Session(scratch(app.state.lab)) as session:
        held = session.get(Hideout, "Avengers")
        upsert = dialect_insert(session)(Hideout).values(name="Avengers", location="Stark Tower")
        upsert = upsert.on_conflict_do_update(
            index_elements=[Hideout.name], set_={"location": upsert.excluded.location}
        )
        returned = session.scalars(upsert.returning(Hideout)).one()
        assert returned is held and held.location == "Avengers Mansion"  # stale: the row says Stark Tower
        fresh = session.scalars(
            upsert.returning(Hideout), execution_options={"populate_existing": True}
        ).one()
        assert fresh is held and held.location == "Stark Tower"
        session.commit()


# ---- input, compare, catalogue -------------------------------------------------------------------------


def test_bad_input_is_422_naming_name_on_every_route(client, seeded):
    for route in ROUTES:
        for name in ("x" * 101, "Nul\x00", ""):
            response = client.post(f"{URL}/{route}", json={"name": name, "location": "L"})
            assert_problem(response, 422, "name", "body")
            assert response.headers["x-query-count"] == "0"


def test_compare(client, seeded, engine, engine_name):
    clients = 5
    response = client.get(f"{URL}/compare", params={"size": clients})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["engine"], result["size"]) == (engine_name, clients)
    variants = {v["variant"]: v for v in result["variants"]}
    assert list(variants) == ROUTES
    for route in ("bad", "bad/merge"):
        assert variants[route]["outcome"] == f"1× 200, {clients - 1}× 500"
        assert variants[route]["statements"] == 2 * clients
    assert variants["fixed"]["outcome"] == f"{clients}× 200"
    assert variants["fixed"]["statements"] == clients
    assert count_rows(engine) == (5, 15)
    # more clients than the scratch pool holds while they wait at the barrier: refused
    assert_problem(client.get(f"{URL}/compare", params={"size": 21}), 422, "size", "query")


def test_catalogue_lists_the_three_routes(client):
    lesson = client.get(URL).json()
    assert [(r["method"], r["path"]) for r in lesson["routes"]] == [("POST", f"{URL}/{r}") for r in ROUTES]
    assert lesson["engines"] == ["sqlite", "postgresql"]
    assert lesson["myth"].startswith('"session.merge() is an upsert"')
