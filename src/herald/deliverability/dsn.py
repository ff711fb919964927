"""Bounce messages read: RFC 3464 delivery status notifications, and the common bounces
that are not. Pure (the standard library's ``email``): no database, no web framework.

A DSN is ``multipart/report; report-type=delivery-status`` with a
``message/delivery-status`` part (``message/global-delivery-status`` for SMTPUTF8, RFC
6533): a block of fields about the message, then a block per recipient — ``Action``
(failed, delayed, delivered, relayed, expanded), ``Status`` (an enhanced status code),
``Final-Recipient``, ``Original-Recipient`` (the original envelope recipient) and
``Diagnostic-Code`` (the remote server's words: ``smtp; 550 5.1.1 …``). A ``Status`` that
says nothing (``5.0.0``, as Exim writes for every failure) is refined by the diagnostic's
codes (a 4xx the reporting MTA gave up on is a soft bounce, never a hard one); without a
diagnostic, by what the report's text says under the recipient's address (Exim: "mailbox
is full: retry timeout exceeded"). The kind of event follows
:mod:`~herald.deliverability.smtp_status`.

Bounces that are not reports (qmail's, old Exim's, some appliances') are read minimally:
a message from a mailer daemon (or with a bounce's subject) whose text has a line with an
enhanced status code or starting with an SMTP reply, of class 4 or 5; anything else (an
out-of-office reply, a person's answer) is refused as unreadable
(:class:`~herald.core.errors.ValidationError`), never guessed at.

Where the bounce came *to* is what names the delivery (a VERP address): the candidates
are read here (``Delivered-To``, ``X-Original-To``, ``Envelope-To``, ``To``, Postfix's
``X-Postfix-Sender``), checked by the caller. Bounded: only the first :data:`MAX_READ`
bytes are parsed (the report comes before the returned message), a message of more than
:data:`MAX_MULTIPARTS` multiparts is refused before parsing (the parser's work grows with
every line times the multipart levels around it: 900 nested levels over 10 MiB took more
than a minute of CPU), at most :data:`MAX_PARTS` parts and :data:`MAX_RECIPIENTS`
recipient blocks are read, text is cut to a few kilobytes.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parsedate_to_datetime

from herald.core.errors import ValidationError
from herald.deliverability.domain import EventKind, without_addresses
from herald.deliverability.smtp_status import Status, kind_of

MAX_READ = 256 * 1024
MAX_MULTIPARTS = 16  # a DSN has two or three (the report, its text, the returned message)
MAX_PARTS = 64
MAX_RECIPIENTS = 100
_TEXT_LIMIT = 64 * 1024  # of a text part searched for a non-standard bounce's reply
_FIELD_LIMIT = 1000
# Headers the bounce's own recipient may be read from, most specific first.
_ADDRESSED_TO = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
# Ordered from the most to the least telling: the report's first block of this action wins.
_SEVERITY = {"failed": 0, "delayed": 1, "delivered": 2, "relayed": 2, "expanded": 2}
_REPORT_TYPES = ("message/delivery-status", "message/global-delivery-status")
_REPLY = re.compile(r"(?<!\d)([45]\d\d)[ -]")
_REPLY_LINE = re.compile(r"\s*([45]\d\d)[ -]")  # a line that starts with an SMTP reply
_MULTIPART = re.compile(rb"^content-type:\s*multipart/", re.IGNORECASE | re.MULTILINE)
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|has failed)|failure notice"
    r"|returned mail|mail delivery failed|delivery failed|could not be delivered",
    re.IGNORECASE,
)
_DELAY_WORDS = re.compile(r"delayed|will (be )?retr|still trying|not yet been delivered", re.I)


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """One recipient's block of a report (or what a non-standard bounce says)."""

    action: str  # failed, delayed, delivered, relayed, expanded
    status: Status | None
    code: int | None  # the reply code of the diagnostic (550), when it has one
    diagnostic: str
    final_recipient: str = ""
    original_recipient: str = ""

    @property
    def kind(self) -> EventKind | None:
        """The event this block reports; None when it reports nothing Herald records."""
        if self.action in ("delivered", "relayed", "expanded"):
            return EventKind.DELIVERED
        if self.action not in ("failed", "delayed"):
            return None
        delayed = self.action == "delayed"
        status = self.status
        if status is None and not delayed:
            status = Status(5, 0, 0)  # failed with no code: permanent, cause unknown
        if status is not None and status.klass == 2:
            return None  # "failed" with a success code: a contradiction, not a bounce
        return kind_of(status, self.code, self.diagnostic, delayed=delayed)

    @property
    def detail(self) -> str:
        status = f" {self.status}" if self.status else ""
        text = f"{self.action}{status}: {without_addresses(self.diagnostic)}"
        return text.strip()[:_FIELD_LIMIT]


