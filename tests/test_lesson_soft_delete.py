"""soft-delete: a query without deleted_at IS NULL lists deleted rows, UNIQUE (name) keeps a deleted row's
name; a do_orm_execute hook (with_loader_criteria) filters every SELECT, a partial unique index frees it."""

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex

from heroes.lessons.soft_delete import LiveSquad, Squad, not_deleted, scratch

from support import assert_problem, scratch_rows

URL = "/lessons/soft-delete"
DOOM = {"name": "Legion of Doom"}


def test_bad_lists_the_deleted_squads(client):
    response = client.get(f"{URL}/bad")

    assert response.status_code == 200, response.text
    assert [(s["id"], s["deleted_at"] is not None) for s in response.json()] == [
        (1, False),
        (2, True),
        (3, False),
        (4, False),
        (5, True),
    ]


def test_fixed_lists_the_live_squads_only(client):
    response = client.get(f"{URL}/fixed")

    assert response.status_code == 200, response.text
    assert [s["name"] for s in response.json()] == ["Justice League", "Injustice Gang", "Teen Titans"]
    assert response.headers["x-query-count"] == "1"  # the filter is in the one SELECT


def test_the_hook_filters_every_select_and_a_query_can_opt_out(app, client):
    engine = scratch(app.state.lab)
    with Session(engine) as session:
        event.listen(session, "do_orm_execute", not_deleted)
        assert session.get(Squad, 2) is None  # get() too: the deleted squad is not there
        assert [s.id for s in session.scalars(select(LiveSquad).order_by(LiveSquad.id))] == [1, 3, 4]
        everything = select(Squad).order_by(Squad.id).execution_options(include_deleted=True)
        assert [s.id for s in session.scalars(everything)] == [1, 2, 3, 4, 5]  # the opt-out


def test_bad_recreate_of_a_deleted_name_is_409(client, app):
    response = client.post(f"{URL}/bad/recreate", json=DOOM)

    assert_problem(response, 409, "name")
    assert scratch_rows(app, "soft_delete", "SELECT count(*) FROM squad WHERE name = 'Legion of Doom'") == [
        (1,)
    ]


def test_fixed_recreate_of_a_deleted_name_is_201_and_a_live_duplicate_409(client, app):
    response = client.post(f"{URL}/fixed/recreate", json=DOOM)

    assert response.status_code == 201, response.text
    assert response.json() == {"id": 6, "name": "Legion of Doom", "deleted_at": None}
    assert_problem(client.post(f"{URL}/fixed/recreate", json=DOOM), 409, "name")  # now live: taken
    assert_problem(client.post(f"{URL}/fixed/recreate", json={"name": "Teen Titans"}), 409, "name")
    rows = scratch_rows(
        app,
        "soft_delete",
        "SELECT id, deleted_at IS NULL FROM live_squad WHERE name = 'Legion of Doom' ORDER BY id",
    )
    assert [(id, bool(live)) for id, live in rows] == [(2, False), (6, True)]


def test_the_partial_index_is_rendered_for_both_engines(client, app, engine_name):
    (index,) = LiveSquad.__table__.indexes
    engine = scratch(app.state.lab)
    ddl = str(CreateIndex(index).compile(dialect=engine.dialect))
    assert ddl == "CREATE UNIQUE INDEX uq_live_squad_name ON live_squad (name) WHERE deleted_at IS NULL"
    found = inspect(engine).get_indexes("live_squad")
    assert [(i["name"], i["unique"]) for i in found] == [("uq_live_squad_name", True)]


def test_the_lesson_tables_stay_out_of_the_reference_schema(client, engine):
    client.get(f"{URL}/fixed")
    assert not {"squad", "live_squad"} & set(inspect(engine).get_table_names())


def test_compare(client):
    response = client.get(f"{URL}/compare")
    assert response.status_code == 200, response.text
    got = [(v["variant"], v["outcome"], v["statements"]) for v in response.json()["variants"]]
    expected = [
        ("bad", "200: 5 squad(s), 2 deleted", 1),
        ("fixed", "200: 3 squad(s), 0 deleted", 1),
        ("bad/recreate", "409: A squad named 'Legion of Doom' already exists.", 1),
        ("fixed/recreate", "201: 1 squad(s), 0 deleted", 2),
    ]
    assert got == expected
    assert [
        (v["variant"], v["outcome"], v["statements"]) for v in client.get(f"{URL}/compare").json()["variants"]
    ] == expected
