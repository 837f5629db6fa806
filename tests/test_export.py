"""GET /heroes/export: every hero exactly once, as NDJSON or CSV, streamed, never with `secret_name`."""

import csv
import io
import json
import time

import httpx2
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from heroes.config import Settings
from heroes.db import create_db_engine
from heroes.evidence import count_queries
from heroes.export import COLUMNS
from heroes.models import Hero, HeroPublic
from heroes.seed import DEMO_HEROES, seed_bulk

from support import assert_problem

SECRETS = [secret for _, secret, _, _ in DEMO_HEROES]
STATEMENTS = {"sqlite": 1, "postgresql": 2}  # the query; on PostgreSQL SET LOCAL statement_timeout first


def stored(engine: Engine) -> list[dict]:
    """Every hero as HeroPublic would show it, by id, straight from the database."""
    with Session(engine) as session:
        heroes = session.exec(select(Hero).order_by(Hero.id)).all()
        return [HeroPublic.model_validate(hero).model_dump() for hero in heroes]


def parse_ndjson(body: bytes) -> list[dict]:
    assert body.endswith(b"\n")
    return [json.loads(line) for line in body.decode().split("\n")[:-1]]  # splitlines() would cut at U+2028


def parse_csv(body: bytes) -> list[dict]:
    reader = csv.DictReader(io.StringIO(body.decode(), newline=""))
    assert tuple(reader.fieldnames) == COLUMNS
    numbers = {"id", "age", "team_id", "version"}  # an empty cell is a null (a name is never empty)
    return [
        {key: None if value == "" else int(value) if key in numbers else value for key, value in row.items()}
        for row in reader
    ]


def assert_no_secret(body: bytes) -> None:
    assert b"secret" not in body.lower()
    for secret in SECRETS:
        assert secret.encode() not in body, secret


def test_columns_are_hero_public_fields():
    assert set(COLUMNS) == set(HeroPublic.model_fields)


