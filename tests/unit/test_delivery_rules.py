"""Delivery rules: how long to wait before a retry, and what each send result means."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.delivery.domain import ClaimedDelivery, backoff_seconds, decide, render_stored
from herald.email.message import Accepted, EmailMessage, PermanentFailure, TransientFailure

BASE = 10.0
CAP = 3600.0

MESSAGE = EmailMessage(
    sender="news@herald-demo.org",
    recipient="ursula@example.com",
    subject="Please confirm your subscription",
    html_body="<p>Hello</p>",
    text_body="Hello",
    headers=(("List-Unsubscribe", "<https://herald-demo.org/u/1>"),),
)


def delivery(
    id: int = 1, *, attempts: int = 1, max_attempts: int = 5, message: Any = None
) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=id,
        kind="confirmation",
        recipient="ursula@example.com",
        subscriber_id=None,
        message=message,
        attempts=attempts,
        max_attempts=max_attempts,
    )


# -- backoff -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [
        (1, 10),
        (2, 20),
        (3, 40),
        (4, 80),
        (5, 160),
        (6, 320),
        (7, 640),
        (8, 1280),
        (9, 2560),
        (10, 3600),  # 5120 capped
    ],
)
def test_the_delay_doubles_per_attempt_with_equal_jitter(attempt: int, delay: float) -> None:
    rng = random.Random(attempt)
    draws = [backoff_seconds(attempt, base=BASE, cap=CAP, rng=rng) for _ in range(200)]
    assert all(delay / 2 <= d <= delay for d in draws)
    # Jitter really spreads retries: the draws use most of the window.
    assert max(draws) - min(draws) > delay / 4


def test_the_same_seed_gives_the_same_delays() -> None:
    first = [backoff_seconds(3, base=BASE, cap=CAP, rng=random.Random(7)) for _ in range(3)]
    second = [backoff_seconds(3, base=BASE, cap=CAP, rng=random.Random(7)) for _ in range(3)]
    assert first == second


@given(
    attempt=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.01, max_value=600),
    cap=st.floats(min_value=1, max_value=7 * 24 * 3600),
    seed=st.integers(),
)
def test_the_cap_bounds_every_exponential_delay(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    delay = backoff_seconds(attempt, base=base, cap=cap, rng=random.Random(seed))
    assert 0 < delay <= cap
    assert delay >= min(cap, base * 2 ** (attempt - 1)) / 2


def test_a_longer_retry_after_wins_over_the_exponential_delay() -> None:
    rng = random.Random(1)
    for _ in range(100):
        delay = backoff_seconds(1, base=BASE, cap=CAP, retry_after=120, rng=rng)
        assert 120 <= delay <= 132  # never sooner than asked; at most 10 % later


@pytest.mark.parametrize(("attempt", "previous_rung"), [(2, 10), (3, 20), (7, 320)])
def test_a_short_retry_after_shortens_the_backoff_by_one_rung_at_most(
    attempt: int, previous_rung: float
) -> None:
    """A provider that keeps answering ``429 Retry-After: 1`` must not be retried every
    second: that burnt all eight attempts of a message within a 20 s storm (R3)."""
    rng = random.Random(attempt)
    for _ in range(100):
        delay = backoff_seconds(attempt, base=BASE, cap=CAP, retry_after=1, rng=rng)
        assert previous_rung / 2 <= delay <= previous_rung


def test_the_first_rate_limited_retry_comes_when_the_provider_asks() -> None:
    rng = random.Random(3)
    for _ in range(100):
        assert 1 <= backoff_seconds(1, base=BASE, cap=CAP, retry_after=1, rng=rng) <= 1.1


def test_a_minute_of_429s_costs_a_few_attempts_not_the_budget() -> None:
    """One message through 60 s of ``429 Retry-After: 1``, with the shortest jitter."""

    class Shortest(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return min(a, b)

    elapsed, attempt = 0.0, 1
    while elapsed < 60:
        elapsed += backoff_seconds(attempt, base=BASE, cap=CAP, retry_after=1, rng=Shortest())
        attempt += 1
    # Attempts at 0, 1, 6, 16 and 36 s fail; the 6th comes after the storm (8 by default).
    assert attempt == 6


@pytest.mark.parametrize("retry_after", [0, -5])
def test_a_meaningless_retry_after_is_ignored(retry_after: float) -> None:
    delay = backoff_seconds(2, base=BASE, cap=CAP, retry_after=retry_after, rng=random.Random(0))
    assert 10 <= delay <= 20


@given(
    retry_after=st.floats(min_value=0.001, max_value=1e9),
    cap=st.floats(min_value=1, max_value=7 * 24 * 3600),
    seed=st.integers(),
)
def test_retry_after_is_capped_too(retry_after: float, cap: float, seed: int) -> None:
    """A provider asking for a day's pause must not hold a message past retry_max_seconds."""
    delay = backoff_seconds(1, base=BASE, cap=cap, retry_after=retry_after, rng=random.Random(seed))
    assert delay <= cap
    assert delay >= min(retry_after, cap)


# -- decide ------------------------------------------------------------------


def test_accepted_messages_are_sent_with_the_provider_id() -> None:
    outcomes = decide(
        [delivery(1), delivery(2)],
        [Accepted("pm-123"), Accepted()],
        retry_base=BASE,
        retry_cap=CAP,
    )
    assert outcomes.sent == [(1, "pm-123"), (2, None)]
    assert outcomes.retry == []
    assert outcomes.failed == []
    assert len(outcomes) == 2


