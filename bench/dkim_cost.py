"""What DKIM signing costs per message on the SMTP path, and what it does to the worker's
event loop.

1. CPU per message, no I/O: P1's issue and the large fixture issue
   (tests/fixtures/emails/every_construct.md) rendered for 500 readers as the worker does
   (``IssueDeliveries._render_batch``), then ``render_mime`` alone, ``render_mime`` +
   ``DkimSigner.sign`` (2048-bit RSA), and dkimpy's own ``dkim.sign`` for comparison; the
   best of ``--rounds`` rounds (process time).
2. The event loop: ``SmtpProvider`` (8 connections) sends ``--messages`` messages to an
   aiosmtpd sink running in a thread of its own, one message per call and 32 calls at
   once as the worker does, with and without DKIM, while a ticker on the provider's loop
   asks to wake every millisecond; its lateness (p50, p99, max) is how long the loop
   was held by something else: rendering, signing, aiosmtplib.

    .venv/bin/python bench/dkim_cost.py [--rounds 10] [--messages 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import dkim  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from tests.support.database import free_port  # noqa: E402

from _batch import issue_batch  # noqa: E402
from herald.core.config import EmailSettings, Settings, SmtpSettings  # noqa: E402
from herald.core.dkim_config import DkimSettings  # noqa: E402
from herald.email.dkim import DkimSigner  # noqa: E402
from herald.email.message import EmailMessage  # noqa: E402
from herald.email.smtp import SmtpProvider, render_mime  # noqa: E402
from herald.issues import repository  # noqa: E402
from herald.issues.domain import IssueContent  # noqa: E402
from publish import ISSUE  # noqa: E402

BATCH = 500
SEND_CONCURRENCY = 32  # HERALD_DELIVERY__SEND_CONCURRENCY's default
SENDER = "Herald News <news@example.com>"
FIXTURE = ROOT / "tests" / "fixtures" / "emails" / "every_construct.md"


def rendered(settings: Settings, issue: IssueContent) -> list[EmailMessage]:
    """500 readers' copies of ``issue``, as a worker renders them."""
    issue_id = uuid.uuid4()
    data = repository.RenderData(id=issue_id, title=issue.title, html=issue.html, text=issue.text)
    work = issue_batch(settings, issue_id, BATCH)
    messages: list[EmailMessage] = work.deliveries._render_batch(
        work.batch, {issue_id: data}, work.recipients
    )
    return messages


def best(rounds: int, work: Any) -> float:
    fastest = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        work()
        fastest = min(fastest, time.process_time() - started)
    return fastest


def cpu_costs(
    name: str, messages: list[EmailMessage], signer: DkimSigner, pem: bytes, rounds: int
) -> None:
    raws = [render_mime(m, message_id=f"<{n}@example.com>") for n, m in enumerate(messages)]
    render = best(rounds, lambda: [render_mime(m, message_id="<1@example.com>") for m in messages])
    sign = best(rounds, lambda: [signer.sign(raw) for raw in raws])
    sample = raws[:50]
    dkimpy = best(
        max(1, rounds // 5),
        lambda: [
            dkim.sign(raw, b"herald", b"example.com", pem, canonicalize=(b"relaxed", b"relaxed"))
            for raw in sample
        ],
    )
    size = statistics.mean(len(raw) for raw in raws) / 1024
    print(
        f"{name}: {size:.1f} KiB per message; render_mime {render / BATCH * 1e6:.0f} us, "
        f"DkimSigner.sign {sign / BATCH * 1e6:.0f} us, dkimpy's dkim.sign "
        f"{dkimpy / len(sample) * 1e6:.0f} us per message"
    )


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, _server: Any, _session: Any, _envelope: Any) -> str:  # noqa: N802
        self.count += 1
        return "250 OK"


async def loop_lag(messages: list[EmailMessage], settings: EmailSettings, total: int) -> str:
    provider = SmtpProvider(settings)
    late: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            asked = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append(time.perf_counter() - asked - 0.001)

    sending = asyncio.Semaphore(SEND_CONCURRENCY)

    async def send(message: EmailMessage) -> None:
        async with sending:  # as delivery/batch.py: one message per call, 32 calls at once
            await provider.send_batch([message])

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    await asyncio.gather(*(send(messages[n % len(messages)]) for n in range(total)))
    elapsed = time.perf_counter() - started
    done.set()
    await tick
    await provider.aclose()
    late.sort()
    p50, p99 = late[len(late) // 2] * 1e3, late[int(len(late) * 0.99)] * 1e3
    return (
        f"{total / elapsed:,.0f} messages/s; loop lateness p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms, max {late[-1] * 1e3:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    signer = DkimSigner("herald", "example.com", key)
    settings = Settings(  # type: ignore[call-arg]
        database_url="postgresql://bench@localhost/bench",
        base_url="https://news.example.com",
        secret_key="s" * 48,
        email={"sender": SENDER},
    )
    large = IssueContent.parse(
        title="Issue 42: every construct", markdown=FIXTURE.read_text(encoding="utf-8")
    )
    p1 = rendered(settings, ISSUE)
    cpu_costs("P1 issue", p1, signer, pem, args.rounds)
    cpu_costs("large issue", rendered(settings, large), signer, pem, args.rounds)

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        port = controller.port
        smtp = SmtpSettings(host="127.0.0.1", port=port, tls="none", pool_size=8)
        plain = EmailSettings(provider="smtp", sender=SENDER, smtp=smtp)
        signed = EmailSettings(
            provider="smtp",
            sender=SENDER,
            smtp=smtp,
            dkim=DkimSettings(selector="herald", private_key=SecretStr(pem.decode())),
        )
        for name, config in (
            ("without DKIM", plain),
            ("with DKIM", signed),
            ("without DKIM", plain),
            ("with DKIM", signed),
        ):
            print(f"SMTP, P1 issue, {name}: {asyncio.run(loop_lag(p1, config, args.messages))}")
    finally:
        controller.stop()
    print(f"the sink accepted {sink.count:,} messages")


if __name__ == "__main__":
    main()
