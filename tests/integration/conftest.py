"""Integration tier: real Postgres, one database per test (see tests/support/database.py)."""

import pytest

from tests.support.database import (  # noqa: F401 - fixtures
    client,
    database_url,
    db,
    pg_admin_dsn,
    settings,
    template_dsn,
)
from tests.support.newsletters import admin_client, editor  # noqa: F401 - fixtures


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)
