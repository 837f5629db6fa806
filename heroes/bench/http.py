"""heroes bench http: requests/s through the real server, the lab as it serves beside what its extras cost.

Three apps on the same database, each served by uvicorn on 127.0.0.1 (one worker, a subprocess, the
access log off for all three), loaded one app and one route at a time by wrk (C; one thread, a few
keep-alive connections; a Python client of threads if wrk is not installed, slower and said so):

    lab           heroes.main:create_app, as `heroes serve` runs it
    evidence_off  the same with HEROES_EVIDENCE=false
    tutorial      tutorial_app below: the SQLModel tutorial's shape on the same models and statements,
                  a plain get_session dependency, no middleware, no problem handlers

Rounds rotate the apps' order (each goes first in turn); a figure is the median of the rounds.
Before any round, every app must answer every route 200 with the same body: the same work is measured.
"""

import http.client
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Query
from sqlalchemy import create_engine
from sqlalchemy.orm import joinedload, selectinload
from sqlmodel import Session, select

from heroes.api.heroes import HeroFilter
from heroes.bench.registry import Case, case, cases, slowest_first
from heroes.bench.server import uvicorn_server
from heroes.config import Settings, get_settings
from heroes.db import is_sqlite
from heroes.models import Hero, HeroPublic, HeroPublicWithTeam, Team, TeamPublicWithHeroes

WARM_UP = 50  # requests per app and route before the rounds


def routes(hero_id: int = 1, team_id: int = 1) -> list[str]:
    return [f"/heroes/{hero_id}", f"/teams/{team_id}", "/heroes?limit=20"]


@case("http")
def lab() -> tuple[str, dict[str, str]]:
    """lab: as `heroes serve` serves it (evidence headers, problem+json handlers, its middleware)"""
    return "heroes.main:create_app", {}


@case("http")
def evidence_off() -> tuple[str, dict[str, str]]:
    """lab, evidence off (HEROES_EVIDENCE=false): no statement listeners, no evidence middleware"""
    return "heroes.main:create_app", {"HEROES_EVIDENCE": "false"}


@case("http")
def tutorial() -> tuple[str, dict[str, str]]:
    """tutorial: the SQLModel tutorial's shape, same models and statements, nothing else"""
    return "heroes.bench.http:tutorial_app", {}


def tutorial_app() -> FastAPI:
    """uvicorn factory: the three reads as the SQLModel tutorial writes them, on DATABASE_URL.

    Its engine is create_engine(url) and nothing more; each read runs the statements the lab's does
    (the hero with its team in one SELECT, the team and its heroes in two), so only the extras differ.
    """
    url = Settings().database_url
    engine = create_engine(url, connect_args={"check_same_thread": False} if is_sqlite(url) else {})

    def get_session() -> Iterator[Session]:
        with Session(engine) as session:
            yield session

    SessionDep = Annotated[Session, Depends(get_session)]
    app = FastAPI()

    @app.get("/heroes/{hero_id}", response_model=HeroPublicWithTeam)
    def read_hero(hero_id: int, session: SessionDep) -> Hero:
        hero = session.get(Hero, hero_id, options=[joinedload(Hero.team)])
        if not hero:
            raise HTTPException(status_code=404, detail="Hero not found")
        return hero

    @app.get("/teams/{team_id}", response_model=TeamPublicWithHeroes)
    def read_team(team_id: int, session: SessionDep) -> Team:
        team = session.get(Team, team_id, options=[selectinload(Team.heroes)])
        if not team:
            raise HTTPException(status_code=404, detail="Team not found")
        return team

    @app.get("/heroes", response_model=list[HeroPublic])
    def read_heroes(session: SessionDep, query: Annotated[HeroFilter, Query()]) -> list[Hero]:
        # the lab's six query parameters (the same API), validated as the lab does: the bench measures
        # what the lab adds around a route, not its filters (with offset and limit alone, as in the
        # tutorial, FastAPI would read four parameters fewer on every request)
        return list(session.exec(select(Hero).order_by(Hero.id).offset(query.offset).limit(query.limit)))

    return app


# ---- the load client ----------------------------------------------------------------------------------


def client_name() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def load(url: str, seconds: float, connections: int, client: str | None = None) -> float:
    """Requests/s of GET `url` over `connections` keep-alive connections for `seconds`; any answer but
    200 is an error."""
    if (client or client_name()) == "wrk":
        return _wrk(url, seconds, connections)
    return _python_load(url, seconds, connections)


def _wrk(url: str, seconds: float, connections: int) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", url]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    for problem in ("Non-2xx or 3xx responses", "Socket errors"):
        if problem in output:
            raise RuntimeError(f"wrk {url}: {problem}\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"wrk {url}: no Requests/sec in\n{output}")
    return float(match[1])


def _python_load(url: str, seconds: float, connections: int) -> float:
    """wrk's job in Python threads: slower (the client competes with the server for the CPU)."""
    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    done = threading.Event()
    counts = [0] * connections
    errors: list[str] = []

    def worker(i: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            while not done.is_set():
                connection.request("GET", target)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    errors.append(f"{response.status}")
                    return
                counts[i] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    done.set()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"GET {url} answered {errors[0]}")
    return sum(counts) / (time.perf_counter() - started)


# ---- the suite -------------------------------------------------------------------------------------------


@dataclass
class Result:
    case: Case
    route: str
    rate: float  # requests/s, the median of the rounds
    rates: list[float]


def run(
    paths: list[str],
    seconds: float = 3,
    rounds: int = 5,
    connections: int = 4,
    url: str | None = None,
    client: str | None = None,
) -> dict[str, list[Result]]:
    """Every app on every route, `rounds` times, rotating the apps' order; {route: its results,
    slowest first}."""
    url = url or get_settings().database_url
    client = client or client_name()
    rates: dict[tuple[str, str], list[float]] = {}
    with ExitStack() as servers:
        running = []
        for c in cases("http"):
            app, env = c.run()
            running.append((c, servers.enter_context(uvicorn_server(app, {"DATABASE_URL": url, **env}))))
        for path in paths:  # the same answers everywhere, so the same work is measured
            answers = {c.name: server.get(path) for c, server in running}
            if len({answer for answer in answers.values()}) != 1 or answers["lab"][0] != 200:
                raise RuntimeError(f"GET {path}: the apps answer differently: {answers}")
            for _ in range(WARM_UP):  # connections, compiled statements
                for _, server in running:
                    server.get(path)
        for round_ in range(rounds):
            turn = round_ % len(running)
            order = running[turn:] + running[:turn]  # each app goes first in turn
            for path in paths:
                for c, server in order:
                    rate = load(f"{server.url}{path}", seconds, connections, client)
                    rates.setdefault((c.name, path), []).append(rate)
    return {
        path: slowest_first(
            [
                Result(c, path, statistics.median(rates[c.name, path]), rates[c.name, path])
                for c, _ in running
            ],
            lambda result: result.rate,
        )
        for path in paths
    }
