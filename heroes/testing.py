"""A pytest fixture for your own project's tests: `queries` counts what your engine executes.

# conftest.py
from heroes.testing import queries  # noqa: F401  (needs an `engine` fixture of yours)

def test_read_team(client, queries):
    client.get("/teams/1")
    assert queries.count == 2, queries.statements
"""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from heroes.evidence import QueryLog, count_queries


@pytest.fixture
def queries(engine: Engine) -> Iterator[QueryLog]:
    """Every statement the test's `engine` runs from here on: `assert queries.count == 2`."""
    with count_queries(engine) as log:
        yield log
