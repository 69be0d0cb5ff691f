"""``session.watch``: one connection following another's session, read-only (seed 001's
instructor watching a student).

Each watch hears the session's ``session.event`` notifications (a command started, a
command finished, the session closed) and the ``session.output`` of its streamed commands,
in the order they happened, output coalesced as the caller's own is. What waits for a slow
watcher is bounded: past ``PENDING_BYTES`` its output is dropped (events never are).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from codebeaker_client.models import SessionEvent, SessionRef, WatchResult
from loguru import logger

from codebeaker.rpc.streaming import Notify, OutputForwarder
from codebeaker.service import SandboxService
from codebeaker.tenants import Tenant

__all__ = ["Watches"]

PENDING_BYTES = 4 * 1024 * 1024


class _Watcher:
    """A ``SessionObserver`` that turns what it hears into this connection's notifications."""

    def __init__(self, notify: Notify, session_id: str, ended: Callable[[], None]) -> None:
        self._notify = notify
        self._ended = ended
        self._session_id = session_id
        self._queue: deque[SessionEvent | tuple[Any, str, bytes]] = deque()
        self._pending = 0
        self._dropped = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._forwarders: dict[Any, OutputForwarder] = {}
        self._pump = asyncio.create_task(self._run())

    def event(self, event: SessionEvent) -> None:
        self._queue.append(event)
        self._idle.clear()
        self._wake.set()

    def output(self, call_id: Any, stream: str, data: bytes) -> None:
        if self._pending + len(data) > PENDING_BYTES:
            self._dropped += len(data)
            return
        self._pending += len(data)
        self._queue.append((call_id, stream, data))
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, SessionEvent):
                    await self._deliver(item)
                    if item.event == "session_closed":  # the last thing a watch hears
                        self._idle.set()
                        self._ended()
                        return
                else:
                    call_id, stream, data = item
                    self._pending -= len(data)
                    self._forwarder(call_id).feed(stream, data)
            self._idle.set()

    def _forwarder(self, call_id: Any) -> OutputForwarder:
        forwarder = self._forwarders.get(call_id)
        if forwarder is None:
            forwarder = OutputForwarder(self._notify, self._session_id, call_id)
            self._forwarders[call_id] = forwarder
        return forwarder

    async def _deliver(self, event: SessionEvent) -> None:
        if event.event != "command_started":  # the command's output goes out before its end
            forwarder = self._forwarders.pop(event.request_id, None)
            if forwarder is not None:
                await forwarder.close()
        if self._dropped:
            logger.info("a slow watcher of {} lost {} bytes", self._session_id, self._dropped)
            self._dropped = 0
        await self._notify("session.event", event)

    def cancel(self) -> None:
        self._pump.cancel()

    async def aclose(self, flush: bool = True) -> None:
        """Stop, after sending what is queued when ``flush``."""
        if flush and self._queue:
            await self._idle.wait()
        for forwarder in self._forwarders.values():
            await forwarder.close()
        self._pump.cancel()


class Watches:
    """The watches of one connection; all of them end when it closes."""

    def __init__(self, service: SandboxService, notify: Notify) -> None:
        self._service = service
        self._notify = notify
        self._watchers: dict[str, _Watcher] = {}

    def watch(self, request: SessionRef, tenant: Tenant) -> WatchResult:
        """Follow a session of ``tenant``'s (another tenant's is not found)."""
        session_id = request.session_id
        if session_id in self._watchers:
            return WatchResult(session_id=session_id, watching=True)

        def ended() -> None:
            self._watchers.pop(session_id, None)

        watcher = _Watcher(self._notify, session_id, ended)
        try:
            result = self._service.watch(request, watcher, tenant=tenant)
        except BaseException:
            watcher.cancel()
            raise
        self._watchers[session_id] = watcher
        return result

    async def unwatch(self, request: SessionRef, tenant: Tenant) -> WatchResult:
        watcher = self._watchers.pop(request.session_id, None)
        if watcher is None:  # unknown, or another tenant's: session_not_found
            self._service.get_session(request.session_id, tenant=tenant)
            return WatchResult(session_id=request.session_id, watching=False)
        result = self._service.unwatch(request, watcher)
        await watcher.aclose()
        return result

    async def close(self) -> None:
        for session_id in list(self._watchers):
            watcher = self._watchers.pop(session_id)
            self._service.unwatch(SessionRef(session_id=session_id), watcher)
            await watcher.aclose(flush=False)
