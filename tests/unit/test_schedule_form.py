"""The admin schedule form's time parsing: the edges of the calendar are a 400."""

from __future__ import annotations

import pytest

from herald.admin.issue_forms import parse_schedule
from herald.core.errors import ValidationError


def test_a_time_past_the_calendar_s_end_in_utc_is_a_validation_error() -> None:
    # 9999-12-31 23:59 in Los Angeles is in the year 10000 in UTC.
    with pytest.raises(ValidationError) as refused:
        parse_schedule("9999-12-31T23:59", "+00:00", "America/Los_Angeles")
    assert refused.value.field == "scheduled_at"


def test_the_last_minute_east_of_utc_is_still_a_time() -> None:
    assert parse_schedule("9999-12-31T23:59", "+00:00", "Pacific/Kiritimati").year == 9999
