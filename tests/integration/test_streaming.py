"""``stream: true``: ``session.output`` notifications, and ``session.input`` for live stdin.

Each test opens its own connection, so notifications never mix with other tests' frames.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from .client import RpcClient
from .conftest import ConnectFactory, ServerFactory, SessionFactory

PROMPTS = (
    "import sys\n"
    "name = input('name? ')\n"
    "print('hello', name)\n"
    "age = input('age? ')\n"
    "print('in ten years', int(age) + 10)\n"
    "print('rest:', repr(sys.stdin.read()))\n"
)
REQUEST_IDS = itertools.count(9000)


async def stream(
    client: RpcClient, session_id: str, command: str, *args: str, **fields: Any
) -> tuple[int, asyncio.Future[dict[str, Any]]]:
    """Start a streamed execute_shell; its request id and the future of its response."""
    request_id = next(REQUEST_IDS)
    command_object = {"type": "execute_shell", "commandName": command, "args": list(args)}
    params = {"sessionId": session_id, "stream": True, "command": {**command_object, **fields}}
    future = await client.start("session.execute", params, request_id=request_id)
    return request_id, future


async def read_until(client: RpcClient, request_id: int, text: str, timeout: float = 30) -> str:
    """stdout notifications of the request, joined, until ``text`` has appeared."""
    seen = ""
    while text not in seen:
        params = await client.next_output(request_id, timeout)
        if params["stream"] == "stdout":
            seen += params["data"]
    return seen


@pytest.fixture
async def client(connect: ConnectFactory) -> RpcClient:
    return await connect()


@pytest.fixture
async def session_id(client: RpcClient, make_session: SessionFactory) -> str:
    created = await make_session("python", client=client)
    return str(created["sessionId"])


async def test_output_arrives_before_the_response_and_adds_up(
    client: RpcClient, session_id: str
) -> None:
    script = (
        "import sys, time\n"
        "for i in range(5):\n"
        "    print('out', i, flush=True)\n"
        "    print('err', i, file=sys.stderr, flush=True)\n"
        "    time.sleep(0.1)\n"
    )
    request_id, future = await stream(client, session_id, "python3", "-c", script)
    first = await client.next_output(request_id)
    assert not future.done(), "the first output must arrive while the command still runs"
    assert first["sessionId"] == session_id
    assert first["requestId"] == request_id
    assert first["stream"] in ("stdout", "stderr")

    response = await asyncio.wait_for(future, 30)
    envelope = response["result"]
    assert envelope["success"], envelope
    notes = [first] + [params for _, params in client.drain_outputs(request_id)]
    for name in ("stdout", "stderr"):
        streamed = "".join(note["data"] for note in notes if note["stream"] == name)
        assert streamed == envelope["result"][name], (name, notes)
    assert envelope["result"]["stdout"] == "".join(f"out {i}\n" for i in range(5))
    # nothing for this request arrives after its response
    await asyncio.sleep(0.2)
    assert client.drain_outputs(request_id) == []


async def test_notifications_are_coalesced_to_one_per_50ms(
    client: RpcClient, session_id: str
) -> None:
    """2000 small writes over ~1 s become a few dozen notifications, spaced >= 50 ms."""
    script = (
        "import sys, time\n"
        "for i in range(2000):\n"
        "    sys.stdout.write(f'{i}\\n')\n"
        "    sys.stdout.flush()\n"
        "    time.sleep(0.0005)\n"
    )
    request_id, future = await stream(client, session_id, "python3", "-c", script)
    envelope = (await asyncio.wait_for(future, 60))["result"]
    assert envelope["success"], envelope
    arrivals = client.drain_outputs(request_id)
    stdout = [(at, params) for at, params in arrivals if params["stream"] == "stdout"]
    assert "".join(params["data"] for _, params in stdout) == envelope["result"]["stdout"]
    assert 2 <= len(stdout) < 200, len(stdout)
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(stdout)]
    # arrival times carry jitter (one late frame shortens the next gap); the server spaces
    # them by 50 ms, so all but a few gaps are near that
    assert sorted(gaps)[len(gaps) // 10] >= 0.03, gaps


async def test_split_utf8_characters_are_not_mangled(client: RpcClient, session_id: str) -> None:
    script = (
        "import os, time\n"
        "euro = '€'.encode()\n"
        "os.write(1, euro[:1]); time.sleep(0.2); os.write(1, euro[1:] + b' ok\\n')\n"
    )
    request_id, future = await stream(client, session_id, "python3", "-c", script)
    envelope = (await asyncio.wait_for(future, 30))["result"]
    streamed = "".join(params["data"] for _, params in client.drain_outputs(request_id))
    assert streamed == envelope["result"]["stdout"] == "€ ok\n"


async def test_interactive_program_is_driven_turn_by_turn(
    client: RpcClient, session_id: str
) -> None:
    request_id, future = await stream(client, session_id, "python3", "-c", PROMPTS)
    assert "name? " in await read_until(client, request_id, "name? ")
    assert not future.done()

    reply = await client.result("session.input", {"sessionId": session_id, "data": "Ada\n"})
    assert reply == {"sessionId": session_id, "bytes": 4, "eof": False}
    assert "hello Ada" in await read_until(client, request_id, "age? ")

    await client.result("session.input", {"sessionId": session_id, "data": "26\n"})
    await read_until(client, request_id, "in ten years 36")
    await client.result("session.input", {"sessionId": session_id, "data": "tail é", "eof": True})
    envelope = (await asyncio.wait_for(future, 30))["result"]
    assert envelope["success"], envelope
    assert envelope["result"]["stdout"] == (
        "name? hello Ada\nage? in ten years 36\nrest: 'tail é'\n"
    )


async def test_read_loop_in_shell_ends_at_eof(client: RpcClient, session_id: str) -> None:
    script = 'while read line; do echo "got $line"; done; echo bye'
    request_id, future = await stream(client, session_id, "sh", "-c", script)
    for word in ("one", "two"):
        await client.result("session.input", {"sessionId": session_id, "data": word + "\n"})
        await read_until(client, request_id, f"got {word}")
    await client.result("session.input", {"sessionId": session_id, "eof": True})
    envelope = (await asyncio.wait_for(future, 30))["result"]
    assert envelope["result"]["stdout"] == "got one\ngot two\nbye\n"


async def test_input_sent_before_the_command_starts_waits_for_it(
    client: RpcClient, session_id: str
) -> None:
    """The session is busy; the streamed command queues behind, and so does its input."""
    busy = await client.start(
        "session.execute",
        {
            "sessionId": session_id,
            "command": {"type": "execute_shell", "commandName": "sleep", "args": ["1"]},
        },
    )
    _, future = await stream(client, session_id, "cat")
    await client.result("session.input", {"sessionId": session_id, "data": "early\n", "eof": True})
    assert not busy.done()
    envelope = (await asyncio.wait_for(future, 30))["result"]
    assert envelope["result"]["stdout"] == "early\n"
    assert (await busy)["result"]["success"]


async def test_stdin_field_comes_first_then_live_input(client: RpcClient, session_id: str) -> None:
    request_id, future = await stream(client, session_id, "cat", stdin="first\n")
    await read_until(client, request_id, "first\n")
    await client.result("session.input", {"sessionId": session_id, "data": "second\n"})
    await client.result("session.input", {"sessionId": session_id, "eof": True})
    envelope = (await asyncio.wait_for(future, 30))["result"]
    assert envelope["result"]["stdout"] == "first\nsecond\n"


async def test_waiting_for_input_still_times_out(client: RpcClient, session_id: str) -> None:
    _, future = await stream(client, session_id, "cat", timeoutSeconds=1)
    envelope = (await asyncio.wait_for(future, 30))["result"]
    assert envelope["result"]["timedOut"] is True
    assert envelope["result"]["exitCode"] == 124
    # its stdin went with it
    await client.error(
        "session.input", {"sessionId": session_id, "data": "x"}, code=-32007, kind="input_closed"
    )


async def test_input_without_a_reader_is_refused(client: RpcClient, session_id: str) -> None:
    error = await client.error(
        "session.input", {"sessionId": session_id, "data": "x"}, code=-32007, kind="input_closed"
    )
    assert "stream" in error["message"]
    # a command run without stream: true reads EOF at once and takes no input
    envelope = await client.shell(session_id, "cat")
    assert envelope["result"]["stdout"] == ""


async def test_input_params_are_validated(client: RpcClient, session_id: str) -> None:
    error = await client.error("session.input", {"data": "x"}, code=-32602)
    assert error["data"]["errors"][0]["loc"] == ["sessionId"]
    error = await client.error("session.input", {"sessionId": session_id, "data": 5}, code=-32602)
    assert error["data"]["errors"][0]["loc"] == ["data"]
    await client.error("session.input", {"sessionId": "no-such-session", "data": "x"}, code=-32001)


async def test_without_stream_no_notifications(client: RpcClient, session_id: str) -> None:
    envelope = await client.shell(session_id, "echo", "quiet")
    assert envelope["result"]["stdout"] == "quiet\n"
    await asyncio.sleep(0.2)
    assert all(queue.empty() for queue in client.outputs.values())


async def test_streamed_flood_is_capped(client: RpcClient, session_id: str) -> None:
    request_id, future = await stream(client, session_id, "yes", timeoutSeconds=60)
    envelope = (await asyncio.wait_for(future, 80))["result"]
    assert envelope["result"]["truncated"] is True
    streamed = "".join(
        params["data"]
        for _, params in client.drain_outputs(request_id)
        if params["stream"] == "stdout"
    )
    assert streamed == envelope["result"]["stdout"]


async def test_input_waiting_for_a_queued_command_is_capped(
    start_server: ServerFactory, connect: ConnectFactory, make_session: SessionFactory
) -> None:
    server = await start_server(CODEBEAKER_MAX_WRITE_BYTES="2048")
    client = await connect(server.url)
    session_id = (await make_session("python", client=client))["sessionId"]
    busy = await client.start(
        "session.execute",
        {
            "sessionId": session_id,
            "command": {"type": "execute_shell", "commandName": "sleep", "args": ["2"]},
        },
    )
    _, future = await stream(client, session_id, "cat")
    kept = "k" * 2000
    await client.result("session.input", {"sessionId": session_id, "data": kept})
    error = await client.error(
        "session.input",
        {"sessionId": session_id, "data": "x" * 100},
        code=-32004,
        kind="limit_exceeded",
    )
    assert error["data"]["limit"] == "stdin"
    await client.result("session.input", {"sessionId": session_id, "eof": True})
    envelope = (await asyncio.wait_for(future, 30))["result"]
    assert envelope["result"]["stdout"] == kept  # what was accepted all arrived
    assert (await busy)["result"]["success"]
