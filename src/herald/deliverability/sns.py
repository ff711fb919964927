"""Amazon SNS messages as an HTTP(S) subscriber receives them, verified as AWS documents it
(the Amazon SNS developer guide, "Verifying the signatures of Amazon SNS messages").

* :func:`parse_message`: the JSON body SNS posts (``Content-Type: text/plain``) into an
  :class:`SnsMessage`, every field the signature covers checked to be a string.
* :meth:`SnsMessage.string_to_sign`: the canonical string, ``Name\\nvalue\\n`` for each
  documented field in byte order of its name — ``Message``, ``MessageId``, ``Subject``
  (when present), ``Timestamp``, ``TopicArn``, ``Type`` for a notification;
  ``Message``, ``MessageId``, ``SubscribeURL``, ``Timestamp``, ``Token``, ``TopicArn``,
  ``Type`` for a subscription or unsubscribe confirmation.
* :class:`SnsVerifier`: the checks in order, each a refusal with its reason — the topic
  is one of the configured ARNs; the ``Timestamp`` is not older than the maximum age (a
  replay of a captured message) nor in the future; the ``SigningCertURL`` is https, on a
  host matching the allow-list pattern, a ``.pem``; its certificate (fetched once, cached)
  is valid now and its RSA key verifies the signature: SHA1withRSA for
  ``SignatureVersion`` 1, SHA256withRSA for 2.
* :class:`~herald.deliverability.sns_certificates.SigningCertificates`: the fetch and
  the cache.

Refusals are :class:`~herald.core.errors.Forbidden` (forged, foreign or stale: 403),
:class:`~herald.core.errors.ValidationError` (not an SNS message: 400) or
:class:`~herald.core.errors.Unavailable` (the certificate could not be fetched: 503, so
SNS tries again). Each refusal is logged and counted (``herald_sns_refused_total``): SNS
drops a refused message, so a misconfigured topic must show.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from prometheus_client import Counter

from herald.core.email_config import SesSettings
from herald.core.errors import Forbidden, Unavailable, ValidationError
from herald.core.telemetry import get_logger
from herald.deliverability.sns_certificates import SigningCertificates

log = get_logger("herald.deliverability.sns")
REFUSED = Counter(
    "herald_sns_refused_total",
    "SNS messages refused at POST /webhooks/ses, by reason: topic (not listed: a "
    "misconfiguration loses every event), stale, future, version, certificate_host, "
    "certificate (not fetched or not valid), signature, subscribe_url.",
    ["reason"],
)

# A signature is 256 or 512 bytes (2048- or 4096-bit keys); base64 of 1 KiB is plenty.
_MAX_SIGNATURE_CHARS = 1400
# SNS stamps messages with the publishing time; a little clock skew is allowed.
_FUTURE_SKEW = timedelta(minutes=5)
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class SnsMessageType(StrEnum):
    NOTIFICATION = "Notification"
    SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
    UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"


# The signed fields of each type, in the order of the canonical string.
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_REQUIRED = ("Type", "MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion")
_ISO_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")


@dataclass(frozen=True, slots=True)
class SnsMessage:
    """One SNS message; ``fields`` are the signed values as SNS sent them."""

    type: SnsMessageType
    fields: Mapping[str, str]
    timestamp: datetime
    signature_version: str
    signature: bytes
    signing_cert_url: str

    @property
    def message_id(self) -> str:
        return self.fields["MessageId"]

    @property
    def topic_arn(self) -> str:
        return self.fields["TopicArn"]

    @property
    def message(self) -> str:
        return self.fields["Message"]

    @property
    def subscribe_url(self) -> str:
        return self.fields.get("SubscribeURL", "")

    def string_to_sign(self) -> bytes:
        names = (
            _NOTIFICATION_FIELDS
            if self.type is SnsMessageType.NOTIFICATION
            else _CONFIRMATION_FIELDS
        )
        return "".join(
            f"{name}\n{self.fields[name]}\n" for name in names if name in self.fields
        ).encode("utf-8")


def parse_message(body: bytes) -> SnsMessage:
    """The SNS message in ``body``; ValidationError (400) naming what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValidationError("the body is not an SNS message: not JSON") from exc
    if not isinstance(data, dict):
        raise ValidationError("the body is not an SNS message: not a JSON object")
    missing = [name for name in _REQUIRED if not isinstance(data.get(name), str)]
    if missing:
        raise ValidationError(f"the SNS message lacks {', '.join(missing)}")
    try:
        kind = SnsMessageType(data["Type"])
    except ValueError:
        raise ValidationError(f"unknown SNS message type {data['Type'][:40]!r}") from None
    names = _NOTIFICATION_FIELDS if kind is SnsMessageType.NOTIFICATION else _CONFIRMATION_FIELDS
    fields: dict[str, str] = {}
    for name in names:
        value = data.get(name)
        if name == "Subject" and value is None:
            continue  # a notification without a subject: not part of the string
        if not isinstance(value, str):
            raise ValidationError(f"the SNS message's {name} must be a string")
        fields[name] = value
    for name in ("Signature", "SigningCertURL"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise ValidationError(f"the SNS message lacks {name}")
    return SnsMessage(
        type=kind,
        fields=fields,
        timestamp=_timestamp(fields["Timestamp"]),
        signature_version=data["SignatureVersion"],
        signature=_signature(data["Signature"]),
        signing_cert_url=data["SigningCertURL"],
    )


def _timestamp(text: str) -> datetime:
    if not _ISO_TIMESTAMP.fullmatch(text):
        raise ValidationError("the SNS message's Timestamp is not an ISO 8601 time")
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError("the SNS message's Timestamp is not a valid time") from exc


def _signature(text: str) -> bytes:
    if len(text) > _MAX_SIGNATURE_CHARS:
        raise ValidationError("the SNS message's Signature is too long")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationError("the SNS message's Signature is not base64") from exc


def allowed_url(url: str, host_pattern: re.Pattern[str], *, pem: bool) -> bool:
    """Whether ``url`` is https on a host matching ``host_pattern`` (the whole host), on
    the default port, without user information; with ``pem``, a path ending in .pem."""
    if len(url) > 2048:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = parts.hostname or ""
    return (
        parts.scheme == "https"
        and "@" not in parts.netloc
        and port in (None, 443)
        and host_pattern.fullmatch(host) is not None
        and (not pem or (parts.path.endswith(".pem") and not parts.query))
    )


def refused(message: SnsMessage, reason: str, text: str) -> Forbidden:
    """Count and log a refusal (SNS drops a refused message: a misconfigured topic must
    show); the error to raise."""
    REFUSED.labels(reason).inc()
    log.warning(
        "an SNS message was refused",
        reason=reason,
        detail=text,
        topic=message.topic_arn[:300],
        sns_message_id=message.message_id[:100],
    )
    return Forbidden(text)


class SnsVerifier:
    """Checks a message's topic, age and signature (see the module's docstring)."""

    def __init__(
        self,
        settings: SesSettings,
        certificates: SigningCertificates,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.certificates = certificates
        self.host_pattern = re.compile(settings.cert_host_pattern)
        self._topics = frozenset(settings.topic_arns)
        self._now = now

    @property
    def enabled(self) -> bool:
        return bool(self._topics)

    async def verify(self, message: SnsMessage) -> None:
        if message.topic_arn not in self._topics:
            raise refused(message, "topic", "the SNS topic is not one this Herald accepts")
        age = self._now() - message.timestamp
        if age > timedelta(seconds=self.settings.max_age_seconds):
            raise refused(message, "stale", "the SNS message is too old: refused as a replay")
        if age < -_FUTURE_SKEW:
            raise refused(message, "future", "the SNS message's Timestamp is in the future")
        algorithm = _HASHES.get(message.signature_version)
        if algorithm is None:
            raise refused(message, "version", "unknown SNS SignatureVersion (1 and 2 are known)")
        if not allowed_url(message.signing_cert_url, self.host_pattern, pem=True):
            raise refused(
                message,
                "certificate_host",
                "the SNS signing certificate's URL is not an allowed SNS host",
            )
        try:
            key = await self.certificates.public_key(message.signing_cert_url)
        except (Forbidden, Unavailable) as exc:
            refused(message, "certificate", exc.message)  # counted; the error stays its own
            raise
        try:
            key.verify(message.signature, message.string_to_sign(), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise refused(
                message, "signature", "the SNS message's signature does not verify"
            ) from None

    def confirmation_url(self, message: SnsMessage) -> str:
        """The SubscribeURL of a verified SubscriptionConfirmation, once it is checked to
        be SNS's ConfirmSubscription action of the same topic on an allowed host."""
        url = message.subscribe_url
        if not allowed_url(url, self.host_pattern, pem=False):
            raise refused(
                message, "subscribe_url", "the SubscribeURL is not on an allowed SNS host"
            )
        query = parse_qs(urlsplit(url).query)
        if query.get("Action") != ["ConfirmSubscription"] or query.get("TopicArn") != [
            message.topic_arn
        ]:
            raise refused(
                message, "subscribe_url", "the SubscribeURL is not the confirmation of this topic"
            )
        return url
