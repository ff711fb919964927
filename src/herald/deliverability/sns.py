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
* :class:`SigningCertificates`: the fetch — https only, no redirects, a timeout, at most
  64 KiB, a bounded cache by URL, one fetch per URL however many messages wait for it, a
  failure remembered for a minute. The HTTP connector is injectable (tests point the
  allow-listed host at a local server and trust its CA), never the allow-list.

Refusals are :class:`~herald.core.errors.Forbidden` (forged, foreign or stale: 403),
:class:`~herald.core.errors.ValidationError` (not an SNS message: 400) or
:class:`~herald.core.errors.Unavailable` (the certificate could not be fetched: 503, so
SNS tries again).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from herald.core.email_config import SesSettings
from herald.core.errors import Forbidden, Unavailable, ValidationError

CERTIFICATE_MAX_BYTES = 64 * 1024
CERTIFICATE_CACHE_SIZE = 64
FAILURE_MEMORY_SECONDS = 60.0
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


ConnectorFactory = Callable[[], aiohttp.BaseConnector]


def _default_connector() -> aiohttp.BaseConnector:
    return aiohttp.TCPConnector(limit=4)  # the system's CA store: real certificate checks


class SigningCertificates:
    """SNS signing certificates by URL: fetched once over https, kept (bounded, least
    recently used out first) until they expire; a failed fetch is remembered for a
    minute, so forged messages naming a missing .pem do not make Herald fetch it again
    and again. Only URLs :func:`allowed_url` accepts are fetched: the caller checks."""

    def __init__(
        self,
        *,
        timeout_seconds: float = 10.0,
        connector: ConnectorFactory = _default_connector,
        capacity: int = CERTIFICATE_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._connector = connector
        self._capacity = capacity
        self._clock = clock
        self._keys: OrderedDict[str, tuple[rsa.RSAPublicKey, datetime]] = OrderedDict()
        self._failures: dict[str, tuple[float, str]] = {}
        self._pending: dict[str, asyncio.Task[rsa.RSAPublicKey]] = {}
        self.fetches = 0  # how many fetches were made (the tests count them)

    async def public_key(self, url: str) -> rsa.RSAPublicKey:
        cached = self._keys.get(url)
        if cached is not None and cached[1] > datetime.now(UTC):
            self._keys.move_to_end(url)
            return cached[0]
        failed = self._failures.get(url)
        if failed is not None and self._clock() - failed[0] < FAILURE_MEMORY_SECONDS:
            raise Unavailable(failed[1], retry_after=int(FAILURE_MEMORY_SECONDS))
        task = self._pending.get(url)
        if task is None:  # one fetch per URL, whoever waits; not cancelled with a request
            task = asyncio.create_task(self._load(url))
            self._pending[url] = task
            task.add_done_callback(self._loaded)
        return await asyncio.shield(task)

    def _loaded(self, task: asyncio.Task[rsa.RSAPublicKey]) -> None:
        self._pending = {url: t for url, t in self._pending.items() if t is not task}
        if not task.cancelled():
            task.exception()  # retrieved here: no warning when no request waits any more

    async def _load(self, url: str) -> rsa.RSAPublicKey:
        try:
            key, expires = await self._fetch(url)
        except (Unavailable, Forbidden) as exc:
            self._remember_failure(url, exc.message)
            raise
        self._keep(url, key, expires)
        return key

    def _remember_failure(self, url: str, message: str) -> None:
        if len(self._failures) >= self._capacity:
            self._failures.clear()
        self._failures[url] = (self._clock(), message)

    def _keep(self, url: str, key: rsa.RSAPublicKey, expires: datetime) -> None:
        self._keys[url] = (key, expires)
        self._keys.move_to_end(url)
        while len(self._keys) > self._capacity:
            self._keys.popitem(last=False)
        self._failures.pop(url, None)

    async def fetch(self, url: str, max_bytes: int) -> bytes:
        """GET ``url`` with this store's connector and timeout (see :func:`fetch_bounded`)."""
        return await fetch_bounded(url, self._connector, self._timeout, max_bytes)

    async def _fetch(self, url: str) -> tuple[rsa.RSAPublicKey, datetime]:
        self.fetches += 1
        pem = await self.fetch(url, CERTIFICATE_MAX_BYTES)
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise Forbidden("the SNS signing certificate is not a PEM certificate") from exc
        now = datetime.now(UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Forbidden("the SNS signing certificate is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Forbidden("the SNS signing certificate does not hold an RSA key")
        return key, certificate.not_valid_after_utc


async def fetch_bounded(
    url: str, connector: ConnectorFactory, timeout: aiohttp.ClientTimeout, max_bytes: int
) -> bytes:
    """GET ``url`` (no redirects): its body, at most ``max_bytes``; Unavailable otherwise."""
    try:
        async with (
            aiohttp.ClientSession(connector=connector(), timeout=timeout) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise Unavailable(f"{_where(url)} answered {response.status}")
            if (response.content_length or 0) > max_bytes:
                raise Unavailable(f"{_where(url)} sent more than {max_bytes} bytes")
            body = bytearray()
            async for chunk in response.content.iter_chunked(16 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    raise Unavailable(f"{_where(url)} sent more than {max_bytes} bytes")
            return bytes(body)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Unavailable(f"{_where(url)} could not be fetched ({type(exc).__name__})") from exc


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"https://{parts.hostname}{parts.path}"  # never the query (a SubscribeURL token)


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
            raise Forbidden("the SNS topic is not one this Herald accepts")
        age = self._now() - message.timestamp
        if age > timedelta(seconds=self.settings.max_age_seconds):
            raise Forbidden("the SNS message is too old: refused as a replay")
        if age < -_FUTURE_SKEW:
            raise Forbidden("the SNS message's Timestamp is in the future")
        algorithm = _HASHES.get(message.signature_version)
        if algorithm is None:
            raise Forbidden("unknown SNS SignatureVersion (1 and 2 are known)")
        if not allowed_url(message.signing_cert_url, self.host_pattern, pem=True):
            raise Forbidden("the SNS signing certificate's URL is not an allowed SNS host")
        key = await self.certificates.public_key(message.signing_cert_url)
        try:
            key.verify(message.signature, message.string_to_sign(), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise Forbidden("the SNS message's signature does not verify") from None

    def confirmation_url(self, message: SnsMessage) -> str:
        """The SubscribeURL of a verified SubscriptionConfirmation, once it is checked to
        be SNS's ConfirmSubscription action of the same topic on an allowed host."""
        url = message.subscribe_url
        if not allowed_url(url, self.host_pattern, pem=False):
            raise Forbidden("the SubscribeURL is not on an allowed SNS host")
        query = parse_qs(urlsplit(url).query)
        if query.get("Action") != ["ConfirmSubscription"] or query.get("TopicArn") != [
            message.topic_arn
        ]:
            raise Forbidden("the SubscribeURL is not the confirmation of this topic")
        return url
