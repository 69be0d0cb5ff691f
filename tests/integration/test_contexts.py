"""Code contexts through the real server: state across cells, values and tracebacks, rich
results and plots, input, timeouts and interrupts that keep state (or say they did not),
parallel contexts, interpreters that die, and what a sandbox without the agent answers."""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import aiodocker
import pytest

from .client import RpcClient
from .conftest import ServerProcess, SessionFactory, leftover_user_processes, stop_and_check

SEGFAULT = "import ctypes\nctypes.string_at(0)"
STUBBORN = """\
import signal, subprocess
signal.signal(signal.SIGINT, signal.SIG_IGN)
# a grandchild that left the session, the process group and the environment behind
subprocess.Popen(["sh", "-c", "sleep 1000 & exit 0"], start_new_session=True, env={})
while True:
    pass
"""


async def run(rpc: RpcClient, session_id: str, code: str, **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = await rpc.result(
        "session.run_code", {"sessionId": session_id, "code": code, **params}, timeout=120
    )
    assert result["sessionId"] == session_id, result
    assert result["status"] in ("ok", "error", "interrupted", "timeout"), result
    return result


def text(result: dict[str, Any]) -> str:
    """The last expression's ``text/plain``, as a REPL would print it."""
    values = [item for item in result["results"] if item["kind"] == "result"]
    assert len(values) == 1, result
    value: str = values[0]["data"]["text/plain"]
    return value


def png_size(data: str) -> tuple[int, int]:
    raw = base64.b64decode(data)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", raw[:16]
    width, height = struct.unpack(">II", raw[16:24])  # the IHDR chunk
    return width, height


@pytest.fixture(scope="module")
async def rpc(docker: aiodocker.Docker) -> AsyncIterator[RpcClient]:
    """Contexts need the agent: these tests talk to a server with the agent driver, once
    (test_exec_driver_refuses_contexts starts one with the exec driver)."""
    server = ServerProcess({"CODEBEAKER_DRIVER": "agent"})
    try:
        await server.start()
        client = await RpcClient.connect(server.url)
        try:
            yield client
        finally:
            await client.close()
    finally:
        await stop_and_check(docker, server)


async def test_state_lives_across_cells_and_the_last_value_shows(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    session = await make_session("python")
    sid = session["sessionId"]
    first = await run(rpc, sid, "x = 40\ny = 'two'")
    assert first["status"] == "ok", first
    assert first["results"] == [], first
    assert first["contextId"] == "default", first
    assert first["statePreserved"] is True, first
    second = await run(rpc, sid, "x + 2")
    assert text(second) == "42", second
    assert second["executionCount"] == first["executionCount"] + 1, second
    third = await run(rpc, sid, "print('out'); import sys; print('err', file=sys.stderr)\ny")
    assert third["stdout"] == "out\n", third
    assert third["stderr"] == "err\n", third
    assert text(third) == "'two'", third
    assert third["error"] is None, third
    assert third["truncated"] is False, third


async def test_output_of_subprocesses_and_top_level_await(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    result = await run(rpc, sid, "import os\nprint('py', flush=True)\nos.system('echo from-sh')")
    assert result["stdout"] == "py\nfrom-sh\n", result
    assert text(result) == "0", result
    awaited = await run(
        rpc,
        sid,
        "import asyncio\nasync def f():\n    await asyncio.sleep(0.01)\n    return 7\nawait f()",
    )
    assert text(awaited) == "7", awaited


async def test_tracebacks_show_the_users_frames_and_lines(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    result = await run(rpc, sid, "def f(n):\n    return n / 0\n\nf(1)")
    assert result["status"] == "error", result
    error = result["error"]
    assert error["name"] == "ZeroDivisionError", error
    assert error["value"] == "division by zero", error
    traceback = error["traceback"]
    assert traceback.startswith("Traceback (most recent call last):"), traceback
    assert "line 4" in traceback, traceback
    assert "f(1)" in traceback, traceback
    assert "return n / 0" in traceback, traceback
    assert "kernel" not in traceback, traceback
    assert "codebeaker" not in traceback, traceback
    assert result["statePreserved"] is True, result

    syntax = await run(rpc, sid, "x = (1,\n")
    assert syntax["status"] == "error", syntax
    assert syntax["error"]["name"] == "SyntaxError", syntax
    assert "x = (1," in syntax["error"]["traceback"], syntax
    assert "Traceback" not in syntax["error"]["traceback"], syntax

    missing = await run(rpc, sid, "import numpy")
    assert missing["error"]["name"] == "ModuleNotFoundError", missing
    assert "python-data" in missing["error"]["value"], missing
    assert "cannot install packages" in missing["error"]["value"], missing


async def test_rich_results_display_and_their_caps(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    result = await run(
        rpc,
        sid,
        "class Card:\n"
        "    def _repr_html_(self): return '<b>card</b>'\n"
        "    def _repr_json_(self): return {'suit': 'hearts'}\n"
        "    def __repr__(self): return 'Card()'\n"
        "display(1, Card())\n"
        "Card()",
    )
    kinds = [item["kind"] for item in result["results"]]
    assert kinds == ["display", "display", "result"], result
    assert result["results"][0]["data"] == {"text/plain": "1"}, result
    card = result["results"][2]["data"]
    assert card == {
        "text/html": "<b>card</b>",
        "application/json": {"suit": "hearts"},
        "text/plain": "Card()",
    }, card

    huge = await run(rpc, sid, "'x' * 5_000_000")
    value = text(huge)
    assert huge["truncated"] is True, huge
    assert huge["results"][0]["truncated"] is True, huge
    assert 1_000_000 < len(value) < 2_200_000, len(value)

    picture = await run(
        rpc, sid, "class Big:\n    def _repr_png_(self): return b'\\x89PNG' * 2_000_000\nBig()"
    )
    assert "image/png" not in picture["results"][0]["data"], picture["results"][0]
    assert picture["truncated"] is True, picture

    flood = await run(rpc, sid, "while True:\n    print('y' * 1000)", timeoutSeconds=2)
    assert flood["status"] == "timeout", flood["status"]
    assert flood["truncated"] is True, flood["status"]
    assert len(flood["stdout"]) <= 1024 * 1024, len(flood["stdout"])
    assert flood["statePreserved"] is True, flood["error"]


async def test_pandas_html_and_matplotlib_pictures(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python-data"))["sessionId"]
    frame = await run(
        rpc, sid, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': [3.5, 4.5]})\ndf"
    )
    assert frame["status"] == "ok", frame
    html = frame["results"][0]["data"]["text/html"]
    assert "<table" in html, html
    assert "4.5" in html, html
    assert text(frame).split("\n")[0].split() == ["a", "b"], text(frame)

    plot = await run(
        rpc,
        sid,
        "import matplotlib.pyplot as plt\n"
        "fig = plt.figure(figsize=(4, 3), dpi=100)\n"
        "plt.plot([1, 2, 3], [1, 4, 9])\n"
        "plt.show()\n"
        "plt.figure(figsize=(2, 2), dpi=50)\n"
        "plt.bar(['x'], [1])\n"
        "None",
    )
    assert plot["status"] == "ok", plot
    pictures = [item["data"] for item in plot["results"] if "image/png" in item["data"]]
    assert [png_size(data["image/png"]) for data in pictures] == [(400, 300), (100, 100)], plot
    assert pictures[0]["text/plain"].startswith("<Figure size 400x300"), pictures[0]
    closed = await run(rpc, sid, "len(plt.get_fignums())")
    assert text(closed) == "0", closed

    sklearn = await run(rpc, sid, "import sklearn")
    value = sklearn["error"]["value"]
    assert "numpy" in value, value
    assert "pandas" in value, value
    assert "matplotlib" in value, value


async def test_input_reads_session_input_when_streaming(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    request_id = rpc.next_id()
    future = await rpc.start(
        "session.run_code",
        {"sessionId": sid, "code": "name = input('name? ')\nname", "stream": True},
        request_id=request_id,
    )
    prompt = await rpc.next_output(request_id)
    assert prompt["data"] == "name? ", prompt
    await rpc.result("session.input", {"sessionId": sid, "data": "ada\n"})
    response = await asyncio.wait_for(future, 30)
    result = response["result"]
    assert text(result) == "'ada'", result
    kinds = [note["method"] for note in rpc.streamed[request_id]]
    assert kinds[-1] == "session.display", kinds
    assert "session.output" in kinds, kinds

    eof = await run(rpc, sid, "input()")
    assert eof["error"]["name"] == "EOFError", eof


async def test_streamed_cells_keep_output_and_displays_in_order(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    request_id = rpc.next_id()
    code = "print('a', flush=True)\ndisplay(1)\nprint('b', flush=True)\ndisplay(2)\n3"
    future = await rpc.start(
        "session.run_code", {"sessionId": sid, "code": code, "stream": True}, request_id=request_id
    )
    await asyncio.wait_for(future, 30)
    order: list[str] = []
    for note in rpc.streamed[request_id]:
        if note["method"] == "session.display":
            order.append("display " + note["params"]["result"]["data"]["text/plain"])
        elif order and not order[-1].startswith("display"):
            order[-1] += note["params"]["data"]  # one print may come in two pieces
        else:
            order.append(note["params"]["data"])
    assert order == ["a\n", "display 1", "b\n", "display 2", "display 3"], order


async def test_a_timeout_interrupts_and_keeps_state(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    await run(rpc, sid, "x = 5")
    started = time.monotonic()
    result = await run(rpc, sid, "import time\nwhile True:\n    time.sleep(0.01)", timeoutSeconds=1)
    elapsed = time.monotonic() - started
    assert result["status"] == "timeout", result
    assert result["statePreserved"] is True, result
    assert result["error"]["name"] == "KeyboardInterrupt", result
    assert elapsed < 5, elapsed
    assert text(await run(rpc, sid, "x")) == "5"


async def test_a_cell_that_ignores_the_interrupt_is_killed_with_its_processes(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    await run(rpc, sid, "x = 5")
    result = await run(rpc, sid, STUBBORN, timeoutSeconds=1)
    assert result["status"] == "timeout", result
    assert result["statePreserved"] is False, result
    assert result["error"]["name"] == "ContextKilled", result
    after = await run(rpc, sid, "x")
    assert after["error"]["name"] == "NameError", after
    assert after["executionCount"] == 1, after
    assert await leftover_user_processes(rpc, sid) == []


async def test_interrupt_on_demand(rpc: RpcClient, make_session: SessionFactory) -> None:
    sid = (await make_session("python"))["sessionId"]
    await run(rpc, sid, "x = 1")
    future = await rpc.start(
        "session.run_code", {"sessionId": sid, "code": "import time\ntime.sleep(60)"}
    )
    await asyncio.sleep(0.5)
    ref = {"sessionId": sid, "contextId": "default"}
    told = await rpc.result("session.interrupt", ref)
    assert told == {**ref, "interrupted": True}, told
    result = (await asyncio.wait_for(future, 30))["result"]
    assert result["status"] == "interrupted", result
    assert result["statePreserved"] is True, result
    idle = await rpc.result("session.interrupt", ref)
    assert idle["interrupted"] is False, idle
    assert text(await run(rpc, sid, "x")) == "1"


async def test_contexts_run_in_parallel_with_their_own_state(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    other = await rpc.result("context.create", {"sessionId": sid, "cwd": "/tmp", "env": {"K": "v"}})
    assert other["cwd"] == "/tmp", other
    assert other["language"] == "python", other
    await run(rpc, sid, "a = 'default'")
    await run(rpc, sid, "a = 'other'", contextId=other["contextId"])
    started = time.monotonic()
    both = await asyncio.gather(
        run(rpc, sid, "import time\ntime.sleep(1.5)\na"),
        run(
            rpc,
            sid,
            "import os, time\ntime.sleep(1.5)\n(a, os.getcwd(), os.environ['K'])",
            contextId=other["contextId"],
        ),
    )
    elapsed = time.monotonic() - started
    assert text(both[0]) == "'default'", both[0]
    assert text(both[1]) == "('other', '/tmp', 'v')", both[1]
    assert elapsed < 2.8, elapsed

    listed = await rpc.result("context.list", {"sessionId": sid})
    assert [ctx["contextId"] for ctx in listed["contexts"]] == ["default", other["contextId"]]
    ref = {"sessionId": sid, "contextId": other["contextId"]}
    restarted = await rpc.result("context.restart", ref)
    assert restarted["executionCount"] == 0, restarted
    lost = await run(rpc, sid, "a", contextId=other["contextId"])
    assert lost["error"]["name"] == "NameError", lost
    assert await rpc.result("context.close", ref) == {**ref, "closed": True}
    await rpc.error("session.run_code", {**ref, "code": "1"}, kind="context_not_found")
    listed = await rpc.result("context.list", {"sessionId": sid})
    assert listed["count"] == 1, listed


async def test_contexts_belong_to_their_session(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    first = (await make_session("python"))["sessionId"]
    second = (await make_session("python"))["sessionId"]
    created = await rpc.result("context.create", {"sessionId": first})
    ref = {"sessionId": second, "contextId": created["contextId"]}
    error = await rpc.error("session.run_code", {**ref, "code": "1"}, kind="context_not_found")
    assert error["code"] == -32012, error
    for method in ("context.restart", "context.close", "session.interrupt"):
        await rpc.error(method, ref, kind="context_not_found")
    await rpc.error(
        "context.create",
        {"sessionId": first, "cwd": "/etc"},
        kind="path_outside_workspace",
    )
    bad = await rpc.error("context.create", {"sessionId": first, "language": "ruby"}, code=-32602)
    assert bad["data"]["errors"][0]["loc"] == ["language"], bad


async def test_an_interpreter_that_exits_is_started_again_and_says_so(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    for code, name, words in (
        ("import sys\nsys.exit(3)", "SystemExit", "3"),
        ("import os\nos._exit(4)", "ContextDied", "exited with code 4"),
        (SEGFAULT, "ContextDied", "SIGSEGV"),
    ):
        await run(rpc, sid, "x = 1")
        result = await run(rpc, sid, code)
        assert result["status"] == "error", result
        assert result["error"]["name"] == name, result
        assert words in result["error"]["value"], result
        assert result["statePreserved"] is False, result
        after = await run(rpc, sid, "'x' in dir()")
        assert text(after) == "False", after
        assert after["statePreserved"] is True, after


async def test_exec_driver_refuses_contexts(docker: aiodocker.Docker) -> None:
    server = ServerProcess({"CODEBEAKER_DRIVER": "exec", "CODEBEAKER_POOL_SIZES": "{}"})
    try:
        await server.start()
        client = await RpcClient.connect(server.url)
        try:
            sid = (await client.result("session.create", {"language": "python"}))["sessionId"]
            error = await client.error(
                "session.run_code", {"sessionId": sid, "code": "1"}, kind="contexts_unsupported"
            )
            assert "session.execute still works" in error["message"], error
            await client.error("context.create", {"sessionId": sid}, kind="contexts_unsupported")
            listed = await client.result("context.list", {"sessionId": sid})
            assert listed["count"] == 0, listed
            await client.result("session.close", {"sessionId": sid})
        finally:
            await client.close()
    finally:
        await stop_and_check(docker, server)


async def test_a_cell_cannot_break_the_agent_or_the_memory_limit(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    """Writing junk into the kernel's own channel, or eating all memory: the context is
    started again and says so; the session and its agent go on serving."""
    sid = (await make_session("python", memoryLimitMB=256))["sessionId"]
    forged = await run(
        rpc, sid, "import os, sys\nos.write(int(sys.argv[2]), b'\\x7f\\xff\\xff\\xff' + b'x' * 64)"
    )
    assert forged["error"]["name"] == "ContextBroken", forged
    assert forged["statePreserved"] is False, forged
    hog = await run(rpc, sid, "x = bytearray(1024 ** 3)")
    assert hog["status"] == "error", hog
    assert hog["error"]["name"] in ("MemoryError", "ContextDied"), hog
    if hog["error"]["name"] == "ContextDied":
        assert "SIGKILL" in hog["error"]["value"], hog
    assert text(await run(rpc, sid, "6 * 7")) == "42"
    envelope = await rpc.shell(sid, "echo", "still here")
    assert envelope["result"]["stdout"] == "still here\n", envelope


FORGED_READ = """\
import json, os, struct, sys
head = json.dumps({"t": "read", "count": "not a number"}).encode()
os.write(int(sys.argv[2]), struct.pack(">II", len(head), 0) + head)
import time
time.sleep(5)
"""


async def test_forged_frames_restarts_and_orphans_leave_the_session_working(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    forged = await run(rpc, sid, FORGED_READ)
    assert forged["error"]["name"] == "ContextBroken", forged
    ref = {"sessionId": sid, "contextId": "default"}
    crashed = await run(rpc, sid, "import os\nos._exit(1)")
    assert crashed["error"]["name"] == "ContextDied", crashed
    restarted = await rpc.result("context.restart", ref)  # while it may still be starting
    assert restarted["contextId"] == "default", restarted
    zombies = await run(
        rpc,
        sid,
        "import os, time\nfor _ in range(40):\n    os.system('sleep 0.01 &')\ntime.sleep(0.5)",
    )
    assert zombies["status"] == "ok", zombies
    count = await run(
        rpc,
        sid,
        "import os\nme = str(os.getpid())\n"
        "sum(1 for p in os.listdir('/proc') if p.isdigit() and "
        "open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[:2] == ['Z', me])",
    )
    assert int(text(count)) <= 16, count
    await rpc.result("context.close", ref)
    again = await run(rpc, sid, "'fresh'")  # a new default context takes the name
    assert text(again) == "'fresh'", again
    assert again["contextId"] == "default", again


async def test_watchers_hear_every_cell_end(rpc: RpcClient, make_session: SessionFactory) -> None:
    """A cell that waited for a context closed meanwhile ends with an error, and its
    watchers hear that end too."""
    sid = (await make_session("python"))["sessionId"]
    created = await rpc.result("context.create", {"sessionId": sid})
    ref = {"sessionId": sid, "contextId": created["contextId"]}
    await rpc.result("session.watch", {"sessionId": sid})
    running = await rpc.start("session.run_code", {**ref, "code": "import time\ntime.sleep(30)"})
    queued = await rpc.start("session.run_code", {**ref, "code": "1"})
    await asyncio.sleep(0.5)
    await rpc.result("context.close", ref)
    first = (await asyncio.wait_for(running, 30))["result"]
    assert first["status"] == "interrupted", first
    assert first["statePreserved"] is False, first
    second = await asyncio.wait_for(queued, 30)
    assert second["error"]["data"]["kind"] == "context_not_found", second
    events: list[dict[str, Any]] = []
    while len(events) < 4:
        frame = await rpc.recv_raw(timeout=10)
        if isinstance(frame, dict) and frame.get("method") == "session.event":
            events.append(frame["params"])
    names = [event["event"] for event in events]
    assert names.count("command_started") == 2, events
    assert names.count("command_finished") == 2, events
    assert all(event["command"] == "run_code" for event in events), events
    assert [event["success"] for event in events if "success" in event] == [False, False]
