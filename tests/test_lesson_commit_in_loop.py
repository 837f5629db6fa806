"""Lesson commit-in-loop: commits counted exactly (N, 1, ceil(N/1000)), every way stores exactly N rows, the
ORM's INSERT statements (N on SQLite, batched on PostgreSQL), COPY on PostgreSQL only; both engines."""

import math

import pytest
from sqlalchemy import event, func
from sqlmodel import Session, select

from heroes.lessons.commit_in_loop import scratch
from heroes.models import Hero
from heroes.seed import count_rows

from support import assert_problem

URL = "/lessons/commit-in-loop"
FEW = 120  # bad commits once per row: a few hundred rows already take seconds on a busy PostgreSQL
MANY = 2345  # more than two batches of 1,000


def post(client, route: str, heroes: int) -> dict:
    response = client.post(f"{URL}/{route}", params={"heroes": heroes})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"heroes", "stored", "commits", "rows_per_second"}
    assert body["rows_per_second"] > 0
    return {**body, "statements": int(response.headers["x-query-count"])}


def heroes_in_scratch(app) -> int:
    with Session(scratch(app.state.lab)) as session:
        return session.exec(select(func.count()).select_from(Hero)).one()


def test_bad_commits_once_per_row(client, seeded, app):
    body = post(client, "bad", FEW)
    assert (body["heroes"], body["stored"], body["commits"]) == (FEW, FEW, FEW)
    assert body["statements"] == FEW  # one INSERT per flush, one flush per commit, on both engines


@pytest.mark.parametrize(
    ("route", "commits"),
    [("fixed", 1), ("fixed/batches", math.ceil(MANY / 1000)), ("fixed/core", 1)],
)
def test_each_fix_commits_once_or_once_per_1000_rows(client, seeded, route, commits):
    body = post(client, route, MANY)
    assert (body["heroes"], body["stored"], body["commits"]) == (MANY, MANY, commits)


def test_each_commit_expires_every_hero_so_far_so_bad_does_quadratic_work(client, seeded):
    """Why bad's rows/s falls as N grows (heroes bench, the README): the n-th commit expires the n heroes
    the session holds (the request keeps them, to answer), N(N+1)/2 expirations in all; fixed: N."""
    expired = []

    def count(state, attributes) -> None:
        expired.append(attributes)

    event.listen(Hero, "expire", count)
    try:
        post(client, "bad", FEW)
        bad, expired[:] = list(expired), []
        post(client, "fixed", FEW)
    finally:
        event.remove(Hero, "expire", count)
    assert len(bad) == FEW * (FEW + 1) // 2  # 7,260 for 120 heroes
    assert len(expired) == FEW
    assert set(bad) == set(expired) == {None}  # every attribute of the hero, each time


def test_batches_at_exactly_1000_commit_once(client, seeded):
    assert post(client, "fixed/batches", 1000)["commits"] == 1  # no empty commit after the last batch


def test_statements_are_not_the_difference_commits_are(client, seeded, engine_name):
    """One transaction, yet the ORM sends one INSERT per row on SQLite; on PostgreSQL it batches them
    (insertmanyvalues, 1,000 rows a statement). Core's executemany is one statement on both."""
    fixed = post(client, "fixed", MANY)
    assert fixed["statements"] == (MANY if engine_name == "sqlite" else math.ceil(MANY / 1000))
    assert post(client, "fixed/core", MANY)["statements"] == 1


@pytest.mark.postgres_only(reason="COPY ... FROM STDIN is PostgreSQL's")
def test_copy_stores_every_row_in_one_commit(client, seeded, engine_name):
    body = post(client, "fixed/copy", MANY)
    assert (body["stored"], body["commits"]) == (MANY, 1)
    assert body["statements"] == 0  # the driver's own cursor: nothing the evidence recorder sees


@pytest.mark.sqlite_only(reason="on SQLite COPY does not exist: the route says so")
def test_copy_on_sqlite_answers_409_naming_the_fast_way(client, seeded, app, engine_name):
    response = client.post(f"{URL}/fixed/copy", params={"heroes": 10})
    assert response.status_code == 409
    body = response.json()
    assert body["type"] == URL and "PostgreSQL" in body["detail"] and "/fixed/core" in body["detail"]


def test_every_way_stores_exactly_n_rows_in_the_scratch_database_only(
    client, seeded, app, engine, engine_name
):
    routes = ["bad", "fixed", "fixed/batches", "fixed/core"] + (
        ["fixed/copy"] if engine_name != "sqlite" else []
    )
    for route in routes:
        assert post(client, route, 37)["stored"] == 37
    assert heroes_in_scratch(app) == 37 * len(routes)
    assert count_rows(engine) == (5, 15)  # the reference API's rows untouched


@pytest.mark.parametrize("heroes", [0, 10_001])
def test_size_is_bounded(client, heroes):
    assert_problem(client.post(f"{URL}/bad", params={"heroes": heroes}), 422, "heroes", "query")


def test_compare(client, seeded, engine_name):
    response = client.get(f"{URL}/compare", params={"size": 50})
    assert response.status_code == 200, response.text
    variants = {v["variant"]: v for v in response.json()["variants"]}
    assert list(variants) == ["bad", "fixed", "fixed/batches", "fixed/core", "fixed/copy"]
    assert variants["bad"]["outcome"].startswith("50 commits, 50 rows stored, ")
    for name in ("fixed", "fixed/batches", "fixed/core"):
        assert variants[name]["outcome"].startswith("1 commits, 50 rows stored, ")
    copy = variants["fixed/copy"]["outcome"]
    if engine_name == "sqlite":
        assert copy.startswith("409: COPY is PostgreSQL's")
    else:
        assert copy.startswith("1 commits, 50 rows stored, ")