@dataclass(frozen=True, slots=True)
class Bounce:
    """What a bounce message says."""

    message_id: str  # the bounce's own Message-ID ('' when it has none)
    addressed_to: tuple[str, ...]  # where it came to: the candidates for the VERP address
    recipients: tuple[RecipientReport, ...]
    standard: bool  # an RFC 3464 report (False: read from a non-standard bounce's text)
    date: datetime | None  # when the report was written, if it says

    @property
    def report(self) -> RecipientReport | None:
        """The block that matters most: the first failure, else delay, else success."""
        ranked = [r for r in self.recipients if r.action in _SEVERITY]
        return min(ranked, key=lambda r: _SEVERITY[r.action]) if ranked else None


def parse_bounce(raw: bytes) -> Bounce:
    """Read ``raw`` (one message as the MTA delivered it). ``ValidationError`` when it is
    not a bounce Herald can read (an auto-reply, a human's mail, garbage)."""
    head = raw[:MAX_READ]
    multiparts = _MULTIPART.finditer(head)
    if sum(1 for _ in zip(range(MAX_MULTIPARTS + 1), multiparts, strict=False)) > MAX_MULTIPARTS:
        raise ValidationError(
            f"the message cannot be read: more than {MAX_MULTIPARTS} multipart parts"
        )
    try:
        message = email.message_from_bytes(head, policy=email.policy.compat32)
        parts = _parts(message)
        addressed_to = _addressed_to(message)
        report = next((p for p in parts if p.get_content_type() in _REPORT_TYPES), None)
        if report is not None and _is_report(message, parts):
            blocks = _blocks(report)
            text = next((t for p in parts if (t := _text(p))), "")
            recipients = tuple(_recipient(block, text) for block in blocks[1 : MAX_RECIPIENTS + 1])
            sender = _field(blocks[0], "X-Postfix-Sender") if blocks else ""
            if sender:
                addressed_to = (*addressed_to, sender)
            standard = True
        else:
            recipients = _non_standard(message, parts)
            standard = False
    except (RecursionError, LookupError, ValueError, TypeError, IndexError) as exc:
        raise ValidationError(f"the message cannot be read: {type(exc).__name__}") from None
    if not any(r.action in _SEVERITY for r in recipients):
        raise ValidationError("the message is not a bounce: no delivery status in it")
    return Bounce(
        message_id=_header(message, "Message-ID"),
        addressed_to=addressed_to,
        recipients=recipients,
        standard=standard,
        date=_date(_header(message, "Date")),
    )


def _parts(message: Message) -> list[Message]:
    parts: list[Message] = []
    for part in message.walk():
        parts.append(part)
        if len(parts) >= MAX_PARTS:
            break
    return parts


def _is_report(message: Message, parts: list[Message]) -> bool:
    return (
        any(
            p.get_content_type() == "multipart/report"
            and str(p.get_param("report-type") or "").lower().endswith("delivery-status")
            for p in parts
        )
        or message.get_content_type() in _REPORT_TYPES
    )


def _blocks(part: Message) -> list[Message]:
    """A delivery-status part's blocks of fields (the standard library splits
    ``message/delivery-status``; ``message/global-delivery-status``, UTF-8, is split here)."""
    payload = part.get_payload()
    if part.get_content_type() == "message/delivery-status" and isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)][: MAX_RECIPIENTS + 1]
    if isinstance(payload, list):  # read as an embedded message: its bytes again
        raw = b"".join(m.as_bytes() for m in payload[:1] if isinstance(m, Message))
    else:
        decoded = part.get_payload(decode=True)
        raw = decoded if isinstance(decoded, bytes) else b""
    text = raw[: _TEXT_LIMIT * 4].decode("utf-8", "replace")
    chunks = re.split(r"\r?\n[ \t]*\r?\n", text)
    parser = HeaderParser(policy=email.policy.compat32)
    blocks = [parser.parsestr(chunk.strip() + "\n") for chunk in chunks if chunk.strip()]
    return blocks[: MAX_RECIPIENTS + 1]


