"""Run slots with two classes of waiter: a client waiting on its reply goes first.

``execution.run`` and ``POST /api/v1/execute`` hold a connection open until they are
answered; asynchronous executions have already been answered. So a free slot goes to the
oldest synchronous waiter if there is one, and only then to the oldest queued execution —
a backlog of queued executions never makes a synchronous run wait behind it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from codebeaker.metrics import RUN_WAIT_SECONDS

__all__ = ["RunSlots"]


class RunSlots:
    def __init__(self, size: int, name: str) -> None:
        self._free = size
        self._wait = RUN_WAIT_SECONDS.labels(queue=name)
        self._waiters: dict[bool, deque[asyncio.Future[None]]] = {True: deque(), False: deque()}

    def waiting(self, urgent: bool) -> int:
        return len(self._waiters[urgent])

    @property
    def queued(self) -> int:
        return sum(len(waiters) for waiters in self._waiters.values())

    @property
    def busy(self) -> bool:
        return self._free == 0

    @property
    def free(self) -> int:
        return self._free

    async def acquire(self, urgent: bool) -> None:
        if self._free and not any(self._waiters.values()):
            self._free -= 1
            self._wait.observe(0)
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[urgent].append(waiter)
        began = time.monotonic()
        try:
            await waiter
            self._wait.observe(time.monotonic() - began)
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot in the same instant: pass it on
            else:
                self._waiters[urgent].remove(waiter)
            raise

    def release(self) -> None:
        for urgent in (True, False):
            queue = self._waiters[urgent]
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1
