"""Bounce messages read (herald.deliverability.dsn): RFC 3464 reports as Postfix, Exim,
Gmail and Microsoft write them, a non-standard qmail bounce, and what is no bounce."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald.core.errors import ValidationError
from herald.deliverability.domain import EventKind
from herald.deliverability.dsn import MAX_RECIPIENTS, parse_bounce
from herald.deliverability.smtp_status import Status

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bounces"
VERP = "bounces+42.0123456789abcdef@news.example.org"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "action", "status", "kind", "recipient"),
    [
        ("postfix_user_unknown.eml", "failed", "5.1.1", EventKind.HARD_BOUNCE, "ada@example.net"),
        # Exim writes Status 5.0.0; the diagnostic's own code says what happened.
        ("exim_user_unknown.eml", "failed", "5.1.1", EventKind.HARD_BOUNCE, "ada@example.net"),
        (
            "gmail_no_such_user.eml",
            "failed",
            "5.1.1",
            EventKind.HARD_BOUNCE,
            "nobody.here.42@gmail.com",
        ),
        ("postfix_delayed.eml", "delayed", "4.4.1", EventKind.DEFERRED, "bob@example.com"),
        ("outlook_blocked.eml", "failed", "5.7.1", EventKind.BLOCKED, "carol@outlook.com"),
        ("postfix_mailbox_full.eml", "failed", "5.2.2", EventKind.SOFT_BOUNCE, "dave@example.org"),
    ],
)
def test_standard_reports(
    name: str, action: str, status: str, kind: EventKind, recipient: str
) -> None:
    bounce = parse_bounce(fixture(name))
    assert bounce.standard
    report = bounce.report
    assert report is not None
    assert report.action == action
    assert str(report.status) == status
    assert report.kind is kind
    assert report.final_recipient == recipient
    assert VERP in bounce.addressed_to
    assert bounce.message_id
    assert bounce.date is not None
    assert bounce.date.tzinfo is not None


def test_a_report_keeps_the_original_recipient_and_the_diagnostic() -> None:
    bounce = parse_bounce(fixture("postfix_user_unknown.eml"))
    [report] = bounce.recipients
    assert report.original_recipient == "ada@example.net"
    assert report.code == 550
    assert report.diagnostic.startswith("550 5.1.1 <ada@example.net>: Recipient address rejected:")
    assert "User unknown in virtual mailbox table" in report.diagnostic  # unfolded
    assert report.detail.startswith("failed 5.1.1: 550 5.1.1")


def test_gmail_multiline_diagnostic_is_one_line() -> None:
    [report] = parse_bounce(fixture("gmail_no_such_user.eml")).recipients
    assert report.code == 550
    assert "\n" not in report.diagnostic
    assert "double-checking the recipient's email address" in report.diagnostic


def test_a_non_standard_bounce_is_read_minimally() -> None:
    bounce = parse_bounce(fixture("qmail_failure.eml"))
    assert not bounce.standard
    report = bounce.report
    assert report is not None
    assert (report.action, str(report.status), report.kind) == (
        "failed",
        "5.1.1",
        EventKind.HARD_BOUNCE,
    )
    assert VERP in bounce.addressed_to


@pytest.mark.parametrize(
    "raw",
    [
        fixture("out_of_office.eml"),
        b"",
        b"\x00\xff\xfe garbage \r\n\r\n\x89PNG",
        b"From: alice@example.com\r\nSubject: hi\r\n\r\nThanks for the newsletter! 550 words.",
        # A report of another kind (a read receipt), no delivery status in it.
        b"From: MAILER-DAEMON@x\r\nContent-Type: multipart/report; "
        b'report-type=disposition-notification; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nread\r\n--b--\r\n",
    ],
)
def test_what_is_no_bounce_is_refused_clearly(raw: bytes) -> None:
    with pytest.raises(ValidationError, match=r"not a bounce|cannot be read"):
        parse_bounce(raw)


def test_hostile_shapes_are_bounded() -> None:
    nested = b"Content-Type: multipart/mixed; boundary=a0\r\n\r\n"
    for depth in range(1, 3000):
        nested += (
            f"--a{depth - 1}\r\nContent-Type: multipart/mixed; boundary=a{depth}\r\n\r\n".encode()
        )
    with pytest.raises(ValidationError):
        parse_bounce(nested)

    many = "\r\n\r\n".join(
        f"Final-Recipient: rfc822; r{n}@example.com\r\nAction: failed\r\nStatus: 5.1.1"
        for n in range(5000)
    )
    raw = (
        "From: MAILER-DAEMON@x\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"'
        "\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
        + many
        + "\r\n--b--\r\n"
    ).encode()
    bounce = parse_bounce(raw)
    assert len(bounce.recipients) == MAX_RECIPIENTS
    # Only the head is read (MAX_READ): a header that long leaves no text to read.
    huge_header = b"From: MAILER-DAEMON@x\r\nSubject: " + b"x" * 2_000_000 + b"\r\n\r\n550 5.1.1 no"
    with pytest.raises(ValidationError, match="not a bounce"):
        parse_bounce(huge_header)


def test_global_delivery_status_is_read_too() -> None:
    raw = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\n"
        f"To: {VERP}\r\nMessage-ID: <g@x>\r\n"
        'Content-Type: multipart/report; report-type=global-delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: message/global-delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        "Final-Recipient: utf-8; zoë@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 unknown\r\n--b--\r\n"
    ).encode()
    report = parse_bounce(raw).report
    assert report is not None
    assert report.kind is EventKind.HARD_BOUNCE
    assert report.final_recipient == "zoë@example.org"


@pytest.mark.parametrize(
    ("text", "code", "stage", "kind"),
    [
        ("5.1.1 User unknown", 550, "RCPT TO", EventKind.HARD_BOUNCE),
        ("5.1.2 Host unknown", 550, "RCPT TO", EventKind.HARD_BOUNCE),
        ("5.1.10 Null MX", 556, "RCPT TO", EventKind.HARD_BOUNCE),
        ("5.4.4 Unable to route", 550, "RCPT TO", EventKind.HARD_BOUNCE),
        ("5.7.1 Message rejected as spam", 554, "DATA", EventKind.BLOCKED),
        ("5.7.26 Unauthenticated email (DMARC)", 550, "DATA", EventKind.BLOCKED),
        ("5.7.1 Relay access denied", 554, "RCPT TO", EventKind.BLOCKED),
        ("5.6.0 Content rejected", 554, "DATA", EventKind.BLOCKED),
        ("5.3.4 Message too big", 552, "DATA", EventKind.BLOCKED),
        ("5.1.8 Sender domain not found", 553, "RCPT TO", EventKind.BLOCKED),
        ("5.2.2 Mailbox full", 552, "RCPT TO", EventKind.SOFT_BOUNCE),
        ("4.2.1 Mailbox busy", 450, "RCPT TO", EventKind.SOFT_BOUNCE),
        ("anything", 550, "MAIL FROM", EventKind.BLOCKED),
        # No enhanced code (or 5.0.0): the reply code and the words.
        ("No such user here", 550, "RCPT TO", EventKind.HARD_BOUNCE),
        ("5.0.0 Blocked by Spamhaus", 550, "RCPT TO", EventKind.BLOCKED),
        ("Insufficient storage", 552, "RCPT TO", EventKind.SOFT_BOUNCE),
        ("Transaction failed", 554, "DATA", EventKind.BLOCKED),
        ("User unknown", 550, "DATA", EventKind.HARD_BOUNCE),
        ("OK", 250, "DATA", EventKind.DELIVERED),
        ("weird", 600, "DATA", None),
        # An address or a version number is no status code.
        ("host 192.5.1.1 said: No such user", 550, "RCPT TO", EventKind.HARD_BOUNCE),
        ("Exim 4.96.2 says: rejected by policy", 550, "RCPT TO", EventKind.BLOCKED),
        # The relay's own limits and refusals: every reader of the issue gets the same
        # answer, so a hard bounce would suppress the whole list.
        ("5.4.5 Daily user sending limit exceeded.", 550, "RCPT TO", EventKind.BLOCKED),
        (
            "5.4.5 Daily user sending quota exceeded. https://support.google.com/mail/"
            "?p=DailyLimitExceeded - gsmtp",
            550,
            "DATA",
            EventKind.BLOCKED,
        ),
        ("5.4.6 mail rate exceeded limit", 550, "RCPT TO", EventKind.BLOCKED),
        ("Daily sending quota exceeded", 550, "RCPT TO", EventKind.BLOCKED),
        ("Relay access denied", 554, "RCPT TO", EventKind.BLOCKED),
        ("Unable to relay for ada@example.net", 550, "RCPT TO", EventKind.BLOCKED),
        # The envelope sender (Herald's VERP return path) refused at RCPT TO, where
        # Postfix applies its sender restrictions, with an address status code: a relay
        # that does not know bounces+<id>.<mac>@ answers every reader so.
        (
            "5.1.0 <bounces+7.0123456789abcdef@news.example.org>: Sender address rejected:"
            " User unknown in local recipient table",
            550,
            "RCPT TO",
            EventKind.BLOCKED,
        ),
        (
            "5.1.1 <bounces+7.0123456789abcdef@news.example.org>: Sender address rejected:"
            " User unknown in local sender table",
            550,
            "RCPT TO",
            EventKind.BLOCKED,
        ),
        ("Sender verify failed", 550, "RCPT TO", EventKind.BLOCKED),
    ],
)
def test_smtp_status_kinds(text: str, code: int, stage: str, kind: EventKind | None) -> None:
    from herald.deliverability.smtp_status import kind_of

    assert kind_of(Status.parse(text), code, text, stage=stage) is kind


@pytest.mark.parametrize(
    "date",
    [
        "Sat, 05 Dec 99999999999 10:12:03 +0000",  # a year past any datetime
        "Sat, 05 Dec 2026 10:12:03 +99999999999999999999",  # an offset past a C int
    ],
)
def test_a_date_out_of_range_is_no_date_not_an_error(date: str) -> None:
    """Such a Date raised OverflowError, which `herald bounces ingest` answers with 75: the
    MTA offered the same readable bounce again for days and it was never recorded."""
    raw = fixture("postfix_user_unknown.eml").replace(
        b"Date: ", f"Date: {date}\r\nX-Old-Date: ".encode(), 1
    )
    bounce = parse_bounce(raw)
    assert bounce.date is None
    assert bounce.report is not None
    assert bounce.report.kind is EventKind.HARD_BOUNCE


def test_only_the_head_of_a_bounce_is_parsed_and_deep_nesting_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The MIME parser's work grows with the lines times the multipart levels around them
    (and a Content-Type's parameters, squared): a forged 10 MiB message of 900 nested
    multiparts took over a minute of CPU, and it is parsed before any signature is checked.
    The report comes before the returned message, so the head is enough; a bounce has a
    handful of multiparts."""
    from herald.deliverability import dsn

    parsed: list[int] = []
    real = dsn.email.message_from_bytes

    def counting(raw: bytes, **kwargs: object) -> object:
        parsed.append(len(raw))
        return real(raw, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dsn.email, "message_from_bytes", counting)
    head, closing, tail = fixture("postfix_user_unknown.eml").rpartition(b"\n--3F2A")
    big = head + (b"\n" + b"x" * 78) * 120_000 + closing + tail  # a long returned message
    assert len(big) > 9_000_000
    report = parse_bounce(big).report
    assert report is not None
    assert report.kind is EventKind.HARD_BOUNCE
    assert parsed == [dsn.MAX_READ]

    nested = b"From: MAILER-DAEMON@x\r\nContent-Type: multipart/mixed; boundary=a0\r\n\r\n"
    for depth in range(1, 900):
        nested += (
            f"--a{depth - 1}\r\nContent-type:\r\n multipart/mixed; boundary=a{depth}\r\n\r\n"
        ).encode()
    with pytest.raises(ValidationError, match="multipart"):
        parse_bounce(nested + b"550 5.1.1 no\r\n" * 700_000)
    assert len(parsed) == 1  # refused before parsing


