"""The APScheduler job that enforces idle timeouts and maximum lifetimes, and prunes
old execution records."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger

__all__ = ["Reaper"]

Chore = Callable[[], Awaitable[object]]


class Reaper:
    """Runs each chore every ``interval`` seconds; started and stopped explicitly."""

    def __init__(self, interval: float, *chores: Chore) -> None:
        self._chores = chores
        self._scheduler = AsyncIOScheduler()
        self._scheduler.add_job(
            self._tick,
            "interval",
            seconds=interval,
            id="codebeaker-reaper",
            max_instances=1,  # a slow tick (many closes) must not overlap the next one
            coalesce=True,
            misfire_grace_time=None,
        )

    async def _tick(self) -> None:
        for chore in self._chores:
            try:
                await chore()
            except Exception:  # one failed chore must not stop the others, or the next tick
                logger.exception("housekeeping chore {} failed", getattr(chore, "__name__", chore))

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
