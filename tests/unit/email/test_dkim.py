"""DKIM: Herald's signature checked by dkimpy's own verifier, on the emails as they are
built and as an SMTP server receives them; the key's configuration refused early."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import strategies as st

from herald.core.config import EmailSettings, SmtpSettings, load_settings
from herald.core.dkim_config import DkimSettings
from herald.core.errors import ConfigurationError
from herald.email import smtp
from herald.email.dkim import DkimSigner, relaxed_body, sender_domain, wire_form
from herald.email.layout import Branding
from herald.email.message import Accepted, EmailMessage
from herald.email.smtp import SmtpProvider, render_mime
from herald.issues.rendering import compile_issue, issue_email
from herald.subscriptions.domain import NewSubscriber
from herald.subscriptions.emails import confirmation_email
from tests.unit.email.test_smtp import serve

SELECTOR, DOMAIN = "herald2026", "herald.test"
SENDER = "Herald News <news@herald.test>"
BASE_URL = "https://news.herald.test"
UNSUBSCRIBE = f"{BASE_URL}/unsubscribe/one-click?token=" + "t0k3n" * 25
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
# cryptography refuses to generate keys under 1024 bits; operators may still have one.
SHORT_KEY = b"""\
-----BEGIN PRIVATE KEY-----
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAm3pT8t54ZVFkPOYX
J7Cj4phluei892dT1gV0xMvl7FOrA8JxVxNhYd7sVP5M8Ai6t8grSjXGRh3H1U3O
j5zjWQIDAQABAkEAi9uxcnKvKKzbl3B++cQK2EWwlFiIy6CWKJrF3FVyYW/HGUEt
JOcqxnOqPQnmAN1zmNhVSYgYSL9AQz7mk/a+UQIhAMp18KduamOeEZGQWo7WwK76
EaQaIUYlYRXGAky7NQGtAiEAxJfFa3FoGEkqU91r3STWyv+RAkDSqCchlV34ed/8
Vd0CIQCjMjxhCfzR/clVl5GXj/3TTZnIuJNXsqu2XFzgMwsAJQIgdvma4pE5fCkb
UrHYC3e1/hh4u7JbSqST8H90Vt21KokCIAN9kE3rD2tQ4QfHcINPKm2ZNRDuAZpO
qt3Dl0uLndd1
-----END PRIVATE KEY-----
"""


def pem(key: Any = _KEY, fmt: Any = serialization.PrivateFormat.PKCS8) -> bytes:
    encoding = serialization.Encoding.PEM
    return bytes(key.private_bytes(encoding, fmt, serialization.NoEncryption()))


@pytest.fixture(scope="module")
def signer() -> DkimSigner:
    return DkimSigner(SELECTOR, DOMAIN, _KEY)


def dns_for(signer: DkimSigner) -> Callable[..., bytes | None]:
    """dkimpy's ``dnsfunc``: the TXT record of the signer's selector, nothing else."""

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        if name.decode().rstrip(".") == signer.record_name:
            return signer.record.encode()
        return None

    return lookup


def verifies(message: bytes, signer: DkimSigner) -> bool:
    return bool(dkim.verify(message, dnsfunc=dns_for(signer)))


def signed_fields(message: bytes) -> list[str]:
    verifier = dkim.DKIM(message)
    verifier.verify_headerprep()
    return [name.decode() for name in verifier.include_headers]


def issue_message() -> EmailMessage:
    compiled = compile_issue(
        "Issue 42: café, naïve résumé",
        "<h1>Hello {{ subscriber.name }}</h1><p>Some  text\twith   spacing.</p>",
        "Hello {{ subscriber.name }}\n\nSome  text\twith   spacing.   \n\n\n",
        Branding(name="Acme Weekly"),
    )
    return issue_email(
        compiled,
        sender=SENDER,
        recipient="ada@example.org",
        name="Ada",
        unsubscribe_url=UNSUBSCRIBE,
        base_url=BASE_URL,
    )


def confirmation_message() -> EmailMessage:
    subscriber = NewSubscriber.parse(name="Ursula", email="ursula@example.org")
    return confirmation_email(
        subscriber, token="A" * 32, base_url=BASE_URL, sender=SENDER, ttl_hours=168
    )


@pytest.mark.parametrize("build", [issue_message, confirmation_message])
def test_the_emails_herald_builds_verify(
    signer: DkimSigner, build: Callable[[], EmailMessage]
) -> None:
    raw = signer.sign(render_mime(build(), message_id="<1@herald.test>"))

    assert verifies(raw, signer)
    fields = signed_fields(raw)
    for name in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type"):
        assert name in fields
    # Oversigned: one more than present, so none can be added.
    assert fields.count("from") == 2
    assert fields.count("list-unsubscribe") == fields.count("list-unsubscribe-post")


def test_the_issue_signs_its_unsubscribe_fields(signer: DkimSigner) -> None:
    raw = signer.sign(render_mime(issue_message(), message_id="<1@herald.test>"))

    fields = signed_fields(raw)
    assert fields.count("list-unsubscribe") == 2
    assert fields.count("list-unsubscribe-post") == 2
    assert "list-id" in fields
    header = raw.split(b"\r\n\r\n", 1)[0].decode()
    for tag in ("a=rsa-sha256", "c=relaxed/relaxed", f"d={DOMAIN}", f"s={SELECTOR}"):
        assert tag in header


def test_the_stdlib_rendering_verifies_too(signer: DkimSigner) -> None:
    """A non-ASCII sender name takes render_mime's stdlib path (encoded words, folding)."""
    message = issue_message()
    raw = render_mime(
        EmailMessage(
            sender="Zoë Café <news@herald.test>",
            recipient="ada@example.org",
            subject=message.subject,
            html_body=message.html_body,
            text_body=message.text_body,
            headers=message.headers,
        ),
        message_id="<2@herald.test>",
    )
    assert b"=?utf-8?" in raw

    assert verifies(signer.sign(raw), signer)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda raw: raw.replace(b"Subject: ", b"Subject: URGENT ", 1), "subject changed"),
        (lambda raw: b"From: Evil <ceo@evil.test>\r\n" + raw, "a second From"),
        (lambda raw: raw.replace(b"Ada", b"Bob", 1), "body changed"),
        (
            lambda raw: raw.replace(b"List-Unsubscribe: <", b"List-Unsubscribe: <https://x/", 1),
            "unsubscribe link changed",
        ),
    ],
)
def test_tampering_breaks_the_signature(
    signer: DkimSigner, change: Callable[[bytes], bytes], reason: str
) -> None:
    raw = signer.sign(render_mime(issue_message(), message_id="<3@herald.test>"))
    assert verifies(raw, signer)

    assert not verifies(change(raw), signer), reason


