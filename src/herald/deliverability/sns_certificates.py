"""SNS signing certificates: fetched over https, bounded, cached (:class:`SigningCertificates`).

Only URLs :func:`herald.deliverability.sns.allowed_url` accepts are fetched (the verifier
checks before it asks). No redirects, a timeout, at most 64 KiB; a bounded cache by URL,
least recently used out first, a certificate kept until it expires; one fetch per URL
however many messages wait for it (not cancelled with the request that started it); a
failed fetch remembered for a minute. The HTTP connector is injectable: the tests point
the allow-listed host at a local server and trust its CA, never a looser allow-list.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from herald.core.errors import Forbidden, Unavailable

CERTIFICATE_MAX_BYTES = 64 * 1024
CERTIFICATE_CACHE_SIZE = 64
FAILURE_MEMORY_SECONDS = 60.0


ConnectorFactory = Callable[[], aiohttp.BaseConnector]


def _default_connector() -> aiohttp.BaseConnector:
    return aiohttp.TCPConnector(limit=4)  # the system's CA store: real certificate checks


class SigningCertificates:
    """SNS signing certificates by URL: fetched once over https, kept (bounded, least
    recently used out first) until they expire; a failed fetch is remembered for a
    minute, so forged messages naming a missing .pem do not make Herald fetch it again
    and again. Only URLs :func:`allowed_url` accepts are fetched: the caller checks."""

    def __init__(
        self,
        *,
        timeout_seconds: float = 10.0,
        connector: ConnectorFactory = _default_connector,
        capacity: int = CERTIFICATE_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._connector = connector
        self._capacity = capacity
        self._clock = clock
        self._keys: OrderedDict[str, tuple[rsa.RSAPublicKey, datetime]] = OrderedDict()
        self._failures: dict[str, tuple[float, str]] = {}
        self._pending: dict[str, asyncio.Task[rsa.RSAPublicKey]] = {}
        self.fetches = 0  # how many fetches were made (the tests count them)

    async def public_key(self, url: str) -> rsa.RSAPublicKey:
        cached = self._keys.get(url)
        if cached is not None and cached[1] > datetime.now(UTC):
            self._keys.move_to_end(url)
            return cached[0]
        failed = self._failures.get(url)
        if failed is not None and self._clock() - failed[0] < FAILURE_MEMORY_SECONDS:
            raise Unavailable(failed[1], retry_after=int(FAILURE_MEMORY_SECONDS))
        task = self._pending.get(url)
        if task is None:  # one fetch per URL, whoever waits; not cancelled with a request
            task = asyncio.create_task(self._load(url))
            self._pending[url] = task
            task.add_done_callback(self._loaded)
        return await asyncio.shield(task)

    def _loaded(self, task: asyncio.Task[rsa.RSAPublicKey]) -> None:
        self._pending = {url: t for url, t in self._pending.items() if t is not task}
        if not task.cancelled():
            task.exception()  # retrieved here: no warning when no request waits any more

    async def _load(self, url: str) -> rsa.RSAPublicKey:
        try:
            key, expires = await self._fetch(url)
        except (Unavailable, Forbidden) as exc:
            self._remember_failure(url, exc.message)
            raise
        self._keep(url, key, expires)
        return key

    def _remember_failure(self, url: str, message: str) -> None:
        if len(self._failures) >= self._capacity:
            self._failures.clear()
        self._failures[url] = (self._clock(), message)

    def _keep(self, url: str, key: rsa.RSAPublicKey, expires: datetime) -> None:
        self._keys[url] = (key, expires)
        self._keys.move_to_end(url)
        while len(self._keys) > self._capacity:
            self._keys.popitem(last=False)
        self._failures.pop(url, None)

    async def fetch(self, url: str, max_bytes: int) -> bytes:
        """GET ``url`` with this store's connector and timeout (see :func:`fetch_bounded`)."""
        return await fetch_bounded(url, self._connector, self._timeout, max_bytes)

    async def _fetch(self, url: str) -> tuple[rsa.RSAPublicKey, datetime]:
        self.fetches += 1
        pem = await self.fetch(url, CERTIFICATE_MAX_BYTES)
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise Forbidden("the SNS signing certificate is not a PEM certificate") from exc
        now = datetime.now(UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Forbidden("the SNS signing certificate is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Forbidden("the SNS signing certificate does not hold an RSA key")
        return key, certificate.not_valid_after_utc


async def fetch_bounded(
    url: str, connector: ConnectorFactory, timeout: aiohttp.ClientTimeout, max_bytes: int
) -> bytes:
    """GET ``url`` (no redirects): its body, at most ``max_bytes``; Unavailable otherwise."""
    try:
        async with (
            aiohttp.ClientSession(connector=connector(), timeout=timeout) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise Unavailable(f"{_where(url)} answered {response.status}")
            if (response.content_length or 0) > max_bytes:
                raise Unavailable(f"{_where(url)} sent more than {max_bytes} bytes")
            body = bytearray()
            async for chunk in response.content.iter_chunked(16 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    raise Unavailable(f"{_where(url)} sent more than {max_bytes} bytes")
            return bytes(body)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Unavailable(f"{_where(url)} could not be fetched ({type(exc).__name__})") from exc


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"https://{parts.hostname}{parts.path}"  # never the query (a SubscribeURL token)
