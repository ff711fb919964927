"""TXT lookups for the sending-domain check, with dnspython's asyncio resolver.

The name servers are ``HERALD_DNS__NAMESERVERS`` (tests point them at a stub on
127.0.0.1), else the system's; every lookup of one check shares the time limit
``HERALD_DNS__TIMEOUT_SECONDS``. Nothing is cached here: the page says what DNS says
now. A failure is a :class:`~herald.deliverability.dns_records.Lookup` with its
problem, never an exception.
"""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from herald.core.dkim_config import DnsSettings
from herald.deliverability.dns_records import Lookup, LookupProblem

# What one answer may show: a hostile or broken zone cannot fill the page.
MAX_RECORDS = 20
MAX_RECORD_CHARS = 4096


class TxtResolver:
    def __init__(self, settings: DnsSettings) -> None:
        self._settings = settings
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._problem = ""

    def _get(self) -> dns.asyncresolver.Resolver | None:
        if self._resolver is not None or self._problem:
            return self._resolver
        servers = self._settings.servers()
        try:
            resolver = dns.asyncresolver.Resolver(configure=not servers)
        except dns.exception.DNSException as exc:  # no /etc/resolv.conf (a bare container)
            self._problem = f"no DNS servers: {exc}; set HERALD_DNS__NAMESERVERS"
            return None
        if servers:
            resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in servers]
        resolver.lifetime = self._settings.timeout_seconds
        resolver.timeout = self._settings.timeout_seconds
        resolver.cache = None
        self._resolver = resolver
        return resolver

    async def txt(self, name: str) -> Lookup:  # noqa: PLR0911 - one return per outcome
        resolver = self._get()
        if resolver is None:
            return Lookup(name, problem=LookupProblem.FAILED, detail=self._problem)
        try:
            answer = await resolver.resolve(
                dns.name.from_text(name), dns.rdatatype.TXT, search=False
            )
        except dns.resolver.NXDOMAIN:
            return Lookup(name, problem=LookupProblem.NO_SUCH_NAME)
        except dns.resolver.NoAnswer:
            return Lookup(name, problem=LookupProblem.NO_RECORDS)
        except dns.exception.Timeout:
            seconds = self._settings.timeout_seconds
            return Lookup(name, problem=LookupProblem.TIMEOUT, detail=f"waited {seconds:g} s")
        except dns.resolver.NoNameservers as exc:
            return Lookup(name, problem=LookupProblem.FAILED, detail=_short(str(exc)))
        except dns.exception.DNSException as exc:  # a bad name, a malformed answer
            return Lookup(name, problem=LookupProblem.FAILED, detail=_short(str(exc)))
        records = tuple(
            _short(b"".join(rdata.strings).decode("utf-8", "replace"))
            for rdata in list(answer)[:MAX_RECORDS]
        )
        return Lookup(name, records=records)


def _short(text: str) -> str:
    return text if len(text) <= MAX_RECORD_CHARS else text[:MAX_RECORD_CHARS] + "…"
