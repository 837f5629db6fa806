"""`secret_name` is written on create and update, and never comes back: not in a body, not in a header,
not in an error that quotes what was sent."""

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from heroes.models import Hero

SECRET = "Qx7-Wallaby-Cipher"  # distinctive: no other text in the app contains it
OTHER_SECRET = "Zv9-Marmot-Enigma"
JSON = {"content-type": "application/json"}


def assert_no_secret(response, *secrets: str) -> None:
    """No response body or header mentions a secret, in any case."""
    for secret in secrets or (SECRET, OTHER_SECRET):
        assert secret.lower() not in response.text.lower(), (response.request.url, response.text)
        for name, value in response.headers.items():
            assert secret.lower() not in value.lower(), (response.request.url, name, value)


def stored_secrets(engine: Engine) -> dict[int, str]:
    with Session(engine) as session:
        return dict(session.exec(select(Hero.id, Hero.secret_name)).all())


@pytest.fixture
def hero_id(client, seeded) -> int:
    """Hero 16, in team 1, whose secret name is SECRET."""
    response = client.post(
        "/heroes", json={"name": "Cloaked", "secret_name": SECRET, "age": 30, "team_id": 1}
    )
    assert response.status_code == 201
    assert_no_secret(response)
    return response.json()["id"]


def test_secret_name_is_stored_on_create_and_update(client, seeded, hero_id):
    assert stored_secrets(seeded)[hero_id] == SECRET
    response = client.patch(f"/heroes/{hero_id}", json={"secret_name": OTHER_SECRET})
    assert response.status_code == 200
    assert "secret_name" not in response.json()
    assert_no_secret(response)
    assert stored_secrets(seeded)[hero_id] == OTHER_SECRET


def test_successful_responses_never_return_it(client, seeded, hero_id):
    responses = [
        client.get(f"/heroes/{hero_id}"),
        client.get(f"/heroes/{hero_id}", headers={"If-None-Match": '"1"'}),
        client.get("/heroes"),
        client.get("/heroes", params={"name": "cloak", "team_id": 1, "min_age": 30, "max_age": 30}),
        client.get("/heroes", params={"offset": 15}),
        client.get("/teams/1"),
        client.get("/teams"),
        client.patch(f"/heroes/{hero_id}", json={"age": 31}, headers={"If-Match": '"1"'}),
        client.patch(f"/heroes/{hero_id}", json={"secret_name": SECRET, "name": "Cloaked"}),
        client.patch(f"/heroes/{hero_id}", json={"team_id": 2}),
        client.get("/teams/2"),
        client.patch("/teams/2", json={"headquarters": "Elsewhere"}),
        client.get("/openapi.json"),
        client.delete(f"/heroes/{hero_id}"),
    ]
    assert [response.status_code for response in responses] == [
        200, 304, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 204
    ]  # fmt: skip
    for response in responses:
        assert "secret_name" not in response.text or response.request.url.path == "/openapi.json"
        assert_no_secret(response)


# Every way a request carrying the secret can fail; the error must not quote it back.
BAD_CREATES = [
    {"name": "X", "secret_name": SECRET, "team_id": 99},  # unknown team
    {"name": "X", "secret_name": SECRET, "age": -1},
    {"name": "X", "secret_name": SECRET, "age": 2**63},
    {"name": "", "secret_name": SECRET},
    {"secret_name": SECRET},
    {"name": "X", "secret_name": SECRET * 10},  # too long: the message must not show the value
    {"name": "X", "secret_name": SECRET + "\x00"},
    {"name": "X", "secret_name": SECRET + "\x1b[31m"},
    {"name": "X", "secret_name": [SECRET]},
    {"name": "X", "secret_name": {"value": SECRET}},
    {"name": SECRET + "\x00", "secret_name": SECRET},
]


@pytest.mark.parametrize("body", BAD_CREATES)
def test_rejected_creates_never_echo_it(client, seeded, body):
    response = client.post("/heroes", json=body)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"
    assert_no_secret(response)
    assert len(stored_secrets(seeded)) == 15


