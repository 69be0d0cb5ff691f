"""One session: a long-lived container, its driver, and the bookkeeping the spec reports."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from codebeaker.runtimes import Runtime
from codebeaker.sandbox.driver import Driver, StdinPipe

__all__ = ["Lifecycle", "Session", "SessionConfig", "iso"]

ACTIVE_WINDOW_SECONDS = 60.0  # the spec: "Active" if it did something in the last minute


def iso(moment: datetime) -> str:
    """UTC, second precision, ``Z`` suffix: what the spec's examples show."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Lifecycle(Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_ALLOWED = {
    Lifecycle.OPEN: {Lifecycle.CLOSING},
    Lifecycle.CLOSING: {Lifecycle.CLOSED},
    Lifecycle.CLOSED: set(),
}


@dataclass(frozen=True)
class SessionConfig:
    idle_timeout_minutes: float
    max_lifetime_minutes: float
    memory_mb: int
    cpu_limit: float
    env: dict[str, str] = field(default_factory=dict)
    """Given to every command of the session (a command's own ``env`` wins)."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "idleTimeoutMinutes": self.idle_timeout_minutes,
            "maxLifetimeMinutes": self.max_lifetime_minutes,
            "memoryLimitMB": self.memory_mb,
            "cpuLimit": self.cpu_limit,
        }


class Session:
    """Commands on a session run one at a time, in arrival order (``asyncio.Lock`` is FIFO)."""

    def __init__(
        self, session_id: str, runtime: Runtime, config: SessionConfig, driver: Driver
    ) -> None:
        self.id = session_id
        self.runtime = runtime
        self.config = config
        self.driver = driver
        self.created_at = datetime.now(UTC)
        self.last_activity = self.created_at
        self.execution_count = 0
        self.running = 0
        self.lock = asyncio.Lock()
        self.inputs: deque[StdinPipe] = deque()
        """stdin of the interactive commands queued or running, oldest first."""
        self._created = time.monotonic()
        self._touched = self._created
        self._lifecycle = Lifecycle.OPEN

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

    def touch(self) -> None:
        self.last_activity = datetime.now(UTC)
        self._touched = time.monotonic()

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

    def state(self, now: float | None = None) -> str:
        return "Idle" if self.idle_seconds(now) >= ACTIVE_WINDOW_SECONDS else "Active"

    def describe(self) -> dict[str, Any]:
        """The ``session.create`` result."""
        return {
            "sessionId": self.id,
            "containerId": self.container_id,
            "language": self.runtime.name,
            "createdAt": iso(self.created_at),
            "state": self.state(),
            "config": self.config.to_wire(),
        }

    def summary(self) -> dict[str, Any]:
        """One row of ``session.list``."""
        now = time.monotonic()
        return {
            "sessionId": self.id,
            "containerId": self.container_id,
            "language": self.runtime.name,
            "createdAt": iso(self.created_at),
            "lastActivity": iso(self.last_activity),
            "state": self.state(now),
            "executionCount": self.execution_count,
            "idleMinutes": round(self.idle_seconds(now) / 60, 3),
            "lifetimeMinutes": round(self.age_seconds(now) / 60, 3),
        }
