"""The confirmation email: one link, the same in the HTML and the text body; the HTML body
is the confirmation's content placed into the email layout."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from herald.core.templating import environment, render
from herald.email.inline import inline_template
from herald.email.layout import Branding, compile_layout, default_layout
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


@lru_cache(maxsize=8)
def _html_template(css: str) -> Any:
    """The HTML content's template with the layout's CSS inlined, once per layout."""
    env = environment()
    source, _, _ = env.loader.get_source(env, "email/confirmation.html")  # type: ignore[union-attr]
    return env.from_string(inline_template(source, css))


def confirmation_email(
    subscriber: NewSubscriber,
    *,
    token: str,
    base_url: str,
    sender: str,
    ttl_hours: float,
    branding: Branding | None = None,
    layout_source: str | None = None,
) -> EmailMessage:
    """The email in ``layout_source`` (MJML; the built-in layout by default)."""
    branding = branding or Branding()
    link = confirmation_link(base_url, token)
    context = {
        "name": subscriber.name.value,
        "link": link,
        "valid_days": _validity(ttl_hours),
        "newsletter": branding.name,
    }
    layout = (
        default_layout(branding)
        if layout_source is None
        else compile_layout(layout_source, branding)
    )
    html = layout.render(
        content=_html_template(layout.content_css).render(**context),
        preheader=f"Confirm your subscription to {branding.name}.",
        title=CONFIRMATION_SUBJECT,
        reason=(
            f"You receive this because this address was entered on the sign-up form of "
            f"{branding.name}."
        ),
    )
    return EmailMessage(
        sender=sender,
        recipient=subscriber.email.value,
        subject=CONFIRMATION_SUBJECT,
        html_body=html,
        text_body=render("email/confirmation.txt", **context),
    )
