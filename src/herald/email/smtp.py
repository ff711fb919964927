"""Delivery through an SMTP relay, for operators who do not use an HTTP email API.

Opening an SMTP session (TCP, greeting, EHLO, STARTTLS, AUTH) costs several round trips,
so connections are pooled and reused across messages and batches; a connection that
errored, timed out or was dropped by the server is discarded and a fresh one opened on
demand. Replies are classified by their first digit (4xx transient, 5xx permanent),
transport trouble is always transient, and nothing is raised for a delivery problem
(:mod:`herald.email.smtp_replies`). With a bounce address configured, each message's
envelope sender is its delivery's signed VERP address (:mod:`herald.email.verp`).

Encryption is never optional unless configured so: with ``tls=auto`` (the default) or
``starttls``, a relay whose EHLO answer lacks STARTTLS gets no AUTH and no mail (a
stripped offer is the classic downgrade attack); the messages fail transiently, so they
wait for the operator, and an error is logged. Plain text needs ``tls=none``.

MIME is rendered here rather than by aiosmtplib's ``send_message`` because its policy
wraps header lines at 78 characters, and the stdlib folder turns a long unbreakable
ASCII value such as ``List-Unsubscribe: <https://…>`` into RFC 2047 encoded words,
which breaks the one-click unsubscribe (RFC 8058) that mailbox providers look for there.
See ``render_mime``.
"""

from __future__ import annotations

import asyncio
import binascii
import email.policy
import re
import socket
import uuid
from collections.abc import Sequence
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, make_msgid, parseaddr
from time import monotonic

import aiosmtplib

from herald.core.config import EmailSettings, SmtpTls
from herald.core.errors import ConfigurationError
from herald.core.telemetry import get_logger
from herald.email.dkim import DkimSigner
from herald.email.message import (
    Accepted,
    EmailMessage,
    PermanentFailure,
    SendResult,
    TransientFailure,
)
from herald.email.ses_headers import with_ses_headers
from herald.email.smtp_replies import classify_exception
from herald.email.verp import Verp

log = get_logger("herald.email.smtp")

# Bodies are built 7-bit clean (quoted-printable/base64 when needed) so the message is
# valid on relays without 8BITMIME, and lines stay short whatever the body holds.
_BUILD_POLICY = email.policy.SMTP.clone(cte_type="7bit")
# Headers are only wrapped beyond RFC 5322's hard limit of 998 characters per line: any
# ASCII header that can legally be on one line is written exactly as given.
_WIRE_POLICY = _BUILD_POLICY.clone(max_line_length=998)
_WIRE_POLICY_UTF8 = _WIRE_POLICY.clone(utf8=True)
# A pooled connection idle for longer than this is probed with NOOP before reuse:
# relays drop idle sessions, and a message must not fail just because one did.
_IDLE_PROBE_SECONDS = 30.0
# A relay without STARTTLS is logged at most this often (each message also records it).
_NO_STARTTLS_LOG_INTERVAL = 60.0
# RFC 5322 field names: printable ASCII except the colon. The stdlib checks values only.
_HEADER_NAME = re.compile(r"[!-9;-~]+")


def new_message_id(sender: str) -> str:
    """A ``<…@domain>`` Message-ID in the sender's domain (never ``getfqdn``: it may block)."""
    _, at, domain = parseaddr(sender)[1].rpartition("@")
    if not at or not domain or not domain.isascii():
        domain = "herald.localhost"
    return make_msgid(domain=domain)


def render_mime(message: EmailMessage, *, message_id: str, utf8: bool = False) -> bytes:
    """The message as it goes over the wire: multipart/alternative, text then HTML.

    ``utf8`` is for SMTPUTF8 sessions (non-ASCII addresses), where headers may carry
    raw UTF-8. Raises ``ValueError`` for headers that cannot be represented (a line
    break in a value), which the caller reports as a permanent failure.

    The common case (plain ASCII headers and addresses) is written directly: the
    stdlib ``email`` package took ~3 ms per newsletter-sized message here, most of a
    worker's CPU when sending over SMTP (BENCHMARKS.md, P1). Anything else goes
    through the stdlib, which knows every encoding rule.
    """
    fast = _render_plain(message, message_id)
    if fast is not None:
        return fast
    mime = MimeMessage(policy=_BUILD_POLICY)
    mime["From"] = message.sender
    mime["To"] = message.recipient
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(usegmt=True)
    mime["Message-ID"] = message_id
    for name, value in message.headers:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        # Headers allowed once (Reply-To, Subject, ...) replace ours rather than raise.
        if _BUILD_POLICY.header_max_count(name) is not None:
            del mime[name]
        mime[name] = value
    mime.set_content(message.text_body)
    mime.add_alternative(message.html_body, subtype="html")
    for part in mime.iter_parts():
        del part["MIME-Version"]  # add_alternative copies it into the part; it belongs on top
    return mime.as_bytes(policy=_WIRE_POLICY_UTF8 if utf8 else _WIRE_POLICY)


