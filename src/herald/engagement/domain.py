"""Engagement tracking's rules: which opens and clicks a machine made, and an issue's
results. No I/O.

**Machine opens and clicks** are counted apart from people's, by heuristics that are
guesses, not proofs (there is no reliable signal, and the tests cover exactly these):

* *Apple Mail Privacy Protection* fetches every image of a message through Apple's proxy
  when the message reaches the device, read or not. Its fetcher sends the bare user agent
  ``Mozilla/5.0`` (as ESPs report; a real browser or mail client always says more), and
  Apple's own address block is ``17.0.0.0/8``. An open with that user agent or from that
  block is a machine open. Behind a proxy the client address is only right when
  ``HERALD_FORWARDED_ALLOW_IPS`` names the proxy; Apple's relays outside 17/8 are missed.
* *Link scanners* (corporate mail gateways, Microsoft Safe Links and the like) follow every
  link of a message before the reader sees it. A ``HEAD`` request, an empty user agent, or
  one naming a known scanner, crawler or HTTP library is a machine click (or open).
* *Microsoft Office* checks a link itself (``Microsoft Office …``, ``ms-office`` agents)
  before it hands it to the browser, whose request is the reader's click: a machine click.
  But Outlook for Windows also fetches a message's images itself, with those same agents,
  when its reader opens the message: a person's open.
* *Too soon*: an open or click within :data:`MACHINE_SECONDS` of the provider accepting
  the message (or before Herald recorded the send at all) is counted as a machine's: no
  person reads that fast, while gateways and prefetchers do. The database applies this
  one (it knows the send time), with the threshold given here.

Google's and Yahoo's image proxies fetch when the reader opens the message, so their
fetches count as people's opens. A person reading through Apple Mail with protection on
is never seen: their opens are all machine opens, which is why the machine count is shown
rather than thrown away.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MACHINE_SECONDS = 10.0
APPLE_PROXY_AGENT = "Mozilla/5.0"
_APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
_MACHINE_AGENTS = re.compile(
    r"(?<!cu)bot\b|bot/|crawl|spider|scan|preview|fetch|python|curl|wget|go-http-client|java/|"
    r"okhttp|libwww|httpclient|headless|phantomjs|proofpoint|mimecast|barracuda|"
    r"symantec|messagelabs|trendmicro|fortiguard|ironport|cisco|sophos|zscaler|"
    r"forcepoint|safelinks|outlook-safe",
    re.IGNORECASE,
)
_OFFICE_AGENTS = re.compile(r"microsoft office|ms-office", re.IGNORECASE)
MAX_AGENT = 512  # characters of a user agent looked at


@dataclass(frozen=True, slots=True)
class Hit:
    """What the tracking routes know about a request."""

    user_agent: str
    client_ip: str | None
    head: bool = False


def scanner_agent(user_agent: str) -> bool:
    agent = user_agent[:MAX_AGENT].strip()
    return not agent or _MACHINE_AGENTS.search(agent) is not None


def apple_proxy(hit: Hit) -> bool:
    if hit.user_agent.strip() == APPLE_PROXY_AGENT:
        return True
    if not hit.client_ip:
        return False
    try:
        return ipaddress.ip_address(hit.client_ip) in _APPLE_NETWORK
    except ValueError:
        return False


def machine_open(hit: Hit) -> bool:
    """Whether the request alone shows a machine fetched the pixel (the database adds the
    "too soon after the send" rule)."""
    return hit.head or apple_proxy(hit) or scanner_agent(hit.user_agent)


def machine_click(hit: Hit) -> bool:
    """Whether the request alone shows a machine followed the link (the database adds the
    "too soon after the send" rule)."""
    return (
        hit.head
        or scanner_agent(hit.user_agent)
        or _OFFICE_AGENTS.search(hit.user_agent[:MAX_AGENT]) is not None
    )


@dataclass(frozen=True, slots=True)
class LinkResult:
    url: str
    unique_clicks: int  # readers (deliveries) who clicked it, people only
    clicks: int  # every click of people
    machine_clicks: int  # every click counted as a machine's


@dataclass(frozen=True, slots=True)
class Results:
    """An issue's engagement: None when the issue is not tracked."""

    unique_opens: int
    machine_opens: int  # deliveries whose pixel only a machine fetched, or a machine too
    unique_clickers: int  # readers who clicked any link
    clicks: int
    links: tuple[LinkResult, ...]
    published: bool  # links are fixed (publishing stored them)
