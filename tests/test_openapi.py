"""The interactive docs tell the truth: a tag per area, and every error documented as problem+json."""

from http import HTTPStatus

from heroes.config import Settings
from heroes.lab.routes import variant_of
from heroes.lessons import BY_SLUG, LESSONS
from heroes.main import create_app
from heroes.problems import PROBLEM_JSON

APP = create_app(Settings(database_url="sqlite://"))  # the schema needs no database


def test_docs_page_is_served(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text


def test_a_tag_per_area_with_a_description():
    schema = APP.openapi()
    areas = ["teams", "heroes", "health", "lessons"] + [f"lesson: {lesson.slug}" for lesson in LESSONS]
    assert [tag["name"] for tag in schema["tags"]] == areas
    assert all(tag["description"] for tag in schema["tags"])
    tags = {operation["tags"][0] for path in schema["paths"].values() for operation in path.values()}
    assert tags == set(areas)


def test_every_error_is_documented_as_problem_json():
    schema = APP.openapi()
    errors = [
        (path, method, status, response)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if status[0] in "45"
    ]
    reference = [error for error in errors if not error[0].startswith("/lessons")]
    assert len(reference) == 36  # 26, 415 on the 4 routes that take a body, 503 on the 6 writes
    for path, method, status, response in errors:
        assert list(response["content"]) == [PROBLEM_JSON], (path, method, status)
        content = response["content"][PROBLEM_JSON]
        assert content["schema"] == {"$ref": "#/components/schemas/ProblemDetails"}, (path, method, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_private_and_server_managed_fields_are_where_they_belong():
    schemas = APP.openapi()["components"]["schemas"]
    assert "secret_name" in schemas["HeroCreate"]["properties"]
    assert "secret_name" in schemas["HeroUpdate"]["properties"]
    for public in ("HeroPublic", "HeroPublicWithTeam", "TeamPublicWithHeroes", "ProblemDetails"):
        assert "secret_name" not in str(schemas[public])
    name = schemas["TeamCreate"]["properties"]["name"]
    assert (name["minLength"], name["maxLength"], name["pattern"]) == (
        1,
        100,
        r"^[^\x00-\x1f\x7f-\x9f\ud800-\udfff]*$",
    )


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_each_error_example_is_one_its_route_gives():
    schema = APP.openapi()
    lessons = {lesson.prefix: lesson for lesson in LESSONS}
    reference = 0  # the lessons' routes are checked alike, but their number grows with the curriculum
    for path, method, operation in operations(schema):
        lesson = lessons.get("/".join(path.split("/")[:3]))
        inputs = {p["name"] for p in operation.get("parameters", [])}
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body:  # a model's fields; a list or a free-form object is `body` itself
            body = schema["components"]["schemas"].get(body.get("$ref", "").rsplit("/", 1)[-1], body)
            inputs |= set(body.get("properties", {"body": None}))
        for status, response in operation["responses"].items():
            if status[0] not in "45":
                continue
            example = response["content"][PROBLEM_JSON]["example"]
            where = (method, path, status)
            assert example["status"] == int(status), where
            assert example["instance"] == path, where
            assert example["detail"] and "secret_name" not in str(example), where
            if lesson is not None and status in ("500", "503"):  # the lesson's own problem (lab/routes.py)
                assert example["type"] == lesson.type, where
                assert example["title"] == f"{example['exception']}: the pitfall this lesson shows", where
            else:
                assert example["title"] == HTTPStatus(int(status)).phrase, where
            if status == "422" and (
                lesson is None or "errors" in example
            ):  # a lesson's own 422 may name none
                assert example["errors"][0]["field"] in inputs, where
            reference += lesson is None
    assert reference == 43  # every documented 4xx/5xx of the reference API and the catalogue


def test_what_some_routes_answer_is_shown_as_it_is():
    schema = APP.openapi()

    def example(path: str, method: str, status: str) -> dict:
        return schema["paths"][path][method]["responses"][status]["content"][PROBLEM_JSON]["example"]

    assert example("/heroes/{hero_id}", "get", "404")["detail"] == "No hero with id 99."
    assert example("/teams/{team_id}", "delete", "409")["detail"] == (
        "Team 1 still has 3 hero(es): move or delete them first."
    )
    assert example("/heroes/{hero_id}", "patch", "412")["detail"] == (
        "Hero 1 is at version 2 now: read it again, then retry."
    )
    assert example("/heroes", "get", "422")["errors"] == [
        {
            "field": "offset",
            "location": "query",
            "message": "Input should be less than or equal to 2147483647",
            "type": "less_than_equal",
        }
    ]
    assert example("/teams", "post", "415")["errors"][0]["field"] == "Content-Type"
    detached = example("/lessons/detached-instance/bad", "get", "500")
    assert detached.pop("detail").startswith(
        "Parent instance <Hero at 0x7f3e5c1d2a90> is not bound to a Session; lazy load operation of "
        "attribute 'team' cannot proceed (Background on this error at: https://sqlalche.me/e/"
    )  # the link is SQLAlchemy's own, for its version
    assert detached == {
        "type": "/lessons/detached-instance",
        "title": "DetachedInstanceError: the pitfall this lesson shows",
        "status": 500,
        "instance": "/lessons/detached-instance/bad",
        "exception": "DetachedInstanceError",
    }
    assert example("/lessons/concurrent-index/bad", "post", "409")["type"] == "/lessons/concurrent-index"


def test_415_is_documented_exactly_where_a_json_body_is_taken():
    schema = APP.openapi()
    with_body = {(path, method) for path, method, op in operations(schema) if "requestBody" in op}
    with_415 = {(path, method) for path, method, op in operations(schema) if "415" in op["responses"]}
    assert with_415 == with_body
    assert {(path, method) for path, method in with_body if not path.startswith("/lessons/")} == {
        ("/teams", "post"),
        ("/teams/{team_id}", "patch"),
        ("/heroes", "post"),
        ("/heroes/{hero_id}", "patch"),
    }
    assert ("/lessons/detached-instance/bad/expired", "patch") in with_body


def test_every_lesson_operation_has_a_summary_and_its_compare_request_as_example():
    schema = APP.openapi()
    for lesson in LESSONS:
        for route in lesson.routes:
            for method in route.methods:
                operation = schema["paths"][route.path][method.lower()]
                assert operation["summary"].startswith(f"{variant_of(lesson, route.path)}: "), route.path
                for content in operation.get("requestBody", {}).get("content", {}).values():
                    assert isinstance(content["example"], dict | list) and content["example"], route.path


def test_generated_names_are_readable():
    schema = APP.openapi()
    names = set(schema["components"]["schemas"])
    assert [name for name in names if name.startswith("Body_") or "lessons" in name.lower()] == []
    rename = schema["components"]["schemas"]["HeroRename"]["properties"]["name"]
    assert (rename["minLength"], rename["maxLength"], rename["pattern"]) == (
        1,
        100,
        r"^[^\x00-\x1f\x7f-\x9f\ud800-\udfff]*$",
    )
    ids = [operation["operationId"] for _, _, operation in operations(schema)]
    assert len(ids) == len(set(ids))
    assert ids[:2] == ["teams-create_team", "teams-read_teams"]
    assert "lesson-detached-instance-bad_expired" in ids
    assert [
        i for i in ids if "/" in i or "{" in i or i.endswith(("_get", "_post", "_patch", "_delete"))
    ] == []


def test_compare_slug_is_an_enum_of_the_lessons():
    parameters = APP.openapi()["paths"]["/lessons/{slug}/compare"]["get"]["parameters"]
    slug = next(parameter for parameter in parameters if parameter["name"] == "slug")
    assert slug["schema"]["enum"] == list(BY_SLUG)
