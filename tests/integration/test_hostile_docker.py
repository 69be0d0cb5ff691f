"""Hostile Docker states (issue 11, items 8 and 9): a session container paused under the
server, one paused while its agent starts (the exec into it then hangs in the engine, and
every later call about that container with it), and file names that are not UTF-8.

Each attack runs beside a bystander session that must keep answering within a second, and
the server's memory stays bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import glob
import json
import time
from typing import Any

import aiodocker
import pydantic_core
from codebeaker_client.models.commands import ListDirectoryResult

from codebeaker.constants import LABEL_INSTANCE, LABEL_SESSION

from .client import RpcClient
from .conftest import ServerFactory, ServerProcess, instance_containers, wait_until
from .hostile import assert_rss_below, bystander

DOCKER_TIMEOUT = 2.0
SERVER_ENV = {
    "CODEBEAKER_DOCKER_TIMEOUT_SECONDS": str(DOCKER_TIMEOUT),
    "CODEBEAKER_POOL_SIZES": "{}",
}
"""Short Docker deadlines; no pool, so every session container is new and starts its agent
(or the exec driver's resident guest) after ``session.create`` has answered."""
PAUSED_ERROR_SECONDS = 20.0
"""A command in a paused container fails by then: at once under the exec driver; under the
agent driver once its reply is overdue (the command's 1 s timeout plus the agent's grace)."""
WEDGE_ERROR_SECONDS = 40.0
"""A command in a container frozen mid-exec fails by then: the agent's ready wait plus a
few Docker deadlines."""
STOP_SECONDS = 15.0
FREEZE_DELAY = 0.02
"""After the engine reports an exec started, when pausing catches runc inside the exec (a
few ms earlier the exec fails cleanly with "cannot exec in a paused state")."""
THAW_SECONDS = 5.0
ODD_FILES = (
    "import os; open(b'/workspace/\\xff\\xfe.txt', 'w').close(); os.mkdir(b'/workspace/d\\x80'); "
    "open(b'/workspace/d\\x80/inner', 'w').close(); os.symlink(b'd\\x80', b'/workspace/link')"
)


def shell(script: str, **fields: Any) -> dict[str, Any]:
    return {"type": "execute_shell", "commandName": "sh", "args": ["-c", script], **fields}


async def session_container(
    docker: aiodocker.Docker, server: ServerProcess, session_id: str
) -> str:
    found = await instance_containers(docker, server.instance, **{LABEL_SESSION: session_id})
    assert len(found) == 1, found
    return str(found[0]["Id"])


async def first_error(rpc: RpcClient, session_id: str, seconds: float) -> dict[str, Any]:
    """The error commands on a frozen session get, within ``seconds``. Under the agent
    driver the command already sent to the frozen agent can only end as ``agent_lost``;
    the next one finds the container paused."""
    deadline = time.monotonic() + seconds
    params = {"sessionId": session_id, "command": shell("true", timeoutSeconds=1)}
    while (left := deadline - time.monotonic()) > 0:
        response = await rpc.call("session.execute", params, timeout=left)
        if "error" in response:
            error: dict[str, Any] = response["error"]
            return error
        assert response["result"]["error"].startswith("agent_lost:"), response
    raise AssertionError(f"no error within {seconds:g}s")


async def thaw(docker: aiodocker.Docker, container_id: str) -> None:
    """Unpause; with an exec hung in the frozen container ``docker unpause`` hangs too, and
    only thawing its cgroup (what an operator does) lets the engine go on."""
    container = docker.containers.container(container_id)
    with contextlib.suppress(aiodocker.DockerError, TimeoutError):
        await asyncio.wait_for(container.unpause(), THAW_SECONDS)
        return
    freezers = [
        (path, "THAWED")
        for path in glob.glob(f"/sys/fs/cgroup/freezer/docker/{container_id}/freezer.state")
    ] + [
        (path, "0")
        for path in glob.glob(f"/sys/fs/cgroup/**/docker-{container_id}.scope/cgroup.freeze")
    ]
    for path, value in freezers:
        with open(path, "w") as handle:
            handle.write(value)


async def test_a_paused_session_is_told_so_and_answers_again_once_unpaused(
    start_server: ServerFactory, docker: aiodocker.Docker
) -> None:
    server = await start_server(**SERVER_ENV)
    async with bystander(server):
        rpc = await RpcClient.connect(server.url)
        try:
            session_id = (await rpc.result("session.create", {"language": "python"}))["sessionId"]
            assert (await rpc.sh(session_id, "true"))["success"]
            container = docker.containers.container(
                await session_container(docker, server, session_id)
            )
            await container.pause()
            try:
                error = await first_error(rpc, session_id, PAUSED_ERROR_SECONDS)
                assert (error["code"], error["data"]["kind"]) == (-32014, "sandbox_paused")
                assert "paused" in error["message"], error
                await asyncio.sleep(2)  # the reaper (every 1 s here) keeps a paused container
                listed = await rpc.result("session.list")
                assert session_id in [session["sessionId"] for session in listed["sessions"]]
            finally:
                await container.unpause()
            envelope = await rpc.sh(session_id, "echo back")
            assert envelope["result"]["stdout"] == "back\n", envelope
        finally:
            await rpc.close()
        assert_rss_below(server)


async def test_a_container_paused_while_its_agent_starts_does_not_wedge_the_server(
    start_server: ServerFactory, docker: aiodocker.Docker
) -> None:
    server = await start_server(**SERVER_ENV)
    events = aiodocker.Docker()
    frozen = ""
    try:
        async with bystander(server):
            known = {info["Id"] for info in await instance_containers(docker, server.instance)}
            filters = {"label": [f"{LABEL_INSTANCE}={server.instance}"], "event": ["exec_start"]}
            starts = events.events.subscribe(filters=json.dumps(filters))  # type: ignore[no-untyped-call]
            rpc = await RpcClient.connect(server.url)
            try:
                creating = asyncio.ensure_future(
                    rpc.result("session.create", {"language": "python"})
                )
                while not frozen:  # the first exec into the new container: its agent
                    event = await asyncio.wait_for(starts.get(), 30)
                    if event["Actor"]["ID"] not in known:
                        frozen = event["Actor"]["ID"]
                await asyncio.sleep(FREEZE_DELAY)
                await docker.containers.container(frozen).pause()
                session_id = (await creating)["sessionId"]
                error = await first_error(rpc, session_id, WEDGE_ERROR_SECONDS)
                assert error["data"]["kind"] in ("sandbox_paused", "sandbox_timeout"), error
            finally:
                await rpc.close()
        assert_rss_below(server)
        began = time.monotonic()
        await server.stop()  # fails the test past conftest's STOP_TIMEOUT
        assert time.monotonic() - began < STOP_SECONDS
    finally:
        if frozen:
            await thaw(docker, frozen)
        await events.events.stop()  # type: ignore[no-untyped-call]
        await events.close()

    async def removed() -> bool:
        return frozen not in {
            info["Id"] for info in await instance_containers(docker, server.instance)
        }

    if not await removed():  # left frozen at shutdown (and logged): the next start removes it
        assert "could not remove" in server.log(), server.log()[-3000:]
        await start_server(instance=server.instance, **SERVER_ENV)
    assert await wait_until(removed, 10)


async def test_file_names_that_are_not_utf8_come_back_as_valid_json(
    server_process: ServerProcess,
) -> None:
    async with bystander(server_process):
        rpc = await RpcClient.connect(server_process.url)
        try:
            session_id = (await rpc.result("session.create", {"language": "python"}))["sessionId"]
            made = await rpc.shell(session_id, "python3", "-c", ODD_FILES)
            assert made["success"], made
            assert made["result"]["exitCode"] == 0, made
            command = {"type": "list_files", "path": ".", "recursive": True}
            reply = await strict_reply(rpc, session_id, command, "list-odd")
            listing = ListDirectoryResult.model_validate(reply["result"]["result"])
            entries = {entry.path: entry for entry in listing.entries}
            odd = entries["/workspace/\ufffd\ufffd.txt"]
            assert odd.name == "\ufffd\ufffd.txt"
            assert base64.b64decode(odd.name_base64 or "") == b"\xff\xfe.txt"
            assert base64.b64decode(odd.path_base64 or "") == b"/workspace/\xff\xfe.txt"
            inner = entries["/workspace/d\ufffd/inner"]
            assert (inner.name, inner.name_base64) == ("inner", None)
            assert base64.b64decode(inner.path_base64 or "") == b"/workspace/d\x80/inner"
            assert entries["/workspace/link"].path_base64 is None
            write = {"type": "write_file", "path": "link/new.txt", "content": "hi"}
            written = (await strict_reply(rpc, session_id, write, "write-odd"))["result"]
            assert written["result"]["path"] == "/workspace/d\ufffd/new.txt", written
            assert base64.b64decode(written["result"]["pathBase64"]) == b"/workspace/d\x80/new.txt"
            missing = {"type": "read_file", "path": "link/absent"}
            failed = (await strict_reply(rpc, session_id, missing, "read-odd"))["result"]
            assert failed["error"] == "file_not_found: /workspace/d\ufffd/absent", failed
        finally:
            await rpc.close()
    assert_rss_below(server_process)


async def strict_reply(
    rpc: RpcClient, session_id: str, command: dict[str, Any], request_id: str
) -> dict[str, Any]:
    """The reply to one ``session.execute``, read from its frame by a strict JSON parser
    (pydantic-core's: a lone surrogate or NaN is an error, as in most languages' parsers)."""
    params = {"sessionId": session_id, "command": command}
    future = await rpc.start("session.execute", params, request_id=request_id)
    await asyncio.wait_for(future, 60)
    frames = [frame for frame in rpc.frames if f'"id":"{request_id}"' in frame]
    assert len(frames) == 1, frames
    parsed: dict[str, Any] = pydantic_core.from_json(frames[0], allow_inf_nan=False)
    assert "result" in parsed, parsed
    return parsed
