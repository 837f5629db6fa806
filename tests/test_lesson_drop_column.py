"""drop-column: dropping hero.nickname (0007) breaks the release that still maps it, and no downgrade
brings a nickname back; after the deprecation cycle the new release reads and writes through the drop."""

from sqlalchemy import inspect

from heroes.seed import _hero_rows

from support import assert_problem, report, scratch_rows

LESSON = "/lessons/drop-column"
BROKEN = {
    "sqlite": "OperationalError: no such column: hero.nickname",
    "postgresql": "UndefinedColumn: column hero.nickname does not exist",
}
KEPT = "SELECT name, secret_name, age, team_id, version FROM hero ORDER BY id"


def test_bad_breaks_the_running_release_and_the_downgrade_brings_back_no_nickname(client, app, engine_name):
    body = report(client.post(f"{LESSON}/bad", params={"heroes": 1000}))
    assert body["error"] == BROKEN[engine_name]
    assert [step["outcome"] for step in body["steps"]] == [
        "ok: 1000 heroes read",
        "ok: dropped",
        f"failed: {BROKEN[engine_name]}",  # every query of that release, not only the nickname ones
        "ok: the column is back",
    ]
    assert (body["nicknames_before"], body["nicknames_after"]) == (1000, 0)
    assert (body["revision_from"], body["revision_to"]) == ("0006", "0006")
    assert (body["rows_before"], body["rows_after"]) == (1000, 1000)
    assert body["squawk"] == ["ban-drop-column"]
    with app.state.lab.engine("drop_column_bad").connect() as connection:
        assert "nickname" in {c["name"] for c in inspect(connection).get_columns("hero")}  # back, empty
    assert scratch_rows(app, "drop_column_bad", "SELECT count(*), count(nickname) FROM hero") == [(1000, 0)]
    assert scratch_rows(app, "drop_column_bad", KEPT) == list(_hero_rows([1], 1000))  # the rest is kept


def test_fixed_stops_reading_and_writing_before_the_drop_and_nothing_breaks(client, app):
    body = report(client.post(f"{LESSON}/fixed", params={"heroes": 1000}))
    assert body["error"] is None
    assert [step["outcome"] for step in body["steps"]] == [
        "ok: 1000 heroes read",
        "ok: a hero created, its nickname NULL",
        "ok: dropped",
        "ok: 1001 heroes read",  # the same release, after the drop
        "ok: the column is back",
    ]
    assert (body["nicknames_before"], body["nicknames_after"]) == (1000, 0)  # still gone: said, not hidden
    assert (body["rows_before"], body["rows_after"]) == (1000, 1001)
    assert body["squawk"] == []  # 0007 says why above squawk's ignore: no running release maps it
    assert scratch_rows(app, "drop_column_fixed", KEPT)[:1000] == list(_hero_rows([1], 1000))
    rows = scratch_rows(app, "drop_column_fixed", "SELECT name, nickname FROM hero WHERE id = 1001")
    assert rows == [("Nightcrawler", None)]


def test_compare_shows_the_break_and_the_values_lost(client, engine_name):
    response = client.get(f"{LESSON}/compare", params={"size": 1000})
    assert response.status_code == 200, response.text
    bad, fixed = response.json()["variants"]
    lost = "nicknames 1000 -> 0 after the downgrade"
    squawk = "squawk: ban-drop-column"
    assert bad["outcome"] == f"failed: {BROKEN[engine_name]}; heroes 1000 -> 1000; at 0006; {squawk}; {lost}"
    assert fixed["outcome"] == f"ok: 5 steps; heroes 1000 -> 1001; at 0006; squawk: clean; {lost}"


def test_no_report_carries_a_secret_name(client):
    for variant in ("bad", "fixed"):
        response = client.post(f"{LESSON}/{variant}", params={"heroes": 10})
        assert "secret" not in response.text.lower() and "Kurt Wagner" not in response.text


def test_the_lesson_says_what_to_run(client):
    entry = client.get(LESSON).json()
    assert "heroes db upgrade 0007" in entry["more"]["Commands"]
    assert "heroes db downgrade 0006" in entry["more"]["Commands"]
    assert "alembic upgrade 0006:0007 --sql" in entry["more"]["Commands"]


def test_a_size_out_of_range_is_refused_naming_the_field(client):
    assert_problem(client.post(f"{LESSON}/bad", params={"heroes": 0}), 422, field="heroes", location="query")
