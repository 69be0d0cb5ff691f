"""The warm pool: per language, containers started (agent included) before anyone asks.

Taking one costs nothing but bookkeeping, so ``session.create`` answers in milliseconds
instead of the ~100-200 ms a container start takes. Pooled containers carry the server's
default memory and CPU limits; a request for other limits starts a container of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from codebeaker_client.models import PoolReadiness
from loguru import logger

from codebeaker.exceptions import SandboxError
from codebeaker.sandbox.driver import Driver

__all__ = ["WarmPool"]

RETRY_SECONDS = (1.0, 5.0, 30.0)  # after failed starts: back off, then keep trying slowly

Launch = Callable[[str], Awaitable[Driver]]
Discard = Callable[[Driver], Awaitable[None]]


class WarmPool:
    def __init__(self, sizes: Mapping[str, int], launch: Launch, discard: Discard) -> None:
        self._sizes = {language: size for language, size in sizes.items() if size > 0}
        self._launch = launch
        self._discard = discard
        self._ready: dict[str, deque[Driver]] = {language: deque() for language in self._sizes}
        self._fillers: dict[str, asyncio.Task[None]] = {}
        self._chores: set[asyncio.Task[None]] = set()
        self._closed = False

    def readiness(self) -> dict[str, PoolReadiness]:
        """Per pooled language: containers waiting, and how many there should be."""
        return {
            language: PoolReadiness(ready=len(self._ready[language]), size=size)
            for language, size in self._sizes.items()
        }

    def start(self) -> None:
        for language in self._sizes:
            self._refill(language)

    def take(self, language: str) -> Driver | None:
        """A ready driver, or None; the pool refills behind the caller."""
        ready = self._ready.get(language)
        while ready:
            driver = ready.popleft()
            if driver.alive:
                self._refill(language)
                return driver
            self._background_discard(driver)
        if ready is not None:
            self._refill(language)
        return None

    def _refill(self, language: str) -> None:
        filler = self._fillers.get(language)
        if not self._closed and (filler is None or filler.done()):
            self._fillers[language] = asyncio.create_task(self._fill(language))

    async def _fill(self, language: str) -> None:
        failures = 0
        while len(self._ready[language]) < self._sizes[language]:
            try:
                driver = await self._launch(language)
            except SandboxError as exc:
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                logger.warning(
                    "warm pool ({}): start failed, retry in {}s: {}", language, delay, exc
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            self._ready[language].append(driver)

    def _background_discard(self, driver: Driver) -> None:
        task = asyncio.create_task(self._discard_quietly(driver))
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _discard_quietly(self, driver: Driver) -> None:
        try:
            await self._discard(driver)
        except SandboxError as exc:
            logger.warning("warm pool: could not remove {}: {}", driver.container_id[:12], exc)

    async def close(self) -> None:
        """Stop refilling and remove every container still waiting."""
        self._closed = True
        for filler in self._fillers.values():
            filler.cancel()
        for filler in self._fillers.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await filler
        drivers = [driver for ready in self._ready.values() for driver in ready]
        for ready in self._ready.values():
            ready.clear()
        await asyncio.gather(*(self._discard(driver) for driver in drivers), return_exceptions=True)
