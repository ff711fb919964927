"""What an SMTP server's answer means for a message: transient or permanent, and, for
a 5xx to a command of the transaction (``MAIL FROM``, ``RCPT TO``, ``DATA``), the refusal
itself (:class:`~herald.email.message.SmtpReply`), which the deliverability policy reads:
a bounce of the recipient, or a block of the sender."""

from __future__ import annotations

import aiosmtplib

from herald.email.message import PermanentFailure, SendResult, SmtpReply, TransientFailure


def _classify_reply(code: int, text: str, command: str | None = None) -> SendResult:
    """``command``: the transaction's command the server refused (a 5xx to it is a
    refusal the deliverability policy reads: a bounce, or a block of the sender)."""
    error = f"SMTP {code}: {text}" + (f" ({command})" if command else "")
    if 500 <= code < 600:
        return PermanentFailure(error, SmtpReply(command, code, text) if command else None)
    # 4xx, and anything that is not a proper reply code: retrying is the safe reading.
    return TransientFailure(error)


_COMMANDS: dict[type, str] = {
    aiosmtplib.SMTPSenderRefused: "MAIL FROM",
    aiosmtplib.SMTPDataError: "DATA",
}


def classify_exception(exc: Exception, *, utf8: bool) -> tuple[SendResult, bool]:
    """The result for a failed transaction, and whether its session may be reused."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        # aiosmtplib has already reset the envelope; the session is fine.
        refusal = exc.recipients[0]
        return _classify_reply(refusal.code, refusal.message, "RCPT TO"), True
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # 421: the server is closing this session.
        command = _COMMANDS.get(type(exc))
        return _classify_reply(exc.code, exc.message, command), exc.code != 421
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        # Without SMTPUTF8 a non-ASCII address cannot go through this relay at all.
        failure = PermanentFailure if utf8 else TransientFailure
        return failure(f"SMTP: {exc.message}"), True
    if isinstance(exc, aiosmtplib.SMTPException | OSError):
        # Timeouts, refused or dropped connections, TLS trouble: the session's state is
        # unknown, so it is not reused.
        return TransientFailure(f"SMTP {type(exc).__name__}: {exc}"), False
    # ValueError: an address with characters an SMTP command line cannot carry.
    return PermanentFailure(f"SMTP: invalid address: {exc}"), True
