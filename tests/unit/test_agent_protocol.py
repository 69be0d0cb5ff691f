"""The agent's framing and the driver-side values both drivers share."""

import asyncio

import pytest

from codebeaker.exceptions import LimitExceededError
from codebeaker.sandbox.agent import cwd_failure, start_failure
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
