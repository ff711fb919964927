"""The sending-domain check: SPF, DKIM and DMARC records judged, looked up through
dnspython against a stub DNS server on 127.0.0.1 (tests/support/dns_stub.py)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from time import monotonic
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from herald.core.config import Settings
from herald.core.dkim_config import DnsSettings, parse_nameserver
from herald.deliverability.dns_records import (
    Domains,
    Lookup,
    LookupProblem,
    Status,
    check_dmarc,
    check_spf,
    organizational_domain,
    same_key,
    tags,
)
from herald.deliverability.resolver import TxtResolver
from herald.deliverability.sending_domain import check_sending_domain
from herald.email.dkim import DkimSigner
from tests.support.dns_stub import StubDns, stub_dns

DOMAIN = "herald.test"
SELECTOR = "herald2026"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RECORD = DkimSigner(SELECTOR, DOMAIN, KEY).record
GOOD = {
    DOMAIN: ["v=spf1 a mx a:smtp.herald.test ~all", "google-site-verification=abc"],
    f"{SELECTOR}._domainkey.{DOMAIN}": [RECORD],
    f"_dmarc.{DOMAIN}": ["v=DMARC1; p=quarantine; rua=mailto:dmarc@herald.test"],
}


@pytest.fixture
def dns() -> Iterator[StubDns]:
    with stub_dns(StubDns(txt=dict(GOOD))) as running:
        yield running


def settings_for(stub: StubDns, tmp_path: Path, **email: Any) -> Settings:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(
        KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    section: dict[str, Any] = {
        "provider": "smtp",
        "sender": f"Herald News <news@{DOMAIN}>",
        "smtp": {"host": "smtp.herald.test"},
        "dkim": {"selector": SELECTOR, "private_key_file": str(key_file)},
    }
    section.update(email)
    return Settings(
        data_dir=tmp_path,
        email=section,  # type: ignore[arg-type]
        dns=DnsSettings(nameservers=(stub.nameserver,), timeout_seconds=1.0),
    )


def statuses(report: Any) -> dict[str, Status]:
    return {finding.check: finding.status for finding in report.findings}


async def test_a_complete_set_up_is_ok(dns: StubDns, tmp_path: Path) -> None:
    report = await check_sending_domain(settings_for(dns, tmp_path))

    assert statuses(report) == {"SPF": Status.OK, "DKIM": Status.OK, "DMARC": Status.OK}
    assert report.status is Status.OK
    assert all(finding.fix is None for finding in report.findings)


async def test_nothing_published_explains_every_record_to_add(
    tmp_path: Path,
) -> None:
    with stub_dns(StubDns(empty={DOMAIN})) as dns:
        report = await check_sending_domain(settings_for(dns, tmp_path))

    assert statuses(report) == {
        "SPF": Status.MISSING,
        "DKIM": Status.MISSING,
        "DMARC": Status.MISSING,
    }
    spf, dkim, dmarc = report.findings
    assert spf.fix is not None
    assert spf.fix.name == DOMAIN
    assert spf.fix.value == "v=spf1 a mx a:smtp.herald.test ~all"
    assert dkim.fix is not None
    assert dkim.fix.name == f"{SELECTOR}._domainkey.{DOMAIN}"
    assert dkim.fix.value == RECORD
    assert dmarc.fix is not None
    assert dmarc.fix.name == f"_dmarc.{DOMAIN}"
    assert dmarc.fix.value.startswith("v=DMARC1; p=none; rua=mailto:")


async def test_another_key_published_is_an_error(dns: StubDns, tmp_path: Path) -> None:
    dns.txt[f"{SELECTOR}._domainkey.{DOMAIN}"] = [DkimSigner(SELECTOR, DOMAIN, OTHER_KEY).record]

    report = await check_sending_domain(settings_for(dns, tmp_path))

    dkim = report.findings[1]
    assert dkim.status is Status.ERROR
    assert "not the key Herald signs with" in dkim.summary
    assert dkim.fix is not None
    assert dkim.fix.value == RECORD


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("v=DKIM1; k=rsa; p=", "revoked"),
        ("v=DKIM1; k=ed25519; p=abc", "k=ed25519"),
        ("v=DKIM2; p=abc", "not DKIM1"),
        ("v=DKIM1; h=sha1; p=abc", "sha256"),
        ("v=DKIM1; k=rsa", "no p="),
    ],
)
async def test_a_broken_dkim_record_says_why(
    dns: StubDns, tmp_path: Path, record: str, message: str
) -> None:
    dns.txt[f"{SELECTOR}._domainkey.{DOMAIN}"] = [record]

    report = await check_sending_domain(settings_for(dns, tmp_path))

    assert report.findings[1].status is Status.ERROR
    assert message in report.findings[1].summary


async def test_a_long_key_split_into_strings_is_joined(dns: StubDns, tmp_path: Path) -> None:
    """The stub splits records into 255-byte strings, as zone files do: 2048-bit keys are
    longer than one string, and the check must join them."""
    assert len(RECORD) > 255

    report = await check_sending_domain(settings_for(dns, tmp_path))

    assert report.findings[1].found == (RECORD,)


async def test_testing_mode_is_a_warning(dns: StubDns, tmp_path: Path) -> None:
    dns.txt[f"{SELECTOR}._domainkey.{DOMAIN}"] = [RECORD.replace("k=rsa;", "k=rsa; t=y;")]

    report = await check_sending_domain(settings_for(dns, tmp_path))

    assert report.findings[1].status is Status.WARNING


async def test_two_spf_records_are_an_error(dns: StubDns, tmp_path: Path) -> None:
    dns.txt[DOMAIN] = ["v=spf1 mx -all", "v=spf1 include:spf.mtasv.net ~all"]

    report = await check_sending_domain(settings_for(dns, tmp_path))

    spf = report.findings[0]
    assert spf.status is Status.ERROR
    assert "2 SPF records" in spf.summary
    assert len(spf.found) == 2


@pytest.mark.parametrize(
    ("record", "status", "words"),
    [
        ("v=spf1 mx -all", Status.OK, "One SPF record"),
        ("v=spf1 +all", Status.ERROR, "any server"),
        ("v=spf1 mx all", Status.ERROR, "any server"),
        ("v=spf1 mx ?all", Status.WARNING, "neutral"),
        ("v=spf1 mx", Status.WARNING, "without"),
        ("v=spf1 redirect=_spf.herald.test", Status.OK, "One SPF record"),
        ("v=spf1 ptr ~all", Status.WARNING, "ptr"),
        (
            "v=spf1 " + " ".join(f"include:s{n}.test" for n in range(11)) + " -all",
            Status.ERROR,
            "11 DNS lookups",
        ),
        ("V=SPF1 MX -ALL", Status.OK, "One SPF record"),
    ],
)
def test_spf_records_are_judged(record: str, status: Status, words: str) -> None:
    finding = check_spf(Lookup(DOMAIN, records=(record,)), suggestion="v=spf1 mx ~all")

    assert finding.status is status
    assert words in " ".join((finding.summary, *finding.details))


def test_a_domain_that_does_not_exist_has_no_spf() -> None:
    lookup = Lookup(DOMAIN, problem=LookupProblem.NO_SUCH_NAME)

    finding = check_spf(lookup, suggestion="v=spf1 mx ~all")

    assert finding.status is Status.MISSING
    assert "does not exist" in finding.summary


GOOD_DOMAINS = Domains(from_domain=DOMAIN, spf_domain=DOMAIN, dkim_domain=DOMAIN)


@pytest.mark.parametrize(
    ("records", "domains", "status", "words"),
    [
        (["v=DMARC1; p=reject; rua=mailto:d@herald.test"], GOOD_DOMAINS, Status.OK, "p=reject"),
        (
            ["v=DMARC1; p=none; rua=mailto:d@herald.test"],
            GOOD_DOMAINS,
            Status.WARNING,
            "only monitors",
        ),
        (["v=DMARC1; p=quarantine"], GOOD_DOMAINS, Status.WARNING, "No rua="),
        (["v=DMARC1; rua=mailto:d@herald.test"], GOOD_DOMAINS, Status.ERROR, "no valid p="),
        (["v=DMARC1; p=reject", "v=DMARC1; p=none"], GOOD_DOMAINS, Status.ERROR, "2 DMARC records"),
        (
            ["v=DMARC1; p=reject; rua=mailto:d@herald.test"],
            Domains(from_domain=DOMAIN, spf_domain="bounce.relay.test", dkim_domain=DOMAIN),
            Status.WARNING,
            "SPF cannot pass DMARC; DKIM still can",
        ),
        (
            ["v=DMARC1; p=reject; rua=mailto:d@herald.test"],
            Domains(from_domain=DOMAIN, spf_domain="relay.test", dkim_domain="relay.test"),
            Status.ERROR,
            "DKIM cannot pass DMARC",
        ),
        (
            ["v=DMARC1; p=reject; adkim=s; aspf=s; rua=mailto:d@herald.test"],
            Domains(
                from_domain=DOMAIN, spf_domain="mail.herald.test", dkim_domain="mail.herald.test"
            ),
            Status.ERROR,
            "under adkim=s",
        ),
        (
            ["v=DMARC1; p=reject; rua=mailto:d@herald.test"],
            Domains(
                from_domain=DOMAIN, spf_domain="mail.herald.test", dkim_domain="mail.herald.test"
            ),
            Status.OK,
            "p=reject",
        ),
    ],
)
def test_dmarc_records_and_alignment_are_judged(
    records: list[str], domains: Domains, status: Status, words: str
) -> None:
    finding = check_dmarc([Lookup(f"_dmarc.{DOMAIN}", records=tuple(records))], domains)

    assert finding.status is status, finding
    assert words in " ".join((finding.summary, *finding.details))


async def test_dmarc_of_a_subdomain_falls_back_to_the_organizational_domain(
    dns: StubDns, tmp_path: Path
) -> None:
    dns.txt[f"_dmarc.{DOMAIN}"] = ["v=DMARC1; p=none; sp=reject; rua=mailto:d@herald.test"]
    dns.txt[f"news.{DOMAIN}"] = ["v=spf1 mx -all"]
    settings = settings_for(
        dns,
        tmp_path,
        sender=f"news@news.{DOMAIN}",
        dkim={
            "selector": SELECTOR,
            "domain": DOMAIN,
            "private_key_file": str(tmp_path / "dkim.pem"),
        },
    )

    report = await check_sending_domain(settings)

    dmarc = report.findings[2]
    assert dns.queries.count(f"_dmarc.news.{DOMAIN}") == 1
    assert dmarc.name == f"_dmarc.{DOMAIN}"
    assert dmarc.status is Status.OK  # sp= applies to the subdomain
    assert "organizational domain" in dmarc.summary


async def test_spf_is_checked_where_the_bounce_address_is(dns: StubDns, tmp_path: Path) -> None:
    dns.txt[f"bounces.{DOMAIN}"] = ["v=spf1 a:smtp.herald.test -all"]
    smtp = {"host": "smtp.herald.test", "bounce_address": f"b@bounces.{DOMAIN}"}

    report = await check_sending_domain(settings_for(dns, tmp_path, smtp=smtp))

    assert report.domains.spf_domain == f"bounces.{DOMAIN}"
    assert report.findings[0].name == f"bounces.{DOMAIN}"
    assert report.status is Status.OK  # relaxed alignment: same organizational domain


async def test_dns_that_does_not_answer_is_unknown_within_the_time_limit(
    dns: StubDns, tmp_path: Path
) -> None:
    dns.silent.add(DOMAIN)
    dns.servfail.add(f"_dmarc.{DOMAIN}")

    started = monotonic()
    report = await check_sending_domain(settings_for(dns, tmp_path))

    assert monotonic() - started < 5  # one shared limit of 1 s, not one per query
    spf, dkim, dmarc = report.findings
    assert spf.status is Status.UNKNOWN
    assert "no answer in time" in spf.summary
    assert dkim.status is Status.OK
    assert dmarc.status is Status.UNKNOWN
    assert "DNS failure" in dmarc.summary


async def test_a_malformed_answer_is_ignored_until_the_time_limit(
    dns: StubDns, tmp_path: Path
) -> None:
    """dnspython drops a reply that is no DNS message (as it drops a forged one) and keeps
    waiting for a real answer: the lookup ends as unanswered, never as records."""
    dns.garbage.add(DOMAIN)

    lookup = await TxtResolver(settings_for(dns, tmp_path).dns).txt(DOMAIN)

    assert lookup.problem is LookupProblem.TIMEOUT
    assert lookup.records == ()


async def test_nothing_listening_is_unknown(tmp_path: Path) -> None:
    with stub_dns() as dns:
        settings = settings_for(dns, tmp_path)
    # The stub has stopped: its port answers nothing.

    report = await check_sending_domain(settings)

    assert {finding.status for finding in report.findings} <= {Status.UNKNOWN}


async def test_without_dkim_configured_it_says_how(dns: StubDns, tmp_path: Path) -> None:
    report = await check_sending_domain(settings_for(dns, tmp_path, dkim={}))

    dkim = report.findings[1]
    assert dkim.status is Status.WARNING
    assert "HERALD_EMAIL__DKIM__SELECTOR" in dkim.summary
    assert report.domains.dkim_domain is None
    assert f"{SELECTOR}._domainkey.{DOMAIN}" not in dns.queries


async def test_postmark_suggests_its_include(dns: StubDns, tmp_path: Path) -> None:
    dns.txt.pop(DOMAIN)
    settings = settings_for(dns, tmp_path, provider="postmark", postmark={"server_token": "t"})

    report = await check_sending_domain(settings)

    spf, dkim, _ = report.findings
    assert spf.fix is not None
    assert "include:spf.mtasv.net" in spf.fix.value
    assert dkim.status is Status.UNKNOWN
    assert "Postmark" in dkim.summary


async def test_concurrent_checks_share_nothing(dns: StubDns, tmp_path: Path) -> None:
    settings = settings_for(dns, tmp_path)

    reports = await asyncio.gather(*(check_sending_domain(settings) for _ in range(20)))

    assert {report.status for report in reports} == {Status.OK}


async def test_a_hostile_answer_is_bounded(dns: StubDns, tmp_path: Path) -> None:
    dns.txt[DOMAIN] = [f"junk {n} " + "x" * 200 for n in range(30)]

    lookup = await TxtResolver(settings_for(dns, tmp_path).dns).txt(DOMAIN)

    assert len(lookup.records) == 20


def test_same_key_accepts_both_encodings() -> None:
    public = KEY.public_key()
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pkcs1 = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    expected = base64.b64encode(spki).decode()

    assert same_key(base64.b64encode(pkcs1).decode(), expected)
    assert not same_key("not base64!", expected)
    assert not same_key(base64.b64encode(b"garbage").decode(), expected)


def test_tags_and_domains() -> None:
    assert tags("v=DKIM1; k=rsa;\tp=ab cd ;") == {"v": "DKIM1", "k": "rsa", "p": "abcd"}
    assert organizational_domain("news.herald.test") == "herald.test"
    assert organizational_domain("news.example.co.uk") == "example.co.uk"


@pytest.mark.parametrize(
    ("server", "parsed"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
    ],
)
def test_nameservers_parse(server: str, parsed: tuple[str, int]) -> None:
    assert parse_nameserver(server) == parsed


@pytest.mark.parametrize(
    "server", ["dns.google", "1.2.3.4:0", "1.2.3.4:99999", "1.2.3.4:" + "9" * 5000]
)
def test_bad_nameservers_are_refused(server: str) -> None:
    with pytest.raises(ValueError, match="HERALD_DNS__NAMESERVERS"):
        parse_nameserver(server)
