"""A local stand-in for Amazon SNS, for the tests of ``POST /webhooks/ses``.

* A throwaway CA, and a TLS certificate it issued for ``sns.us-east-1.amazonaws.com``:
  an HTTPS server on 127.0.0.1 answers as that host. :meth:`SnsStandIn.connector` is an
  aiohttp connector whose resolver sends that name (port 443) to the server and whose SSL
  context trusts the throwaway CA — what Herald's :class:`SigningCertificates` is given
  in the tests. Herald's allow-list is never loosened: the URLs stay
  ``https://sns.us-east-1.amazonaws.com/….pem``.
* A signing key and its self-signed certificate (``CN=sns.amazonaws.com``, as SNS's), served
  at :attr:`SnsStandIn.cert_url`; :meth:`SnsStandIn.sign` signs a message the way SNS does
  (SHA1withRSA for SignatureVersion 1, SHA256withRSA for 2, over the canonical string).
* ``GET /?Action=ConfirmSubscription&TopicArn=…&Token=…`` records the token
  (:attr:`SnsStandIn.confirmed`) and answers SNS's XML.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import socket
import ssl
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

REGION = "us-east-1"
HOST = f"sns.{REGION}.amazonaws.com"
TOPIC = "arn:aws:sns:us-east-1:123456789012:herald-ses"
OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:someone-else"

_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: Any,
    *,
    issuer: str | None = None,
    issuer_key: Any = None,
    ca: bool = False,
    dns: tuple[str, ...] = (),
    not_after: dt.datetime | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer or subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns]), critical=False
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def signing_pair(*, expired: bool = False) -> tuple[rsa.RSAPrivateKey, bytes]:
    """A signing key and its self-signed certificate (PEM), as SNS's (CN sns.amazonaws.com)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    not_after = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1) if expired else None
    return key, _pem(_certificate("sns.amazonaws.com", key, not_after=not_after))


def canonical(fields: dict[str, Any]) -> bytes:
    names = _NOTIFICATION if fields["Type"] == "Notification" else _CONFIRMATION
    return "".join(
        f"{name}\n{fields[name]}\n" for name in names if fields.get(name) is not None
    ).encode()


def sign(fields: dict[str, Any], key: rsa.RSAPrivateKey, version: str = "2") -> dict[str, Any]:
    # SignatureVersion 1 is SHA1withRSA: what SNS still signs with by default.
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
    signature = key.sign(canonical(fields), padding.PKCS1v15(), algorithm)
    return {
        **fields,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
    }


