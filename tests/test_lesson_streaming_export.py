"""streaming-export: bad's memory grows with the table, fixed's stays flat; every variant exports every hero
exactly once, the same bytes, without `secret_name`; OFFSET pages cost 1 + N/1000 + 1 statements."""

import csv
import io
import json
import time

import httpx2
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from heroes.evidence import count_queries
from heroes.export import COLUMNS
from heroes.lessons import streaming_export
from heroes.lessons.streaming_export import OFFSET_MAX, PAGE, calls
from heroes.models import Hero
from heroes.seed import DEMO_HEROES, count_rows

from support import assert_problem

LESSON = "/lessons/streaming-export"
VARIANTS = ["bad", "bad/offset", "fixed", "fixed/copy"]
MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
SECRETS = [secret for _, secret, _, _ in DEMO_HEROES]
MiB = 2**20


def records(response, format: str) -> list[tuple]:
    """(id, name) of every exported hero, checking the keys and that nothing secret is in the bytes."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA_TYPES[format]
    body = response.content
    assert b"secret" not in body.lower()
    assert not [secret for secret in SECRETS if secret.encode() in body]
    assert body.endswith(b"\n")
    if format == "ndjson":
        rows = [json.loads(line) for line in body.decode().split("\n")[:-1]]  # not splitlines: U+2028
    else:
        reader = csv.DictReader(io.StringIO(body.decode(), newline=""))
        rows = list(reader)
    assert all(tuple(row) == COLUMNS for row in rows)
    return [(int(row["id"]), row["name"]) for row in rows]


@pytest.mark.parametrize("format", ["ndjson", "csv"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_exports_every_hero_once_without_secrets(client, seeded, variant, format):
    response = client.get(f"{LESSON}/{variant}", params={"format": format})
    with Session(seeded) as session:
        stored = [tuple(row) for row in session.exec(select(Hero.id, Hero.name).order_by(Hero.id))]
    assert records(response, format) == stored
    assert len(stored) == len(DEMO_HEROES)
    reference = client.get("/heroes/export", params={"format": format})
    assert response.content == reference.content  # bad or fixed, COPY or Python: the same bytes


@pytest.mark.parametrize("format", ["ndjson", "csv"])
def test_names_that_need_escaping_come_out_the_same_from_every_variant(client, format):
    """JSON escapes and CSV quoting: PostgreSQL's COPY and SQLite's json_object write what Python writes."""
    names = ['Quote "Q"', "Back\\slash", "Comma, Inc", "Émile 😀", "semi;colon", " lead space", "a\u2028b"]
    for name in names:
        assert client.post("/heroes", json={"name": name, "secret_name": "hidden"}).status_code == 201
    reference = client.get("/heroes/export", params={"format": format})
    assert [name for _, name in records(reference, format)] == names
    for variant in VARIANTS:
        response = client.get(f"{LESSON}/{variant}", params={"format": format})
        assert response.content == reference.content, variant


def test_the_bad_route_loads_secret_name_the_others_never_select_it(client, seeded):
    loads_secrets = {"bad": True, "bad/offset": False, "fixed": False, "fixed/copy": False}
    for variant, expected in loads_secrets.items():
        with count_queries(seeded) as queries:
            client.get(f"{LESSON}/{variant}")
        assert any("secret_name" in s for s in queries.statements) == expected, (variant, queries.statements)


def test_x_query_count_only_counts_what_ran_before_the_first_byte(client, seeded):
    """A streamed body runs its statements after the headers left: the header cannot count them."""
    copy = 2 if seeded.dialect.name == "postgresql" else 1  # SET LOCAL statement_timeout, then COPY
    expected = {"bad": ("1", 1), "bad/offset": ("1", 2), "fixed": ("0", 1), "fixed/copy": ("0", copy)}
    for variant, (header, statements) in expected.items():
        with count_queries(seeded) as queries:
            response = client.get(f"{LESSON}/{variant}")
        assert (response.headers["x-query-count"], queries.count) == (header, statements), variant


def test_rows_builds_a_scratch_database_and_leaves_the_reference_data_alone(client, seeded):
    for variant in VARIANTS:
        response = client.get(f"{LESSON}/{variant}", params={"rows": 2345, "format": "csv"})
        ids = [id_ for id_, _ in records(response, "csv")]
        assert ids == list(range(1, 2346)), variant
    assert count_rows(seeded) == (5, 15)


BAD_INPUT = [({"format": "xml"}, "format"), ({"rows": 0}, "rows"), ({"rows": 1_000_001}, "rows")]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("params", "field"), [*BAD_INPUT, ({"rows": "x"}, "rows")])
def test_bad_input_is_a_422_naming_the_field(client, seeded, variant, params, field):
    assert_problem(client.get(f"{LESSON}/{variant}", params=params), 422, field=field, location="query")


def test_offset_refuses_a_table_it_would_crawl_through(client, seeded, monkeypatch):
    assert [call.variant for call in calls(OFFSET_MAX + 1)] == ["bad", "fixed", "fixed/copy"]  # not asked
    assert [call.variant for call in calls(OFFSET_MAX)] == VARIANTS
    monkeypatch.setattr(streaming_export, "OFFSET_MAX", 10)  # the demo's 15 heroes stand in for 100,001
    body = assert_problem(client.get(f"{LESSON}/bad/offset"), 422, field="rows", location="query")
    assert "more than 10 heroes (this one has 15)" in body["detail"]


def compare(client, size: int | None = None) -> dict[str, dict]:
    response = client.get(f"{LESSON}/compare", params={"size": size} if size else {})
    assert response.status_code == 200, response.text
    variants = {v["variant"]: v for v in response.json()["variants"]}
    assert list(variants) == VARIANTS
    return variants


def test_compare_on_the_demo_data(client, seeded):
    variants = compare(client)
    assert {name: v["statements"] for name, v in variants.items()} == {
        "bad": 1,
        "bad/offset": 2,  # the count, then one short page
        "fixed": 1,  # one SELECT; its cursor's fetches are not statements
        "fixed/copy": 1 + (seeded.dialect.name == "postgresql"),  # the query; on PostgreSQL SET LOCAL first
    }
    assert {v["outcome"] for v in variants.values()} == {"200 OK"}
    assert len({v["body_bytes"] for v in variants.values()}) == 1
    assert all(v["peak_memory_bytes"] > 0 for v in variants.values())


def test_fixed_memory_stays_flat_while_bad_grows_with_the_table(client, seeded):
    """Peak memory (tracemalloc, in compare) at 2,000 and 20,000 heroes: a bound, not a timing."""
    small, large = compare(client, 2_000), compare(client, 20_000)
    for size, variants in ((2_000, small), (20_000, large)):
        assert variants["bad/offset"]["statements"] == 1 + size // PAGE + 1  # count, full pages, a short one
        assert len({v["body_bytes"] for v in variants.values()}) == 1
    peak = {name: (small[name]["peak_memory_bytes"], large[name]["peak_memory_bytes"]) for name in VARIANTS}
    for flat in ("fixed", "fixed/copy", "bad/offset"):
        assert max(peak[flat]) < 4 * MiB, (flat, peak[flat])
        assert peak[flat][1] - peak[flat][0] < 1 * MiB, (flat, peak[flat])  # one batch, whatever the table
    assert peak["bad"][1] > 5 * peak["bad"][0], peak["bad"]  # ten times the rows, about ten times the memory
    assert peak["bad"][1] > 20 * MiB, peak["bad"]
    assert peak["bad"][1] > 5 * peak["fixed"][1], peak


def test_a_client_that_leaves_mid_stream_does_not_leak_the_connection(live_server, app, seeded):
    """The generator owns its session: when the client hangs up, closing it returns the connection."""
    scratch: Engine = streaming_export.scratch(app.state.lab, 300_000)  # 22 MB: more than sockets buffer
    for variant in ("fixed", "fixed/copy"):
        with (
            httpx2.Client(base_url=live_server, timeout=30, trust_env=False) as http,
            http.stream("GET", f"{LESSON}/{variant}", params={"rows": 300_000}) as response,
        ):
            next(response.iter_bytes())  # the first chunk, then hang up
            assert scratch.pool.checkedout() == 1, variant  # the stream is under way
        deadline = time.monotonic() + 10
        while scratch.pool.checkedout() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scratch.pool.checkedout() == 0, variant
        with scratch.connect() as connection:  # and the connection it gave back is fit for the next request
            assert connection.exec_driver_sql("SELECT count(*) FROM hero").scalar() == 300_000
