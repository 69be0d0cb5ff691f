"""``codebeaker mcp`` end to end: the MCP server as a subprocess, driven by the official ``mcp``
package's own client over stdio and over Streamable HTTP, against a real CodeBeaker server.

Most tests talk to one CodeBeaker server with the agent driver (``execute_code`` needs code
contexts, which only the agent offers); ``test_shell_and_cells_under_each_driver`` runs
under both drivers, through the suite's shared server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from codebeaker_client import AsyncCodeBeaker
from codebeaker_client.mcp.jobs import MAX_RUNNING_PER_CLIENT
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult, ImageContent, TextContent

from .conftest import ServerProcess, free_port, stop_and_check

WAIT = 2.0
"""The MCP server's --wait-seconds in these tests: long jobs show up quickly."""
TOOLS = {
    "run_code",
    "execute_code",
    "shell",
    "process_output",
    "process_input",
    "process_cancel",
    "read_file",
    "write_file",
    "edit_file",
    "list_files",
    "session_create",
    "session_list",
    "session_close",
}


def mcp_command() -> list[str]:
    """``codebeaker mcp``, as the installed ``codebeaker`` command runs it."""
    return [sys.executable, "-m", "codebeaker_client.cli", "mcp"]


def jsonrpc(base: str) -> str:
    return f"{base}/ws/jsonrpc"


@contextlib.asynccontextmanager
async def stdio(url: str, *flags: str) -> AsyncIterator[Client]:
    """An MCP client connected to ``codebeaker mcp`` started over stdio (it stops when the
    client closes its stdin)."""
    command, *args = mcp_command()
    params = StdioServerParameters(
        command=command, args=[*args, "--url", url, "--wait-seconds", str(WAIT), *flags]
    )
    async with Client(params) as client:
        yield client


@contextlib.asynccontextmanager
async def http_server(url: str, *flags: str) -> AsyncIterator[str]:
    """``codebeaker mcp --transport http`` on a free port; its MCP endpoint URL."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="codebeaker-mcp-", suffix=".log")[1])
    argv = [*mcp_command(), "--url", url, "--transport", "http", "--port", str(port)]
    argv += ["--wait-seconds", str(WAIT), *flags]
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=sink, stderr=asyncio.subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while not _listening(port):
            if process.returncode is not None or time.monotonic() > deadline:
                pytest.fail(f"codebeaker mcp did not listen on {port}:\n{log.read_text()}")
            await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
        log.unlink(missing_ok=True)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool call that must succeed; its structured content."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {text(result)}"
    assert isinstance(result.structured_content, dict), result
    block = result.content[0]
    assert isinstance(block, TextContent)
    assert json.loads(block.text) == result.structured_content
    return result.structured_content


async def failing(client: Client, tool: str, **arguments: Any) -> str:
    """A tool call that must come back as a tool error; its text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} did not fail: {result}"
    assert result.structured_content is None
    return text(result)


