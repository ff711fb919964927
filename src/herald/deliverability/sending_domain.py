"""The sending-domain check of /admin/settings/deliverability: which domains the
configuration sends as, their SPF, DKIM and DMARC records looked up at once, judged by
:mod:`herald.deliverability.dns_records`.

- DMARC protects the From address's domain (``HERALD_EMAIL__SENDER``);
- SPF is checked for the envelope sender's domain: the VERP bounce address's
  (``HERALD_EMAIL__SMTP__BOUNCE_ADDRESS``) over SMTP when set, else the sender's;
- DKIM is Herald's own signature on the SMTP path (``HERALD_EMAIL__DKIM__…``): its
  public key must be the configured key's. Postmark signs with keys of its own, which
  this page cannot see.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from herald.core.config import ProviderName, Settings
from herald.core.errors import ConfigurationError
from herald.deliverability.dns_records import (
    Domains,
    Finding,
    Fix,
    Lookup,
    Status,
    check_dkim,
    check_dmarc,
    check_spf,
    dmarc_names,
)
from herald.deliverability.resolver import TxtResolver
from herald.email.dkim import DkimSigner, sender_domain

POSTMARK_SPF_INCLUDE = "spf.mtasv.net"


@dataclass(frozen=True, slots=True)
class DomainReport:
    domains: Domains
    sender: str
    provider: str
    sender_configured: bool  # else the development default
    findings: tuple[Finding, ...]

    @property
    def status(self) -> Status:
        return max(finding.status for finding in self.findings)


async def check_sending_domain(
    settings: Settings, resolver: TxtResolver | None = None
) -> DomainReport:
    """Look the records up (concurrently, within ``HERALD_DNS__TIMEOUT_SECONDS``) and judge."""
    resolver = resolver or TxtResolver(settings.dns)
    email = settings.email
    smtp = email.provider is ProviderName.SMTP
    from_domain = sender_domain(settings.sender) or "localhost"
    bounce = email.smtp.bounce_address if smtp else None
    try:
        signer = DkimSigner.from_settings(email) if smtp else None
    except ConfigurationError as exc:  # the key file changed since start-up
        signer, key_problem = None, str(exc)
    else:
        key_problem = ""
    domains = Domains(
        from_domain=from_domain,
        spf_domain=sender_domain(bounce) or from_domain,
        dkim_domain=signer.domain if signer else None,
    )
    names = [domains.spf_domain, *dmarc_names(from_domain)]
    if signer is not None:
        names.append(signer.record_name)
    found = dict(zip(names, await asyncio.gather(*(resolver.txt(n) for n in names)), strict=True))
    dmarc = [found[name] for name in dmarc_names(from_domain)]
    findings = (
        check_spf(found[domains.spf_domain], suggestion=spf_suggestion(settings)),
        _dkim(settings, signer, found, key_problem),
        check_dmarc(dmarc, domains),
    )
    return DomainReport(
        domains=domains,
        sender=settings.sender,
        provider=email.provider.value,
        sender_configured=email.sender is not None,
        findings=findings,
    )


def _dkim(
    settings: Settings, signer: DkimSigner | None, found: dict[str, Lookup], key_problem: str
) -> Finding:
    if key_problem:
        return Finding("DKIM", Status.ERROR, "(the configured key)", key_problem)
    if settings.email.provider is ProviderName.POSTMARK:
        return Finding(
            "DKIM",
            Status.UNKNOWN,
            "(Postmark's selector)",
            "Postmark signs your mail with a DKIM key of its own: check that your domain "
            "shows DKIM as verified in Postmark (Sender Signatures, or Domains).",
        )
    if signer is None:
        return check_dkim(Lookup("(not configured)"), expected=None, signing=False)
    expected = Fix(signer.record_name, signer.record)
    return check_dkim(found[signer.record_name], expected=expected, signing=True)


def spf_suggestion(settings: Settings) -> str:
    """A starting point for the SPF record: the relay Herald sends through."""
    email = settings.email
    if email.provider is ProviderName.POSTMARK:
        return f"v=spf1 a mx include:{POSTMARK_SPF_INCLUDE} ~all"
    host = email.smtp.host if email.provider is ProviderName.SMTP else None
    if not host:
        return "v=spf1 a mx ~all"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"v=spf1 a mx a:{host} ~all"
    return f"v=spf1 a mx ip{address.version}:{address} ~all"