def timestamp(at: dt.datetime | None = None) -> str:
    at = at or dt.datetime.now(dt.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


class _ToStandIn(AbstractResolver):
    """Resolves the stand-in's host names (port 443) to the local server."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        del family  # IPv4 loopback whatever was asked
        if not host.endswith(".amazonaws.com") or port != 443:
            raise OSError(f"the test resolver knows only *.amazonaws.com:443, not {host}")
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": self.port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


class SnsStandIn:
    """``async with SnsStandIn() as sns:`` — see the module's docstring."""

    def __init__(self) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _certificate("Herald test CA", ca_key, ca=True)
        tls_key = ec.generate_private_key(ec.SECP256R1())
        tls = _certificate(HOST, tls_key, issuer="Herald test CA", issuer_key=ca_key, dns=(HOST,))
        self._ca_pem = _pem(ca)
        self._tls = (tls, tls_key)
        self.key, self.certificate_pem = signing_pair()
        self.cert_path = f"/SimpleNotificationService-{uuid.uuid4().hex}.pem"
        self.served: dict[str, bytes] = {self.cert_path: self.certificate_pem}
        self.redirects: dict[str, str] = {}  # path -> Location of a 302
        self.hanging: set[str] = set()  # paths answered never (until the server stops)
        self.requests: list[str] = []
        self.confirmed: list[str] = []
        self.port = 0
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def cert_url(self) -> str:
        return f"https://{HOST}{self.cert_path}"

    def serve(self, path: str, body: bytes) -> str:
        """Serve ``body`` at ``path`` too; its URL."""
        self.served[path] = body
        return f"https://{HOST}{path}"

    def client_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self._ca_pem.decode())

    def connector(self) -> aiohttp.BaseConnector:
        return aiohttp.TCPConnector(resolver=_ToStandIn(self.port), ssl=self.client_ssl())

    def _server_ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls, tls_key = self._tls
        with tempfile.TemporaryDirectory() as folder:
            cert_file, key_file = Path(folder, "tls.pem"), Path(folder, "tls.key")
            cert_file.write_bytes(_pem(tls))
            key_file.write_bytes(
                tls_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            context.load_cert_chain(cert_file, key_file)
        return context

    async def __aenter__(self) -> SnsStandIn:
        app = web.Application()
        app.router.add_get("/", self._confirm)
        app.router.add_get("/{name}", self._file)
        server_ssl = self._server_ssl()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _file(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if request.path in self.hanging:
            await self._stopping.wait()
            raise web.HTTPServiceUnavailable
        if request.path in self.redirects:
            raise web.HTTPFound(self.redirects[request.path])
        body = self.served.get(request.path)
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type="application/x-x509-ca-cert")

    async def _confirm(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if request.query.get("Action") != "ConfirmSubscription":
            return web.Response(status=400)
        self.confirmed.append(request.query.get("Token", ""))
        arn = f"{request.query.get('TopicArn', '')}:{uuid.uuid4()}"
        return web.Response(
            text=(
                "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>"
                f"{arn}</SubscriptionArn></ConfirmSubscriptionResult>"
                "</ConfirmSubscriptionResponse>"
            ),
            content_type="text/xml",
        )

    # -- messages -----------------------------------------------------------------

    def notification(
        self,
        message: str | dict[str, Any],
        *,
        topic: str = TOPIC,
        version: str = "2",
        subject: str | None = None,
        at: dt.datetime | None = None,
        key: rsa.RSAPrivateKey | None = None,
        cert_url: str | None = None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic,
            "Message": message if isinstance(message, str) else json.dumps(message),
            "Timestamp": timestamp(at),
        }
        if subject is not None:
            fields["Subject"] = subject
        signed = sign(fields, key or self.key, version)
        return {
            **signed,
            "SigningCertURL": cert_url or self.cert_url,
            "UnsubscribeURL": f"https://{HOST}/?Action=Unsubscribe&SubscriptionArn={topic}:x",
        }

    def confirmation(
        self,
        *,
        topic: str = TOPIC,
        version: str = "2",
        kind: str = "SubscriptionConfirmation",
        subscribe_url: str | None = None,
    ) -> dict[str, Any]:
        token = uuid.uuid4().hex * 2
        query = urlencode({"Action": "ConfirmSubscription", "TopicArn": topic, "Token": token})
        fields = {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": topic,
            "Message": f"You have chosen to subscribe to the topic {topic}.",
            "SubscribeURL": subscribe_url or f"https://{HOST}/?{query}",
            "Timestamp": timestamp(),
        }
        return {**sign(fields, self.key, version), "SigningCertURL": self.cert_url}


def body(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


# -- SES notifications, shaped like AWS's documented examples ---------------------------


def ses_mail(
    recipient: str,
    *,
    message_id: str = "<herald-1@news.example.test>",
    delivery_id: int | None = None,
    event_publishing: bool = False,
) -> dict[str, Any]:
    """SES's ``mail`` object; ``message_id`` is the original Message-ID header."""
    mail: dict[str, Any] = {
        "timestamp": "2026-12-05T10:00:00.000Z",
        "source": "news@news.example.test",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/news.example.test",
        "sendingAccountId": "123456789012",
        "messageId": "0100018c3f4a5b6c-8d9e0f1a-2b3c-4d5e-6f70-8192a3b4c5d6-000000",
        "destination": [recipient],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "News <news@news.example.test>"},
            {"name": "To", "value": recipient},
            {"name": "Message-ID", "value": message_id},
        ],
        "commonHeaders": {
            "from": ["News <news@news.example.test>"],
            "to": [recipient],
            "messageId": message_id,
            "subject": "Issue 1",
        },
    }
    if event_publishing or delivery_id is not None:
        mail["tags"] = {
            "ses:configuration-set": ["herald"],
            "ses:source-ip": ["192.0.2.10"],
            "ses:caller-identity": ["herald-smtp"],
        }
        if delivery_id is not None:
            mail["tags"]["herald_delivery"] = [str(delivery_id)]
    return mail


def ses_bounce(
    recipient: str,
    *,
    bounce_type: str = "Permanent",
    sub_type: str = "General",
    feedback_id: str | None = None,
    event_publishing: bool = False,
    **mail: Any,
) -> dict[str, Any]:
    return {
        "eventType" if event_publishing else "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": f"smtp; 550 5.1.1 <{recipient}>... User unknown",
                }
            ],
            "timestamp": "2026-12-05T10:00:05.123Z",
            "feedbackId": feedback_id or f"0100018c-{uuid.uuid4()}-000000",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
            "remoteMtaIp": "192.0.2.25",
        },
        "mail": ses_mail(recipient, event_publishing=event_publishing, **mail),
    }


def ses_complaint(
    recipient: str, *, feedback_type: str | None = "abuse", **mail: Any
) -> dict[str, Any]:
    complaint: dict[str, Any] = {
        "userAgent": "ExampleCorp Feedback Loop (V0.01)",
        "complainedRecipients": [{"emailAddress": recipient}],
        "complaintSubType": None,
        "timestamp": "2026-12-05T10:05:00.000Z",
        "feedbackId": f"0100018c-{uuid.uuid4()}-000000",
        "arrivalDate": "2026-12-05T10:04:58.000Z",
    }
    if feedback_type is not None:
        complaint["complaintFeedbackType"] = feedback_type
    return {
        "notificationType": "Complaint",
        "complaint": complaint,
        "mail": ses_mail(recipient, **mail),
    }


def ses_delivery(recipient: str, **mail: Any) -> dict[str, Any]:
    return {
        "notificationType": "Delivery",
        "delivery": {
            "timestamp": "2026-12-05T10:00:02.000Z",
            "processingTimeMillis": 2003,
            "recipients": [recipient],
            "smtpResponse": "250 ok: Message 64111812 accepted",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
            "remoteMtaIp": "192.0.2.25",
        },
        "mail": ses_mail(recipient, **mail),
    }
