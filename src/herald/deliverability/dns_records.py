"""The sending domain's SPF, DKIM and DMARC records, judged: what is there, what is wrong,
and the record to publish, in plain words. Pure: TXT lookups in, findings out (the
lookups are :mod:`herald.deliverability.resolver`'s, the wiring
:mod:`herald.deliverability.sending_domain`'s).

Mailbox providers (Gmail and Yahoo's bulk-sender rules, 2024) want SPF or DKIM to pass
for a domain that *aligns* with the From address (DMARC), and a DMARC record. Without a
public suffix list, the organizational domain of relaxed alignment is approximated by
the last two labels (three under a country's second level such as ``co.uk``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class LookupProblem(StrEnum):
    NO_SUCH_NAME = "no such name"  # NXDOMAIN
    NO_RECORDS = "no TXT record"  # the name exists, without TXT records
    TIMEOUT = "no answer in time"
    FAILED = "DNS failure"  # SERVFAIL, REFUSED, no name server, a bad name


@dataclass(frozen=True, slots=True)
class Lookup:
    """One TXT query: the records (each record's strings joined), or why there are none."""

    name: str
    records: tuple[str, ...] = ()
    problem: LookupProblem | None = None
    detail: str = ""

    @property
    def unanswered(self) -> bool:
        return self.problem in (LookupProblem.TIMEOUT, LookupProblem.FAILED)


class Status(IntEnum):
    """Worst last, so ``max`` of findings is the overall state."""

    OK = 0
    UNKNOWN = 1  # DNS did not answer: nothing is known
    WARNING = 2
    MISSING = 3
    ERROR = 4

    @property
    def label(self) -> str:
        return {0: "OK", 1: "Unknown", 2: "Warning", 3: "Missing", 4: "Error"}[self.value]


@dataclass(frozen=True, slots=True)
class Fix:
    """A TXT record to publish."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # SPF, DKIM, DMARC
    status: Status
    name: str  # the DNS name looked at
    summary: str
    details: tuple[str, ...] = ()
    found: tuple[str, ...] = ()
    fix: Fix | None = None


_SPF = re.compile(r"v=spf1(\s|$)", re.IGNORECASE)
_DMARC = re.compile(r"v\s*=\s*DMARC1\s*(;|$)", re.IGNORECASE)
_SPF_LOOKUP_TERMS = re.compile(r"[+?~-]?(include:|a\b|a:|a/|mx\b|mx:|mx/|ptr|exists:|redirect=)")
MAX_SPF_LOOKUPS = 10
_COUNTRY_SECOND_LEVEL = frozenset({"ac", "co", "com", "edu", "gov", "ne", "net", "or", "org"})


def organizational_domain(domain: str) -> str:
    labels = domain.lower().rstrip(".").split(".")
    keep = 2
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _COUNTRY_SECOND_LEVEL:
        keep = 3
    return ".".join(labels[-keep:])


def aligned(domain: str, from_domain: str, *, strict: bool) -> bool:
    if domain.lower() == from_domain.lower():
        return True
    return not strict and organizational_domain(domain) == organizational_domain(from_domain)


def dmarc_names(from_domain: str) -> list[str]:
    """Where receivers look for the policy: the From domain, then its organizational one."""
    names = [f"_dmarc.{from_domain}"]
    org = organizational_domain(from_domain)
    if org != from_domain:
        names.append(f"_dmarc.{org}")
    return names


def tags(record: str) -> dict[str, str]:
    """``k=v; k=v`` (DKIM, DMARC) as a dict, names lower case, whitespace dropped."""
    parsed: dict[str, str] = {}
    for part in record.split(";"):
        name, equals, value = part.partition("=")
        if equals and name.strip():
            parsed.setdefault(name.strip().lower(), re.sub(r"\s+", "", value))
    return parsed


def _unanswered(check: str, lookup: Lookup) -> Finding:
    return Finding(
        check,
        Status.UNKNOWN,
        lookup.name,
        f"DNS gave no answer for {lookup.name} ({lookup.problem}): nothing could be checked. "
        f"Try again; if it persists, check the DNS servers Herald asks (HERALD_DNS__NAMESERVERS).",
        details=(lookup.detail,) if lookup.detail else (),
    )


def check_spf(lookup: Lookup, *, suggestion: str) -> Finding:
    """The SPF record of the envelope sender's domain (where SPF is checked)."""
    if lookup.unanswered:
        return _unanswered("SPF", lookup)
    domain = lookup.name
    spf = tuple(record for record in lookup.records if _SPF.match(record.strip()))
    fix = Fix(domain, suggestion)
    if not spf:
        why = "the domain does not exist in DNS" if lookup.problem else "it has no SPF record"
        return Finding(
            "SPF",
            Status.MISSING,
            domain,
            f"No SPF record: {why}, so receivers cannot tell which servers may send as {domain}.",
            details=("Add one TXT record naming the servers that send your mail.",),
            found=lookup.records,
            fix=fix,
        )
    if len(spf) > 1:
        return Finding(
            "SPF",
            Status.ERROR,
            domain,
            f"{len(spf)} SPF records: receivers treat this as a permanent error (RFC 7208) and "
            f"SPF fails for every message. Merge them into one record.",
            found=spf,
            fix=fix,
        )
    return _judge_spf(domain, spf[0], fix)


def _judge_spf(domain: str, record: str, fix: Fix) -> Finding:
    terms = record.lower().split()[1:]
    alls = [term for term in terms if term.lstrip("+?~-") == "all"]
    lookups = sum(1 for term in terms if _SPF_LOOKUP_TERMS.match(term))
    problems: list[tuple[Status, str]] = []
    if alls and alls[-1] in ("all", "+all"):
        problems.append((Status.ERROR, "'+all' lets any server on the internet send as you."))
    elif alls and alls[-1] == "?all":
        problems.append((Status.WARNING, "'?all' is neutral: other servers are not failed."))
    elif not alls and not any(term.startswith("redirect=") for term in terms):
        problems.append((Status.WARNING, "It ends without '~all' or '-all'."))
    if lookups > MAX_SPF_LOOKUPS:
        problems.append(
            (
                Status.ERROR,
                f"It needs {lookups} DNS lookups at its top level alone; over "
                f"{MAX_SPF_LOOKUPS}, SPF fails with a permanent error.",
            )
        )
    if any(term.lstrip("+?~-").startswith("ptr") for term in terms):
        problems.append((Status.WARNING, "'ptr' is slow and discouraged (RFC 7208 5.5)."))
    if not problems:
        return Finding(
            "SPF",
            Status.OK,
            domain,
            "One SPF record. Make sure it names your mail server or provider.",
            found=(record,),
        )
    status = max(status for status, _ in problems)
    return Finding(
        "SPF",
        status,
        domain,
        "The SPF record has problems.",
        details=tuple(text for _, text in problems),
        found=(record,),
        fix=fix,
    )


def check_dkim(  # noqa: PLR0911 - one return per state of the record
    lookup: Lookup, *, expected: Fix | None, signing: bool
) -> Finding:
    """The public key at ``selector._domainkey.domain`` against the configured key."""
    if expected is None or not signing:
        return Finding(
            "DKIM",
            Status.WARNING,
            lookup.name,
            "Herald does not sign with DKIM (HERALD_EMAIL__DKIM__SELECTOR is not set).",
            details=(
                "If your provider or relay signs for your domain, check its DKIM record in "
                "its settings. Otherwise create a key (openssl genrsa -out dkim.pem 2048), set "
                "HERALD_EMAIL__DKIM__SELECTOR and HERALD_EMAIL__DKIM__PRIVATE_KEY_FILE, "
                "restart, and this page shows the record to publish.",
            ),
        )
    if lookup.unanswered:
        return _unanswered("DKIM", lookup)
    if not lookup.records:
        return Finding(
            "DKIM",
            Status.MISSING,
            lookup.name,
            "The DKIM public key is not published, so every signature Herald makes fails.",
            details=("Publish this TXT record (long keys may be split into several strings).",),
            fix=expected,
        )
    if len(lookup.records) > 1:
        return Finding(
            "DKIM",
            Status.ERROR,
            lookup.name,
            f"{len(lookup.records)} TXT records at the selector: receivers may take any of "
            f"them. Keep only the one below.",
            found=lookup.records,
            fix=expected,
        )
    record = lookup.records[0]
    problem = _dkim_problem(tags(record), tags(expected.value)["p"])
    if problem:
        return Finding("DKIM", Status.ERROR, lookup.name, problem, found=(record,), fix=expected)
    if "y" in tags(record).get("t", "").split(":"):
        return Finding(
            "DKIM",
            Status.WARNING,
            lookup.name,
            "The key matches, but t=y marks it as testing: receivers may ignore signatures.",
            found=(record,),
            fix=expected,
        )
    return Finding(
        "DKIM", Status.OK, lookup.name, "The published key is Herald's key.", found=(record,)
    )


def _dkim_problem(record: dict[str, str], expected_key: str) -> str | None:  # noqa: PLR0911
    if record.get("v", "DKIM1") != "DKIM1":
        return "The record's v= is not DKIM1, so receivers ignore it."
    if record.get("k", "rsa").lower() != "rsa":
        return f"The record is a k={record['k']} key; Herald signs with RSA."
    if "h" in record and "sha256" not in record["h"].lower().split(":"):
        return "The record's h= does not allow sha256, which Herald signs with."
    published = record.get("p")
    if published is None:
        return "The record has no p= (public key)."
    if published == "":
        return "The key is revoked (empty p=)."
    if not same_key(published, expected_key):
        return (
            "The published key is not the key Herald signs with: every signature fails. "
            "Replace the record (or point HERALD_EMAIL__DKIM__PRIVATE_KEY_FILE at its key)."
        )
    return None


def same_key(published: str, expected: str) -> bool:
    """Whether two ``p=`` values are one RSA key (SubjectPublicKeyInfo or PKCS#1)."""
    keys = []
    for value in (published, expected):
        try:
            der = base64.b64decode(value, validate=True)
            key = serialization.load_der_public_key(der)
        except (binascii.Error, ValueError):
            return False
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        keys.append(key.public_numbers())
    return keys[0] == keys[1]


@dataclass(frozen=True, slots=True)
class Domains:
    """Which domain each mechanism is judged for."""

    from_domain: str  # the From address's: what DMARC protects
    spf_domain: str  # the envelope sender's (return path): what SPF checks
    dkim_domain: str | None  # d= of Herald's signature; None: Herald does not sign


def check_dmarc(lookups: Sequence[Lookup], domains: Domains) -> Finding:
    """The policy at ``_dmarc.<From domain>`` (or its organizational domain), and whether
    the domains SPF and DKIM vouch for align with the From domain."""
    first = lookups[0]
    suggestion = Fix(
        first.name, f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domains.from_domain}"
    )
    found: Lookup | None = None
    for lookup in lookups:
        if lookup.unanswered:
            return _unanswered("DMARC", lookup)
        if any(_DMARC.match(record.strip()) for record in lookup.records):
            found = lookup
            break
    if found is None:
        return Finding(
            "DMARC",
            Status.MISSING,
            first.name,
            "No DMARC record. Gmail and Yahoo require one from bulk senders, and without it "
            "anyone can send mail that claims to be from your domain.",
            details=(
                "Start with p=none and read the reports; move to p=quarantine once all your "
                "mail passes.",
            ),
            fix=suggestion,
        )
    dmarc = tuple(record for record in found.records if _DMARC.match(record.strip()))
    if len(dmarc) > 1:
        return Finding(
            "DMARC",
            Status.ERROR,
            found.name,
            f"{len(dmarc)} DMARC records: receivers apply none of them. Keep one.",
            found=dmarc,
            fix=suggestion,
        )
    return _judge_dmarc(found.name, dmarc[0], domains, suggestion)