@pytest.mark.parametrize(
    ("params", "media_type", "parse"),
    [({}, "application/x-ndjson", parse_ndjson), ({"format": "csv"}, "text/csv; charset=utf-8", parse_csv)],
    ids=["ndjson", "csv"],
)
def test_every_hero_exactly_once_without_secret_name(client, seeded, params, media_type, parse):
    with count_queries(seeded) as queries:
        response = client.get("/heroes/export", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    extension = params.get("format", "ndjson")
    assert response.headers["content-disposition"] == f'attachment; filename="heroes.{extension}"'
    heroes = parse(response.content)
    assert heroes == stored(seeded)  # every row, once, in id order, with HeroPublic's values
    assert [hero["name"] for hero in heroes] == [name for name, _, _, _ in DEMO_HEROES]
    assert all(tuple(hero) == COLUMNS for hero in heroes)
    assert_no_secret(response.content)
    assert queries.count == STATEMENTS[seeded.dialect.name], queries.statements
    assert not [statement for statement in queries.statements if "secret_name" in statement]  # never selected
    assert response.headers["x-query-count"] == "0"  # streamed: the header leaves before the SELECT runs


def test_the_lines_are_what_the_json_api_returns(client, seeded):
    listed = client.get("/heroes", params={"limit": 100}).json()
    assert parse_ndjson(client.get("/heroes/export").content) == listed
    assert parse_csv(client.get("/heroes/export", params={"format": "csv"}).content) == listed


def test_an_empty_table(client):
    assert client.get("/heroes/export").content == b""
    assert client.get("/heroes/export", params={"format": "csv"}).content == b"id,name,age,team_id,version\n"


def test_names_that_need_quoting_survive_both_formats(client):
    names = ['Quote "Q"', "Back\\slash", "Comma, Inc", "Émile 😀", "semi;colon", " lead space", "a\u2028b"]
    for name in names:
        assert client.post("/heroes", json={"name": name, "secret_name": "hidden"}).status_code == 201
    for params, parse in (({}, parse_ndjson), ({"format": "csv"}, parse_csv)):
        assert [hero["name"] for hero in parse(client.get("/heroes/export", params=params).content)] == names


@pytest.mark.parametrize("params", [{"format": "xml"}, {"format": ""}, {"format": "NDJSON"}])
def test_an_unknown_format_is_a_422_naming_it(client, seeded, params):
    body = assert_problem(client.get("/heroes/export", params=params), 422, field="format", location="query")
    assert "'ndjson' or 'csv'" in body["detail"]


def test_heroes_by_id_still_answer(client, seeded):
    assert client.get("/heroes/2").json()["name"] == "Rusty-Man"
    assert_problem(client.get("/heroes/exports"), 422, field="hero_id", location="path")


def test_it_streams_over_http_in_chunks(live_server, engine):
    """A real client over a socket: chunked transfer, no Content-Length, every line arrives."""
    seed_bulk(engine, 50, 100)  # 5,000 heroes: more than one batch of 2,000
    with (
        httpx2.Client(base_url=live_server, timeout=30, trust_env=False) as http,
        http.stream("GET", "/heroes/export") as response,
    ):
        assert response.status_code == 200
        assert response.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in response.headers
        ids = [json.loads(line)["id"] for line in response.iter_lines() if line]
    assert ids == list(range(1, 5001))
    assert engine.pool.checkedout() == 0  # the generator closed its session when the stream ended


def seed_many(database_url: str, teams: int) -> None:
    """`teams` x 100 heroes, by an engine of its own with no statement timeout (a slow machine's COPY)."""
    engine = create_db_engine(settings=Settings(database_url=database_url, statement_timeout_ms=0))
    try:
        seed_bulk(engine, teams, 100)
    finally:
        engine.dispose()


def test_a_client_that_leaves_mid_export_gives_the_connection_back(live_server, engine, database_url):
    """The generator owns its connection: when the client hangs up, closing it returns the connection."""
    seed_many(database_url, 3000)  # 300,000 heroes, 22 MB: more than the sockets buffer
    with (
        httpx2.Client(base_url=live_server, timeout=30, trust_env=False) as http,
        http.stream("GET", "/heroes/export") as response,
    ):
        next(response.iter_bytes())  # the first chunk, then hang up
        assert engine.pool.checkedout() == 1  # the export is under way
    deadline = time.monotonic() + 10
    while engine.pool.checkedout() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.pool.checkedout() == 0
    with engine.connect() as connection:  # and the connection it gave back is fit for the next request
        assert connection.exec_driver_sql("SELECT count(*) FROM hero").scalar() == 300_000


TIGHT_MS = 100


@pytest.mark.postgres_only(reason="SQLite has no statement timeout; PostgreSQL's is set on every connection")
class TestAStatementTimeoutShorterThanTheExport:
    """COPY is one statement: the export sets its own timeout (SET LOCAL, in its transaction), or the
    requests' statement_timeout would cut every export that outlasts it, a slow client's above all."""

    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        return Settings(database_url=database_url, statement_timeout_ms=TIGHT_MS)

    def test_a_slow_client_gets_every_hero(self, live_server, engine, database_url):
        seed_many(database_url, 2000)  # 200,000 heroes, 15 MB: the COPY waits for the client
        with (
            httpx2.Client(base_url=live_server, timeout=30, trust_env=False) as http,
            http.stream("GET", "/heroes/export", params={"format": "csv"}) as response,
        ):
            chunks = response.iter_bytes()
            body = next(chunks)
            time.sleep(10 * TIGHT_MS / 1000)  # the COPY is now ten timeouts old
            body += b"".join(chunks)
        assert [int(line.split(b",")[0]) for line in body.splitlines()[1:]] == list(range(1, 200_001))
        with engine.connect() as connection:  # SET LOCAL ended with the export's transaction
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == f"{TIGHT_MS}ms"