# Header values the fast path writes verbatim: printable ASCII, no encoded-word opener.
_PLAIN_VALUE = re.compile(r"[ -~]*")
# Addresses it writes verbatim: ``addr@domain`` or ``Display Name <addr@domain>`` with a
# display name that needs no quoting (atext words and spaces).
_PLAIN_ADDRESS = re.compile(
    r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+>"
    r"|[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+)"
)
# Headers the fast path writes itself; a message that sets one goes the stdlib way.
_OWN_HEADERS = frozenset(
    {"from", "to", "subject", "date", "message-id", "mime-version", "content-type"}
    | {"content-transfer-encoding", "cc", "bcc", "sender", "reply-to"}
)


def _plain(value: str) -> bool:
    return _PLAIN_VALUE.fullmatch(value) is not None and "=?" not in value


def _render_plain(message: EmailMessage, message_id: str) -> bytes | None:
    """``render_mime`` without the stdlib, or None when the message needs it."""
    if not (
        _PLAIN_ADDRESS.fullmatch(message.sender)
        and _PLAIN_ADDRESS.fullmatch(message.recipient)
        and _plain(message.subject)
        and _plain(message_id)
    ):
        return None
    lines = [
        f"From: {message.sender}",
        f"To: {message.recipient}",
        f"Subject: {message.subject}",
        f"Date: {formatdate(usegmt=True)}",
        f"Message-ID: {message_id}",
    ]
    for name, value in message.headers:
        if (
            not _HEADER_NAME.fullmatch(name)
            or name.lower() in _OWN_HEADERS
            or not _plain(value)
            or len(name) + len(value) + 2 > 998
        ):
            return None
        lines.append(f"{name}: {value}")
    if any(len(line) > 998 for line in lines):
        return None
    boundary = f"=_herald_{uuid.uuid4().hex}"
    text = _body_part(message.text_body, "plain")
    html = _body_part(message.html_body, "html")
    if boundary.encode() in text or boundary.encode() in html:
        return None
    lines += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "",
    ]
    head = "\r\n".join(lines).encode("ascii")
    separator = f"\r\n--{boundary}\r\n".encode("ascii")
    return b"".join(
        (head, separator, text, separator, html, f"\r\n--{boundary}--\r\n".encode("ascii"))
    )


def _body_part(body: str, subtype: str) -> bytes:
    """One text part: 7bit when it already is, else quoted-printable UTF-8 (lines <= 76)."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    if body.isascii() and all(len(line) <= 78 for line in body.split("\n")):
        cte, payload = "7bit", body.encode("ascii")
    else:
        cte, payload = "quoted-printable", binascii.b2a_qp(body.encode("utf-8"), istext=True)
    header = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
    ).encode("ascii")
    return header + payload.replace(b"\n", b"\r\n")


class StartTlsNotOffered(aiosmtplib.SMTPException):
    """STARTTLS is required but the relay's EHLO answer did not offer it."""


def _tls_flags(mode: SmtpTls, port: int) -> tuple[bool, bool]:
    """``(implicit TLS, STARTTLS required)``.

    ``auto`` never falls back to plain text: a missing STARTTLS offer is exactly what an
    attacker in the path produces by stripping it, and falling back would hand them the
    credentials and the mail. Plain text is only ever spoken with ``tls=none``.
    """
    if mode is SmtpTls.TLS or (mode is SmtpTls.AUTO and port == 465):
        return True, False
    if mode is SmtpTls.NONE:
        return False, False
    return False, True


