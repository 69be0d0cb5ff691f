"""Framing B's pending runs: created by ``POST /session``, started when a socket claims them.

Nothing runs until then (seed 004: no headless containers). An id is good for one claim
within ``pending_run_seconds``, and only by the tenant that created it; at most
``max_pending_runs`` wait at once.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from codebeaker.constants import LOCAL_TENANT
from codebeaker.exceptions import LimitExceededError, RunNotFoundError
from codebeaker.sessions.interactive import LiveSpec
from codebeaker.settings import Settings

__all__ = ["PendingRuns"]


PENDING_BYTES = 64 * 1024 * 1024
"""Source and stdin held for pending runs in all; past it a new one is refused."""


@dataclass(frozen=True)
class _Pending:
    spec: LiveSpec
    expires: float
    tenant: str

    @property
    def size(self) -> int:
        return len(self.spec.source) + len(self.spec.stdin)


class PendingRuns:
    def __init__(self, settings: Settings) -> None:
        self._ttl = settings.pending_run_seconds
        self._capacity = settings.max_pending_runs
        self._runs: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._runs)

    def add(self, spec: LiveSpec, tenant: str = LOCAL_TENANT) -> str:
        self._drop_expired()
        held = sum(run.size for run in self._runs.values())
        if len(self._runs) >= self._capacity or held + len(spec.source) > PENDING_BYTES:
            raise LimitExceededError(
                "pending_runs",
                f"{self._capacity} runs wait for their socket already; try again shortly",
                retry_after=self._ttl,
            )
        run_id = secrets.token_urlsafe(16)
        self._runs[run_id] = _Pending(spec, time.monotonic() + self._ttl, tenant)
        return run_id

    def claim(self, run_id: str, tenant: str = LOCAL_TENANT) -> LiveSpec:
        """The run's spec, once: a second claim, one after expiry, or another tenant's
        (which leaves it to its own) is not found."""
        pending = self._runs.get(run_id)
        if pending is None or pending.tenant != tenant:
            raise RunNotFoundError(run_id)
        del self._runs[run_id]
        if pending.expires <= time.monotonic():
            raise RunNotFoundError(run_id)
        return pending.spec

    async def prune(self) -> None:
        """Drop runs nobody connected to in time (a reaper chore)."""
        self._drop_expired()

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for run_id in [key for key, run in self._runs.items() if run.expires <= now]:
            del self._runs[run_id]
