"""Asynchronous one-shot runs: accepted at once, run on the same slots as ``execution.run``
(behind any synchronous run that waits), their records kept in the ``ExecutionStore``.

A queued execution costs the server a task and its id: its source stays in SQLite until a
slot is free. After a restart, executions that never started run; those that were running
are marked ``failed`` with kind ``server_restarted`` (never run twice). Cancelling a running
one kills it (its sandbox is removed) and frees its slot before the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from codebeaker_client.models import (
    ExecutionError,
    ExecutionList,
    ExecutionQuery,
    ExecutionRecord,
    RunRequest,
)
from loguru import logger

from codebeaker.api.wire import parse
from codebeaker.constants import LOCAL_TENANT
from codebeaker.errors import describe
from codebeaker.exceptions import (
    ExecutionFinishedError,
    ExecutionNotFoundError,
    LimitExceededError,
)
from codebeaker.executions.store import ExecutionStore
from codebeaker.sessions import NotStartedError, OneShotRunner, RunSpec
from codebeaker.settings import Settings

__all__ = ["SERVER_RESTARTED", "ExecutionQueue"]

SERVER_RESTARTED = ExecutionError(
    kind="server_restarted",
    message="the server stopped while this execution ran; it is not run again",
)
FULL_RETRY_SECONDS = 5.0  # a full queue drains at the pace of whole runs

Resolve = Callable[[RunRequest], RunSpec]
"""Checks the language and fills in defaults; raises what the client should be told."""


class ExecutionQueue:
    def __init__(
        self, store: ExecutionStore, runner: OneShotRunner, settings: Settings, resolve: Resolve
    ) -> None:
        self._store = store
        self._runner = runner
        self._settings = settings
        self._resolve = resolve
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._admitting = 0
        """Submissions past the capacity check, not yet spawned (their insert awaits)."""

    async def open(self) -> None:
        """Open the store: it is this instance's lock too (``StoreInUseError``)."""
        await self._store.open()

    async def resume(self) -> None:
        """Pick up where the last server of this instance left off."""
        failed = await self._store.fail_interrupted(SERVER_RESTARTED)
        if failed:
            logger.warning("{} execution(s) were running when the server stopped: failed", failed)
        resumed = await self._store.queued()
        for execution_id in resumed:
            self._spawn(execution_id)
        if resumed:
            logger.info("{} queued execution(s) resumed", len(resumed))

    async def close(self) -> None:
        """Stop every task; queued executions stay queued for the next server."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._store.close()

    async def submit(self, request: RunRequest, tenant: str = LOCAL_TENANT) -> ExecutionRecord:
        spec = self._resolve(request)  # an unknown language is refused now, not later
        maximum = self._settings.max_queued_executions
        if len(self._tasks) + self._admitting >= maximum:
            raise LimitExceededError(
                "executions",
                f"{maximum} executions are already queued or running",
                retry_after=FULL_RETRY_SECONDS,
            )
        self._admitting += 1
        try:
            execution_id = secrets.token_urlsafe(16)
            record = await self._store.add(execution_id, spec.runtime.name, request, tenant)
            self._spawn(execution_id)
        finally:
            self._admitting -= 1
        return record

    async def get(self, execution_id: str, tenant: str = LOCAL_TENANT) -> ExecutionRecord:
        """The record, if ``tenant`` submitted it: another tenant's is not found."""
        record = await self._store.get(execution_id, tenant)
        if record is None:
            raise ExecutionNotFoundError(execution_id)
        return record

    async def list(self, query: ExecutionQuery, tenant: str = LOCAL_TENANT) -> ExecutionList:
        selected = await self._store.select(query.status, query.limit, tenant)
        return ExecutionList(executions=selected)

    async def cancel(self, execution_id: str, tenant: str = LOCAL_TENANT) -> ExecutionRecord:
        """Queued: it never runs. Running: killed, its slot free before we answer."""
        await self.get(execution_id, tenant)  # unknown or another tenant's: not found
        if not await self._store.finish(execution_id, "cancelled"):
            record = await self.get(execution_id, tenant)
            raise ExecutionFinishedError(execution_id, record.status)
        task = self._tasks.get(execution_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return await self.get(execution_id, tenant)

    async def prune(self) -> int:
        if not self._store.is_open:  # the housekeeping tick raced shutdown
            return 0
        cutoff = datetime.now(UTC) - timedelta(hours=self._settings.execution_ttl_hours)
        pruned = await self._store.prune(cutoff)
        if pruned:
            logger.debug("pruned {} finished execution record(s)", pruned)
        return pruned

    def _spawn(self, execution_id: str) -> None:
        task = asyncio.create_task(self._execute(execution_id))
        self._tasks[execution_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(execution_id, None))

    async def _execute(self, execution_id: str) -> None:
        async def started() -> RunSpec | None:
            stored = await self._store.start(execution_id)
            if stored is None:
                return None
            return self._resolve(parse(RunRequest, stored, self._settings, json=True))

        try:
            result = await self._runner.run_when_started(started)
        except NotStartedError:
            return  # cancelled while it waited
        except Exception as exc:  # it could not be run (invalid under today's settings, …)
            described = describe(exc)
            error = ExecutionError(kind=described.data.kind, message=described.message)
            await self._store.finish(execution_id, "failed", error=error)
            return
        await self._store.finish(execution_id, "completed", result=result)
