"""The agent's framing and the driver-side values both drivers share."""

import asyncio
import os
from typing import Any, cast

import pytest

from codebeaker.exceptions import LimitExceededError, SandboxError
from codebeaker.sandbox.agent import Agent, cwd_failure, start_failure
from codebeaker.sandbox.agent_driver import (
    AgentDriver,
    AgentLink,
    Credit,
    _forward,
    _to_the_end,
)
from codebeaker.sandbox.docker import AttachedExec, DockerBackend
from codebeaker.sandbox.driver import OutputBuffer, ProcessRequest, StdinPipe, finished
from codebeaker.sandbox.frames import decode, encode


def test_frames_round_trip_whole_or_in_pieces() -> None:
    frames = [({"op": "run", "id": 1}, b"stdin \x00\xff"), ({"t": "exit", "id": 1}, b"")]
    wire = b"".join(encode(header, body) for header, body in frames)
    assert list(decode(bytearray(wire))) == frames
    buffer, got = bytearray(), list[tuple[dict[str, object], bytes]]()
    for index in range(len(wire)):  # one byte at a time: only complete frames come out
        buffer += wire[index : index + 1]
        got.extend(decode(buffer))
    assert got == frames
    assert buffer == bytearray()


def test_start_failures_have_stable_kinds() -> None:
    assert start_failure(FileNotFoundError(2, "x"), "nope") == (127, "command_not_found: nope")
    assert start_failure(PermissionError(13, "x"), "f") == (126, "permission_denied: f")
    assert (
        cwd_failure(FileNotFoundError(2, "x"), "/w/d") == "file_not_found: working directory /w/d"
    )
    assert cwd_failure(NotADirectoryError(20, "x"), "/w/f").startswith("not_a_directory:")


def test_output_buffer_caps_each_stream_and_passes_on_only_what_it_keeps() -> None:
    seen: list[tuple[str, bytes]] = []
    output = OutputBuffer(4, lambda stream, data: seen.append((stream, data)))
    output.feed(1, b"abc")
    output.feed(2, b"E")
    output.feed(1, b"defg")
    assert output.stdout == b"abcd"
    assert output.stderr == b"E"
    assert output.overflowed
    assert seen == [("stdout", b"abc"), ("stderr", b"E"), ("stdout", b"d")]


def test_timeout_and_flood_win_over_the_exit_code() -> None:
    request = ProcessRequest(("x",), "/workspace", 2.0, 4)
    output = OutputBuffer(4)
    output.feed(1, b"12345")
    flooded = finished(request, output, 0, timed_out=False)
    assert (flooded.exit_code, flooded.truncated) == (137, True)
    assert flooded.error is not None
    assert flooded.error.startswith("output_limit_exceeded:")
    timed = finished(request, output, 0, timed_out=True)
    assert (timed.exit_code, timed.timed_out) == (124, True)


def test_a_cancel_wins_over_the_exit_code_and_a_flood_but_not_a_timeout() -> None:
    request = ProcessRequest(("x",), "/workspace", 2.0, 4)
    output = OutputBuffer(4)
    output.feed(1, b"ab")
    cancelled = finished(request, output, -9, timed_out=False, cancelled=True)
    assert (cancelled.exit_code, cancelled.cancelled, cancelled.stdout) == (137, True, b"ab")
    assert cancelled.error is not None
    assert cancelled.error.startswith("cancelled:")
    output.feed(1, b"cdef")  # flooded too
    assert finished(request, output, 0, timed_out=False, cancelled=True).cancelled
    timed = finished(request, output, 0, timed_out=True, cancelled=True)
    assert (timed.exit_code, timed.timed_out, timed.cancelled) == (124, True, False)


async def test_stdin_pipe_ends_with_eof_and_refuses_more() -> None:
    pipe = StdinPipe(limit=16)
    pipe.write(b"a")
    pipe.write(b"", eof=True)
    assert [await pipe.read(), await asyncio.wait_for(pipe.read(), 1)] == [b"a", None]
    with pytest.raises(RuntimeError):
        pipe.write(b"late")


async def test_stdin_pipe_holds_at_most_its_limit_unread() -> None:
    pipe = StdinPipe(limit=4)
    pipe.write(b"abc")
    with pytest.raises(LimitExceededError) as refused:
        pipe.write(b"de")
    assert refused.value.limit == "stdin"
    assert await pipe.read() == b"abc"  # read: room again, and nothing was lost
    pipe.write(b"defg")
    assert await pipe.read() == b"defg"


async def test_stdin_pipe_reads_at_most_what_is_asked_and_keeps_the_rest_first() -> None:
    pipe = StdinPipe(limit=16)
    pipe.write(b"abcdef")
    pipe.write(b"gh", eof=True)
    assert pipe.waiting == 8
    assert await pipe.read(4) == b"abcd"
    assert pipe.waiting == 4
    assert [await pipe.read(), await pipe.read(), await pipe.read()] == [b"ef", b"gh", None]
    assert pipe.waiting == 0


class SharedDrain:
    """An attached exec whose writes wait on one drain future shared by every writer, as
    aiohttp's ``_drain_helper`` does while the transport is paused."""

    stderr_tail = b""

    def __init__(self) -> None:
        self.written = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self.paused = True

    async def write(self, data: bytes) -> None:
        self.written += data
        if self.paused:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def resume(self) -> None:
        self.paused = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes | None:
        await asyncio.Event().wait()  # the agent never answers here
        return None

    async def aclose(self) -> None:
        pass


