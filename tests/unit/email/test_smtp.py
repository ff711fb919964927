"""SmtpProvider against an in-process aiosmtpd server: delivery, pooling, classification."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from pydantic import SecretStr
from structlog.testing import capture_logs

from herald.core.config import EmailSettings, SmtpSettings
from herald.email.message import Accepted, EmailMessage, PermanentFailure, TransientFailure
from herald.email.smtp import SmtpProvider
from tests.support.queue import wait_until

UNSUBSCRIBE = "<https://news.herald.test/unsubscribe?token=" + "t0k3n" * 25 + ">"


class Handler:
    """Accepts everything unless told otherwise; records what was delivered."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, list[str], bytes]] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_replies: dict[str, str] = {}  # by recipient

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        reply = self.data_replies.get(envelope.rcpt_tos[0])
        if reply is not None:
            return reply
        self.delivered.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


class Server:
    """An aiosmtpd server on the test's own loop, counting the connections it gets."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, **smtp_options: Any) -> None:
        self.handler = Handler()
        self.ssl_context = ssl_context
        self.options = smtp_options
        self.connections = 0
        self.protocols: list[SMTP] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    def _protocol(self) -> SMTP:
        self.connections += 1
        protocol = SMTP(
            self.handler, hostname="smtp.test", loop=asyncio.get_running_loop(), **self.options
        )
        self.protocols.append(protocol)
        return protocol

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def drop_connections(self) -> None:
        for protocol in self.protocols:
            if protocol.transport is not None:
                protocol.transport.close()

    async def stop(self) -> None:
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await asyncio.sleep(0)  # let aiosmtpd's connection tasks see the close


ProviderFactory = Callable[..., SmtpProvider]


def message(n: int = 0, **changes: Any) -> EmailMessage:
    fields: dict[str, Any] = {
        "sender": "Herald <news@herald.test>",
        "recipient": f"reader{n}@example.test",
        "subject": f"Issue {n}",
        "html_body": f"<p>Hello {n}</p>",
        "text_body": f"Hello {n}",
        "headers": (("List-Unsubscribe", UNSUBSCRIBE),),
    }
    fields.update(changes)
    return EmailMessage(**fields)


@asynccontextmanager
async def serve(**options: Any) -> AsyncIterator[Server]:
    running = Server(**options)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with serve() as running:
        yield running


@pytest.fixture
async def make_provider() -> AsyncIterator[ProviderFactory]:
    made: list[SmtpProvider] = []

    def make(port: int, *, timeout: float = 2.0, **smtp: Any) -> SmtpProvider:
        options: dict[str, Any] = {"host": "127.0.0.1", "port": port, "tls": "none", **smtp}
        settings = EmailSettings(
            provider="smtp", timeout_seconds=timeout, smtp=SmtpSettings(**options)
        )
        provider = SmtpProvider(settings)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


async def test_delivers_envelope_and_mime(server: Server, make_provider: ProviderFactory) -> None:
    provider = make_provider(server.port)

    [result] = await provider.send_batch([message(3)])

    assert isinstance(result, Accepted)
    [(mail_from, rcpt_tos, content)] = server.handler.delivered
    assert mail_from == "news@herald.test"
    assert rcpt_tos == ["reader3@example.test"]
    lines = content.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    assert f"List-Unsubscribe: {UNSUBSCRIBE}" in lines
    assert f"Message-ID: {result.message_id}" in lines
    assert "Subject: Issue 3" in lines
    assert b"Content-Type: multipart/alternative" in content


async def test_connections_are_pooled_reused_and_results_in_order(
    server: Server, make_provider: ProviderFactory
) -> None:
    provider = make_provider(server.port, pool_size=2)
    server.handler.rcpt_replies = {"reader4@example.test": "550 5.1.1 No such user"}

    first = await provider.send_batch([message(n) for n in range(10)])
    second = await provider.send_batch([message(n) for n in range(10, 15)])

    assert [type(r) for r in first] == [Accepted] * 4 + [PermanentFailure] + [Accepted] * 5
    assert all(isinstance(r, Accepted) for r in second)
    assert len(server.handler.delivered) == 14
    assert 1 <= server.connections <= 2
    ids = {r.message_id for r in [*first, *second] if isinstance(r, Accepted)}
    assert len(ids) == 14


async def test_connection_dropped_by_server_is_reestablished(
    server: Server, make_provider: ProviderFactory
) -> None:
    provider = make_provider(server.port, pool_size=1)
    await provider.send_batch([message(0)])
    assert server.connections == 1

    server.drop_connections()
    # The pooled connection has seen the close (else the send fails on a dead socket).
    await wait_until(lambda: not any(c.is_connected for c, _ in provider._idle), interval=0.01)
    [result] = await provider.send_batch([message(1)])

    assert isinstance(result, Accepted)
    assert server.connections == 2


async def test_long_idle_connection_is_probed_and_reused(
    server: Server, make_provider: ProviderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("herald.email.smtp._IDLE_PROBE_SECONDS", -1.0)
    provider = make_provider(server.port, pool_size=1)

    first = await provider.send_batch([message(0)])
    second = await provider.send_batch([message(1)])

    assert all(isinstance(r, Accepted) for r in [*first, *second])
    assert server.connections == 1


async def test_4xx_is_transient_5xx_permanent_and_session_kept(
    server: Server, make_provider: ProviderFactory
) -> None:
    provider = make_provider(server.port, pool_size=1)
    server.handler.rcpt_replies = {
        "reader1@example.test": "450 4.2.1 Mailbox busy",
        "reader2@example.test": "550 5.1.1 No such user",
    }
    server.handler.data_replies = {
        "reader3@example.test": "451 4.3.0 Try again later",
        "reader4@example.test": "554 5.6.0 Rejected",
    }

    results = await provider.send_batch([message(n) for n in range(6)])

    ok, rcpt_busy, rcpt_unknown, data_later, data_rejected, ok_again = results
    assert isinstance(ok, Accepted)
    assert isinstance(ok_again, Accepted)
    assert isinstance(rcpt_busy, TransientFailure)
    assert "450" in rcpt_busy.error
    assert "Mailbox busy" in rcpt_busy.error
    assert isinstance(rcpt_unknown, PermanentFailure)
    assert "550" in rcpt_unknown.error
    assert isinstance(data_later, TransientFailure)
    assert "451" in data_later.error
    assert isinstance(data_rejected, PermanentFailure)
    assert "554" in data_rejected.error
    assert [rcpt for _, rcpt, _ in server.handler.delivered] == [
        ["reader0@example.test"],
        ["reader5@example.test"],
    ]
    assert server.connections == 1  # refusals do not cost the session


async def test_login_when_username_is_set(make_provider: ProviderFactory) -> None:
    seen: list[LoginPassword] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        seen.append(data)
        return AuthResult(success=data == LoginPassword(b"herald", b"s3cret"), handled=False)

    async with serve(authenticator=authenticator, auth_require_tls=False) as authed:
        good = make_provider(authed.port, username="herald", password=SecretStr("s3cret"))
        bad = make_provider(authed.port, username="herald", password=SecretStr("wrong"))
        [accepted] = await good.send_batch([message(0)])
        [refused] = await bad.send_batch([message(1)])

    assert isinstance(accepted, Accepted)
    # A refused login is our credentials' problem, not the message's: retry later.
    assert isinstance(refused, TransientFailure)
    assert "535" in refused.error
    # aiosmtplib tries each offered mechanism before giving up.
    assert {(p.login, p.password) for p in seen} == {(b"herald", b"s3cret"), (b"herald", b"wrong")}
    assert len(authed.handler.delivered) == 1


async def test_connection_refused_is_transient(make_provider: ProviderFactory) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = make_provider(port)

    results = await provider.send_batch([message(0), message(1)])

    assert len(results) == 2
    assert all(isinstance(r, TransientFailure) for r in results)


async def test_silent_server_times_out_transiently(make_provider: ProviderFactory) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def never_greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    async with await asyncio.start_server(never_greet, "127.0.0.1", 0) as silent:
        provider = make_provider(silent.sockets[0].getsockname()[1], timeout=0.2)
        [result] = await provider.send_batch([message()])
        for writer in writers:
            writer.close()

    assert isinstance(result, TransientFailure)
    assert "Timeout" in result.error


@pytest.mark.parametrize(
    ("mode", "kind", "why"),
    [
        ("auto", TransientFailure, "STARTTLS"),  # required (not on 465) but not offered
        ("starttls", TransientFailure, "STARTTLS"),  # required but not offered
        ("none", Accepted, None),  # plain text only when explicitly configured
        ("tls", TransientFailure, None),  # implicit TLS against a plain-text server
    ],
)
async def test_tls_modes_against_a_plain_text_server(
    server: Server, make_provider: ProviderFactory, mode: str, kind: type, why: str | None
) -> None:
    provider = make_provider(server.port, tls=mode, timeout=1.0)

    [result] = await provider.send_batch([message()])

    assert isinstance(result, kind), result
    assert len(server.handler.delivered) == (1 if kind is Accepted else 0)
    if why is not None:
        assert why in result.error  # type: ignore[attr-defined]


class StrippedStartTls:
    """A relay as an attacker in the path presents it: STARTTLS stripped from the EHLO
    answer, AUTH offered in clear, anything accepted. Records every command line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(b"220 smtp.test ESMTP\r\n")
        while line := await reader.readline():
            command = line.decode("ascii", "replace").strip()
            self.lines.append(command)
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                writer.write(b"250-smtp.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
            elif verb == "AUTH":
                writer.write(b"235 2.7.0 Authentication successful\r\n")
            elif verb == "DATA":
                writer.write(b"354 go ahead\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()
        writer.close()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


@pytest.mark.parametrize("port_mode", ["auto", "starttls"])
async def test_credentials_and_mail_never_go_in_clear_when_starttls_is_stripped(
    make_provider: ProviderFactory, port_mode: str
) -> None:
    relay = StrippedStartTls()
    async with await asyncio.start_server(relay, "127.0.0.1", 0) as server:
        provider = make_provider(
            server.sockets[0].getsockname()[1],
            tls=port_mode,
            username="herald",
            password=SecretStr("s3cret"),
        )
        with capture_logs() as logs:
            results = await provider.send_batch([message(0), message(1)])
        await provider.aclose()
        relay.close()

    verbs = {line.split(" ", 1)[0].upper() for line in relay.lines if line}
    assert verbs <= {"EHLO", "HELO", "QUIT"}, relay.lines  # no AUTH, MAIL, RCPT or DATA
    # A configuration (or attack) problem, not the messages': kept for a retry.
    assert all(isinstance(r, TransientFailure) for r in results), results
    for result in results:
        assert "STARTTLS" in result.error  # type: ignore[union-attr]
        assert "HERALD_EMAIL__SMTP__TLS=none" in result.error  # type: ignore[union-attr]
    assert any(log["log_level"] == "error" and "STARTTLS" in log["event"] for log in logs), logs


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"headers": (("X-Bad", "a\nBcc: victim@example.test"),)}, "cannot render"),
        ({"recipient": "jürgen@example.test"}, "SMTPUTF8"),  # the server lacks SMTPUTF8
    ],
)
async def test_unsendable_message_is_permanent_and_alone(
    server: Server, make_provider: ProviderFactory, changes: dict[str, Any], why: str
) -> None:
    provider = make_provider(server.port)

    bad, good = await provider.send_batch([message(0, **changes), message(1)])

    assert isinstance(bad, PermanentFailure)
    assert why in bad.error
    assert isinstance(good, Accepted)
    assert [rcpt for _, rcpt, _ in server.handler.delivered] == [["reader1@example.test"]]


