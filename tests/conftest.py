"""Settings for every tier. Database fixtures live in tests/support/database.py."""

import structlog

# structlog's default console renderer formats exceptions with rich, which is slow;
# tests that provoke errors only need the plain traceback.
structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        ),
    ]
)


def pytest_sessionfinish() -> None:
    from tests.support.tmp import remove_all

    remove_all()