@pytest.mark.parametrize(
    "content",
    [
        f'{{"name": "X", "secret_name": "{SECRET}\\ud800"}}',  # lone surrogate
        f'{{"name": "X", "secret_name": "{SECRET}',  # truncated JSON
        f'{{"name": "X", "secret_name": "{SECRET}", "age": 1e400}}',
        f'{{"name": "X", "secret_name": "{SECRET}" "age": 1}}',  # missing comma
        f'["{SECRET}"]',
    ],
)
def test_rejected_raw_bodies_never_echo_it(client, seeded, content):
    response = client.post("/heroes", content=content, headers=JSON)
    assert response.status_code == 422
    assert_no_secret(response)
    assert len(stored_secrets(seeded)) == 15


def test_rejected_non_utf8_body_never_echoes_it(client, seeded):
    content = f'{{"name": "\xff", "secret_name": "{SECRET}"}}'.encode("latin-1")
    response = client.post("/heroes", content=content, headers=JSON)
    assert response.status_code == 400
    assert_no_secret(response)


BAD_UPDATES = [
    ({"secret_name": OTHER_SECRET, "team_id": 99}, {}, 422),
    ({"secret_name": OTHER_SECRET}, {"If-Match": '"7"'}, 412),
    ({"secret_name": OTHER_SECRET, "name": None}, {}, 422),
    ({"secret_name": OTHER_SECRET * 10}, {}, 422),
    ({"secret_name": OTHER_SECRET + "\x00"}, {}, 422),
    ({"secret_name": OTHER_SECRET, "age": 2**31}, {}, 422),
]


@pytest.mark.parametrize(("body", "headers", "status"), BAD_UPDATES)
def test_rejected_updates_never_echo_it(client, seeded, hero_id, body, headers, status):
    response = client.patch(f"/heroes/{hero_id}", json=body, headers=headers)
    assert response.status_code == status
    assert_no_secret(response)
    assert stored_secrets(seeded)[hero_id] == SECRET


@pytest.mark.parametrize(
    ("path", "status"), [("/heroes/999", 404), ("/heroes/0", 422), ("/heroes/2147483648", 422)]
)
def test_rejected_updates_of_other_ids_never_echo_it(client, seeded, hero_id, path, status):
    response = client.patch(path, json={"secret_name": OTHER_SECRET})
    assert response.status_code == status
    assert_no_secret(response)


def test_rejected_raw_update_never_echoes_it(client, seeded, hero_id):
    content = f'{{"secret_name": "{OTHER_SECRET}\\udfff"}}'
    response = client.patch(f"/heroes/{hero_id}", content=content, headers=JSON)
    assert response.status_code == 422
    assert_no_secret(response)
    assert stored_secrets(seeded)[hero_id] == SECRET


def test_errors_about_a_hero_with_a_secret_never_mention_it(client, seeded, hero_id):
    responses = [
        client.delete("/teams/1"),  # 409: still has heroes, ours among them
        client.get(f"/heroes/{hero_id}/nothing"),
        client.put(f"/heroes/{hero_id}", json={"secret_name": SECRET}),
        client.post("/teams", json={"name": "Preventers", "headquarters": SECRET}),
    ]
    assert [response.status_code for response in responses] == [409, 404, 405, 409]
    for response in responses:
        assert_no_secret(response)


def test_no_lesson_route_export_or_compare_returns_it(client, seeded, hero_id):
    """Every request compare makes, for every lesson (at its smallest demo size too), and both exports."""
    from heroes.lessons import LESSONS
    from heroes.seed import DEMO_HEROES

    secrets = [SECRET] + [secret for _, secret, _, _ in DEMO_HEROES] + ["Secret 0000"]  # seed_bulk's
    responses = [client.get("/heroes/export"), client.get("/heroes/export", params={"format": "csv"})]
    assert SECRET not in responses[0].text and "Cloaked" in responses[0].text
    for lesson in LESSONS:
        sizes = [None] + ([min(lesson.size.demo)] if lesson.size and lesson.size.demo else [])
        for size in sizes:
            for call in lesson.calls(size):
                responses.append(client.request(call.method, call.path, params=call.params, json=call.json))
            compare = client.get(f"/lessons/{lesson.slug}/compare", params={"size": size} if size else {})
            assert compare.status_code in (200, 409), compare.text  # 409: a PostgreSQL lesson on SQLite
            responses.append(compare)
        # each lesson's engines keep their pooled connections: 34 lessons' worth exceed the embedded
        # server's 100 (FATAL: too many clients), so each lesson's are given back before the next
        assert client.post(f"/lessons/{lesson.slug}/reset").status_code == 200
    assert len(responses) > 40
    for response in responses:
        assert_no_secret(response, *secrets)
