"""Framing A (RUN.md, seed 000): ``/ws`` runs one program per connection, every language,
turn-by-turn input, compile errors, every way a run ends, and every kind of bad message."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import aiodocker
import pytest

from codebeaker.constants import LABEL_KIND

from .conftest import LANGUAGES, ServerFactory, ServerProcess, instance_containers, wait_until
from .live import LiveClient, fetch_samples

BROKEN = {
    "c": "int main(void) { return missing; }\n",
    "cpp": "int main() { undefined_call(); }\n",
    "go": "package main\nfunc main() { undefined() }\n",
    "java": "public class Main { public static void main(String[] a) { int x = ; } }\n",
    "csharp": "class P { static void Main() { int x = ; } }\n",
}
"""A compile error per compiled language."""
TWO_TURNS = "a = input('first? ')\nprint('got', a)\nb = input('second? ')\nprint('then', b)\n"
MIB = 1024 * 1024


@pytest.fixture
async def terminal(server_process: ServerProcess) -> Any:
    clients: list[LiveClient] = []

    async def open_terminal(url: str | None = None) -> LiveClient:
        client = await LiveClient.open(url or f"{server_process.url}/ws")
        clients.append(client)
        return client

    yield open_terminal
    for client in clients:
        await client.close()


def exit_of(client: LiveClient) -> dict[str, Any]:
    assert client.messages, "nothing arrived"
    assert client.messages[-1]["type"] == "exit", client.messages
    return client.messages[-1]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_sample_asks_and_answers(
    server_process: ServerProcess, terminal: Any, language: str
) -> None:
    samples = await fetch_samples(server_process.http_url)
    client = await terminal()
    await client.send(type="code", language=language, source=samples[language])
    await client.until(lambda c: "name?" in c.text())
    await client.send(type="input", data="Ada\n")
    messages = await client.until_closed()
    assert {"type": "echo", "data": "Ada\n"} in messages
    assert "Hello, Ada!" in client.text()
    assert exit_of(client) == {"type": "exit", "return_code": 0}
    if language in BROKEN:  # compiled: success reported before the program's first output
        kinds = [message["type"] for message in messages]
        assert kinds.index("compile_success") < kinds.index("stdout")


@pytest.mark.parametrize("language", sorted(BROKEN))
async def test_compile_error_is_reported_apart(terminal: Any, language: str) -> None:
    client = await terminal()
    await client.send(type="code", language=language, source=BROKEN[language])
    messages = await client.until_closed()
    error = client.of("compile_error")
    assert len(error) == 1, messages
    assert error[0]["return_code"] != 0
    assert error[0]["stderr"].strip()
    assert not client.of("stdout")
    assert not client.of("compile_success")
    assert exit_of(client)["return_code"] == error[0]["return_code"]


async def test_turn_by_turn_input_and_custom_commands(terminal: Any) -> None:
    client = await terminal()
    await client.send(type="code", language="python", source=TWO_TURNS)
    await client.until(lambda c: "first?" in c.text())
    assert "second?" not in client.text()  # the program waits for us
    await client.send(type="input", data="one\n")
    await client.until(lambda c: "second?" in c.text())
    assert "got one" in client.text()
    await client.send(type="input", data="two\n")
    await client.until_closed()
    assert "then two" in client.text()
    assert exit_of(client)["return_code"] == 0

    other = await terminal()
    source = "#include <stdio.h>\nint main(){puts(GREETING);return 3;}\n"
    await other.send(
        type="code",
        language="c",
        filename="hi.c",
        source=source,
        compile_cmd="gcc -DGREETING='\"hi there\"' hi.c -o hi",
        command="./hi",
    )
    await other.until_closed()
    assert other.text() == "hi there\n"
    assert exit_of(other)["return_code"] == 3


async def test_eof_and_stderr(terminal: Any) -> None:
    client = await terminal()
    code = "import sys\ndata = sys.stdin.read()\nprint(len(data), file=sys.stderr)\n"
    await client.send(type="code", language="python", source=code)
    await client.send(type="input", data="abc")
    await client.send(type="eof")
    await client.until_closed()
    assert client.text("stderr") == "3\n"
    assert exit_of(client)["return_code"] == 0


async def test_kill_ends_the_run(terminal: Any) -> None:
    client = await terminal()
    await client.send(type="code", language="python", source="print('up', flush=True)\ninput()")
    await client.until(lambda c: "up" in c.text())
    await client.send(type="kill")
    await client.until_closed(timeout=30)
    assert exit_of(client) == {"type": "exit", "return_code": 137, "reason": "killed"}


async def test_output_cap_ends_the_run(terminal: Any) -> None:
    client = await terminal()
    await client.send(type="code", language="python", source="while True: print('x' * 1000)")
    await client.until_closed()
    end = exit_of(client)
    assert end["reason"] == "output_limit", end
    assert len(client.text()) <= MIB


async def test_timeouts(docker: aiodocker.Docker, start_server: ServerFactory) -> None:
    server = await start_server(
        CODEBEAKER_INTERACTIVE_TIMEOUT_SECONDS="3", CODEBEAKER_INTERACTIVE_IDLE_SECONDS="1.5"
    )
    busy = await LiveClient.open(f"{server.url}/ws")
    idle = await LiveClient.open(f"{server.url}/ws")
    try:
        code = "import time\nwhile True:\n    print('.', flush=True)\n    time.sleep(0.2)\n"
        await busy.send(type="code", language="python", source=code)  # output: never idle
        await idle.send(type="code", language="python", source="input()")
        await idle.until_closed(timeout=30)
        assert exit_of(idle) == {"type": "exit", "return_code": 124, "reason": "timeout"}
        await busy.until_closed(timeout=30)
        assert exit_of(busy) == {"type": "exit", "return_code": 124, "reason": "timeout"}
        assert busy.text().count(".") >= 8  # it ran past the idle limit
    finally:
        await busy.close()
        await idle.close()


async def test_disconnect_mid_run_leaves_nothing(
    docker: aiodocker.Docker, server_process: ServerProcess
) -> None:
    client = await LiveClient.open(f"{server_process.url}/ws")
    source = '#include <stdio.h>\nint main(){puts("up");fflush(stdout);return getchar();}\n'
    await client.send(type="code", language="c", source=source)  # c: never from the pool
    await client.until(lambda c: "up" in c.text())
    assert await running_interactive(docker, server_process.instance)
    await client.close()

    async def gone() -> bool:
        return not await running_interactive(docker, server_process.instance)

    assert await wait_until(gone, timeout=15), "the run's container outlived its client"


async def running_interactive(docker: aiodocker.Docker, instance: str) -> list[dict[str, Any]]:
    return await instance_containers(docker, instance, **{LABEL_KIND: "interactive"})


# ------------------------------------------------------------------------------ bad input


async def test_bad_messages_keep_the_connection(terminal: Any) -> None:
    client = await terminal()
    await client.send(type="nonsense")
    await client.send_raw(b"\x00\x01")
    await client.send_raw("{not json")
    await client.send(type="input", data="too early")
    await client.until(lambda c: len(c.of("error")) == 4)
    errors = [message["data"] for message in client.of("error")]
    assert "'code', 'input', 'eof', 'kill'" in errors[0], errors[0]
    assert "binary" in errors[1]
    assert errors[2].startswith("invalid_params"), errors[2]
    assert errors[3].startswith("input: no program runs"), errors[3]
    assert not client.closed.is_set()

    await client.send(
        type="code", language="python", source="import sys\nsys.exit(len(sys.stdin.read()) + 5)"
    )
    await client.send(type="code", language="python", source="print(1)")
    await client.until(lambda c: len(c.of("error")) == 5)
    assert "already runs" in client.of("error")[4]["data"]
    await client.send(type="code", language="python")  # a bad one: the run goes on too
    await client.until(lambda c: len(c.of("error")) == 6)
    assert "source" in client.of("error")[5]["data"]
    await client.send(type="input", data=7)  # not a string: named, and the run goes on
    await client.send(type="T" * 100_000)  # the error names it without echoing it all
    await client.until(lambda c: len(c.of("error")) == 8)
    assert "data" in client.of("error")[6]["data"]
    assert len(client.of("error")[7]["data"]) < 1000
    await client.send(type="eof")
    await client.send(type="input", data="late\n")
    await client.until(lambda c: len(c.of("error")) == 9)
    assert client.of("error")[8]["data"].startswith("input: input_closed"), client.messages
    await client.until_closed()
    assert exit_of(client)["return_code"] == 5  # nothing after the EOF reached it


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "code", "language": "python"}, "source"),
        ({"type": "code", "language": "brainfuck", "source": "+"}, "supported: c, cpp"),
        ({"type": "code", "language": "c", "source": "", "command": "'open"}, "command"),
        ({"type": "code", "language": "c", "source": "", "compile_cmd": ""}, "compile_cmd"),
        ({"type": "code", "language": "c", "source": "", "filename": "../x.c"}, "filename"),
        ({"type": "code", "language": "python", "source": "", "extra": 1}, "extra"),
    ],
)
async def test_bad_code_message_ends_the_connection(
    terminal: Any, message: dict[str, Any], expected: str
) -> None:
    client = await terminal()
    await client.send_raw(json.dumps(message))
    messages = await client.until_closed(timeout=10)
    assert [m["type"] for m in messages] == ["error"], messages
    assert expected in messages[0]["data"], messages[0]


async def test_size_caps(start_server: ServerFactory) -> None:
    server = await start_server(
        CODEBEAKER_MAX_SOURCE_BYTES="1024",
        CODEBEAKER_MAX_INPUT_BYTES="64",
        CODEBEAKER_RUN_INPUT_LIMIT_BYTES="2048",
    )
    big = await LiveClient.open(f"{server.url}/ws")
    flood = await LiveClient.open(f"{server.url}/ws")
    try:
        await big.send(type="code", language="python", source="#" * 1025)
        await big.until_closed(timeout=10)
        assert "source" in big.of("error")[0]["data"]
        assert "1024" in big.of("error")[0]["data"]

        # A program that never reads: input past the run's cap is refused, memory stays put.
        code = "import time\nprint('up', flush=True)\ntime.sleep(60)"
        await flood.send(type="code", language="python", source=code)
        await flood.until(lambda c: "up" in c.text())
        await flood.send(type="input", data="y" * 65)
        for _ in range(40):
            await flood.send(type="input", data="z" * 64)
        await flood.until(lambda c: len(c.of("echo")) + len(c.of("error")) == 41)
        errors = [message["data"] for message in flood.of("error")]
        assert errors[0].startswith("invalid_params: data: must be at most 64 bytes"), errors
        assert len(flood.of("echo")) == 2048 // 64
        assert all("run_input" in error or "limit_exceeded" in error for error in errors[1:])
        await flood.send(type="kill")
        await flood.until_closed(timeout=30)
        assert exit_of(flood)["reason"] == "killed"
    finally:
        await big.close()
        await flood.close()


async def test_queue_bound_refuses_with_an_error(start_server: ServerFactory) -> None:
    server = await start_server(
        CODEBEAKER_MAX_INTERACTIVE_RUNS="1", CODEBEAKER_INTERACTIVE_QUEUE_SIZE="1"
    )
    clients = [await LiveClient.open(f"{server.url}/ws") for _ in range(3)]
    try:
        code = "print('up', flush=True)\ninput()\nprint('done')"
        await clients[0].send(type="code", language="python", source=code)
        await clients[0].until(lambda c: "up" in c.text())
        await clients[1].send(type="code", language="python", source=code)  # waits its turn
        await asyncio.sleep(0.5)
        await clients[2].send(type="code", language="python", source=code)  # past the queue
        await clients[2].until_closed(timeout=10)
        assert clients[2].of("error")[0]["data"].startswith("limit_exceeded"), clients[2].messages
        assert not clients[1].of("stdout")
        await clients[0].send(type="input", data="\n")
        await clients[0].until_closed()
        await clients[1].until(lambda c: "up" in c.text())  # its turn came
        await clients[1].send(type="input", data="\n")
        await clients[1].until_closed()
        assert "done" in clients[1].text()
    finally:
        for client in clients:
            await client.close()


async def test_shutdown_lets_running_programs_finish(
    docker: aiodocker.Docker, start_server: ServerFactory
) -> None:
    server = await start_server(CODEBEAKER_SHUTDOWN_GRACE_SECONDS="20")
    client = await LiveClient.open(f"{server.url}/ws")
    try:
        code = "import time\nprint('up', flush=True)\ntime.sleep(2)\nprint('finished')"
        await client.send(type="code", language="python", source=code)
        await client.until(lambda c: "up" in c.text())
        stopping = asyncio.create_task(server.stop())
        await client.until_closed(timeout=30)
        assert "finished" in client.text()
        assert exit_of(client) == {"type": "exit", "return_code": 0}
        assert await stopping in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
        assert not await instance_containers(docker, server.instance)
    finally:
        await client.close()


async def test_the_api_key_stays_out_of_the_log(start_server: ServerFactory) -> None:
    server = await start_server(CODEBEAKER_API_KEY="sekret-key-123")
    refused = await LiveClient.open(f"{server.url}/ws")
    allowed = await LiveClient.open(f"{server.url}/ws?apiKey=sekret-key-123")
    try:
        await refused.until_closed(timeout=10)
        assert refused.messages[0]["data"].startswith("unauthorized"), refused.messages
        await allowed.send(type="code", language="python", source="print('in')")
        await allowed.until_closed()
        assert allowed.text() == "in\n"
        log = server.log()
        assert "apiKey=***" in log
        assert "sekret-key-123" not in log
    finally:
        await refused.close()
        await allowed.close()
