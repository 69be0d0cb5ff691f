"""Adversarial user code: bombs, escapes, egress, signals, full disks. The session survives."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

import aiodocker
import pytest

from .client import RpcClient
from .conftest import (
    MIB,
    ServerProcess,
    SessionFactory,
    leftover_user_processes,
    stop_and_check,
)

NETWORK_PROBE = r"""
import json, socket
out = {}
for name, address in [("tcp", ("1.1.1.1", 53)), ("tcp6", ("2606:4700:4700::1111", 53))]:
    family = socket.AF_INET if name == "tcp" else socket.AF_INET6
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(address)
        out[name] = "connected"
    except OSError as exc:
        out[name] = "failed: %s" % exc
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"x", ("8.8.8.8", 53))
    out["udp"] = "sent"
except OSError as exc:
    out["udp"] = "failed: %s" % exc
try:
    socket.getaddrinfo("example.com", 80)
    out["dns"] = "resolved"
except OSError as exc:
    out["dns"] = "failed: %s" % exc
with open("/proc/net/dev") as handle:
    out["interfaces"] = sorted(line.split(":")[0].strip() for line in handle.readlines()[2:])
print(json.dumps(out))
"""


async def still_answers(rpc: RpcClient, sid: str) -> None:
    envelope = await rpc.shell(sid, "echo", "ok", timeout=60)
    assert envelope["success"], envelope
    assert envelope["result"]["stdout"] == "ok\n"


async def answers_eventually(rpc: RpcClient, sid: str, within: float) -> float:
    """Retry ``echo ok`` until it succeeds; the seconds it took. Fails after ``within``."""
    started = time.monotonic()
    last: object = None
    while time.monotonic() - started < within:
        try:
            envelope = await rpc.shell(sid, "echo", "ok", timeout=within)
        except AssertionError as exc:  # no reply in time
            last = exc
            continue
        if envelope["success"] and envelope["result"]["stdout"] == "ok\n":
            return time.monotonic() - started
        last = envelope
        await asyncio.sleep(1)
    raise AssertionError(f"the session did not answer within {within:g}s: {last!r}")


async def assert_killed_at_timeout(rpc: RpcClient, sid: str, *argv: str) -> None:
    """A 5 s timeout answers promptly, kills the whole tree, and the session goes on."""
    started = time.monotonic()
    envelope = await rpc.shell(sid, *argv, timeoutSeconds=5, timeout=120)
    elapsed = time.monotonic() - started
    assert envelope["result"]["timedOut"] is True, envelope
    assert envelope["result"]["exitCode"] == 124
    assert elapsed < 30, f"a 5 s timeout took {elapsed:.0f}s"
    await still_answers(rpc, sid)
    assert await leftover_user_processes(rpc, sid, settle=10) == []


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_shell_fork_bomb_is_killed_at_its_timeout(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    created = await make_session("python")
    sid = created["sessionId"]
    # dash treats `:` as a special builtin, so the bomb gets a plain name; the python parent
    # outlives every failed fork, so the command lasts until its timeout kills the tree
    wrapped = (
        "import subprocess, time\n"
        "subprocess.Popen(['sh', '-c', 'bomb() { bomb | bomb & }; bomb'])\n"
        "time.sleep(60)\n"
    )
    await assert_killed_at_timeout(rpc, sid, "python3", "-c", wrapped)


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_python_fork_bomb_is_killed_at_its_timeout(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    created = await make_session("python")
    sid = created["sessionId"]
    python_bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    await assert_killed_at_timeout(rpc, sid, "python3", "-c", python_bomb)


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_detached_fork_bomb_is_contained(
    rpc: RpcClient, py_session: str, make_session: SessionFactory
) -> None:
    """The classic bomb: its first shell returns at once and the bomb runs on, detached."""
    created = await make_session("python")
    sid = created["sessionId"]
    envelope = await rpc.shell(sid, "bash", "-c", ":(){ :|:& };:", timeoutSeconds=5, timeout=120)
    assert envelope["result"]["timedOut"] in (True, False)
    # other sessions do not notice
    started = time.monotonic()
    assert (await rpc.shell(py_session, "echo", "unaffected"))["success"]
    assert time.monotonic() - started < 5, "another session slowed down by a fork bomb"
    # and this one answers again
    await answers_eventually(rpc, sid, within=90)


@pytest.mark.timeout(120)
async def test_memory_bomb_is_oom_killed(
    rpc: RpcClient, docker: aiodocker.Docker, make_session: SessionFactory
) -> None:
    created = await make_session("python", memoryLimitMB=128)
    sid = created["sessionId"]
    envelope = await rpc.shell(
        sid, "python3", "-c", "x = b'x' * (1024 ** 3); print(len(x))", timeoutSeconds=60
    )
    assert envelope["success"] is False, envelope
    assert envelope["result"]["exitCode"] == 137, envelope
    assert envelope["result"]["timedOut"] is False
    await still_answers(rpc, sid)
    info = await (await docker.containers.get(created["containerId"])).show()
    assert info["State"]["Running"] is True


async def test_no_network(rpc: RpcClient, py_session: str) -> None:
    envelope = await rpc.shell(py_session, "python3", "-c", NETWORK_PROBE, timeoutSeconds=30)
    assert envelope["success"], envelope
    probe = json.loads(envelope["result"]["stdout"])
    assert probe["tcp"].startswith("failed"), probe
    assert probe["tcp6"].startswith("failed"), probe
    assert probe["udp"].startswith("failed"), probe
    assert probe["dns"].startswith("failed"), probe
    assert probe["interfaces"] == ["lo"], probe


async def test_kill_everything_leaves_the_session_usable(
    rpc: RpcClient, docker: aiodocker.Docker, make_session: SessionFactory
) -> None:
    created = await make_session("python")
    sid = created["sessionId"]
    envelope = await rpc.sh(sid, "kill -9 -1; sleep 1; echo survived", timeoutSeconds=20)
    assert envelope["result"]["timedOut"] is False, envelope
    await still_answers(rpc, sid)
    envelope = await rpc.shell(sid, "kill", "-9", "1")
    assert envelope["success"] is False, envelope
    await still_answers(rpc, sid)
    info = await (await docker.containers.get(created["containerId"])).show()
    assert info["State"]["Running"] is True


@pytest.mark.parametrize("target", ["/evil", "/usr/evil", "/etc/evil", "/opt/evil", "/var/evil"])
async def test_root_filesystem_is_read_only(rpc: RpcClient, py_session: str, target: str) -> None:
    envelope = await rpc.sh(py_session, f"echo pwned > {target}")
    assert envelope["success"] is False, envelope
    assert envelope["result"]["exitCode"] != 0
    check = await rpc.sh(py_session, f"test -e {target}")
    assert check["result"]["exitCode"] == 1, f"{target} exists: {check}"


async def test_cannot_become_root(rpc: RpcClient, py_session: str) -> None:
    for argv in (["su", "-c", "id"], ["sudo", "id"], ["chown", "0:0", "/workspace"]):
        envelope = await rpc.shell(py_session, *argv, stdin="")
        assert envelope["success"] is False, envelope
    envelope = await rpc.shell(py_session, "id", "-u")
    assert envelope["result"]["stdout"] == "1000\n"


# --------------------------------------------------------------------------- size limits


@pytest.fixture(scope="module")
async def limited_server(docker: aiodocker.Docker) -> AsyncIterator[ServerProcess]:
    """A server with small workspace, file and write limits, and room for two sessions."""
    server = ServerProcess(
        {
            "CODEBEAKER_WORKSPACE_SIZE_MB": "16",
            "CODEBEAKER_MAX_FILE_SIZE_MB": "4",
            "CODEBEAKER_MAX_WRITE_BYTES": "4096",
            "CODEBEAKER_MAX_SESSIONS": "2",
        }
    )
    try:
        await server.start()
        yield server
    finally:
        await stop_and_check(docker, server)


@pytest.fixture(scope="module")
async def limited(limited_server: ServerProcess) -> AsyncIterator[RpcClient]:
    client = await RpcClient.connect(limited_server.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.mark.timeout(120)
async def test_files_past_the_caps_fail_cleanly(
    limited: RpcClient, make_session: SessionFactory
) -> None:
    created = await make_session("python", client=limited)
    sid = created["sessionId"]

    # one file past the per-file cap (fsize ulimit)
    envelope = await limited.sh(sid, "head -c 6000000 /dev/zero > /workspace/big")
    assert envelope["success"] is False, envelope
    size = await limited.sh(sid, "stat -c %s /workspace/big")
    assert int(size["result"]["stdout"]) <= 4 * MIB

    # more files than the workspace holds
    envelope = await limited.sh(
        sid, "for i in 1 2 3 4 5 6; do head -c 4000000 /dev/zero > /workspace/f$i || exit 9; done"
    )
    assert envelope["success"] is False, envelope
    used = await limited.sh(sid, "du -sk /workspace | cut -f1")
    assert int(used["result"]["stdout"]) <= 17 * 1024, used

    # with the workspace full, a write_file fails as a command, not as an RPC error
    envelope = await limited.execute(
        sid, {"type": "write_file", "path": "more.txt", "content": "x" * 3000}
    )
    assert envelope["success"] is False, envelope
    await still_answers(limited, sid)

    # room again after deleting
    await limited.ok(sid, {"type": "delete_file", "path": "f1"})
    await limited.ok(sid, {"type": "delete_file", "path": "f2"})
    written = await limited.ok(
        sid, {"type": "write_file", "path": "more.txt", "content": "x" * 3000}
    )
    assert written["bytes"] == 3000


async def test_write_file_over_the_write_limit(
    limited: RpcClient, make_session: SessionFactory
) -> None:
    created = await make_session("python", client=limited)
    sid = created["sessionId"]
    envelope = await limited.execute(
        sid, {"type": "write_file", "path": "huge.txt", "content": "x" * 5000}
    )
    assert envelope["success"] is False, envelope
    assert envelope["error"].startswith("file_too_large:"), envelope
    await limited.failed(sid, {"type": "read_file", "path": "huge.txt"}, "file_not_found")
    encoded = base64.b64encode(b"\0" * 5000).decode()
    envelope = await limited.execute(
        sid, {"type": "write_file", "path": "huge.bin", "content": encoded, "encoding": "base64"}
    )
    assert envelope["error"].startswith("file_too_large:"), envelope


async def test_session_limit(limited: RpcClient, make_session: SessionFactory) -> None:
    await make_session("python", client=limited)
    await make_session("python", client=limited)
    error = await limited.error(
        "session.create", {"language": "python"}, code=-32004, kind="limit_exceeded"
    )
    assert "Traceback" not in json.dumps(error)
