"""Password hashing with argon2id, off the event loop and bounded.

Hashing takes tens of milliseconds of CPU and 19 MiB by design. It runs in a
small dedicated thread pool; callers wait (asynchronously) for a slot, so a login
flood queues instead of starving the server of threads or memory. Unknown users
get a verification against a dummy hash so both failures take the same time.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's minimum for argon2id: 19 MiB, 2 iterations, 1 degree of parallelism.
MEMORY_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    needs_rehash: bool = False


class Passwords:
    def __init__(
        self,
        *,
        memory_kib: int = MEMORY_KIB,
        time_cost: int = TIME_COST,
        parallelism: int = PARALLELISM,
        threads: int | None = None,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        size = threads or max(1, min(4, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(size)

    @cached_property
    def _dummy_hash(self) -> str:
        return self._hasher.hash("herald-dummy-password-for-timing")

    async def _run(self, func: object, *args: str) -> object:
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, func, *args)  # type: ignore[arg-type]

    async def hash(self, password: str) -> str:
        result = await self._run(self._hasher.hash, password)
        assert isinstance(result, str)
        return result

    def _verify_sync(self, stored: str, password: str) -> Verification:
        try:
            self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Verification(ok=False)
        return Verification(ok=True, needs_rehash=self._hasher.check_needs_rehash(stored))

    def _verify_unknown_sync(self, password: str) -> Verification:
        self._verify_sync(self._dummy_hash, password)
        return Verification(ok=False)

    async def verify(self, stored: str | None, password: str) -> Verification:
        """Check ``password``; with ``stored=None`` burn the same time and fail."""
        if stored is None:
            await self._run(self._verify_unknown_sync, password)
            return Verification(ok=False)
        result = await self._run(self._verify_sync, stored, password)
        assert isinstance(result, Verification)
        return result

    async def warm_up(self) -> None:
        """Compute the dummy hash now, so the first unknown-user login is not slower."""
        await self._run(lambda: self._dummy_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
