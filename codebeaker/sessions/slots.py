"""Run slots with two classes of waiter: a client waiting on its reply goes first.

``execution.run`` and ``POST /api/v1/execute`` hold a connection open until they are
answered; asynchronous executions have already been answered. So a free slot goes to the
oldest synchronous waiter if there is one, and only then to the oldest queued execution —
a backlog of queued executions never makes a synchronous run wait behind it.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["RunSlots"]


class RunSlots:
    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: dict[bool, deque[asyncio.Future[None]]] = {True: deque(), False: deque()}

    def waiting(self, urgent: bool) -> int:
        return len(self._waiters[urgent])

    @property
    def busy(self) -> bool:
        return self._free == 0

    @property
    def free(self) -> int:
        return self._free

    async def acquire(self, urgent: bool) -> None:
        if self._free and not any(self._waiters.values()):
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[urgent].append(waiter)
        try:
            await waiter
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
