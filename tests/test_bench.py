"""The benchmarks cannot rot: every case of every suite runs at a tiny size and gives sane figures.

A benchmark is a command (`heroes bench SUITE`), not a timed test: these assert what ran, how many
rows and which figures came back, never how fast.
"""

import pytest

from heroes.bench import CASES, cases, evidence, export, http, slowest_first
from heroes.seed import count_rows

ROUTES = ["/heroes/1", "/teams/1", "/heroes?limit=20"]


def test_one_registry_for_every_suite_labelled_by_docstrings():
    assert set(CASES) == {"evidence", "export", "http"}
    for registered in CASES.values():
        for c in registered:
            assert c.label == " ".join(c.run.__doc__.split()), c.name
    assert [c.name for c in cases("export", "sqlite")] == [
        "bad", "bad_offset", "fixed", "fixed_copy", "http_fixed", "http_export", "raw_driver",
    ]  # fmt: skip
    assert [c.name for c in cases("export", "postgresql")][-1] == "raw_copy"  # COPY is PostgreSQL's
    assert slowest_first([3.0, None, 1.0], lambda rate: rate) == [None, 1.0, 3.0]  # refused ones first
    bad_offset = cases("export", names=["bad_offset"])[0]
    assert bad_offset.refuses(100_000) is None
    assert bad_offset.refuses(100_001) == "refuses more than 100,000 rows"


def test_evidence_runs_both_cases_in_process(seeded, database_url):
    results = evidence.run("/heroes/1", requests=20, rounds=2, url=database_url)
    assert sorted(r.case.name for r in results) == ["evidence_off", "evidence_on"]
    assert all(r.rate > 0 and r.cpu > 0 for r in results)
    assert results[0].rate <= results[1].rate  # slowest first
    per_statement, _ = evidence.recorder_cost(repeat=1_000)
    assert per_statement > 0


def test_evidence_refuses_a_route_that_does_not_answer_200(seeded, database_url):
    with pytest.raises(RuntimeError, match="GET /heroes/999 answered 404"):
        evidence.run("/heroes/999", requests=10, rounds=1, url=database_url)


@pytest.mark.parametrize("format", ["ndjson", "csv"])
def test_export_runs_every_case_in_and_out_of_process_beside_the_raw_driver(engine, database_url, format):
    results = export.run(database_url, rows=50, format=format)  # each case checks it read exactly 50 rows
    expected = sorted(c.name for c in cases("export", engine.dialect.name))
    assert sorted(r.case.name for r in results) == expected
    for r in results:
        assert (r.refused, r.engine, r.rows) == (None, engine.dialect.name, 50), r.case.name
        assert r.seconds > 0 and r.rows_per_second == 50 / r.seconds
        over_http = r.case.name.startswith("http_")
        assert (r.server_peak_bytes is not None) == over_http, r.case.name  # the uvicorn process's VmHWM
        assert (r.traced_peak_bytes is not None) == (not over_http), r.case.name  # tracemalloc, in-process
    assert [r.rows_per_second for r in results] == sorted(r.rows_per_second for r in results)
    assert count_rows(engine) == (0, 0)  # the rows were the lesson scratch database's: this one is untouched


def test_http_serves_three_apps_through_uvicorn(seeded, database_url):
    results = http.run(ROUTES, seconds=1, rounds=1, connections=2, url=database_url)
    assert list(results) == ROUTES
    for route in results.values():
        assert sorted(r.case.name for r in route) == ["evidence_off", "lab", "tutorial"]
        assert all(len(r.rates) == 1 and r.rate > 0 for r in route)
        assert [r.rate for r in route] == sorted(r.rate for r in route)


@pytest.mark.sqlite_only(reason="the load client is the same on both engines; one is enough")
def test_http_without_wrk_loads_with_python_threads(seeded, database_url):
    results = http.run(["/heroes/1"], seconds=1, rounds=1, connections=2, url=database_url, client="python")
    assert all(r.rate > 0 for r in results["/heroes/1"])


@pytest.mark.sqlite_only(reason="the apps are compared before any load; the engine does not matter")
def test_http_refuses_routes_the_apps_answer_differently(seeded, database_url):
    with pytest.raises(RuntimeError, match="GET /heroes/999: the apps answer differently"):
        http.run(["/heroes/999"], seconds=1, rounds=1, url=database_url)  # a problem+json 404 vs FastAPI's
