"""What an email provider is given and what it answers. No I/O here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol


class Pieced(str):
    """A string joined from pieces: the same literal pieces (even positions, shared by
    every copy of an email: a layout's segments) around values (odd positions). It is
    the joined string everywhere; a provider may encode the literal pieces once
    (``herald.email.postmark``) instead of once per recipient."""

    pieces: Sequence[str]

    @classmethod
    def of(cls, pieces: Sequence[str]) -> Pieced:
        joined = cls("".join(pieces))
        joined.pieces = pieces
        return joined


@dataclass(frozen=True, slots=True)
class EmailMessage:
    """One fully rendered email to one recipient.

    ``delivery_id``: the ``deliveries`` row it is sent for, set by the worker just before
    the send (never stored in the row's message): a provider may carry it with the
    message so that what it later hears about the message finds its delivery (a VERP
    return path on SMTP, metadata on an API).
    """

    sender: str
    recipient: str
    subject: str
    html_body: str
    text_body: str
    headers: tuple[tuple[str, str], ...] = field(default=())
    delivery_id: int | None = None

    def for_delivery(self, delivery_id: int) -> EmailMessage:
        """This message, sent for the delivery ``delivery_id``."""
        return replace(self, delivery_id=delivery_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "recipient": self.recipient,
            "subject": self.subject,
            "html_body": self.html_body,
            "text_body": self.text_body,
            "headers": [list(pair) for pair in self.headers],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmailMessage:
        return cls(
            sender=data["sender"],
            recipient=data["recipient"],
            subject=data["subject"],
            html_body=data["html_body"],
            text_body=data["text_body"],
            headers=tuple((str(name), str(value)) for name, value in data.get("headers", ())),
        )


@dataclass(frozen=True, slots=True)
class Accepted:
    """The provider took the message; ``message_id`` is its id for it, when it gives one."""

    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class TransientFailure:
    """Worth retrying later: 5xx, 429, timeouts, connection errors, SMTP 4xx.

    ``retry_after`` (seconds) is the provider's own hint, e.g. from ``Retry-After``.
    """

    error: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class SmtpReply:
    """A mail server's refusal as it answered a command: ``command`` (``MAIL FROM``,
    ``RCPT TO``, ``DATA``), the reply code and its text (with the enhanced status code,
    RFC 3463, where the server gives one: ``5.1.1 User unknown``)."""

    command: str
    code: int
    text: str


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    """Retrying cannot help: other 4xx, SMTP 5xx, a rejected address.

    ``refusal``: the server's reply when a mail server refused the message (an SMTP 5xx),
    which is what the deliverability policy reads (a bounce, or a block of the sender).
    """

    error: str
    refusal: SmtpReply | None = None


SendResult = Accepted | TransientFailure | PermanentFailure


class EmailProvider(Protocol):
    """Sends rendered messages. Never raises for a delivery problem: it returns one
    result per message, in order, classifying each failure as transient or permanent."""

    name: str
    # How many messages one ``send_batch`` call should carry at most.
    max_batch_size: int

    async def send_batch(self, messages: Sequence[EmailMessage]) -> list[SendResult]: ...

    async def aclose(self) -> None: ...