def text(result: CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


async def session_ids(url: str) -> set[str]:
    async with AsyncCodeBeaker(url) as sdk:
        return {summary.session_id for summary in await sdk.list_sessions()}


async def closed_eventually(url: str, session_id: str, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while session_id in await session_ids(url):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.3)
    return True


@pytest.fixture(scope="module")
async def url(docker: aiodocker.Docker) -> AsyncIterator[str]:
    """A CodeBeaker server with the agent driver, for this module's tests."""
    server = ServerProcess({"CODEBEAKER_DRIVER": "agent"})
    try:
        await server.start()
        yield jsonrpc(server.url)
    finally:
        await stop_and_check(docker, server)


# --------------------------------------------------------------------------- tools


async def test_tools_are_listed_with_input_and_output_schemas(url: str) -> None:
    async with stdio(url) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(listed) == TOOLS
    for tool in listed.values():
        assert tool.description, tool.name
        assert tool.input_schema["type"] == "object", tool.name
        assert tool.output_schema is not None, tool.name
        assert tool.output_schema["type"] == "object", tool.name
        assert "ctx" not in tool.input_schema.get("properties", {}), tool.name
    shell = listed["shell"]
    assert shell.input_schema["required"] == ["command"]
    assert {"session_id", "cwd", "timeout", "interactive"} <= set(shell.input_schema["properties"])
    assert {"exit_code", "stdout", "stderr", "process_id"} <= set(
        shell.output_schema["properties"]  # type: ignore[index]
    )
    assert listed["edit_file"].input_schema["required"] == ["path", "old_string", "new_string"]
    assert listed["read_file"].annotations is not None
    assert listed["read_file"].annotations.read_only_hint is True


async def test_execute_code_keeps_state_between_calls(url: str) -> None:
    async with stdio(url) as client:
        first = await call(client, "execute_code", code="import math\nx = 6 * 7\nx")
        second = await call(client, "execute_code", code="print(x + 1)\nmath.sqrt(x * 42)")
    assert first["status"] == "ok"
    assert first["text"] == "42"
    assert second["stdout"] == "43\n"
    assert second["text"] == "42.0"
    assert second["execution_count"] == first["execution_count"] + 1
    assert second["session_id"] == first["session_id"], "one session per client"


async def test_a_plot_and_an_image_file_come_back_as_images(url: str) -> None:
    plot = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [1, 4, 9])\n"
        "plt.savefig('chart.png')\n"
        "plt.show()"
    )
    async with stdio(url) as client:
        created = await call(client, "session_create", language="python-data")
        assert created["closes_with_client"] is True
        sid = created["session_id"]
        result = await client.call_tool("execute_code", {"code": plot, "session_id": sid})
        assert not result.is_error, text(result)
        read = await client.call_tool("read_file", {"path": "chart.png", "session_id": sid})
        assert not read.is_error, text(read)
    images = [block for block in result.content if isinstance(block, ImageContent)]
    assert [image.mime_type for image in images] == ["image/png"]
    assert base64.b64decode(images[0].data).startswith(b"\x89PNG\r\n\x1a\n")
    output = result.structured_content
    assert output is not None
    assert output["values"][0]["images"] == ["image/png"]
    assert "iVBOR" not in text(result), "the image travels as an image, not as text"
    [image] = [block for block in read.content if isinstance(block, ImageContent)]
    assert image.mime_type == "image/png"
    assert read.structured_content is not None
    assert read.structured_content["kind"] == "image"
    assert base64.b64decode(image.data)[:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_long_command_is_polled_to_its_end(url: str) -> None:
    command = "for i in 1 2 3 4 5 6; do echo line $i; sleep 1; done; echo done >&2"
    async with stdio(url) as client:
        started = await call(client, "shell", command=command)
        assert started["running"] is True
        assert "exit_code" not in started
        assert started["stdout"].startswith("line 1\n")
        assert "process_output" in started["note"]
        stdout, stderr, polls = started["stdout"], started["stderr"], []
        while True:
            polled = await call(client, "process_output", process_id=started["process_id"])
            polls.append(polled)
            stdout += polled["stdout"]
            stderr += polled["stderr"]
            if not polled["running"]:
                break
            assert len(polls) < 10
        again = await failing(client, "process_output", process_id=started["process_id"])
    assert stdout == "".join(f"line {n}\n" for n in range(1, 7)), "each line exactly once"
    assert stderr == "done\n"
    assert polls[-1]["exit_code"] == 0
    assert polls[-1]["kind"] == "shell"
    assert "unknown_process" in again


async def test_a_long_cell_is_polled_to_its_end(url: str) -> None:
    code = "import time\nfor i in range(4):\n    print(i, flush=True)\n    time.sleep(1)\n'done'"
    async with stdio(url) as client:
        started = await call(client, "execute_code", code=code)
        assert started["running"] is True
        assert started["status"] == "running"
        stdout = started["stdout"]
        while True:
            polled = await call(client, "process_output", process_id=started["process_id"])
            stdout += polled["stdout"]
            if not polled["running"]:
                break
        assert polled["status"] == "ok"
        assert polled["text"] == "'done'"
        assert stdout == "0\n1\n2\n3\n"
        after = await call(client, "execute_code", code="i")
    assert after["text"] == "3", "the cell ran in the client's context"


async def test_a_nonzero_exit_is_a_result_and_a_lost_session_an_error(url: str) -> None:
    async with stdio(url) as client:
        failed = await call(client, "shell", command="echo out; echo err >&2; exit 3")
        raised = await call(client, "execute_code", code="1 / 0")
        compiled = await call(client, "run_code", language="c", code="int main(){return 5;}")
        gone = await failing(client, "shell", command="true", session_id="no-such-session")
    assert (failed["exit_code"], failed["stdout"], failed["stderr"]) == (3, "out\n", "err\n")
    assert raised["status"] == "error"
    assert raised["error"]["name"] == "ZeroDivisionError"
    assert compiled["exit_code"] == 5
    assert compiled["compile"]["exit_code"] == 0
    assert "session_not_found" in gone
    assert "session_create" in gone, "the error says what to do next"


async def test_files_are_written_edited_read_and_listed(url: str) -> None:
    async with stdio(url) as client:
        await call(client, "write_file", path="src/app.py", content="a = 1\nb = 1\nc = 2\n")
        ambiguous = await failing(
            client, "edit_file", path="src/app.py", old_string="= 1", new_string="= 9"
        )
        missing = await failing(
            client, "edit_file", path="src/app.py", old_string="d = 4", new_string="d = 5"
        )
        edited = await call(
            client, "edit_file", path="src/app.py", old_string="b = 1", new_string="b = 7"
        )
        every = await call(
            client,
            "edit_file",
            path="src/app.py",
            old_string="= ",
            new_string="=  ",
            replace_all=True,
        )
        page = await call(client, "read_file", path="src/app.py", offset=2, limit=1)
        whole = await call(client, "read_file", path="/workspace/src/app.py")
        listing = await call(client, "list_files", path="src")
        nothing = await failing(client, "read_file", path="src/nope.py")
    assert "occurs 2 times (at lines 1, 2)" in ambiguous
    assert "does not occur" in missing
    assert edited["replacements"] == 1
    assert every["replacements"] == 3
    assert page["content"] == "b =  7\n"
    assert (page["first_line"], page["total_lines"], page["next_offset"]) == (2, 3, 3)
    assert whole["content"] == "a =  1\nb =  7\nc =  2\n"
    assert "next_offset" not in whole
    assert [entry["name"] for entry in listing["entries"]] == ["app.py"]
    assert listing["entries"][0]["path"] == "/workspace/src/app.py"
    assert "file_not_found" in nothing


async def test_long_output_is_cut_keeping_head_and_tail(url: str) -> None:
    async with stdio(url, "--output-budget", "2000") as client:
        result = await call(client, "shell", command="seq 1 100000")
    assert result["exit_code"] == 0
    assert result["stdout"].startswith("1\n2\n3\n")
    assert result["stdout"].endswith("99999\n100000\n")
    assert result["stdout_cut_chars"] > 500_000
    assert f"{result['stdout_cut_chars']:,} characters" in result["stdout"]
    assert "read_file" in result["note"]


async def test_a_job_is_fed_input_and_another_is_cancelled(url: str) -> None:
    greet = "read name; echo hello $name; read rest; echo bye $rest"
    async with stdio(url) as client:
        started = await call(client, "shell", command=greet, interactive=True)
        job = started["process_id"]
        assert started["running"] is True
        fed = await call(client, "process_input", process_id=job, data="Ada\n")
        assert fed["bytes"] == 4
        await call(client, "process_input", process_id=job, data="now\n", eof=True)
        ended = await call(client, "process_output", process_id=job)
        sleeper = await call(client, "shell", command="sleep 300", timeout=400)
        cancelled = await call(client, "process_cancel", process_id=sleeper["process_id"])
        closed = await call(client, "shell", command="cat; echo after-eof")
    assert started["stdout"] + ended["stdout"] == "hello Ada\nbye now\n"
    assert ended["exit_code"] == 0
    assert cancelled["running"] is False
    assert cancelled["cancelled"] is True
    assert closed["stdout"] == "after-eof\n", "without interactive, stdin reads EOF"


async def test_running_jobs_are_capped_per_client(url: str) -> None:
    sleeper = {"command": "sleep 300", "timeout": 400}
    async with stdio(url) as client:
        await call(client, "shell", command="true")  # the session, made once
        results = await asyncio.gather(
            *(client.call_tool("shell", sleeper) for _ in range(MAX_RUNNING_PER_CLIENT + 1))
        )
        started = [result.structured_content for result in results if not result.is_error]
        refused = [text(result) for result in results if result.is_error]
        for job in started:
            assert job is not None
            await call(client, "process_cancel", process_id=job["process_id"])
        after = await call(client, "shell", command="echo room again")
    assert len(started) == MAX_RUNNING_PER_CLIENT
    [message] = refused
    assert "too_many_jobs" in message
    assert "process_cancel" in message, "the error says what to do next"
    assert after["stdout"] == "room again\n", "cancelled jobs no longer count"


# --------------------------------------------------------------------------- ownership


async def test_the_clients_session_is_closed_when_it_disconnects(url: str) -> None:
    async with stdio(url) as client:
        mine = (await call(client, "shell", command="true"))["session_id"]
        created = (await call(client, "session_create"))["session_id"]
        kept = (await call(client, "session_create", keep=True))["session_id"]
        listed = await call(client, "session_list")
        assert {mine, created, kept} <= await session_ids(url)
    rows = {row["session_id"]: row["this_client"] for row in listed["sessions"]}
    assert rows[mine]
    assert rows[created]
    assert not rows[kept]
    assert await closed_eventually(url, mine)
    assert await closed_eventually(url, created)
    assert kept in await session_ids(url), "keep=True outlives the client"
    async with AsyncCodeBeaker(url) as sdk:
        await (await sdk.get_session(kept)).close()


async def test_a_stdio_server_stopped_by_sigterm_closes_its_session_first(url: str) -> None:
    """What an MCP client does to a server slow to exit after stdin closes: SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        *mcp_command(),
        "--url",
        url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None

    async def exchange(message: dict[str, Any]) -> dict[str, Any] | None:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
        await process.stdin.drain()
        if "id" not in message:
            return None
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(process.stdout.readline(), 60))
        return reply

    try:
        hello = {"protocolVersion": "2025-11-25", "capabilities": {}}
        hello["clientInfo"] = {"name": "test", "version": "1"}
        await exchange({"id": 1, "method": "initialize", "params": hello})
        await exchange({"method": "notifications/initialized"})
        shell = {"name": "shell", "arguments": {"command": "true"}}
        reply = await exchange({"id": 2, "method": "tools/call", "params": shell})
        assert reply is not None
        mine = reply["result"]["structuredContent"]["session_id"]
        assert mine in await session_ids(url)
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 20) == 0, "it exits, stdin still open"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert mine not in await session_ids(url), "closed before the process exited"


async def test_an_http_client_owns_a_session_until_its_mcp_session_ends(url: str) -> None:
    async with http_server(url) as endpoint:
        async with Client(endpoint, mode="legacy") as client:
            first = await call(client, "execute_code", code="y = 5")
            second = await call(client, "execute_code", code="y * 2")
            mine = first["session_id"]
            assert second["session_id"] == mine
            assert second["text"] == "10"
            async with Client(endpoint, mode="legacy") as other:
                theirs = (await call(other, "shell", command="true"))["session_id"]
            assert theirs != mine, "each MCP session gets its own sandbox"
            assert await closed_eventually(url, theirs), "closed when that client left"
            assert mine in await session_ids(url)
        assert await closed_eventually(url, mine)


async def test_a_sessionless_http_client_uses_explicit_sessions(url: str) -> None:
    async with http_server(url) as endpoint, Client(endpoint) as client:
        assert client.protocol_version == "2026-07-28"
        refused = await failing(client, "shell", command="true")
        created = await call(client, "session_create")
        sid = created["session_id"]
        assert created["closes_with_client"] is False
        ran = await call(client, "shell", command="echo hi > f.txt; cat f.txt", session_id=sid)
        read = await call(client, "read_file", path="f.txt", session_id=sid)
        closed = await call(client, "session_close", session_id=sid)
        after = await failing(client, "shell", command="true", session_id=sid)
    assert "session_create" in refused
    assert ran["stdout"] == "hi\n"
    assert read["content"] == "hi\n"
    assert closed["closed"] is True
    assert sid not in await session_ids(url)
    assert "session_not_found" in after


# --------------------------------------------------------------------------- drivers


async def test_shell_and_cells_under_each_driver(server: str, driver: str) -> None:
    async with stdio(jsonrpc(server)) as client:
        ran = await call(client, "shell", command="echo $((6 * 7))")
        cell = await client.call_tool("execute_code", {"code": "6 * 7"})
        await call(client, "session_close")
    assert ran["stdout"] == "42\n"
    if driver == "agent":
        assert not cell.is_error, text(cell)
        assert cell.structured_content is not None
        assert cell.structured_content["text"] == "42"
    else:
        assert cell.is_error
        assert "contexts_unsupported" in text(cell)
        assert "use shell" in text(cell).lower()
