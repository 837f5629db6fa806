"""sql-injection: hostile input answers every row on bad and none on fixed; the sort key is allowlisted;
LIKE wildcards match literally on fixed; and the bad routes, really injectable, reach nothing but their
own table (no secret, no reference row, no DROP)."""

import pytest

from heroes.lessons.sql_injection import VILLAINS, _sandboxes

from support import assert_problem, scratch_rows

LESSON = "/lessons/sql-injection"
HOSTILE = ["x' OR '1'='1", "' OR 'a'<'b", "x' OR name LIKE '%"]


def names(client, path: str, **params) -> list[str]:
    response = client.get(f"{LESSON}{path}", params=params)
    assert response.status_code == 200, response.text
    return [villain["name"] for villain in response.json()]


def failure(client, path: str, **params) -> str:
    response = client.get(f"{LESSON}{path}", params=params)
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["type"] == LESSON
    return body["detail"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_names_answer_every_row_on_bad_none_on_fixed(client, seeded, hostile):
    assert names(client, "/bad", name="Loki") == names(client, "/fixed", name="Loki") == ["Loki"]
    assert names(client, "/bad", name=hostile) == VILLAINS  # the WHERE clause is the caller's
    assert names(client, "/fixed", name=hostile) == []  # only a name, that no villain has


def test_a_quote_in_a_name_breaks_bad_and_is_just_a_quote_on_fixed(client, seeded, engine_name):
    detail = failure(client, "/bad", name="Mad O'Hara")
    assert detail.startswith("OperationalError: near" if engine_name == "sqlite" else "SyntaxError: ")
    assert names(client, "/fixed", name="Mad O'Hara") == ["Mad O'Hara"]


UNION = "x' UNION SELECT id, secret_name, name FROM {} --"
DENIED = {"sqlite": "OperationalError: no such table: {}", "postgresql": "InsufficientPrivilege: "}


@pytest.mark.parametrize("table", ["hero", "public.hero"])
def test_a_union_for_secret_names_is_refused_by_the_sandbox(client, seeded, engine_name, table):
    detail = failure(client, "/bad", name=UNION.format(table))
    if engine_name == "sqlite":
        assert detail == DENIED["sqlite"].format(table)
    else:
        assert detail == "InsufficientPrivilege: permission denied for table hero"
    detail = failure(client, "/bad/sort", sort_by=f"(SELECT secret_name FROM {table} LIMIT 1)")
    assert detail.startswith(DENIED[engine_name].format(table))
    assert "Dive Wilson" not in detail


@pytest.mark.parametrize("table", ["villain", "hero"])
def test_drop_table_is_refused_and_every_row_stays(client, seeded, engine_name, table):
    detail = failure(client, "/bad", name=f"x'; DROP TABLE {table}; --")
    if engine_name == "sqlite":
        assert detail == "ProgrammingError: You can only execute one statement at a time."
    else:
        assert detail == f"InsufficientPrivilege: must be owner of table {table}"
    assert names(client, "/fixed/sort", sort_by="id") == VILLAINS
    assert scratch_rows(client.app, "sql_injection", "SELECT count(*) FROM villain") == [(len(VILLAINS),)]
    assert len(client.get("/heroes", params={"limit": 100}).json()) == 15  # the reference rows


@pytest.mark.sqlite_only(reason="SQLite's sandbox is a file opened read-only")
def test_the_sqlite_sandbox_is_read_only(client, seeded):
    detail = failure(client, "/bad/sort", sort_by="(SELECT 1 FROM villain WHERE 0) ; DELETE FROM villain")
    assert detail == "ProgrammingError: You can only execute one statement at a time."
    sandbox = client.app.state.lab.engine("sql_injection")
    with _sandboxes[sandbox].connect() as connection, pytest.raises(Exception, match="readonly database"):
        connection.exec_driver_sql("DELETE FROM villain")


def test_the_sort_key_is_allowlisted(client, seeded):
    assert names(client, "/bad/sort", sort_by="city DESC")[0] == "Mr_Sinister"  # any SQL at all
    by_city = names(client, "/fixed/sort", sort_by="city")
    assert by_city[0] == "Doctor Doom" and sorted(by_city) == sorted(VILLAINS)
    for hostile in ("city DESC", "(SELECT 1)", "id; DROP TABLE villain", "secret_name"):
        response = client.get(f"{LESSON}/fixed/sort", params={"sort_by": hostile})
        assert_problem(response, 422, field="sort_by", location="query")


@pytest.mark.parametrize(
    ("q", "literal"), [("%", ["100% Evil"]), ("_", ["Mr_Sinister"]), ("0% E", ["100% Evil"])]
)
def test_like_wildcards_match_literally_on_fixed(client, seeded, q, literal):
    assert names(client, "/fixed/search", q=q) == literal
    assert names(client, "/bad/search", q=q) == (VILLAINS if q in "%_" else literal)  # wildcards
    assert (
        names(client, "/fixed/search", q="Doom") == names(client, "/bad/search", q="Doom") == ["Doctor Doom"]
    )


def test_compare_shows_all_rows_against_none(client, seeded, engine_name):
    response = client.get(f"{LESSON}/compare")
    assert response.status_code == 200, response.text
    outcome = {v["variant"]: v["outcome"] for v in response.json()["variants"]}
    assert outcome["bad"] == outcome["bad/search"] == "10 of 10 villains"
    assert outcome["fixed"] == "0 of 10 villains"
    assert outcome["fixed/search"] == "1 of 10 villains: 100% Evil"
    assert outcome["bad/union"].startswith(f"500: {DENIED[engine_name].format('hero')}")
