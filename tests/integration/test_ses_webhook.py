"""``POST /webhooks/ses`` end to end: SNS messages signed in the test with a throwaway key
(SignatureVersion 1 and 2), the signing certificate served over HTTPS by a local stand-in
answering as ``sns.us-east-1.amazonaws.com`` (Herald's allow-list untouched: only its
connector resolves that name to the stand-in and trusts its CA), SES notifications shaped
like AWS's documented ones, through the recorder to the suppression list. Forged, replayed,
foreign, stale and malformed messages are refused or change nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from herald.composition.app import create_app
from herald.core.config import Settings
from herald.core.db import Database
from herald.deliverability.sns import SnsVerifier
from herald.deliverability.sns_certificates import SigningCertificates
from herald.web.state import AppState
from tests.support.database import make_settings
from tests.support.deliverability import sent_delivery, subscription_status, suppression
from tests.support.newsletters import add_subscribers
from tests.support.sns import (
    OTHER_TOPIC,
    TOPIC,
    SnsStandIn,
    ses_bounce,
    ses_complaint,
    ses_delivery,
)

READER = "reader0@example.com"
MESSAGE_ID = "<herald-1@news.example.test>"  # what Herald's SMTP provider recorded
SNS_HEADERS = {"content-type": "text/plain; charset=UTF-8"}


@pytest.fixture
async def sns() -> AsyncIterator[SnsStandIn]:
    async with SnsStandIn() as stand_in:
        yield stand_in


def ses_settings(database_url: str, **ses: object) -> Settings:
    return make_settings(database_url, email={"ses": {"topic_arns": [TOPIC], **ses}})


async def open_client(
    settings: Settings, db: Database, sns: SnsStandIn
) -> AsyncIterator[httpx.AsyncClient]:
    def reach_the_stand_in(state: AppState) -> None:
        certificates = SigningCertificates(connector=sns.connector)
        state.provide(SnsVerifier, SnsVerifier(settings.email.ses, certificates))

    app = create_app(settings, db=db, on_started=reach_the_stand_in)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            yield c


@pytest.fixture
async def ses_client(
    database_url: str, db: Database, sns: SnsStandIn
) -> AsyncIterator[httpx.AsyncClient]:
    async for c in open_client(ses_settings(database_url), db, sns):
        yield c


async def post(client: httpx.AsyncClient, message: dict[str, Any]) -> httpx.Response:
    headers = {**SNS_HEADERS, "x-amz-sns-message-type": message["Type"]}
    return await client.post("/webhooks/ses", content=json.dumps(message), headers=headers)


async def stored(db: Database) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT provider, provider_event_id, kind, delivery_id, subscriber_id, suppressed"
            " FROM email_events ORDER BY id"
        )
    return [dict(row) for row in rows]


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_hard_bounce_suppresses_the_reader_and_a_replay_changes_nothing(
    ses_client: httpx.AsyncClient, db: Database, sns: SnsStandIn, version: str
) -> None:
    [reader] = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, reader, READER, MESSAGE_ID)
    message = sns.notification(ses_bounce(READER, message_id=MESSAGE_ID), version=version)

    answer = await post(ses_client, message)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"type": "Notification", "stored": 1, "confirmed": False}
    [row] = await stored(db)
    assert (row["provider"], row["kind"], row["delivery_id"]) == ("ses", "hard_bounce", delivery)
    assert (row["subscriber_id"], row["suppressed"]) == (reader, True)
    assert await suppression(db, READER) is not None
    assert (await suppression(db, READER) or ("", ""))[0] == "hard_bounce"
    assert await subscription_status(db, reader) == "unsubscribed"

    # SNS retries the same message; SES publishes the same event in a new SNS message.
    again = await post(ses_client, message)
    assert (again.status_code, again.json()["stored"]) == (200, 0)
    republished = sns.notification(json.loads(message["Message"]), version=version)
    assert (await post(ses_client, republished)).json()["stored"] == 0
    assert len(await stored(db)) == 1
    assert sns.requests == [sns.cert_path]  # the certificate was fetched once


async def test_a_complaint_finds_its_delivery_by_herald_s_tag(
    ses_client: httpx.AsyncClient, db: Database, sns: SnsStandIn
) -> None:
    [reader] = await add_subscribers(db, 1)
    delivery = await sent_delivery(db, reader, READER, "<unrelated@news.example.test>")
    complaint = ses_complaint(READER, delivery_id=delivery, message_id="<not-stored@x.test>")
    answer = await post(ses_client, sns.notification(complaint, version="1"))
    assert answer.json()["stored"] == 1
    [row] = await stored(db)
    assert (row["kind"], row["delivery_id"], row["subscriber_id"]) == (
        "complaint",
        delivery,
        reader,
    )
    assert (await suppression(db, READER) or ("", ""))[0] == "complaint"


async def test_a_delivery_is_stored_and_suppresses_nothing(
    ses_client: httpx.AsyncClient, db: Database, sns: SnsStandIn
) -> None:
    [reader] = await add_subscribers(db, 1)
    await sent_delivery(db, reader, READER, MESSAGE_ID)
    answer = await post(ses_client, sns.notification(ses_delivery(READER, message_id=MESSAGE_ID)))
    assert answer.json()["stored"] == 1
    [row] = await stored(db)
    assert (row["kind"], row["suppressed"]) == ("delivered", False)
    assert await suppression(db, READER) is None
    assert await subscription_status(db, reader) == "confirmed"


async def test_concurrent_copies_store_one_event(
    ses_client: httpx.AsyncClient, db: Database, sns: SnsStandIn
) -> None:
    [reader] = await add_subscribers(db, 1)
    await sent_delivery(db, reader, READER, MESSAGE_ID)
    message = sns.notification(ses_bounce(READER, message_id=MESSAGE_ID))
    answers = await asyncio.gather(*(post(ses_client, message) for _ in range(12)))
    assert {a.status_code for a in answers} == {200}
    assert sum(a.json()["stored"] for a in answers) == 1
    assert len(await stored(db)) == 1


async def _refused(
    client: httpx.AsyncClient, db: Database, message: dict[str, Any], status_code: int, why: str
) -> None:
    answer = await post(client, message)
    assert answer.status_code == status_code, answer.text
    assert why in answer.text
    assert await stored(db) == []
    assert await suppression(db, READER) is None


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_forged_message_is_refused_and_nothing_stored(
    ses_client: httpx.AsyncClient, db: Database, sns: SnsStandIn, version: str
) -> None:
    [reader] = await add_subscribers(db, 1)
    await sent_delivery(db, reader, READER, MESSAGE_ID)
    genuine = sns.notification(ses_delivery(READER, message_id=MESSAGE_ID), version=version)
    tampered = {**genuine, "Message": json.dumps(ses_bounce(READER, message_id=MESSAGE_ID))}
    await _refused(ses_client, db, tampered, 403, "signature does not verify")
    assert await subscription_status(db, reader) == "confirmed"


async def test_a_foreign_topic_a_foreign_certificate_and_a_stale_message_are_refused(
    ses_client: httpx.AsyncClient, db: Database, sns: SnsStandIn
) -> None:
    bounce = ses_bounce(READER)
    await _refused(ses_client, db, sns.notification(bounce, topic=OTHER_TOPIC), 403, "topic")
    elsewhere = "https://sns.us-east-1.amazonaws.com.attacker.test/SimpleNotificationService-x.pem"
    await _refused(
        ses_client, db, sns.notification(bounce, cert_url=elsewhere), 403, "allowed SNS host"
    )
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1, minutes=1)
    await _refused(ses_client, db, sns.notification(bounce, at=an_hour_ago), 403, "too old")
    assert sns.requests == []  # none of them made Herald fetch anything


async def test_malformed_bodies_are_400_and_oversized_ones_413(
    ses_client: httpx.AsyncClient, db: Database, sns: SnsStandIn
) -> None:
    for content in (b"", b"not json", b"[]", b'{"Type": "Notification"}', b"\xff" * 10):
        answer = await ses_client.post("/webhooks/ses", content=content, headers=SNS_HEADERS)
        assert answer.status_code == 400, (content, answer.text)
    message = sns.notification(ses_bounce(READER))
    mismatch = await ses_client.post(
        "/webhooks/ses",
        content=json.dumps(message),
        headers={**SNS_HEADERS, "x-amz-sns-message-type": "SubscriptionConfirmation"},
    )
    assert mismatch.status_code == 400
    signed_nonsense = await post(ses_client, sns.notification("this is not SES"))
    assert signed_nonsense.status_code == 400
    assert "not an SES notification" in signed_nonsense.text
    huge = await ses_client.post("/webhooks/ses", content=b" " * (2 * 1024 * 1024))
    assert huge.status_code == 413
    assert await stored(db) == []


async def test_a_notification_of_sns_s_largest_size_is_read(
    ses_client: httpx.AsyncClient, db: Database, sns: SnsStandIn
) -> None:
    bounce = ses_bounce(READER)
    bounce["mail"]["headers"] += [{"name": f"X-Filler-{n}", "value": '"' * 200} for n in range(570)]
    message = sns.notification(bounce)
    assert 250_000 < len(message["Message"]) < 256 * 1024  # SNS's limit
    assert len(json.dumps(message)) > 400_000  # its quotes escaped inside the envelope
    answer = await post(ses_client, message)
    assert (answer.status_code, answer.json()["stored"]) == (200, 1)


async def test_an_unreachable_certificate_is_503_so_sns_retries(
    ses_client: httpx.AsyncClient, db: Database, sns: SnsStandIn
) -> None:
    missing = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-gone.pem"
    message = sns.notification(ses_bounce(READER), cert_url=missing)
    await _refused(ses_client, db, message, 503, "answered 404")


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_subscription_confirmation_is_confirmed(
    ses_client: httpx.AsyncClient, sns: SnsStandIn, version: str
) -> None:
    confirmation = sns.confirmation(version=version)
    answer = await post(ses_client, confirmation)
    assert answer.json() == {"type": "SubscriptionConfirmation", "stored": 0, "confirmed": True}
    assert sns.confirmed == [confirmation["Token"]]
    foreign = await post(ses_client, sns.confirmation(topic=OTHER_TOPIC))
    assert foreign.status_code == 403
    assert len(sns.confirmed) == 1


async def test_an_unsubscribe_confirmation_is_only_acknowledged(
    ses_client: httpx.AsyncClient, sns: SnsStandIn
) -> None:
    answer = await post(ses_client, sns.confirmation(kind="UnsubscribeConfirmation"))
    assert answer.json()["confirmed"] is False
    assert sns.confirmed == []


async def test_confirmations_can_be_left_to_the_operator(
    database_url: str, db: Database, sns: SnsStandIn
) -> None:
    settings = ses_settings(database_url, confirm_subscriptions=False)
    async for client in open_client(settings, db, sns):
        answer = await post(client, sns.confirmation())
        assert (answer.status_code, answer.json()["confirmed"]) == (200, False)
    assert sns.confirmed == []


async def test_without_a_topic_the_endpoint_is_off(client: httpx.AsyncClient) -> None:
    answer = await client.post("/webhooks/ses", content=b"{}", headers=SNS_HEADERS)
    assert answer.status_code == 404
