"""A tiny authoritative DNS server on 127.0.0.1 for tests: TXT records from a dict, built
with dnspython's message API, answering over UDP from a thread. Never the internet.

A name in ``txt`` answers its records (each a string, split into 255-byte strings as
zone files do with long DKIM keys); a name in ``empty`` exists without TXT records
(NOERROR, no answer); a name in ``silent`` is never answered (a timeout); a name in
``servfail`` gets SERVFAIL; a name in ``garbage`` gets the query's id and then bytes that
are no DNS message; any other name is NXDOMAIN.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset


@dataclass
class StubDns:
    txt: dict[str, list[str]] = field(default_factory=dict)
    empty: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    servfail: set[str] = field(default_factory=set)
    garbage: set[str] = field(default_factory=set)
    queries: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.queries.append(name)
        if name in self.silent:
            return None
        if name in self.garbage:
            return wire[:2] + b"\x81\x80" + b"\xff" * 40
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name in self.txt and question.rdtype == dns.rdatatype.TXT:
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, dns.rdatatype.TXT)
            for record in self.txt[name]:
                data = record.encode()
                strings = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
                rrset.add(
                    dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings), 300
                )
            response.answer.append(rrset)
        elif name not in self.txt and name not in self.empty:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return bytes(response.to_wire())


@contextmanager
def stub_dns(stub: StubDns | None = None) -> Iterator[StubDns]:
    """Serve ``stub`` on an ephemeral UDP port of 127.0.0.1 until the block ends."""
    stub = stub or StubDns()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stub.port = sock.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = stub.answer(wire)
            if reply is not None:
                sock.sendto(reply, peer)

    thread = threading.Thread(target=serve, name="stub-dns", daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stop.set()
        thread.join(timeout=2)
        sock.close()
