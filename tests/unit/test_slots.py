"""``RunSlots``: a free slot goes to the oldest synchronous waiter, then to the oldest
asynchronous one; a waiter that gives up never takes a slot with it."""

import asyncio

import pytest

from codebeaker.sessions.slots import RunSlots


def busy(slots: RunSlots) -> bool:
    """(A call: mypy would take ``slots.busy`` as fixed after one assert.)"""
    return slots.busy


async def settle() -> None:
    """Let every ready task run (waiters wake one loop turn after they are handed a slot)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Waiters:
    """Tasks waiting on one ``RunSlots``; ``served`` names them in the order they got a slot."""

    def __init__(self, slots: RunSlots) -> None:
        self.slots = slots
        self.served: list[str] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def add(self, name: str, *, urgent: bool) -> asyncio.Task[None]:
        async def wait() -> None:
            await self.slots.acquire(urgent=urgent)
            self.served.append(name)

        task = self.tasks[name] = asyncio.create_task(wait())
        await settle()  # queued in this order
        return task

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


async def test_free_slots_are_taken_at_once_then_callers_wait() -> None:
    slots = RunSlots(2, "test")
    assert not busy(slots)
    await slots.acquire(urgent=False)
    await slots.acquire(urgent=True)
    assert busy(slots)
    waiters = Waiters(slots)
    await waiters.add("sync", urgent=True)
    await waiters.add("async", urgent=False)
    assert (slots.waiting(urgent=True), slots.waiting(urgent=False)) == (1, 1)
    assert waiters.served == []
    slots.release()
    slots.release()
    await settle()
    assert waiters.served == ["sync", "async"]
    assert (slots.waiting(urgent=True), slots.waiting(urgent=False)) == (0, 0)
    slots.release()
    slots.release()
    assert not busy(slots)


async def test_a_synchronous_waiter_is_served_before_an_older_asynchronous_one() -> None:
    slots = RunSlots(1, "test")
    await slots.acquire(urgent=False)
    waiters = Waiters(slots)
    try:
        await waiters.add("async-1", urgent=False)
        await waiters.add("async-2", urgent=False)
        await waiters.add("sync", urgent=True)
        slots.release()
        await settle()
        assert waiters.served == ["sync"]
        slots.release()
        await settle()
        assert waiters.served == ["sync", "async-1"]
        slots.release()
        await settle()
        assert waiters.served == ["sync", "async-1", "async-2"]
    finally:
        await waiters.close()


async def test_each_class_is_served_first_come_first_served() -> None:
    slots = RunSlots(1, "test")
    await slots.acquire(urgent=True)
    waiters = Waiters(slots)
    try:
        for index in range(3):
            await waiters.add(f"async-{index}", urgent=False)
            await waiters.add(f"sync-{index}", urgent=True)
        for _ in range(6):
            slots.release()
            await settle()
        assert waiters.served == ["sync-0", "sync-1", "sync-2", "async-0", "async-1", "async-2"]
    finally:
        await waiters.close()


@pytest.mark.parametrize("urgent", [True, False])
async def test_a_cancelled_waiter_leaves_the_queue_and_takes_no_slot(urgent: bool) -> None:
    slots = RunSlots(1, "test")
    await slots.acquire(urgent=True)
    waiters = Waiters(slots)
    try:
        gone = await waiters.add("gone", urgent=urgent)
        await waiters.add("next", urgent=urgent)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert slots.waiting(urgent=urgent) == 1
        slots.release()
        await settle()
        assert waiters.served == ["next"]
        slots.release()  # "next" is done: the slot is free again, none was lost
        assert not busy(slots)
        await slots.acquire(urgent=False)
        assert busy(slots)
    finally:
        await waiters.close()


async def test_a_waiter_cancelled_as_it_is_handed_a_slot_passes_it_on() -> None:
    """release() resolves the waiter; the cancel lands before the waiter runs again."""
    slots = RunSlots(1, "test")
    await slots.acquire(urgent=True)
    waiters = Waiters(slots)
    try:
        unlucky = await waiters.add("unlucky", urgent=False)
        await waiters.add("sync", urgent=True)
        await waiters.add("async", urgent=False)
        slots.release()  # the test's slot, to "sync"
        await settle()
        slots.release()  # "sync"'s slot, to "unlucky", which is cancelled in the same instant
        unlucky.cancel()
        with pytest.raises(asyncio.CancelledError):
            await unlucky
        await settle()
        assert waiters.served == ["sync", "async"]  # the slot went on to the next waiter
        slots.release()  # "async"'s
        assert not busy(slots)
        await slots.acquire(urgent=True)  # exactly one slot, still
        assert busy(slots)
    finally:
        await waiters.close()


async def test_a_slot_handed_to_a_cancelled_waiter_with_nobody_behind_is_freed() -> None:
    slots = RunSlots(1, "test")
    await slots.acquire(urgent=False)
    waiters = Waiters(slots)
    try:
        unlucky = await waiters.add("unlucky", urgent=True)
        slots.release()
        unlucky.cancel()
        with pytest.raises(asyncio.CancelledError):
            await unlucky
        assert not busy(slots)
        assert (slots.waiting(urgent=True), slots.waiting(urgent=False)) == (0, 0)
    finally:
        await waiters.close()


async def test_many_waiters_never_hold_more_slots_than_there_are() -> None:
    slots = RunSlots(3, "test")
    holding = 0
    most = 0

    async def run(index: int) -> None:
        nonlocal holding, most
        await slots.acquire(urgent=index % 2 == 0)
        holding += 1
        most = max(most, holding)
        try:
            await asyncio.sleep(0.001 * (index % 3))
        finally:
            holding -= 1
            slots.release()

    tasks = [asyncio.create_task(run(index)) for index in range(40)]
    await asyncio.sleep(0)
    for task in tasks[5:40:4]:  # some give up while they wait
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert most == 3
    assert (holding, slots.waiting(urgent=True), slots.waiting(urgent=False)) == (0, 0, 0)
    for _ in range(3):
        await slots.acquire(urgent=True)
    assert busy(slots)
