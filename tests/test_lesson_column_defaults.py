"""column-defaults: a default computed once is every row's value (one created_at, one unique code that
fails the second insert), a naive datetime is refused at insert; default_factory gives each row its own."""

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect
from sqlmodel import Session, SQLModel, select

from heroes.lessons.column_defaults import BadTicket, CodedTicket, Ticket, scratch
from heroes.problems import PROBLEM_JSON

from support import scratch_rows

URL = "/lessons/column-defaults"
NAME = "column_defaults"


@pytest.fixture
def lesson_db(app, client):
    return scratch(app.state.lab, fresh=True)


def posts(client, variant: str, n: int) -> list:
    return [client.post(f"{URL}/{variant}") for _ in range(n)]


def distinct(app, table: str) -> tuple[int, int, int]:
    sql = f"SELECT count(*), count(DISTINCT created_at), count(DISTINCT code) FROM {table}"
    return scratch_rows(app, NAME, sql)[0]


def test_bad_gives_every_ticket_the_same_created_at(app, client, lesson_db):
    answers = posts(client, "bad", 4)

    assert [answer.status_code for answer in answers] == [201] * 4
    stamps = {answer.json()["created_at"] for answer in answers}
    assert len(stamps) == 1
    imported = BadTicket.model_fields["created_at"].default  # the moment the class was defined
    assert datetime.fromisoformat(stamps.pop()) == imported
    assert distinct(app, "bad_ticket") == (4, 1, 4)


def test_bad_unique_code_is_refused_from_the_second_ticket(app, client, lesson_db):
    answers = posts(client, "bad/unique", 3)

    assert [answer.status_code for answer in answers] == [201, 500, 500]
    body = answers[1].json()
    assert answers[1].headers["content-type"] == PROBLEM_JSON
    assert body["type"] == URL and body["exception"] == "IntegrityError"
    assert CodedTicket.model_fields["code"].default in body["detail"] or "UNIQUE" in body["detail"]
    assert answers[0].json()["code"] == CodedTicket.model_fields["code"].default
    assert distinct(app, "coded_ticket") == (1, 1, 1)


def test_bad_naive_is_refused_before_the_database(app, client, lesson_db):
    response = client.post(f"{URL}/bad/naive")

    assert response.status_code == 500
    assert response.json()["detail"] == (
        "(builtins.ValueError) Datetime values must have timezone information. Use "
        "datetime.now(timezone.utc), or annotate the field with NaiveDatetime for naive storage."
    )
    assert response.headers["x-query-count"] == "0"  # refused while binding the INSERT's parameters
    assert distinct(app, "naive_ticket") == (0, 0, 0)


def test_fixed_gives_each_ticket_its_own_time_and_code(app, client, lesson_db):
    before = datetime.now(UTC)
    answers = posts(client, "fixed", 5)

    assert [answer.status_code for answer in answers] == [201] * 5
    stamps = [datetime.fromisoformat(answer.json()["created_at"]) for answer in answers]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    assert all(stamp.tzinfo is not None and before <= stamp <= datetime.now(UTC) for stamp in stamps)
    assert len({answer.json()["code"] for answer in answers}) == 5
    assert distinct(app, "ticket") == (5, 5, 5)


def test_myth_a_default_call_gives_each_row_its_own_time():
    """Field(default=datetime.now(...)) is evaluated once, when the class is defined."""
    first, second = BadTicket(), BadTicket()
    assert first.created_at == second.created_at == BadTicket.model_fields["created_at"].default
    assert CodedTicket().code == CodedTicket().code
    assert Ticket().created_at != Ticket().created_at or Ticket().code != Ticket().code
    assert len({Ticket().code for _ in range(10)}) == 10


def test_an_offset_comes_back_as_the_same_instant_in_utc(app, client, lesson_db, engine_name):
    paris = datetime(2024, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with Session(lesson_db) as session:
        session.add(Ticket(code="offset", created_at=paris))
        session.commit()
    with Session(lesson_db) as session:
        back = session.exec(select(Ticket.created_at).where(Ticket.code == "offset")).one()
    assert back == paris and back.utcoffset() == timedelta(0)  # the instant kept, the +02:00 not
    raw = scratch_rows(app, NAME, "SELECT created_at FROM ticket WHERE code = 'offset'")[0][0]
    if engine_name == "sqlite":
        assert raw == "2024-06-01 10:00:00.000000"  # UTC text, no offset
    else:
        assert raw == paris and raw.utcoffset() == timedelta(0)  # timestamptz: the instant


def test_the_lesson_tables_stay_out_of_the_reference_schema(client, lesson_db, engine):
    tables = {"ticket", "bad_ticket", "coded_ticket", "naive_ticket"}
    assert not tables & set(SQLModel.metadata.tables)
    assert not tables & set(inspect(engine).get_table_names())


def test_compare(client, engine_name):
    response = client.get(f"{URL}/compare")
    assert response.status_code == 200, response.text
    got = {v["variant"]: (v["outcome"], v["statements"]) for v in response.json()["variants"]}
    assert list(got) == ["bad", "bad/unique", "bad/naive", "fixed"]
    assert got["bad"] == ("5x 201: 1 distinct created_at, 5 distinct codes", 10)
    unique, statements = got["bad/unique"]
    violation = (
        "IntegrityError: UNIQUE constraint failed: coded_ticket.code"
        if engine_name == "sqlite"
        else "UniqueViolation: duplicate key value violates unique constraint"
    )
    assert unique.startswith(f"1x 201, 4x 500: 1 distinct created_at, 1 distinct codes; {violation}")
    assert statements == 6  # INSERT and refresh, then 4 refused INSERTs
    assert re.match(
        r"5x 500; \(builtins.ValueError\) Datetime values must have timezone", got["bad/naive"][0]
    )
    assert got["fixed"] == ("5x 201: 5 distinct created_at, 5 distinct codes", 10)
