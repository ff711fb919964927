"""SES's headers on the SMTP path: the configuration set and the delivery's message tag,
only when a configuration set is configured, through a real SMTP session."""

from __future__ import annotations

from herald.core.config import EmailSettings, SmtpSettings
from herald.core.email_config import SesSettings
from herald.email.message import Accepted
from herald.email.ses_headers import with_ses_headers
from herald.email.smtp import SmtpProvider
from tests.unit.email.test_smtp import Server, message, serve


def test_nothing_is_added_without_a_configuration_set() -> None:
    plain = message(1).for_delivery(42)
    assert with_ses_headers(plain, "") is plain


def test_the_set_and_the_delivery_tag() -> None:
    tagged = with_ses_headers(message(1).for_delivery(42), "herald-events")
    assert tagged.headers[-2:] == (
        ("X-SES-CONFIGURATION-SET", "herald-events"),
        ("X-SES-MESSAGE-TAGS", "herald_delivery=42"),
    )
    assert tagged.delivery_id == 42
    untracked = with_ses_headers(message(1), "herald-events")  # a message of no delivery
    assert untracked.headers[-1] == ("X-SES-CONFIGURATION-SET", "herald-events")


async def _headers(server: Server, configuration_set: str) -> list[str]:
    settings = EmailSettings(
        provider="smtp",
        timeout_seconds=2.0,
        smtp=SmtpSettings(host="127.0.0.1", port=server.port, tls="none"),
        ses=SesSettings(configuration_set=configuration_set),
    )
    provider = SmtpProvider(settings)
    try:
        [result] = await provider.send_batch([message(7).for_delivery(4711)])
    finally:
        await provider.aclose()
    assert isinstance(result, Accepted)
    content = server.handler.delivered[-1][2]
    return content.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")


async def test_the_smtp_provider_sends_them_when_configured() -> None:
    async with serve() as server:
        lines = await _headers(server, "herald-events")
        assert "X-SES-CONFIGURATION-SET: herald-events" in lines
        assert "X-SES-MESSAGE-TAGS: herald_delivery=4711" in lines
        assert not any(line.startswith("X-SES") for line in await _headers(server, ""))