def test_exim_s_report_of_a_full_mailbox_it_gave_up_on_is_a_soft_bounce() -> None:
    """Exim writes Status 5.0.0 for every failure and no Diagnostic-Code when no server
    gave one, the reason only in the text under the address (cPanel hosts: "mailbox is
    full: retry timeout exceeded"). Read as "failed, cause unknown", that suppressed a
    reader whose mailbox was full for a few days."""
    bounce = parse_bounce(fixture("exim_mailbox_full_retry_timeout.eml"))
    report = bounce.report
    assert report is not None
    assert report.final_recipient == "frank@example.net"
    assert "mailbox is full: retry timeout exceeded" in report.diagnostic
    assert report.kind is EventKind.SOFT_BOUNCE


@pytest.mark.parametrize(
    ("diagnostic", "kind"),
    [
        # A temporary refusal the reporting MTA gave up on: never more than soft.
        ("smtp; 451 4.7.1 Greylisted, please try again later", EventKind.SOFT_BOUNCE),
        ("smtp; 452 Too much mail for this mailbox: retry timeout exceeded", EventKind.SOFT_BOUNCE),
        ("smtp; 550 5.1.1 No such user", EventKind.HARD_BOUNCE),
        ("smtp; 550 No such user", EventKind.HARD_BOUNCE),
    ],
)
def test_a_failed_report_that_says_5_0_0_takes_the_server_s_code(
    diagnostic: str, kind: EventKind
) -> None:
    raw = (
        "From: Mail Delivery System <Mailer-Daemon@mail.news.example.org>\r\n"
        f"To: {VERP}\r\nMessage-ID: <x@y>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mail.news.example.org\r\n\r\n"
        "Action: failed\r\nFinal-Recipient: rfc822;ada@example.net\r\nStatus: 5.0.0\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n--b--\r\n"
    ).encode()
    report = parse_bounce(raw).report
    assert report is not None
    assert report.kind is kind


def test_an_event_s_detail_keeps_no_address_in_clear() -> None:
    """Servers quote the recipient ("550 5.1.1 <ada@example.net>: Recipient address
    rejected"), and the detail is stored in email_events, which promises no address in
    clear (migration 0027: an erased reader's events keep only the address key)."""
    from datetime import UTC, datetime

    from herald.deliverability.refusals import refusal_event
    from herald.email.message import SmtpReply

    report = parse_bounce(fixture("postfix_user_unknown.eml")).report
    assert report is not None
    assert "@" not in report.detail
    assert report.detail.startswith("failed 5.1.1: 550 5.1.1 <address>: Recipient address")
    reply = SmtpReply("RCPT TO", 550, "5.1.1 <Ada.Lovelace+news@example.net>... User unknown")
    event = refusal_event(7, 1, "ada.lovelace+news@example.net", reply, datetime.now(UTC))
    assert event is not None
    assert event.detail == "RCPT TO: 550 5.1.1 <address>... User unknown"
    assert event.recipient == "ada.lovelace+news@example.net"  # matched, not stored