class SmtpProvider:
    """``EmailProvider`` over SMTP: each message its own transaction, sent concurrently
    over at most ``pool_size`` connections."""

    name = "smtp"
    # One message per call: the worker keeps each result the moment the relay answers,
    # so a shutdown records what was sent instead of releasing it to be sent again.
    # Concurrency comes from the worker's send_concurrency, bounded by ``pool_size``.
    max_batch_size = 1

    def __init__(self, settings: EmailSettings, verp: Verp | None = None) -> None:
        smtp = settings.smtp
        if not smtp.host:
            raise ConfigurationError("HERALD_EMAIL__SMTP__HOST is required for the smtp provider")
        self._host = smtp.host
        self._port = smtp.port
        self._username = smtp.username
        self._password = smtp.password.get_secret_value() if smtp.password else None
        self._timeout = settings.timeout_seconds
        self._verp = verp  # a signed return path per delivery (bounces name their delivery)
        self._ses_set = settings.ses.configuration_set  # "": no X-SES-* headers
        self._dkim = DkimSigner.from_settings(settings)  # None: HERALD_EMAIL__DKIM__ unset
        self._use_tls, self._start_tls = _tls_flags(smtp.tls, smtp.port)
        self._slots = asyncio.Semaphore(smtp.pool_size)
        # One message rendered (and signed) per turn of the event loop: see _render.
        self._turn = asyncio.Lock()
        # Idle connections with when each was last used; only slot holders touch it.
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._local_hostname: str | None = None
        self._closing = False
        self._no_starttls_logged_at: float | None = None

    async def send_batch(self, messages: Sequence[EmailMessage]) -> list[SendResult]:
        outcomes = await asyncio.gather(
            *(self._send_one(message) for message in messages), return_exceptions=True
        )
        # _send_one handles every delivery error it knows; anything else is a bug, but
        # the contract is one result per message, never an exception.
        return [
            TransientFailure(f"unexpected error: {outcome!r}")
            if isinstance(outcome, BaseException)
            else outcome
            for outcome in outcomes
        ]

    async def aclose(self) -> None:
        """Quit idle connections; ones still sending are closed when they come back."""
        self._closing = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._quit(client) for client, _ in idle))

    async def _send_one(self, message: EmailMessage) -> SendResult:
        message = with_ses_headers(message, self._ses_set)
        message_id = new_message_id(message.sender)
        utf8 = not (message.sender + message.recipient).isascii()
        try:
            raw = await self._render(message, message_id, utf8)
        except (ValueError, TypeError) as exc:
            return PermanentFailure(f"cannot render the message: {exc}")
        options = ["SMTPUTF8"] if utf8 else None
        envelope_from = message.sender
        if self._verp is not None and message.delivery_id is not None:
            envelope_from = self._verp.address(message.delivery_id)
        async with self._slots:
            try:
                client = await self._checkout()
            except (aiosmtplib.SMTPException, OSError) as exc:
                # Connecting, TLS or login failed: a problem of the relay or of our
                # credentials, not of this message, so it is worth retrying later
                # (a missing STARTTLS too: nothing is lost while the operator fixes it).
                if isinstance(exc, StartTlsNotOffered):
                    self._log_no_starttls(exc)
                return TransientFailure(
                    f"cannot open an SMTP session with {self._host}:{self._port}: "
                    f"{type(exc).__name__}: {exc}"
                )
            reusable = False
            try:
                await client.sendmail(envelope_from, [message.recipient], raw, mail_options=options)
            except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
                result, reusable = classify_exception(exc, utf8=utf8)
                return result
            else:
                reusable = True
                return Accepted(message_id)
            finally:
                self._checkin(client, reusable=reusable)

    async def _render(self, message: EmailMessage, message_id: str, utf8: bool) -> bytes:
        """The message's bytes, DKIM-signed when configured (~0.5 ms of CPU with DKIM).

        The worker starts 32 sends at once: rendered back to back they held the event loop
        for 32 renders and signatures (18 ms idle, 80-180 ms on a busy machine,
        BENCHMARKS.md "DKIM signing"), delaying every other connection's I/O. The turn is
        held across one pass of the loop, so between two renders the loop runs its timers
        and I/O; the CPU spent is the same."""
        async with self._turn:
            raw = render_mime(message, message_id=message_id, utf8=utf8)
            if self._dkim is not None:
                raw = self._dkim.sign(raw)
            await asyncio.sleep(0)
        return raw

    async def _checkout(self) -> aiosmtplib.SMTP:
        now = monotonic()
        while self._idle:
            client, last_used = self._idle.pop()
            if not client.is_connected:
                client.close()
                continue
            if now - last_used > _IDLE_PROBE_SECONDS:
                try:
                    await client.noop()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
                    continue
            return client
        return await self._connect()

    def _checkin(self, client: aiosmtplib.SMTP, *, reusable: bool) -> None:
        if reusable and client.is_connected and not self._closing:
            self._idle.append((client, monotonic()))
        else:
            client.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        if self._local_hostname is None:
            # Once per provider: the EHLO name; the lookup can be slow, so off the loop.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            local_hostname=self._local_hostname,
            timeout=self._timeout,
            use_tls=self._use_tls,
            start_tls=False,  # done below, where a missing offer cannot be skipped
        )
        await client.connect()
        try:
            await self._secure_and_log_in(client)
        except BaseException:
            client.close()
            raise
        return client

    async def _secure_and_log_in(self, client: aiosmtplib.SMTP) -> None:
        if self._start_tls:
            await client.ehlo()
            if not client.supports_extension("starttls"):
                raise StartTlsNotOffered(
                    f"{self._host}:{self._port} does not offer STARTTLS, so Herald sends "
                    f"neither credentials nor mail over this connection (an attacker in "
                    f"the path may have stripped the offer); use a relay that offers "
                    f"STARTTLS, HERALD_EMAIL__SMTP__TLS=tls for implicit TLS (port 465), "
                    f"or HERALD_EMAIL__SMTP__TLS=none to allow plain text explicitly"
                )
            await client.starttls()
        if self._username is not None:
            await client.login(self._username, self._password or "")

    def _log_no_starttls(self, exc: StartTlsNotOffered) -> None:
        """Loud, but once a minute per provider rather than once per message."""
        now = monotonic()
        last = self._no_starttls_logged_at
        if last is None or now - last >= _NO_STARTTLS_LOG_INTERVAL:
            self._no_starttls_logged_at = now
            log.error("SMTP relay without STARTTLS: nothing sent", error=exc.message)

    async def _quit(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            client.close()
