"""The APScheduler job that enforces idle timeouts and maximum lifetimes."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger

from codebeaker.sessions.manager import SessionManager

__all__ = ["Reaper"]


class Reaper:
    """Runs ``SessionManager.reap`` every ``interval`` seconds; started and stopped explicitly."""

    def __init__(self, manager: SessionManager, interval: float) -> None:
        self._manager = manager
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
        try:
            await self._manager.reap()
        except Exception:  # one failed tick must not stop the next ones
            logger.exception("session reaper tick failed")

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
