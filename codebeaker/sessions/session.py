"""One session: a long-lived container, its driver, and the bookkeeping the spec reports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

from codebeaker_client.models import SessionConfig, SessionEvent, SessionInfo, SessionSummary
from codebeaker_client.models.results import SessionState

from codebeaker.constants import LOCAL_TENANT
from codebeaker.runtimes import Runtime
from codebeaker.sandbox.driver import Driver, StdinPipe
from codebeaker.sessions.contexts import ContextRegistry
from codebeaker.sessions.jobs import Jobs

__all__ = ["Lifecycle", "Session", "SessionObserver"]

ACTIVE_WINDOW_SECONDS = 60.0  # the spec: "Active" if it did something in the last minute


class Lifecycle(Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_ALLOWED = {
    Lifecycle.OPEN: {Lifecycle.CLOSING},
    Lifecycle.CLOSING: {Lifecycle.CLOSED},
    Lifecycle.CLOSED: set(),
}


class SessionObserver(Protocol):
    """A watcher of a session (``session.watch``): told what happens, never asked anything.
    Called on the event loop; must not block."""

    def event(self, event: SessionEvent) -> None: ...

    def output(self, call_id: Any, stream: str, data: bytes) -> None:
        """Output of a streamed command; ``call_id`` names the call it belongs to."""


class Session:
    """Commands on a session run one at a time, in arrival order (``asyncio.Lock`` is FIFO)."""

    def __init__(
        self,
        session_id: str,
        runtime: Runtime,
        config: SessionConfig,
        driver: Driver,
        contexts: ContextRegistry,
        tenant: str = LOCAL_TENANT,
    ) -> None:
        self.id = session_id
        self.tenant = tenant
        """The API key's tenant that created it: only that tenant may find or use it."""
        self.runtime = runtime
        self.config = config
        self.driver = driver
        self.contexts = contexts
        """Its code contexts; cells take their context's lock, not the session's."""
        self.created_at = datetime.now(UTC)
        self.last_activity = self.created_at
        self.execution_count = 0
        self.running = 0
        self.lock = asyncio.Lock()
        """Held by the running command; the queued ones wait for it (see ``jobs.take_turn``)."""
        self.jobs = Jobs()
        """Its commands and cells queued or running, oldest first."""
        self.observers: set[SessionObserver] = set()
        self._created = time.monotonic()
        self._touched = self._created
        self._lifecycle = Lifecycle.OPEN
        self.on_activity: Callable[[Session], None] | None = None
        """Told after every touch (the session records write clocks in batches)."""

    @property
    def inputs(self) -> list[StdinPipe]:
        """stdin of the streamed commands and cells queued or running, oldest first."""
        return [job.stdin for job in self.jobs if job.stdin is not None]

    @property
    def container_id(self) -> str:
        return self.driver.container_id

    @property
    def lifecycle(self) -> Lifecycle:
        return self._lifecycle

    def transition(self, target: Lifecycle) -> None:
        if target not in _ALLOWED[self._lifecycle]:
            raise RuntimeError(f"session {self.id}: {self._lifecycle.value} -> {target.value}")
        self._lifecycle = target

    def announce(self, event: SessionEvent) -> None:
        for observer in list(self.observers):
            observer.event(event)

    def touch(self) -> None:
        self.last_activity = datetime.now(UTC)
        self._touched = time.monotonic()
        if self.on_activity is not None:
            self.on_activity(self)

    def resume(self, created_at: datetime, last_activity: datetime, execution_count: int) -> None:
        """Adopted from an earlier server: the lifetime and idle clocks go on from these
        wall-clock times (the time without a server counts as idle)."""
        now_wall, now = datetime.now(UTC), time.monotonic()
        self.created_at, self.last_activity = created_at, last_activity
        self._created = now - max((now_wall - created_at).total_seconds(), 0.0)
        self._touched = now - max((now_wall - last_activity).total_seconds(), 0.0)
        self.execution_count = execution_count

    def idle_seconds(self, now: float | None = None) -> float:
        return 0.0 if self.running else (time.monotonic() if now is None else now) - self._touched

    def age_seconds(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self._created

    def expiry_reason(self, now: float | None = None) -> str | None:
        """Why the reaper should close this session now, if it should."""
        now = time.monotonic() if now is None else now
        if self.age_seconds(now) >= self.config.max_lifetime_minutes * 60:
            return "max lifetime reached"
        if self.idle_seconds(now) >= self.config.idle_timeout_minutes * 60:
            return "idle timeout"
        return None

    def state(self, now: float | None = None) -> SessionState:
        return "Idle" if self.idle_seconds(now) >= ACTIVE_WINDOW_SECONDS else "Active"

    def describe(self) -> SessionInfo:
        """The ``session.create`` result."""
        return SessionInfo(
            session_id=self.id,
            container_id=self.container_id,
            language=self.runtime.name,
            created_at=self.created_at,
            state=self.state(),
            config=self.config,
        )

    def summary(self) -> SessionSummary:
        """One row of ``session.list``."""
        now = time.monotonic()
        return SessionSummary(
            session_id=self.id,
            container_id=self.container_id,
            language=self.runtime.name,
            created_at=self.created_at,
            last_activity=self.last_activity,
            state=self.state(now),
            execution_count=self.execution_count,
            idle_minutes=round(self.idle_seconds(now) / 60, 3),
            lifetime_minutes=round(self.age_seconds(now) / 60, 3),
        )
