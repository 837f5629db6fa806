"""load-only: whole entities read every bio (memory), defer() then a read is 1 + N, load_only and a
column select read three columns in 1 statement, raiseload turns the slip into an error."""

import pytest
from sqlalchemy import inspect

from heroes.lessons.load_only import BIO_BYTES
from heroes.problems import PROBLEM_JSON

from support import assert_problem, scratch_rows

LESSON = "/lessons/load-only"
VARIANTS = ["bad", "bad/deferred", "fixed", "fixed/columns"]


def statements(response) -> int:
    assert response.status_code == 200, response.text
    return int(response.headers["X-Query-Count"])


def test_every_variant_answers_the_same_three_columns_at_its_own_price(client, seeded):
    client.get(f"{LESSON}/fixed", params={"rows": 50})  # builds the scratch table
    answers = {variant: client.get(f"{LESSON}/{variant}", params={"rows": 50}) for variant in VARIANTS}
    assert {variant: statements(answer) for variant, answer in answers.items()} == {
        "bad": 1,
        "bad/deferred": 51,  # the deferred bio, read row by row
        "fixed": 1,
        "fixed/columns": 1,
    }
    profiles = answers["fixed"].json()
    assert all(answer.json() == profiles for answer in answers.values())
    assert profiles[0] == {"id": 1, "name": "Profile 1", "age": 21} and len(profiles) == 50
    app = client.app
    assert scratch_rows(app, "load_only_50", "SELECT count(*), min(length(bio)) FROM profile") == [
        (50, BIO_BYTES + 2)
    ]


def test_the_unused_column_costs_the_memory_at_the_demo_size(client, seeded):
    """Measured at 1,000 rows (both engines): bad 20.9 MiB, bad/deferred 21.2, fixed 2.0, columns 0.8."""
    response = client.get(f"{LESSON}/compare", params={"size": 1000})
    assert response.status_code == 200, response.text
    by_variant = {v["variant"]: v for v in response.json()["variants"]}
    assert {v: by_variant[v]["statements"] for v in by_variant} == {
        "bad": 1,
        "bad/deferred": 1001,
        "fixed": 1,
        "fixed/columns": 1,
        "guard": 1,
    }
    peak = {v: by_variant[v]["peak_memory_bytes"] for v in VARIANTS}
    bios = 1000 * BIO_BYTES
    assert peak["bad"] > bios and peak["bad/deferred"] > bios  # every bio read, held until the end
    assert peak["fixed"] * 5 < peak["bad"]  # measured: 10x
    assert peak["fixed/columns"] * 10 < peak["bad"]  # measured: 26x
    assert by_variant["guard"]["outcome"].startswith("500 Internal Server Error: ")


def test_defer_with_raiseload_turns_the_slip_into_an_error(client, seeded):
    response = client.get(f"{LESSON}/guard", params={"rows": 20})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == LESSON and body["exception"] == "InvalidRequestError"
    assert body["detail"] == "'Profile.bio' is not available due to raiseload=True"
    assert response.headers["X-Query-Count"] == "1"  # the list, then the error: no lazy SELECT


def test_the_profile_table_lives_in_the_scratch_database_only(client, seeded):
    client.get(f"{LESSON}/fixed", params={"rows": 5})
    assert "profile" not in inspect(seeded).get_table_names()
    assert [team["name"] for team in client.get("/teams").json()][0] == "Preventers"


@pytest.mark.parametrize("rows", ["0", "5001", "ten"])
def test_the_size_knob_is_validated(client, rows):
    assert_problem(client.get(f"{LESSON}/bad", params={"rows": rows}), 422, field="rows", location="query")
