"""SNS message verification against a local stand-in for SNS's certificate host: messages
signed in the test with a throwaway key (SignatureVersion 1 and 2), the certificate served
over HTTPS under the real host name (a resolver and a trusted test CA, never a looser
allow-list), and every way a message is refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from herald.core.email_config import SesSettings
from herald.core.errors import Forbidden, Unavailable, ValidationError
from herald.deliverability.sns import SnsMessageType, SnsVerifier, allowed_url, parse_message
from herald.deliverability.sns_certificates import CERTIFICATE_MAX_BYTES, SigningCertificates
from tests.support.sns import HOST, OTHER_TOPIC, TOPIC, SnsStandIn, body, signing_pair

SETTINGS = SesSettings(topic_arns=(TOPIC,))


@pytest.fixture
async def sns() -> AsyncIterator[SnsStandIn]:
    async with SnsStandIn() as stand_in:
        yield stand_in


def verifier(sns: SnsStandIn, settings: SesSettings = SETTINGS, **kwargs: Any) -> SnsVerifier:
    return SnsVerifier(settings, SigningCertificates(connector=sns.connector), **kwargs)


async def verify(v: SnsVerifier, message: dict[str, Any]) -> None:
    await v.verify(parse_message(body(message)))


# -- the canonical string ------------------------------------------------------------


def test_the_notification_string_is_the_documented_fields_in_order() -> None:
    fields = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": TOPIC,
        "Subject": "s",
        "Message": "line 1\nline 2 — ü",
        "Timestamp": "2026-12-05T10:00:00.000Z",
        "SignatureVersion": "2",
        "Signature": "AAAA",
        "SigningCertURL": f"https://{HOST}/c.pem",
        "UnsubscribeURL": "not signed",
    }
    message = parse_message(json.dumps(fields).encode())
    assert message.type is SnsMessageType.NOTIFICATION
    assert (
        message.string_to_sign()
        == (
            f"Message\nline 1\nline 2 — ü\nMessageId\nm-1\nSubject\ns\n"
            f"Timestamp\n2026-12-05T10:00:00.000Z\nTopicArn\n{TOPIC}\nType\nNotification\n"
        ).encode()
    )
    without_subject = parse_message(json.dumps({**fields, "Subject": None}).encode())
    assert b"Subject" not in without_subject.string_to_sign()


def test_a_confirmation_string_has_the_subscribe_url_and_token() -> None:
    fields = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "m-2",
        "Token": "tok",
        "TopicArn": TOPIC,
        "Message": "confirm",
        "SubscribeURL": f"https://{HOST}/?Action=ConfirmSubscription",
        "Timestamp": "2026-12-05T10:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "AAAA",
        "SigningCertURL": f"https://{HOST}/c.pem",
    }
    assert (
        parse_message(json.dumps(fields).encode()).string_to_sign()
        == (
            f"Message\nconfirm\nMessageId\nm-2\nSubscribeURL\nhttps://{HOST}/?Action="
            f"ConfirmSubscription\nTimestamp\n2026-12-05T10:00:00.000Z\nToken\ntok\n"
            f"TopicArn\n{TOPIC}\nType\nSubscriptionConfirmation\n"
        ).encode()
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b"[" * 100_000, "not JSON"),
        (b'{"Type": "Notification"}', "lacks MessageId"),
        (
            json.dumps(
                {
                    "Type": "Gossip",
                    "MessageId": "m",
                    "TopicArn": TOPIC,
                    "Message": "x",
                    "Timestamp": "2026-12-05T10:00:00Z",
                    "SignatureVersion": "2",
                }
            ).encode(),
            "unknown SNS message type",
        ),
    ],
)
def test_what_is_not_an_sns_message_is_a_validation_error(raw: bytes, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        parse_message(raw)


def _valid(**changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": "m",
        "TopicArn": TOPIC,
        "Message": "x",
        "Timestamp": "2026-12-05T10:00:00.000Z",
        "SignatureVersion": "2",
        "Signature": "AAAA",
        "SigningCertURL": f"https://{HOST}/c.pem",
    }
    fields.update(changes)
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"Message": {"nested": 1}}, "lacks Message"),
        ({"Subject": 5}, "Subject must be a string"),
        ({"Timestamp": "yesterday"}, "Timestamp"),
        ({"Timestamp": "2026-13-45T10:00:00Z"}, "Timestamp"),
        ({"Signature": "not base64!"}, "not base64"),
        ({"Signature": "A" * 5000}, "too long"),
        ({"Signature": ""}, "lacks Signature"),
        ({"SigningCertURL": None}, "lacks SigningCertURL"),
    ],
)
def test_malformed_fields_are_named(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        parse_message(_valid(**changes))


# -- the certificate's URL -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.eu-west-3.amazonaws.com/x.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/x.pem",
        "https://sns.us-east-1.amazonaws.com:443/x.pem",
    ],
)
def test_sns_hosts_are_allowed(url: str) -> None:
    assert allowed_url(url, SnsVerifier(SETTINGS, SigningCertificates()).host_pattern, pem=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/x.pem",  # not https
        "https://sns.us-east-1.amazonaws.com.evil.test/x.pem",  # a suffix
        "https://evil.test/sns.us-east-1.amazonaws.com/x.pem",
        "https://xsns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem.txt",
        "https://sns.us-east-1.amazonaws.com/x.pem?a=b",
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://sns.us-east-1.amazonaws.com@evil.test/x.pem",
        "https://evil.test\\@sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:99999/x.pem",
        "https://s3.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com./x.pem",
        "file:///etc/passwd.pem",
        "https://sns.us-east-1.amazonaws.com/" + "a" * 3000 + ".pem",
    ],
)
def test_other_urls_are_not(url: str) -> None:
    assert not allowed_url(url, SnsVerifier(SETTINGS, SigningCertificates()).host_pattern, pem=True)


# -- verification ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_signed_notification_verifies(sns: SnsStandIn, version: str) -> None:
    await verify(verifier(sns), sns.notification({"hello": "world"}, version=version))
    await verify(verifier(sns), sns.notification("text", version=version, subject="Hi"))


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_tampered_message_is_refused(sns: SnsStandIn, version: str) -> None:
    message = sns.notification('{"notificationType": "Delivery"}', version=version)
    message["Message"] = '{"notificationType": "Complaint"}'
    with pytest.raises(Forbidden, match="signature does not verify"):
        await verify(verifier(sns), message)


async def test_a_subject_added_or_a_version_switched_breaks_the_signature(
    sns: SnsStandIn,
) -> None:
    message = sns.notification("x")
    with pytest.raises(Forbidden, match="signature"):
        await verify(verifier(sns), {**message, "Subject": "added"})
    with pytest.raises(Forbidden, match="signature"):
        await verify(verifier(sns), {**message, "SignatureVersion": "1"})


async def test_a_message_signed_with_another_key_is_refused(sns: SnsStandIn) -> None:
    forger, _ = signing_pair()
    with pytest.raises(Forbidden, match="signature does not verify"):
        await verify(verifier(sns), sns.notification("x", key=forger))


async def test_an_unknown_topic_is_refused_before_any_fetch(sns: SnsStandIn) -> None:
    with pytest.raises(Forbidden, match="topic"):
        await verify(verifier(sns), sns.notification("x", topic=OTHER_TOPIC))
    assert sns.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com.evil.test/cert.pem",
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://evil.test/cert.pem",
    ],
)
async def test_a_certificate_from_elsewhere_is_refused_unfetched(sns: SnsStandIn, url: str) -> None:
    certificates = SigningCertificates(connector=sns.connector)
    with pytest.raises(Forbidden, match="not an allowed SNS host"):
        await SnsVerifier(SETTINGS, certificates).verify(
            parse_message(body(sns.notification("x", cert_url=url)))
        )
    assert certificates.fetches == 0
    assert sns.requests == []


async def test_a_stale_or_future_message_is_refused(sns: SnsStandIn) -> None:
    now = dt.datetime.now(dt.UTC)
    old = sns.notification("x", at=now - dt.timedelta(hours=1, seconds=5))
    with pytest.raises(Forbidden, match="too old"):
        await verify(verifier(sns), old)
    future = sns.notification("x", at=now + dt.timedelta(minutes=10))
    with pytest.raises(Forbidden, match="future"):
        await verify(verifier(sns), future)
    shorter = SesSettings(topic_arns=(TOPIC,), max_age_seconds=60)
    with pytest.raises(Forbidden, match="too old"):
        await verify(
            verifier(sns, shorter), sns.notification("x", at=now - dt.timedelta(minutes=2))
        )
    assert sns.requests == []  # refused before the certificate is needed


async def test_an_unknown_signature_version_is_refused(sns: SnsStandIn) -> None:
    with pytest.raises(Forbidden, match="SignatureVersion"):
        await verify(verifier(sns), {**sns.notification("x"), "SignatureVersion": "3"})


# -- the certificate store ---------------------------------------------------------------


async def test_the_certificate_is_fetched_once_and_cached(sns: SnsStandIn) -> None:
    v = verifier(sns)
    await asyncio.gather(*(verify(v, sns.notification(f"m{n}")) for n in range(20)))
    await verify(v, sns.notification("later", version="1"))
    assert v.certificates.fetches == 1
    assert sns.requests == [sns.cert_path]


async def test_the_cache_is_bounded(sns: SnsStandIn) -> None:
    certificates = SigningCertificates(connector=sns.connector, capacity=2)
    urls = [sns.serve(f"/c{n}.pem", sns.certificate_pem) for n in range(3)]
    for url in urls:
        await certificates.public_key(url)
    await certificates.public_key(urls[2])
    assert certificates.fetches == 3
    await certificates.public_key(urls[0])  # evicted: fetched again
    assert certificates.fetches == 4


async def test_a_missing_certificate_is_unavailable_and_remembered(sns: SnsStandIn) -> None:
    v = verifier(sns)
    missing = f"https://{HOST}/SimpleNotificationService-missing.pem"
    for _ in range(3):
        with pytest.raises(Unavailable, match="answered 404"):
            await verify(v, sns.notification("x", cert_url=missing))
    assert v.certificates.fetches == 1


@pytest.mark.parametrize(
    ("content", "error", "problem"),
    [
        (b"x" * (CERTIFICATE_MAX_BYTES + 1), Unavailable, "more than"),
        (b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", Forbidden, "PEM"),
        (signing_pair(expired=True)[1], Forbidden, "not valid now"),
    ],
)
async def test_a_bad_certificate_is_refused(
    sns: SnsStandIn, content: bytes, error: type[Exception], problem: str
) -> None:
    url = sns.serve("/SimpleNotificationService-bad.pem", content)
    with pytest.raises(error, match=problem):
        await verify(verifier(sns), sns.notification("x", cert_url=url))


async def test_redirects_are_not_followed(sns: SnsStandIn) -> None:
    sns.redirects["/SimpleNotificationService-moved.pem"] = "https://evil.test/cert.pem"
    url = f"https://{HOST}/SimpleNotificationService-moved.pem"
    with pytest.raises(Unavailable, match="answered 302"):
        await verify(verifier(sns), sns.notification("x", cert_url=url))


async def test_a_host_that_never_answers_times_out(sns: SnsStandIn) -> None:
    sns.hanging.add("/SimpleNotificationService-slow.pem")
    certificates = SigningCertificates(connector=sns.connector, timeout_seconds=0.3)
    v = SnsVerifier(SETTINGS, certificates)
    url = f"https://{HOST}/SimpleNotificationService-slow.pem"
    with pytest.raises(Unavailable, match="TimeoutError"):
        await verify(v, sns.notification("x", cert_url=url))


async def test_an_unreachable_host_is_unavailable() -> None:
    certificates = SigningCertificates(timeout_seconds=2)  # the real resolver and CA store
    with pytest.raises(Unavailable, match="could not be fetched"):
        await certificates.public_key("https://sns.invalid-region.amazonaws.invalid/x.pem")


# -- subscription confirmations ------------------------------------------------------------


async def test_a_confirmation_verifies_and_names_its_url(sns: SnsStandIn) -> None:
    v = verifier(sns)
    for version in ("1", "2"):
        message = parse_message(body(sns.confirmation(version=version)))
        await v.verify(message)
        assert v.confirmation_url(message).startswith(f"https://{HOST}/?Action=Confirm")


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.test/?Action=ConfirmSubscription&TopicArn=" + TOPIC,
        f"https://{HOST}/?Action=Unsubscribe&TopicArn={TOPIC}",
        f"https://{HOST}/?Action=ConfirmSubscription&TopicArn={OTHER_TOPIC}",
        f"http://{HOST}/?Action=ConfirmSubscription&TopicArn={TOPIC}",
    ],
)
async def test_a_subscribe_url_elsewhere_is_refused(sns: SnsStandIn, url: str) -> None:
    message = parse_message(body(sns.confirmation(subscribe_url=url)))
    await verifier(sns).verify(message)  # signed by "SNS", still not followed
    with pytest.raises(Forbidden, match="SubscribeURL"):
        verifier(sns).confirmation_url(message)


async def test_refusals_are_counted_by_reason(sns: SnsStandIn) -> None:
    def count(reason: str) -> float:
        return REGISTRY.get_sample_value("herald_sns_refused_total", {"reason": reason}) or 0.0

    before = {reason: count(reason) for reason in ("topic", "signature", "certificate")}
    with pytest.raises(Forbidden):
        await verify(verifier(sns), sns.notification("x", topic=OTHER_TOPIC))
    forger, _ = signing_pair()
    with pytest.raises(Forbidden):
        await verify(verifier(sns), sns.notification("x", key=forger))
    with pytest.raises(Unavailable):
        await verify(verifier(sns), sns.notification("x", cert_url=f"https://{HOST}/gone.pem"))
    assert {reason: count(reason) - before[reason] for reason in before} == {
        "topic": 1,
        "signature": 1,
        "certificate": 1,
    }
