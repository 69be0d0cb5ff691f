"""The interactive doors' outbox: order, output coalesced per tick, UTF-8 across chunks."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

from codebeaker.api.live import CompileSuccessMessage, EchoMessage, ExitMessage
from codebeaker.live.outbox import FLUSH_SECONDS, Outbox

WAIT_SECONDS = 5.0
SLOW_TICK = 0.15
"""An interval long enough that a frame sent before it ends was not held back by it."""


class Frames:
    """A socket's ``send``: every frame, decoded, with the loop time it went out."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.times: list[float] = []

    async def send(self, text: str) -> None:
        self.times.append(asyncio.get_running_loop().time())
        self.frames.append(json.loads(text))

    def __len__(self) -> int:
        return len(self.frames)


async def until(condition: Callable[[], bool], seconds: float = WAIT_SECONDS) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.002)


def test_the_tick_is_the_seeds_40_ms() -> None:
    assert FLUSH_SECONDS == 0.04


async def test_messages_and_output_keep_their_order() -> None:
    sent = Frames()
    outbox = Outbox(sent.send)
    outbox.output("stdout", b"a")
    outbox.message(CompileSuccessMessage())
    outbox.output("stderr", b"b")
    outbox.output("stdout", b"c")
    outbox.message(EchoMessage(data="in"))
    outbox.output("stdout", b"d")
    outbox.message(ExitMessage(return_code=0))
    await asyncio.wait_for(outbox.close(), WAIT_SECONDS)
    assert sent.frames == [
        {"type": "stdout", "data": "a"},
        {"type": "compile_success"},
        {"type": "stderr", "data": "b"},
        {"type": "stdout", "data": "c"},
        {"type": "echo", "data": "in"},
        {"type": "stdout", "data": "d"},
        {"type": "exit", "return_code": 0},
    ]


async def test_the_first_output_after_a_quiet_spell_goes_at_once() -> None:
    sent = Frames()
    outbox = Outbox(sent.send, interval=SLOW_TICK)
    outbox.output("stdout", b"first")
    await until(lambda: len(sent) == 1, SLOW_TICK / 2)
    await asyncio.sleep(SLOW_TICK)  # quiet for a whole tick
    outbox.output("stdout", b"again")
    await until(lambda: len(sent) == 2, SLOW_TICK / 2)
    assert [frame["data"] for frame in sent.frames] == ["first", "again"]
    await outbox.close()


async def test_a_burst_of_output_within_one_tick_is_one_frame() -> None:
    sent = Frames()
    outbox = Outbox(sent.send, interval=SLOW_TICK)
    outbox.output("stdout", b"first")
    await until(lambda: len(sent) == 1)
    for index in range(20):  # written over a few ms, while the tick is not over
        outbox.output("stdout", str(index % 10).encode())
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert len(sent) == 1  # held back until the tick ends
    await until(lambda: len(sent) == 2)
    assert sent.frames[1] == {"type": "stdout", "data": "0123456789" * 2}
    assert sent.times[1] - sent.times[0] >= SLOW_TICK * 0.9
    await outbox.close()
    assert len(sent) == 2


async def test_endless_output_is_sent_at_most_once_a_tick() -> None:
    sent = Frames()
    outbox = Outbox(sent.send)
    loop = asyncio.get_running_loop()
    ends = loop.time() + 0.15
    written = 0
    while loop.time() < ends:
        outbox.output("stdout", b"y")
        written += 1
        await asyncio.sleep(0.002)
    await outbox.close()
    assert "".join(frame["data"] for frame in sent.frames) == "y" * written
    assert len(sent) <= 0.15 / FLUSH_SECONDS + 2 < written
    gaps = [later - earlier for earlier, later in zip(sent.times, sent.times[1:], strict=False)]
    assert min(gaps[:-1]) >= FLUSH_SECONDS * 0.9  # the last flush is close()'s: at once


async def test_a_message_after_output_sends_the_output_first_without_waiting_a_tick() -> None:
    sent = Frames()
    outbox = Outbox(sent.send, interval=SLOW_TICK)
    outbox.output("stdout", b"first")
    await until(lambda: len(sent) == 1)
    outbox.output("stdout", b"partial line")
    outbox.message(ExitMessage(return_code=3, reason="killed"))
    await until(lambda: len(sent) == 3, SLOW_TICK / 2)  # the message cut the tick short
    assert sent.frames[1:] == [
        {"type": "stdout", "data": "partial line"},
        {"type": "exit", "return_code": 3, "reason": "killed"},
    ]
    await outbox.close()


