"""The interactive docs tell the truth: a tag per area, and every error documented as problem+json."""

from heroes.config import Settings
from heroes.lessons import LESSONS
from heroes.main import create_app

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
    assert len(reference) == 26
    for path, method, status, response in errors:
        assert response["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
        }, (path, method, status)
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
