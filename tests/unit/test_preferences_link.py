"""Every issue email carries the reader's preference centre: the unsubscribe link's token
on ``/preferences`` (string concatenation, no second HMAC), in the HTML footer and the
text footer."""

from __future__ import annotations

import uuid

from herald.core.config import Settings
from herald.email.layout import Branding
from herald.issues.rendering import compile_issue, issue_email
from herald.subscriptions.unsubscribe import make_token, unsubscribe_url

SETTINGS = Settings(
    database_url="postgresql://unused/db",
    base_url="https://news.herald.test",
    secret_key="s" * 48,
)


def test_an_issue_email_links_the_reader_s_preferences() -> None:
    reader = uuid.uuid4()
    token = make_token(SETTINGS, reader)
    unsubscribe = unsubscribe_url(SETTINGS, reader) + f"&issue={uuid.uuid4()}"
    message = issue_email(
        compile_issue("T", "<p>Body</p>", "Body", Branding(name="Acme Weekly")),
        sender="news@acme.test",
        recipient="a@example.com",
        name="A",
        unsubscribe_url=unsubscribe,
        base_url="https://news.herald.test",
        view_url="https://news.herald.test/v/1",
    )
    preferences = f"https://news.herald.test/preferences?token={token}"
    assert f"<a href=\"{preferences}\" style='color:#5b6270;'>Manage preferences</a>" in str(
        message.html_body
    )
    assert f"Manage your preferences: {preferences}\n" in message.text_body
    assert message.text_body.endswith(f"Unsubscribe: {unsubscribe}\n")


def test_a_copy_for_no_reader_links_an_inert_page() -> None:
    message = issue_email(
        compile_issue("T", "<p>Body</p>", "Body", Branding()),
        sender="news@acme.test",
        recipient="a@example.com",
        name="A",
        unsubscribe_url="https://news.herald.test/unsubscribe/one-click?token=preview",
        base_url="https://news.herald.test",
    )
    assert "https://news.herald.test/preferences?token=preview" in message.text_body