def _judge_dmarc(name: str, record: str, domains: Domains, suggestion: Fix) -> Finding:
    values = tags(record)
    subdomain = name != f"_dmarc.{domains.from_domain}"
    policy = (values.get("sp") if subdomain else None) or values.get("p", "")
    notes: list[tuple[Status, str]] = []
    if policy.lower() not in ("none", "quarantine", "reject"):
        notes.append((Status.ERROR, "The record has no valid p= policy, so it is ignored."))
    elif policy.lower() == "none":
        notes.append(
            (
                Status.WARNING,
                "p=none only monitors: mail that fails DMARC is still delivered. Move to "
                "p=quarantine, then p=reject, once reports show all your mail passes.",
            )
        )
    if "rua" not in values:
        notes.append((Status.WARNING, "No rua= address: you get no reports of who sends as you."))
    notes += _alignment(values, domains)
    status = max((status for status, _ in notes), default=Status.OK)
    where = f" (found at the organizational domain, {name})" if subdomain else ""
    return Finding(
        "DMARC",
        status,
        name,
        f"Policy p={policy or '(none)'}{where}.",
        details=tuple(text for _, text in notes),
        found=(record,),
        fix=suggestion if status >= Status.ERROR else None,
    )


def _alignment(values: dict[str, str], domains: Domains) -> list[tuple[Status, str]]:
    strict_dkim = values.get("adkim", "r").lower() == "s"
    strict_spf = values.get("aspf", "r").lower() == "s"
    spf_ok = aligned(domains.spf_domain, domains.from_domain, strict=strict_spf)
    dkim_ok = domains.dkim_domain is not None and aligned(
        domains.dkim_domain, domains.from_domain, strict=strict_dkim
    )
    notes: list[tuple[Status, str]] = []
    if domains.dkim_domain is not None and not dkim_ok:
        notes.append(
            (
                Status.ERROR if not spf_ok else Status.WARNING,
                f"Herald signs as d={domains.dkim_domain}, which does not align with the From "
                f"domain {domains.from_domain}"
                f"{' under adkim=s' if strict_dkim else ''}: DKIM cannot pass DMARC.",
            )
        )
    if not spf_ok:
        notes.append(
            (
                Status.WARNING if dkim_ok else Status.ERROR,
                f"The envelope sender's domain {domains.spf_domain} does not align with "
                f"{domains.from_domain}: SPF cannot pass DMARC"
                f"{'; DKIM still can' if dkim_ok else ''}.",
            )
        )
    return notes