async def test_a_message_during_a_tick_is_not_held_back_by_it() -> None:
    sent = Frames()
    outbox = Outbox(sent.send, interval=SLOW_TICK)
    outbox.output("stdout", b"first")
    await until(lambda: len(sent) == 1)
    outbox.output("stdout", b"more")
    await asyncio.sleep(0.01)  # the pump now waits for the tick to end
    outbox.message(EchoMessage(data="typed"))
    try:
        await until(lambda: len(sent) == 3, SLOW_TICK / 2)
    finally:
        await outbox.close()


async def test_a_character_split_across_two_writes_is_one_character() -> None:
    sent = Frames()
    outbox = Outbox(sent.send, interval=SLOW_TICK)
    outbox.output("stdout", b"caf\xc3")
    await until(lambda: len(sent) == 1)
    assert sent.frames[0] == {"type": "stdout", "data": "caf"}  # the half character waits
    outbox.output("stdout", b"\xa9 ")
    emoji = "\N{HOT BEVERAGE}".encode()
    outbox.output("stdout", emoji[:1])
    outbox.output("stdout", emoji[1:])
    outbox.message(ExitMessage(return_code=0))
    await outbox.close()
    text = "".join(frame.get("data", "") for frame in sent.frames)
    assert text == "caf\N{LATIN SMALL LETTER E WITH ACUTE} \N{HOT BEVERAGE}"
    assert "\N{REPLACEMENT CHARACTER}" not in text


async def test_streams_are_decoded_apart_and_a_dangling_half_ends_before_a_message() -> None:
    sent = Frames()
    outbox = Outbox(sent.send)
    outbox.output("stdout", b"\xe2\x82")  # the first two bytes of a euro sign
    outbox.output("stderr", b"err\n")
    outbox.output("stdout", b"\xac")
    outbox.output("stderr", b"\xff")  # not UTF-8 at all
    outbox.output("stdout", b"\xc3")  # never completed
    outbox.message(ExitMessage(return_code=1))
    await outbox.close()
    assert sent.frames == [
        {"type": "stderr", "data": "err\n"},
        {"type": "stdout", "data": "\N{EURO SIGN}"},
        {"type": "stderr", "data": "\N{REPLACEMENT CHARACTER}"},
        {"type": "stdout", "data": "\N{REPLACEMENT CHARACTER}"},
        {"type": "exit", "return_code": 1},
    ]


async def test_close_sends_everything_still_queued() -> None:
    sent = Frames()
    outbox = Outbox(sent.send, interval=SLOW_TICK)
    outbox.output("stdout", b"first")
    await until(lambda: len(sent) == 1)
    outbox.output("stdout", b"tail")  # waits for the tick
    outbox.output("stderr", b"warn")
    await asyncio.sleep(0)
    outbox.message(ExitMessage(return_code=0))
    await asyncio.wait_for(outbox.close(), WAIT_SECONDS)
    assert sent.frames == [
        {"type": "stdout", "data": "first"},
        {"type": "stdout", "data": "tail"},
        {"type": "stderr", "data": "warn"},
        {"type": "exit", "return_code": 0},
    ]
    await asyncio.wait_for(outbox.close(), WAIT_SECONDS)  # a second close is harmless


async def test_close_of_an_idle_outbox_returns_at_once() -> None:
    sent = Frames()
    outbox = Outbox(sent.send)
    await asyncio.wait_for(outbox.close(), 0.5)
    assert len(sent) == 0


async def test_a_send_that_fails_does_not_stop_the_rest() -> None:
    attempts: list[str] = []

    async def broken(text: str) -> None:
        attempts.append(json.loads(text)["type"])
        raise ConnectionError("socket closed")

    outbox = Outbox(broken)
    outbox.output("stdout", b"a")
    outbox.message(ExitMessage(return_code=0))
    await asyncio.wait_for(outbox.close(), WAIT_SECONDS)  # no exception escapes
    assert attempts == ["stdout", "exit"]


async def test_the_backlog_counts_unsent_messages_and_abort_drops_them() -> None:
    release = asyncio.Event()
    sent: list[str] = []

    async def stuck(text: str) -> None:  # a client that does not read
        await release.wait()
        sent.append(text)

    outbox = Outbox(stuck)
    for _ in range(3):
        outbox.message(EchoMessage(data="x" * 1000))
    await asyncio.sleep(0.01)
    assert outbox.backlog > 3000
    release.set()
    await until(lambda: len(sent) == 3)
    assert outbox.backlog == 0

    release.clear()
    outbox.message(EchoMessage(data="y"))
    outbox.message(EchoMessage(data="z"))
    outbox.abort()
    release.set()
    await outbox.close()
    assert len(sent) == 3  # nothing queued went out after the abort
