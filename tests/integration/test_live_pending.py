"""Framing B (RUN.md, seed 004): ``POST /session`` makes a pending run, ``/ws/session/{id}``
starts it; every language, input, compile errors, the 40 ms flush, ids used once, expiry."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiodocker
import httpx
import pytest
from websockets.exceptions import InvalidStatus

from .conftest import (
    LANGUAGES,
    ServerFactory,
    ServerProcess,
    wait_until,
)
from .live import LiveClient, fetch_samples, pending_run
from .test_live_terminal import BROKEN, running_interactive


async def connect(server: ServerProcess, session_id: str) -> LiveClient:
    return await LiveClient.open(f"{server.url}/ws/session/{session_id}")


async def run_to_end(server: ServerProcess, **body: Any) -> LiveClient:
    """Post a run, connect, and wait for the server to close the socket."""
    client = await connect(server, await pending_run(server.http_url, **body))
    try:
        await client.until_closed()
    finally:
        await client.close()
    return client


def exit_code(client: LiveClient) -> int:
    assert client.messages, "nothing arrived"
    last = client.messages[-1]
    assert set(last) == {"type", "code"}, client.messages
    assert last["type"] == "exit"
    code: int = last["code"]
    return code


@pytest.mark.parametrize("language", LANGUAGES)
async def test_sample_asks_and_answers(server_process: ServerProcess, language: str) -> None:
    samples = await fetch_samples(server_process.http_url)
    session_id = await pending_run(
        server_process.http_url, language=language, code=samples[language]
    )
    client = await connect(server_process, session_id)
    try:
        await client.until(lambda c: "name?" in c.text())
        await client.send(type="input", data="Ada\n")
        await client.until_closed()
        assert "Hello, Ada!" in client.text()
        assert not client.of("echo")  # framing B has no echo
        assert exit_code(client) == 0
    finally:
        await client.close()


async def test_posted_stdin_and_stderr(server_process: ServerProcess) -> None:
    code = "import sys\nprint(sys.stdin.readline().upper(), end='')\nsys.exit('bye')"
    client = await run_to_end(server_process, language="python", code=code, stdin="hello\n")
    assert client.text() == "HELLO\n"
    assert client.text("stderr") == "bye\n"
    assert exit_code(client) == 1


@pytest.mark.parametrize("language", sorted(BROKEN))
async def test_compile_error_on_stderr(server_process: ServerProcess, language: str) -> None:
    client = await run_to_end(server_process, language=language, code=BROKEN[language])
    assert client.text("stderr").strip()
    assert not client.text()
    assert exit_code(client) != 0


async def test_output_is_flushed_in_ticks(server_process: ServerProcess) -> None:
    code = "import time\nfor i in range(3000):\n    print(i)\n    time.sleep(0.0005)\n"
    started = time.monotonic()
    client = await run_to_end(server_process, language="python", code=code)
    elapsed = time.monotonic() - started
    lines = client.text().split()
    assert lines == [str(i) for i in range(3000)]  # nothing lost, nothing reordered
    frames = len(client.of("stdout"))
    assert frames <= elapsed / 0.04 + 3, (frames, elapsed)  # at most one per 40 ms tick
    assert exit_code(client) == 0


async def test_output_cap_ends_the_run(server_process: ServerProcess) -> None:
    client = await run_to_end(server_process, language="python", code="while 1: print('x' * 999)")
    assert exit_code(client) == 137
    assert 0 < len(client.text()) <= 1024 * 1024


async def test_ids_are_good_once(server_process: ServerProcess) -> None:
    session_id = await pending_run(server_process.http_url, language="python", code="print(1)")
    await (await connect(server_process, session_id)).until_closed()
    for unknown in (session_id, "no-such-run", "..%2f..%2fapi", "a/b"):
        with pytest.raises(InvalidStatus) as refused:
            await connect(server_process, unknown)
        response = refused.value.response
        assert response.status_code == 404
        assert b"run_not_found" in response.body


async def test_pending_runs_expire(start_server: ServerFactory) -> None:
    server = await start_server(CODEBEAKER_PENDING_RUN_SECONDS="1")
    session_id = await pending_run(server.http_url, language="python", code="print(1)")
    await asyncio.sleep(1.5)
    with pytest.raises(InvalidStatus) as refused:
        await connect(server, session_id)
    assert refused.value.response.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"language": "python"}, "code"),
        ({"code": "print(1)"}, "language"),
        ({"language": "python", "code": "1", "stdin": 5}, "stdin"),
        ({"language": "python", "code": "1", "extra": True}, "extra"),
    ],
)
async def test_bad_posts_name_the_field(
    server_process: ServerProcess, body: dict[str, Any], field: str
) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(f"{server_process.http_url}/session", json=body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["kind"] == "invalid_params"
    assert [error["loc"][-1] for error in problem["errors"]] == [field]


async def test_unknown_language_lists_the_supported(server_process: ServerProcess) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(
            f"{server_process.http_url}/session", json={"language": "cobol", "code": "x"}
        )
    assert response.status_code == 422
    assert {"c", "cpp", "java", "python"} <= set(response.json()["supported"])


async def test_timeout_and_bad_messages(start_server: ServerFactory) -> None:
    server = await start_server(CODEBEAKER_INTERACTIVE_IDLE_SECONDS="2")
    session_id = await pending_run(server.http_url, language="python", code="input()")
    client = await connect(server, session_id)
    try:
        await client.send(type="code", language="python", source="print(2)")
        await client.send_raw(b"\x01")
        await client.send(type="input", data=["not", "text"])
        await client.until(lambda c: len(c.of("error")) == 3)
        errors = [message["data"] for message in client.of("error")]
        assert errors[0].startswith("code:"), errors
        assert "binary" in errors[1]
        assert errors[2].startswith("invalid_params: data"), errors
        await client.until_closed(timeout=30)
        assert exit_code(client) == 124
    finally:
        await client.close()


async def test_disconnect_mid_run_leaves_nothing(
    docker: aiodocker.Docker, server_process: ServerProcess
) -> None:
    source = '#include <stdio.h>\nint main(){puts("up");fflush(stdout);return getchar();}\n'
    session_id = await pending_run(server_process.http_url, language="c", code=source)
    client = await connect(server_process, session_id)
    await client.until(lambda c: "up" in c.text())
    await client.close()

    async def gone() -> bool:
        return not await running_interactive(docker, server_process.instance)

    assert await wait_until(gone, timeout=15), "the run's container outlived its client"