async def test_aclose_quits_pooled_connections(
    server: Server, make_provider: ProviderFactory
) -> None:
    provider = make_provider(server.port, pool_size=2)
    await provider.send_batch([message(n) for n in range(4)])

    await provider.aclose()

    assert server.protocols
    await wait_until(
        lambda: all(p.transport is None or p.transport.is_closing() for p in server.protocols)
    )


def self_signed_context(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 and the certificate for the client to trust; the TLS
    tests skip unless the cryptography package happens to be installed (not a dependency)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "herald test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    key_path.write_bytes(key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


@pytest.mark.parametrize(
    ("mode", "trusted"), [("starttls", True), ("auto", True), ("tls", True), ("tls", False)]
)
async def test_tls(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_provider: ProviderFactory,
    mode: str,
    trusted: bool,
) -> None:
    context, cert_path = self_signed_context(tmp_path)
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    # require_starttls: the server refuses MAIL FROM on a plain-text session.
    options = {"ssl_context": context} if mode == "tls" else {"tls_context": context}
    async with serve(**options, require_starttls=mode != "tls") as secure:
        provider = make_provider(secure.port, tls=mode)
        results = await provider.send_batch([message(0), message(1)])
        await provider.aclose()

    if trusted:
        assert all(isinstance(r, Accepted) for r in results), results
        assert len(secure.handler.delivered) == 2
    else:
        assert all(isinstance(r, TransientFailure) for r in results), results
        assert all("CERTIFICATE_VERIFY_FAILED" in r.error for r in results)  # type: ignore[union-attr]
        assert secure.handler.delivered == []


async def test_login_goes_over_the_upgraded_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_provider: ProviderFactory
) -> None:
    context, cert_path = self_signed_context(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    logins: list[bool] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        logins.append(session.ssl is not None)
        return AuthResult(success=data == LoginPassword(b"herald", b"s3cret"), handled=False)

    # aiosmtpd offers AUTH only once the session is encrypted (auth_require_tls).
    async with serve(tls_context=context, require_starttls=True, authenticator=authenticator) as s:
        provider = make_provider(
            s.port, tls="auto", username="herald", password=SecretStr("s3cret")
        )
        results = await provider.send_batch([message(0), message(1)])
        await provider.aclose()

    assert all(isinstance(r, Accepted) for r in results), results
    assert logins
    assert all(logins)
    assert len(s.handler.delivered) == 2
