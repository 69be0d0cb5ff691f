"""Asynchronous one-shot runs: accepted at once, run on the same bounded workers as
``execution.run``, their records kept in the ``ExecutionStore``.

After a restart, executions that never started run; those that were running are marked
``failed`` with kind ``server_restarted`` (never run twice). Cancelling a running one kills
it (its sandbox is removed) and frees its worker slot before the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from loguru import logger

from codebeaker.api import ErrorData, ExecutionList, ExecutionQuery, ExecutionRecord, RunRequest
from codebeaker.api.wire import context_for
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

SERVER_RESTARTED = ErrorData(kind="server_restarted")
QUEUE_RETRY_SECONDS = 5.0

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

    async def start(self) -> None:
        """Open the store and pick up where the last server left off."""
        await self._store.open()
        failed = await self._store.fail_interrupted(SERVER_RESTARTED)
        if failed:
            logger.warning("{} execution(s) were running when the server stopped: failed", failed)
        resumed = await self._store.queued()
        for execution_id, stored in resumed:
            try:
                request = RunRequest.model_validate_json(
                    stored, context=context_for(self._settings)
                )
                spec = self._resolve(request)
            except Exception as exc:  # invalid under today's settings: told, not run
                await self._store.finish(execution_id, "failed", error=describe(exc).data)
                continue
            self._spawn(execution_id, spec)
        if resumed:
            logger.info("{} queued execution(s) resumed", len(resumed))

    async def close(self) -> None:
        """Stop every task; queued executions stay queued for the next server."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._store.close()

    async def submit(self, request: RunRequest) -> ExecutionRecord:
        spec = self._resolve(request)
        if len(self._tasks) >= self._settings.max_queued_executions:
            raise LimitExceededError(
                "executions",
                f"{self._settings.max_queued_executions} executions are already queued or running",
                retry_after=QUEUE_RETRY_SECONDS,
            )
        execution_id = secrets.token_urlsafe(16)
        record = await self._store.add(execution_id, spec.runtime.name, request)
        self._spawn(execution_id, spec)
        return record

    async def get(self, execution_id: str) -> ExecutionRecord:
        record = await self._store.get(execution_id)
        if record is None:
            raise ExecutionNotFoundError(execution_id)
        return record

    async def list(self, query: ExecutionQuery) -> ExecutionList:
        return ExecutionList(executions=await self._store.select(query.status, query.limit))

    async def cancel(self, execution_id: str) -> ExecutionRecord:
        """Queued: it never runs. Running: killed, its slot free before we answer."""
        if not await self._store.finish(execution_id, "cancelled"):
            record = await self.get(execution_id)  # unknown: not found
            raise ExecutionFinishedError(execution_id, record.status)
        task = self._tasks.get(execution_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return await self.get(execution_id)

    async def prune(self) -> int:
        cutoff = datetime.now(UTC) - timedelta(hours=self._settings.execution_ttl_hours)
        pruned = await self._store.prune(cutoff)
        if pruned:
            logger.debug("pruned {} finished execution record(s)", pruned)
        return pruned

    def _spawn(self, execution_id: str, spec: RunSpec) -> None:
        task = asyncio.create_task(self._execute(execution_id, spec))
        self._tasks[execution_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(execution_id, None))

    async def _execute(self, execution_id: str, spec: RunSpec) -> None:
        async def started() -> bool:
            return await self._store.start(execution_id)

        try:
            result = await self._runner.run_when_started(spec, started)
        except NotStartedError:
            return  # cancelled while it waited
        except Exception as exc:
            await self._store.finish(execution_id, "failed", error=describe(exc).data)
            return
        await self._store.finish(execution_id, "completed", result=result)
