"""End-to-end tier: real Herald processes, real sockets."""

import pytest

from tests.support.database import (  # noqa: F401 - fixtures
    database_url,
    db,
    pg_admin_dsn,
    settings,
    template_dsn,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