def _recipient(block: Message, text: str = "") -> RecipientReport:
    """One recipient's block; ``text``: the report's human-readable part."""
    final_recipient = _typed(_field(block, "Final-Recipient"))
    diagnostic = _typed(_field(block, "Diagnostic-Code"))
    status = Status.parse(_field(block, "Status"))
    says_nothing = status is not None and (status.subject, status.detail) == (0, 0)
    if not diagnostic and (status is None or says_nothing):
        diagnostic = _explanation(text, final_recipient)
    reply = _REPLY.match(diagnostic)
    code = int(reply.group(1)) if reply else None
    from_diagnostic = Status.parse(diagnostic)
    if from_diagnostic is not None and (
        status is None or (says_nothing and from_diagnostic.klass in (status.klass, 4))
    ):
        status = from_diagnostic  # "5.0.0" says nothing; the server's own code does
    elif says_nothing and status is not None and code is not None and code // 100 == 4:
        status = None  # a 4xx the reporting MTA gave up on: its reply code decides
    return RecipientReport(
        action=_field(block, "Action").lower().split(" ", 1)[0],
        status=status,
        code=code,
        diagnostic=diagnostic,
        final_recipient=final_recipient,
        original_recipient=_typed(_field(block, "Original-Recipient")),
    )


def _explanation(text: str, recipient: str) -> str:
    """What the report's text says right under the recipient's address, up to the next
    blank line (Exim writes the reason there, and no Diagnostic-Code when no server gave
    one); '' when the address is not in it."""
    at = text.lower().find(recipient.lower()) if recipient else -1
    if at < 0:
        return ""
    paragraph = re.split(r"\n[ \t]*\n", text[at + len(recipient) :], maxsplit=1)[0]
    return " ".join(paragraph.split())[:_FIELD_LIMIT]


def _non_standard(message: Message, parts: list[Message]) -> tuple[RecipientReport, ...]:
    """A bounce without a report: its first text part's first SMTP reply or status code."""
    sender = _header(message, "From")
    subject = _header(message, "Subject")
    if not (_DAEMON.search(sender) or _BOUNCE_SUBJECT.search(subject)):
        return ()  # an auto-reply ("out of office") or a person's mail: not a bounce
    text = next((t for p in parts if (t := _text(p))), "")
    for line in text.splitlines():
        status = Status.parse(line)
        reply = _REPLY_LINE.match(line)
        if status is None and reply is None:
            continue
        klass = status.klass if status is not None else int(reply.group(1)[0]) if reply else 0
        if klass not in (4, 5):
            continue
        delayed = klass == 4 and bool(_DELAY_WORDS.search(text))
        return (
            RecipientReport(
                action="delayed" if delayed else "failed",
                status=status,
                code=int(reply.group(1)) if reply else None,
                diagnostic=" ".join(line.split())[:_FIELD_LIMIT],
                final_recipient=_header(message, "X-Failed-Recipients"),
            ),
        )
    return ()


def _text(part: Message) -> str:
    if part.get_content_maintype() != "text" or part.get_content_subtype() not in ("plain", ""):
        return ""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload[:_TEXT_LIMIT].decode(charset, "replace")
    except LookupError:
        return payload[:_TEXT_LIMIT].decode("latin-1")


def _addressed_to(message: Message) -> tuple[str, ...]:
    found: list[str] = []
    for name in _ADDRESSED_TO:
        values = [str(v)[:_FIELD_LIMIT] for v in (message.get_all(name) or [])[:10]]
        found.extend(address for _, address in getaddresses(values) if address)
    return tuple(found[:20])


def _header(message: Message, name: str) -> str:
    value = message.get(name)
    return " ".join(str(value).split())[:_FIELD_LIMIT] if value is not None else ""


def _field(block: Message, name: str) -> str:
    return _header(block, name)


def _typed(value: str) -> str:
    """A typed field's value: ``rfc822; ada@example.net`` → ``ada@example.net``."""
    kind, semicolon, rest = value.partition(";")
    return rest.strip() if semicolon and " " not in kind.strip() else value.strip()


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):  # a year or offset out of range
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
