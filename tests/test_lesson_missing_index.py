"""missing-index: the plan in the response, Seq Scan + Sort (SCAN + TEMP B-TREE) without the index, an
Index Scan (SEARCH USING INDEX) with it, the same 20 rows; EXPLAIN ANALYZE executes (the myth)."""

import pytest

from support import assert_problem, scratch_rows

LESSON = "/lessons/missing-index"
ROWS = 30_000
PLANS = {
    ("sqlite", "bad"): ["SCAN ticket", "USE TEMP B-TREE FOR ORDER BY"],
    ("sqlite", "fixed"): ["SEARCH ticket USING INDEX ix_ticket_kind_created_at (kind=?)"],
    ("postgresql", "bad"): ["Limit", "Sort", "Seq Scan on ticket"],
    ("postgresql", "fixed"): ["Limit", "Index Scan Backward using ix_ticket_kind_created_at on ticket"],
}


def newest(client, variant: str, **params) -> dict:
    response = client.get(f"{LESSON}/{variant}", params={"rows": ROWS, **params})
    assert response.status_code == 200, response.text
    assert response.headers["X-Query-Count"] == "2"  # the EXPLAIN, then the query
    return response.json()


@pytest.mark.parametrize("kind", ["bug", "question"])
def test_the_plan_without_and_with_the_index(client, engine_name, kind):
    bad, fixed = newest(client, "bad", kind=kind), newest(client, "fixed", kind=kind)
    assert bad["plan"] == PLANS[(engine_name, "bad")]  # every row read, then sorted
    assert fixed["plan"] == PLANS[(engine_name, "fixed")]  # read in order from the index, stop at 20
    assert bad["tickets"] == fixed["tickets"]  # the same answer
    created = [ticket["created_at"] for ticket in fixed["tickets"]]
    assert len(created) == 20 and created == sorted(created, reverse=True)
    assert {ticket["kind"] for ticket in fixed["tickets"]} == {kind}
    newest_of_kind = max(
        i * 7919 % ROWS for i in range(ROWS) if ("bug", "feature", "question")[i % 3] == kind
    )
    assert created[0] == newest_of_kind


def test_the_index_exists_only_in_the_fixed_copy(client, engine_name):
    newest(client, "bad"), newest(client, "fixed")
    if engine_name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_ticket%'"
    else:
        sql = "SELECT indexname FROM pg_indexes "
        sql += "WHERE schemaname = current_schema() AND indexname LIKE 'ix_ticket%'"
    assert scratch_rows(client.app, f"missing_index_{ROWS}", sql) == []
    assert scratch_rows(client.app, f"missing_index_{ROWS}_indexed", sql) == [("ix_ticket_kind_created_at",)]


@pytest.mark.postgres_only(reason="the myth is about PostgreSQL's EXPLAIN ANALYZE; SQLite has none")
def test_myth_explain_analyze_executes_the_update(client):
    response = client.post(f"{LESSON}/myth/explain-analyze", params={"rows": ROWS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["statement"].startswith("EXPLAIN ANALYZE UPDATE ticket SET title=")
    assert body["changed_inside"] == 10  # EXPLAIN ANALYZE ran the UPDATE
    assert body["changed_after_rollback"] == 0  # only the rollback undid it
    assert body["plan"][0].startswith("Update on ticket") and "actual time=" in body["plan"][0]
    titles = scratch_rows(client.app, f"missing_index_{ROWS}", "SELECT count(*) FROM ticket WHERE id <= 10 "
                          "AND title LIKE 'Ticket %'")  # fmt: skip
    assert titles == [(10,)]


@pytest.mark.sqlite_only(reason="SQLite's EXPLAIN QUERY PLAN, the contrast: it never executes")
def test_sqlite_explain_query_plan_does_not_execute(client):
    body = client.post(f"{LESSON}/myth/explain-analyze", params={"rows": ROWS}).json()
    assert body["statement"].startswith("EXPLAIN QUERY PLAN UPDATE ticket")
    assert (body["changed_inside"], body["changed_after_rollback"]) == (0, 0)


def test_compare_at_the_demo_size_shows_both_plans(client, engine_name):
    response = client.get(f"{LESSON}/compare")  # 100,000 tickets
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["size"] == 100_000
    outcome = {v["variant"]: v["outcome"] for v in result["variants"]}
    assert outcome["bad"].startswith(" > ".join(PLANS[(engine_name, "bad")]) + " (")
    assert outcome["fixed"].startswith(" > ".join(PLANS[(engine_name, "fixed")]) + " (")
    explain = "EXPLAIN ANALYZE: 10" if engine_name == "postgresql" else "EXPLAIN QUERY PLAN: 0"
    assert outcome["myth/explain-analyze"] == f"{explain} rows changed, rolled back"


@pytest.mark.parametrize("params", [{"rows": 0}, {"rows": 200_001}, {"kind": "epic"}])
def test_the_query_parameters_are_validated(client, params):
    field = next(iter(params))
    assert_problem(client.get(f"{LESSON}/bad", params=params), 422, field=field, location="query")
