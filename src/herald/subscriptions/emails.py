"""The confirmation email: one link, the same in the HTML and the text body."""

from __future__ import annotations

from urllib.parse import urlencode

from herald.core.templating import render
from herald.email.message import EmailMessage
from herald.subscriptions.domain import NewSubscriber

CONFIRMATION_SUBJECT = "Please confirm your subscription"


def confirmation_link(base_url: str, token: str) -> str:
    return f"{base_url}/subscriptions/confirm?{urlencode({'subscription_token': token})}"


def _validity(ttl_hours: float) -> str:
    if ttl_hours >= 48 and ttl_hours % 24 == 0:
        return f"{int(ttl_hours // 24)} days"
    if ttl_hours == 1:
        return "1 hour"
    return f"{ttl_hours:g} hours"


def confirmation_email(
    subscriber: NewSubscriber, *, token: str, base_url: str, sender: str, ttl_hours: float
) -> EmailMessage:
    link = confirmation_link(base_url, token)
    context = {"name": subscriber.name.value, "link": link, "valid_days": _validity(ttl_hours)}
    return EmailMessage(
        sender=sender,
        recipient=subscriber.email.value,
        subject=CONFIRMATION_SUBJECT,
        html_body=render("email/confirmation.html", **context),
        text_body=render("email/confirmation.txt", **context),
    )
