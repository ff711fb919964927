"""Amazon SES's headers on the SMTP path: with ``HERALD_EMAIL__SES__CONFIGURATION_SET``
set, each message names that configuration set (``X-SES-CONFIGURATION-SET``) and carries
its delivery id as a message tag (``X-SES-MESSAGE-TAGS: herald_delivery=<id>``), which SES
removes from the message and repeats in the ``mail.tags`` of every event it publishes
for it, so a bounce or complaint finds its delivery without a Message-ID lookup."""

from __future__ import annotations

from dataclasses import replace

from herald.email.message import EmailMessage

DELIVERY_TAG = "herald_delivery"


def with_ses_headers(message: EmailMessage, configuration_set: str) -> EmailMessage:
    """``message`` with SES's headers added, or as it is without a configuration set."""
    if not configuration_set:
        return message
    headers = (*message.headers, ("X-SES-CONFIGURATION-SET", configuration_set))
    if message.delivery_id is not None:
        headers = (*headers, ("X-SES-MESSAGE-TAGS", f"{DELIVERY_TAG}={message.delivery_id}"))
    return replace(message, headers=headers)
