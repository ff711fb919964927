"""What a mail server's status says happened: a bounce of the reader, or a block of the
sender. Pure: shared by the SMTP refusals the worker hears and the bounce messages
(DSNs) that come back later.

The enhanced status code (RFC 3463, ``class.subject.detail``) decides where there is one:

* class 2: delivered; class 4: a soft bounce (a delay, when the report says the server
  keeps trying);
* class 5 about the reader's address or mailbox (``5.1.1`` no such user, ``5.1.2`` no
  such domain, ``5.1.10`` null MX, ``5.2.1`` disabled, ``5.4.4`` unroutable, …): a hard
  bounce, which suppresses the address;
* class 5 about the *sender* or the message — security and policy (``5.7.x``: spam
  filters, block lists, SPF/DKIM/DMARC), content (``5.6.x``), size (``5.3.4``,
  ``5.2.3``), the sender's address (``5.1.7``, ``5.1.8``), the sending system's limits and
  routing (``5.4.5`` congestion: Gmail's "daily user sending quota exceeded", which every
  later recipient gets too; ``5.4.6`` loops, Zoho's rate limit): blocked, which never
  suppresses the reader (it is Herald's reputation or configuration) and raises the
  alert instead;
* ``5.2.2`` mailbox full and ``5.4.7`` delivery time expired: soft, a full mailbox is
  usually emptied and a timeout is the sum of temporary failures.

Without one (``5.0.0`` says nothing either), the reply code and a few words of the text
decide: words of spam filters, block lists, sending limits and relaying make it
blocked; words of a full mailbox or of a retry time that ran out (temporary failures
given up on), and ``552`` (storage), soft; otherwise a refusal of the recipient (``RCPT
TO``, a report's failed recipient) is a hard bounce, and a refusal at ``DATA`` — where
servers judge the content — blocked unless the text says the user is unknown. A refusal
of ``MAIL FROM`` is about the sender by definition: blocked, whatever the code; so is a
refusal whose text says the *sender* was refused, whatever its code (Postfix checks the
envelope sender at ``RCPT TO`` and answers "5.1.0 <bounces+…>: Sender address rejected"
when a relay does not know Herald's VERP return path — to every reader alike).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from herald.deliverability.domain import EventKind

_ENHANCED = re.compile(r"(?<![\d.])([245])\.([0-7])\.(\d{1,3})(?![\d.]*\d)")
# Words of spam filters, block lists and authentication failures.
_SENDER_WORDS = re.compile(
    r"spam|junk|bulk|block|blacklist|black list|denylist|reputation|policy|rbl\b|dnsbl"
    r"|spamhaus|barracuda|abuse|dmarc|\bspf\b|dkim|unsolicited|content|not authori[sz]ed"
    r"|rate limit|too many|sending (quota|limit)|\brelay",
    re.IGNORECASE,
)
# Words of a refusal of the envelope sender (whatever the status code says).
_SENDER_REFUSED = re.compile(
    r"sender address rejected|sender (address )?(denied|refused|rejected)|sender verify",
    re.IGNORECASE,
)
# Words of a full mailbox, or of temporary failures given up on.
_SOFT_WORDS = re.compile(
    r"mailbox (is )?full|over quota|quota exceeded|insufficient (disk )?(space|storage)"
    r"|retry time(out)? (exceeded|not reached)|delivery time expired",
    re.IGNORECASE,
)
# Words of a recipient that does not exist.
_UNKNOWN_WORDS = re.compile(
    r"user unknown|unknown user|no such user|unknown recipient|recipient unknown|does not exist"
    r"|doesn't exist|no mailbox|mailbox unavailable|mailbox not found|invalid recipient"
    r"|address rejected|unrouteable|unroutable|not found|disabled",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Status:
    """An enhanced status code, RFC 3463."""

    klass: int
    subject: int
    detail: int

    @classmethod
    def parse(cls, text: str) -> Status | None:
        """The first enhanced status code in ``text`` (``5.1.1``), or None."""
        match = _ENHANCED.search(text[:1000])
        if match is None:
            return None
        klass, subject, detail = (int(group) for group in match.groups())
        return cls(klass, subject, detail)

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"


# (subject, detail) of class 5 that are about the sender or the message, not the reader.
_SENDER_DETAILS = frozenset({(1, 7), (1, 8), (2, 3), (3, 4), (4, 5), (4, 6)})
_SOFT_DETAILS = frozenset({(2, 2), (4, 7)})


def kind_of(
    status: Status | None,
    code: int | None,
    text: str,
    *,
    stage: str = "RCPT TO",
    delayed: bool = False,
) -> EventKind | None:
    """The event a status reports, or None when it reports nothing Herald records.

    ``status``: the enhanced code, if any; ``code``: the reply code (550), if any; ``text``:
    the server's words; ``stage``: the command refused (``MAIL FROM``, ``RCPT TO``,
    ``DATA``; a report's failed recipient counts as ``RCPT TO``); ``delayed``: the report
    says the server keeps trying.
    """
    klass = status.klass if status is not None else (code // 100 if code else None)
    if klass == 2:
        return EventKind.DELIVERED
    if klass == 4:
        return EventKind.DEFERRED if delayed else EventKind.SOFT_BOUNCE
    if klass != 5:
        return None
    if stage == "MAIL FROM" or _SENDER_REFUSED.search(text[:1000]):
        return EventKind.BLOCKED
    if status is not None and (status.subject, status.detail) != (0, 0):
        return _by_status(status)
    return _by_words(code, text, stage)


def _by_status(status: Status) -> EventKind:
    pair = (status.subject, status.detail)
    if status.subject in (6, 7) or pair in _SENDER_DETAILS:
        return EventKind.BLOCKED
    if pair in _SOFT_DETAILS:
        return EventKind.SOFT_BOUNCE
    return EventKind.HARD_BOUNCE


def _by_words(code: int | None, text: str, stage: str) -> EventKind:
    text = text[:1000]
    if _SENDER_WORDS.search(text):
        return EventKind.BLOCKED
    if code == 552 or _SOFT_WORDS.search(text):
        return EventKind.SOFT_BOUNCE
    if stage == "DATA" and not _UNKNOWN_WORDS.search(text):
        return EventKind.BLOCKED
    return EventKind.HARD_BOUNCE