def test_an_added_unsubscribe_field_breaks_a_confirmation(signer: DkimSigner) -> None:
    raw = signer.sign(render_mime(confirmation_message(), message_id="<4@herald.test>"))

    forged = b"List-Unsubscribe: <https://evil.test/u>\r\n" + raw
    assert verifies(raw, signer)
    assert not verifies(forged, signer)


def test_another_key_does_not_verify(signer: DkimSigner) -> None:
    other = DkimSigner(SELECTOR, DOMAIN, rsa.generate_private_key(65537, 2048))
    raw = signer.sign(render_mime(confirmation_message(), message_id="<5@herald.test>"))

    assert not verifies(raw, other)


def test_the_signature_is_byte_for_byte_dkimpys(
    signer: DkimSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same key, same time, same fields: RSA PKCS#1 v1.5 is deterministic, so dkimpy's
    ``dkim.sign`` must write exactly the field Herald writes."""
    raw = wire_form(render_mime(issue_message(), message_id="<6@herald.test>"))
    signed = signer.sign(raw, now=1_700_000_000)
    fields = [name.encode() for name in signed_fields(signed)]
    monkeypatch.setattr(dkim.time, "time", lambda: 1_700_000_000)

    expected = dkim.sign(
        raw,
        SELECTOR.encode(),
        DOMAIN.encode(),
        pem(fmt=serialization.PrivateFormat.TraditionalOpenSSL),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=fields,
    )

    assert signed == expected + raw


BODY_BYTES = st.lists(
    st.sampled_from([b"a", b"b", b" ", b"\t", b"\r\n", b"\n", b"\r", b"  ", b"\xc3\xa9", b"."]),
    max_size=40,
).map(b"".join)


@given(BODY_BYTES)
def test_relaxed_body_is_dkimpys(body: bytes) -> None:
    canonical = wire_form(b"X: y\r\n\r\n" + body).split(b"\r\n\r\n", 1)[1]

    assert relaxed_body(canonical) == Relaxed.canonicalize_body(canonical)


def test_wire_form_is_what_smtp_carries() -> None:
    assert wire_form(b"a\nb\rc\r\nd") == b"a\r\nb\r\nc\r\nd\r\n"
    assert wire_form(b"a\r\n") == b"a\r\n"


def test_a_message_without_a_body_separator_is_refused(signer: DkimSigner) -> None:
    with pytest.raises(ValueError, match="blank line"):
        signer.sign(b"From: a@b.test\r\nSubject: x")


async def test_the_bytes_an_smtp_server_receives_verify(tmp_path: Path) -> None:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(pem())
    async with serve() as server:
        settings = EmailSettings(
            provider="smtp",
            sender=SENDER,
            smtp=SmtpSettings(host="127.0.0.1", port=server.port, tls="none"),
            dkim=DkimSettings(selector=SELECTOR, private_key_file=key_file),
        )
        provider = SmtpProvider(settings)
        try:
            results = await provider.send_batch([issue_message(), confirmation_message()])
        finally:
            await provider.aclose()
        received = [content for _, _, content in server.handler.delivered]

    assert all(isinstance(result, Accepted) for result in results)
    signer = DkimSigner.from_settings(settings)
    assert signer is not None
    assert signer.domain == DOMAIN  # the sender's domain
    assert len(received) == 2
    assert all(verifies(content, signer) for content in received)


async def test_concurrent_sends_render_and_sign_one_message_per_loop_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker starts 32 sends at once. Rendered and signed back to back, they held the
    # event loop for 32 signatures; now the loop turns (timers, I/O) between two of them.
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(pem())
    turns = 0
    stopped = False

    async def turning() -> None:
        nonlocal turns
        while not stopped:
            turns += 1
            await asyncio.sleep(0)

    seen: list[int] = []
    real_render = smtp.render_mime

    def render(*args: Any, **kwargs: Any) -> bytes:
        seen.append(turns)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(smtp, "render_mime", render)
    async with serve() as server:
        settings = EmailSettings(
            provider="smtp",
            sender=SENDER,
            smtp=SmtpSettings(host="127.0.0.1", port=server.port, tls="none", pool_size=4),
            dkim=DkimSettings(selector=SELECTOR, private_key_file=key_file),
        )
        provider = SmtpProvider(settings)
        ticker = asyncio.create_task(turning())
        try:
            results = await asyncio.gather(
                *(provider.send_batch([issue_message()]) for _ in range(32))
            )
        finally:
            stopped = True
            await ticker
            await provider.aclose()
        received = [content for _, _, content in server.handler.delivered]

    assert all(isinstance(result, Accepted) for [result] in results)
    assert len(seen) == 32
    assert all(later > earlier for earlier, later in itertools.pairwise(seen))
    signer = DkimSigner.from_settings(settings)
    assert signer is not None
    assert len(received) == 32
    assert all(verifies(content, signer) for content in received)


def test_no_selector_no_signer() -> None:
    assert DkimSigner.from_settings(EmailSettings(sender=SENDER)) is None


def test_the_published_record_carries_the_public_key(signer: DkimSigner) -> None:
    assert signer.record_name == f"{SELECTOR}._domainkey.{DOMAIN}"
    assert signer.record.startswith("v=DKIM1; k=rsa; p=MIIBIjAN")


def test_sender_domain() -> None:
    assert sender_domain("Herald <News@Herald.TEST>") == "herald.test"
    assert sender_domain("news@herald.test") == "herald.test"
    assert sender_domain("nobody") is None
    assert sender_domain(None) is None


# -- configuration: a bad key stops the process at start-up ----------------------


def _load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Any:
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HERALD_EMAIL__SENDER", SENDER)
    for name, value in env.items():
        monkeypatch.setenv(f"HERALD_EMAIL__DKIM__{name.upper()}", value)
    return load_settings()


def test_a_key_in_a_variable_with_escaped_line_breaks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text = pem(fmt=serialization.PrivateFormat.TraditionalOpenSSL).decode().replace("\n", "\\n")

    settings = _load(monkeypatch, tmp_path, selector=SELECTOR, private_key=text)

    signer = DkimSigner.from_settings(settings.email)
    assert signer is not None
    assert signer.record == DkimSigner(SELECTOR, DOMAIN, _KEY).record


def _key_file(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "key.pem"
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"private_key_file": "KEYFILE"}, "SELECTOR must be set"),
        ({"selector": SELECTOR}, "needs HERALD_EMAIL__DKIM__PRIVATE_KEY_FILE"),
        ({"selector": "bad selector"}, "is not a DKIM selector"),
        (
            {"selector": SELECTOR, "domain": "not a domain", "private_key_file": "KEYFILE"},
            "not a domain",
        ),
        ({"selector": SELECTOR, "private_key_file": "/nonexistent/key.pem"}, "cannot read"),
        ({"selector": SELECTOR, "private_key": "hello"}, "not a PEM private key"),
        (
            {"selector": SELECTOR, "private_key": "x", "private_key_file": "KEYFILE"},
            "not both",
        ),
        ({"selector": SELECTOR, "private_key_file": "ENCRYPTED"}, "encrypted"),
        ({"selector": SELECTOR, "private_key_file": "EC"}, "RSA"),
        ({"selector": SELECTOR, "private_key_file": "SHORT"}, "512-bit"),
    ],
)
def test_a_bad_key_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    files = {
        "KEYFILE": lambda: _key_file(tmp_path, pem()),
        "ENCRYPTED": lambda: _key_file(
            tmp_path,
            _KEY.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"pass"),
            ),
        ),
        "EC": lambda: _key_file(tmp_path, pem(ec.generate_private_key(ec.SECP256R1()))),
        "SHORT": lambda: _key_file(tmp_path, SHORT_KEY),
    }
    env = {name: files[value]() if value in files else value for name, value in env.items()}

    with pytest.raises(ConfigurationError, match=message) as raised:
        _load(monkeypatch, tmp_path, **env)
    key_lines = [line for line in pem().decode().splitlines() if "-----" not in line]
    assert not any(line in str(raised.value) for line in key_lines)  # never the key
