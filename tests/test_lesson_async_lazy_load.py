"""async-lazy-load: hero.team on an AsyncSession: MissingGreenlet; eager loads and awaitable_attrs fix it."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from sqlalchemy.exc import MissingGreenlet, StatementError
from sqlalchemy.orm.exc import DetachedInstanceError
from sqlmodel.ext.asyncio.session import AsyncSession

from heroes.async_db import create_async_db_engine
from heroes.config import Settings
from heroes.evidence import count_queries
from heroes.lessons.async_lazy_load import MISSING_GREENLET, LazyHero

URL = "/lessons/async-lazy-load"
PREVENTERS = {"name": "Preventers", "headquarters": "Sharp Tower", "id": 1}


def test_bad_is_missing_greenlet_with_the_session_open(client):
    response = client.get(f"{URL}/bad", params={"hero_id": 2})
    assert response.status_code == 500
    body = response.json()
    assert (body["type"], body["exception"], body["detail"]) == (URL, "StatementError", MISSING_GREENLET)
    assert response.headers["x-query-count"] == "1"  # the hero; the team's SELECT never reached the database


def test_bad_hides_on_a_hero_without_a_team(client):
    response = client.get(f"{URL}/bad", params={"hero_id": 15})
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["team"]) == ("Lone Ranger", None)


@pytest.mark.parametrize(
    ("variant", "statements"),
    [
        ("fixed", 2),  # the hero, then SELECT team WHERE team.id IN (...): selectinload's second statement
        ("fixed/joinedload", 1),  # one SELECT ... LEFT OUTER JOIN team
        ("fixed/awaitable-attrs", 2),  # the hero, then the lazy SELECT, awaited
    ],
)
def test_fixed_answers_the_team_in_its_statements(client, variant, statements):
    response = client.get(f"{URL}/{variant}", params={"hero_id": 2})
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["team"]) == ("Rusty-Man", PREVENTERS)
    assert "secret_name" not in response.text
    assert response.headers["x-query-count"] == str(statements)
    lone = client.get(f"{URL}/{variant}", params={"hero_id": 15})
    assert (lone.json()["team"], lone.headers["x-query-count"]) == (None, "1")  # no team to load


@pytest.mark.parametrize("hero_id", [2, 15])
def test_guard_fails_every_forgotten_load_without_sql(client, hero_id):
    response = client.get(f"{URL}/guard", params={"hero_id": hero_id})
    assert response.status_code == 500
    body = response.json()
    assert (body["exception"], body["detail"]) == (
        "InvalidRequestError",
        "'GuardedHero.team' is not available due to lazy='raise'",
    )
    assert response.headers["x-query-count"] == "1"


def test_an_unknown_hero_is_a_404(client):
    assert client.get(f"{URL}/fixed", params={"hero_id": 99}).status_code == 404


def test_myth_missing_greenlet_comes_with_the_session_open(database_url, seeded):
    """Open, in its transaction: MissingGreenlet; awaitable_attrs loads it on that same session; closed:
    DetachedInstanceError, another error."""

    async def run() -> tuple:
        engine = create_async_db_engine(settings=Settings(database_url=database_url))
        try:
            async with AsyncSession(engine) as session:
                hero = await session.get(LazyHero, 2)
                with pytest.raises(StatementError) as error:
                    hero.team  # noqa: B018
                still_open = session.in_transaction()
                with count_queries(engine.sync_engine) as queries:
                    team = await hero.awaitable_attrs.team
                hero_after = await session.get(LazyHero, 3)
            with pytest.raises(DetachedInstanceError):
                hero_after.team  # noqa: B018
            return error.value, still_open, team.name, queries.count
        finally:
            await engine.dispose()

    error, still_open, team, count = asyncio.run(run())
    assert isinstance(error.orig, MissingGreenlet)
    assert str(error.orig).startswith("greenlet_spawn has not been called; can't call await_() here.")
    assert (still_open, team, count) == (True, "Preventers", 1)


def test_concurrent_requests_each_count_their_own_statements(live_server):
    """20 async requests at once: selectinload's 2 and joinedload's 1 each, never another request's."""
    expected = {"fixed": "2", "fixed/joinedload": "1"}
    start = threading.Barrier(20, timeout=10)

    def one(i: int) -> tuple[str, int, str]:
        variant = list(expected)[i % 2]
        with httpx2.Client(base_url=live_server, timeout=20, trust_env=False) as http:
            start.wait()
            response = http.get(f"{URL}/{variant}", params={"hero_id": i % 14 + 1})
        return variant, response.status_code, response.headers["x-query-count"]

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    assert [r for r in results if r[1:] != (200, expected[r[0]])] == []


def test_compare(client):
    response = client.get(f"{URL}/compare")
    assert response.status_code == 200, response.text
    seen = {v["variant"]: (v["outcome"], v["statements"]) for v in response.json()["variants"]}
    assert seen == {
        "bad": (f"500: StatementError: {MISSING_GREENLET}", 1),
        "fixed": ("200 OK: Rusty-Man of Preventers", 2),
        "fixed/joinedload": ("200 OK: Rusty-Man of Preventers", 1),
        "fixed/awaitable-attrs": ("200 OK: Rusty-Man of Preventers", 2),
        "guard": ("500: InvalidRequestError: 'GuardedHero.team' is not available due to lazy='raise'", 1),
    }