def test_a_permanent_failure_fails_at_once() -> None:
    outcomes = decide(
        [delivery(3, attempts=1, max_attempts=8)],
        [PermanentFailure("422 inactive recipient")],
        retry_base=BASE,
        retry_cap=CAP,
    )
    assert outcomes.failed == [(3, "422 inactive recipient")]
    assert outcomes.retry == []


@pytest.mark.parametrize("attempts", [1, 2, 4])
def test_a_transient_failure_is_retried_while_attempts_remain(attempts: int) -> None:
    outcomes = decide(
        [delivery(4, attempts=attempts, max_attempts=5)],
        [TransientFailure("503 service unavailable")],
        retry_base=BASE,
        retry_cap=CAP,
        rng=random.Random(0),
    )
    [(delivery_id, delay, error)] = outcomes.retry
    assert delivery_id == 4
    assert error == "503 service unavailable"
    expected = min(CAP, BASE * 2 ** (attempts - 1))
    assert expected / 2 <= delay <= expected
    assert outcomes.failed == []


def test_a_transient_failure_passes_on_the_providers_retry_after() -> None:
    outcomes = decide(
        [delivery(attempts=1)],
        [TransientFailure("429 too many requests", retry_after=300)],
        retry_base=BASE,
        retry_cap=CAP,
        rng=random.Random(0),
    )
    assert 300 <= outcomes.retry[0][1] <= 330


@pytest.mark.parametrize("attempts", [5, 6])
def test_a_transient_failure_on_the_last_attempt_gives_up(attempts: int) -> None:
    outcomes = decide(
        [delivery(5, attempts=attempts, max_attempts=5)],
        [TransientFailure("timeout")],
        retry_base=BASE,
        retry_cap=CAP,
    )
    assert outcomes.retry == []
    assert outcomes.failed == [(5, f"gave up after {attempts} attempts: timeout")]


def test_each_result_goes_to_its_own_delivery() -> None:
    outcomes = decide(
        [delivery(1), delivery(2), delivery(3, attempts=5, max_attempts=5), delivery(4)],
        [Accepted("a"), PermanentFailure("bad"), TransientFailure("slow"), TransientFailure("x")],
        retry_base=BASE,
        retry_cap=CAP,
    )
    assert outcomes.sent == [(1, "a")]
    assert [f[0] for f in outcomes.failed] == [2, 3]
    assert [r[0] for r in outcomes.retry] == [4]
    assert len(outcomes) == 4


def test_very_long_errors_are_clipped() -> None:
    outcomes = decide(
        [delivery()], [PermanentFailure("x" * 10_000)], retry_base=BASE, retry_cap=CAP
    )
    error = outcomes.failed[0][1]
    assert len(error) <= 2001
    assert error.endswith("…")


@pytest.mark.parametrize(("deliveries", "results"), [(2, 1), (1, 2), (0, 1)])
def test_results_must_match_deliveries_one_to_one(deliveries: int, results: int) -> None:
    with pytest.raises(ValueError, match="one result per delivery"):
        decide(
            [delivery(i) for i in range(deliveries)],
            [Accepted()] * results,
            retry_base=BASE,
            retry_cap=CAP,
        )


# -- stored messages ---------------------------------------------------------


def test_a_stored_message_is_rendered_back() -> None:
    stored = json.loads(json.dumps(MESSAGE.to_json()))
    assert render_stored(delivery(message=stored)) == MESSAGE


def test_a_delivery_without_a_message_fails_permanently() -> None:
    result = render_stored(delivery(9, message=None))
    assert isinstance(result, PermanentFailure)
    assert "delivery 9" in result.error
    assert "no message" in result.error


@pytest.mark.parametrize(
    "stored",
    [
        {},
        {"sender": "a@b.org", "recipient": "c@d.org"},
        ["not", "an", "object"],
        "a string",
        {**MESSAGE.to_json(), "headers": 7},
        {**MESSAGE.to_json(), "headers": [["X-Only-A-Name"]]},
        {**MESSAGE.to_json(), "headers": [["A", "b", "c"]]},
    ],
    ids=[
        "empty",
        "missing-fields",
        "list",
        "string",
        "headers-not-a-list",
        "header-without-value",
        "header-triple",
    ],
)
def test_a_malformed_stored_message_fails_permanently(stored: Any) -> None:
    result = render_stored(delivery(message=stored))
    assert isinstance(result, PermanentFailure)
    assert "malformed" in result.error


def test_a_stored_message_without_headers_has_none() -> None:
    stored = {k: v for k, v in MESSAGE.to_json().items() if k != "headers"}
    result = render_stored(delivery(message=stored))
    assert isinstance(result, EmailMessage)
    assert result.headers == ()


@given(
    st.builds(
        EmailMessage,
        sender=st.text(),
        recipient=st.text(),
        subject=st.text(),
        html_body=st.text(),
        text_body=st.text(),
        headers=st.lists(st.tuples(st.text(), st.text()), max_size=4).map(tuple),
    )
)
def test_messages_survive_a_json_round_trip(message: EmailMessage) -> None:
    assert EmailMessage.from_json(json.loads(json.dumps(message.to_json()))) == message
