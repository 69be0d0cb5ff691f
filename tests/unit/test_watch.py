"""A watcher (``session.watch``): notifications in order, and its task ends with the session."""

from __future__ import annotations

import asyncio

from codebeaker_client.models import SessionEvent, WireModel

from codebeaker.rpc.watch import _Watcher


async def test_events_and_output_in_order_and_the_end_stops_the_watch() -> None:
    sent: list[tuple[str, WireModel]] = []
    ended: list[bool] = []

    async def notify(method: str, params: WireModel) -> None:
        sent.append((method, params))

    watcher = _Watcher(notify, "s1", lambda: ended.append(True))
    watcher.event(SessionEvent(session_id="s1", event="command_started", request_id=7))
    watcher.output(7, "stdout", b"hel")
    watcher.output(7, "stdout", b"lo\n")
    watcher.event(SessionEvent(session_id="s1", event="command_finished", request_id=7))
    watcher.event(SessionEvent(session_id="s1", event="session_closed", reason="gone"))
    await asyncio.wait_for(watcher._pump, 2)  # the watch ends by itself: no task is left
    methods = [method for method, _ in sent]
    assert methods == ["session.event", "session.output", "session.event", "session.event"]
    assert sent[1][1].to_wire()["data"] == "hello\n"
    assert ended == [True]