async def test_a_writer_cancelled_mid_drain_harms_no_later_writer() -> None:
    """A stdin feeder cancelled while its frame drains (its command ended) used to cancel
    the shared drain future: the next command's ``send`` raised ``CancelledError``."""
    attached = SharedDrain()
    link = AgentLink(cast(AttachedExec, attached))
    feeder = asyncio.create_task(link.send({"op": "input", "id": 1}, b"x" * 1000))
    await asyncio.sleep(0.01)  # the feeder's frame is written, its drain pending
    feeder.cancel()
    await asyncio.gather(feeder, return_exceptions=True)
    nxt = asyncio.create_task(link.send({"op": "run", "id": 2}))
    await asyncio.sleep(0.01)
    attached.resume()
    await asyncio.wait_for(nxt, 1)  # written, not cancelled
    frames = [header for header, _ in decode(attached.written)]
    assert frames == [{"op": "input", "id": 1}, {"op": "run", "id": 2}]
    await link.aclose()


async def test_a_closed_link_fails_its_senders_instead_of_leaving_them_waiting() -> None:
    attached = SharedDrain()
    link = AgentLink(cast(AttachedExec, attached))
    first = asyncio.create_task(link.send({"op": "run", "id": 1}))
    second = asyncio.create_task(link.send({"op": "run", "id": 2}))
    await asyncio.sleep(0.01)
    await link.aclose()
    results = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 1)
    assert all(isinstance(result, SandboxError) for result in results), results
    with pytest.raises(SandboxError):
        await link.send({"op": "run", "id": 3})


class Recorder:
    """What ``_forward`` sends, as the agent would receive it."""

    def __init__(self) -> None:
        self.frames: list[tuple[dict[str, Any], bytes]] = []
        self.sent = asyncio.Event()

    async def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        self.frames.append((header, body))
        self.sent.set()


async def test_input_goes_no_faster_than_the_agent_hands_its_window_back() -> None:
    stdin, credit, agent = StdinPipe(limit=64), Credit(4), Recorder()
    stdin.write(b"0123456789")
    forward = asyncio.create_task(_forward(cast(AgentLink, agent), 7, stdin, credit))
    await asyncio.sleep(0.01)
    assert [body for _, body in agent.frames] == [b"0123"]  # the window is full
    assert stdin.waiting == 6  # the rest waits on the server, counted against its cap
    credit.grant(3)
    await asyncio.sleep(0.01)
    assert [body for _, body in agent.frames] == [b"0123", b"456"]
    credit.grant(10)
    stdin.write(b"", eof=True)
    await asyncio.wait_for(forward, 1)
    assert agent.frames[-2:] == [
        ({"op": "input", "id": 7, "eof": False}, b"789"),
        ({"op": "input", "id": 7, "eof": True}, b""),
    ]


async def test_work_that_holds_a_lock_is_finished_even_when_its_task_is_cancelled() -> None:
    finished = asyncio.Event()

    async def stop_the_command() -> None:
        await asyncio.sleep(0.05)
        finished.set()

    async def caller() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await _to_the_end(stop_the_command())
            raise

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()  # a second cancel while it stops the command: still not abandoned
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()


def test_a_start_that_fails_any_way_closes_what_it_opened() -> None:
    """A value Popen refuses (a NUL in the environment: the models refuse it, the agent must
    not rely on that) used to leak the two output pipes per call."""
    answers, outbound = os.pipe()
    agent = Agent(inbound=-1, outbound=outbound)
    header = {
        "argv": ["true"],
        "cwd": "/",
        "env": {"BAD": "nul\0"},
        "marker": "m",
        "timeout": 5,
        "limit": 64,
        "interactive": True,
    }
    before = len(os.listdir("/proc/self/fd"))
    for ident in range(1, 21):
        agent.run(ident, header, b"")
    assert len(os.listdir("/proc/self/fd")) == before
    frames = [header for header, _ in decode(bytearray(os.read(answers, 1 << 16)))]
    assert [frame["id"] for frame in frames] == list(range(1, 21))
    assert {frame["t"] for frame in frames} == {"exit"}
    assert all(frame["code"] == 126 for frame in frames), frames[0]
    agent.selector.close()
    os.close(answers)
    os.close(outbound)


class FakeAgent:
    """An attached agent that starts commands which run until cancelled, and says so."""

    stderr_tail = b""

    def __init__(self) -> None:
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._inbox = bytearray()
        self.seen: list[str] = []
        self._out.put_nowait(encode({"t": "ready", "id": 0, "ok": True, "window": 4}))

    async def write(self, data: bytes) -> None:
        self._inbox += data
        for header, _ in decode(self._inbox):
            self.seen.append(str(header["op"]))
            if header["op"] == "cancel":
                asyncio.get_running_loop().call_later(0.05, self._cancelled, header)

    def _cancelled(self, header: dict[str, Any]) -> None:
        self._out.put_nowait(encode({"t": "reply", "id": header["id"], "ok": True}))
        exit_frame = {"t": "exit", "id": header["run"], "code": 137, "cancelled": True}
        self._out.put_nowait(encode(exit_frame))
        self.seen.append("exited")

    async def read(self) -> bytes | None:
        return await self._out.get()

    async def aclose(self) -> None:
        self._out.put_nowait(None)


class FakeBackend:
    def __init__(self, agent: FakeAgent) -> None:
        self.agent = agent

    async def attach(self, *args: Any, **kwargs: Any) -> FakeAgent:
        return self.agent


async def test_a_run_whose_caller_is_cancelled_ends_its_command_before_returning() -> None:
    """The session's lock is let go when ``run`` returns: the command must be over by then."""
    agent = FakeAgent()
    driver = AgentDriver(cast(DockerBackend, FakeBackend(agent)), "c0ffee")
    request = ProcessRequest(("sleep", "60"), "/workspace", 60.0, 1024)
    running = asyncio.create_task(driver.run(request))
    await asyncio.sleep(0.02)
    assert agent.seen == ["run"]
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert agent.seen == ["run", "cancel", "exited"]
