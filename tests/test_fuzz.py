"""Generated input, valid and invalid, for every operation in the OpenAPI schema: never a 5xx.

Schemathesis turns the schema into Hypothesis strategies: `positive` draws input the schema allows,
`negative` input it forbids (wrong types, out-of-range numbers, missing fields...). `derandomize=True`
draws the same examples on every run, so a failure reproduces. Every response must match the schema
(documented status, content type, body), invalid input must be refused, and errors are problem+json.
Not checked: that schema-valid input is always accepted, because a well-formed `team_id` naming no
team is refused with 422 by design.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from heroes.config import Settings
from heroes.main import create_app


def _cases() -> list[tuple[str, GenerationMode]]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(database_url="sqlite://")))
    cases = []
    for result in schema.get_all_operations():
        operation = result.ok()
        cases.append((operation.label, GenerationMode.POSITIVE))
        if list(operation.iter_parameters()) or operation.body:  # no input, nothing to get wrong
            cases.append((operation.label, GenerationMode.NEGATIVE))
    return cases


@pytest.mark.parametrize(("label", "mode"), _cases(), ids=lambda v: getattr(v, "value", v))
def test_no_server_error(app, seeded, label, mode):
    operation = schemathesis.openapi.from_asgi("/openapi.json", app).find_operation_by_label(label)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=50,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def never_5xx(case):
        response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert response.headers["content-type"] == ["application/problem+json"]

    never_5xx()
