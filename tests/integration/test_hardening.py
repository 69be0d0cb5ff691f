"""The session container's Docker configuration, read back from the engine itself."""

from __future__ import annotations

import json
import re

import aiodocker

from codebeaker.constants import LABEL_INSTANCE, LABEL_LANGUAGE, LABEL_MANAGED, LABEL_SESSION

from .client import RpcClient
from .conftest import MIB, ServerProcess, SessionFactory

PROC_STATUS = """
import json
fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({key: value.strip() for key, value in fields.items()}))
"""


async def test_container_is_hardened(
    rpc: RpcClient,
    docker: aiodocker.Docker,
    make_session: SessionFactory,
    server_process: ServerProcess,
    driver: str,
) -> None:
    created = await make_session("python", memoryLimitMB=256, cpuLimit=0.5)
    container = await docker.containers.get(created["containerId"])
    info = await container.show()
    host = info["HostConfig"]

    assert info["State"]["Running"] is True
    assert host["NetworkMode"] == "none"
    assert "ALL" in [cap.upper() for cap in host["CapDrop"] or []], host["CapDrop"]
    # the agent's root needs to become uid 1000, nothing else; without it, nothing at all
    expected = ["SETUID", "SETGID"] if driver == "agent" else []
    assert sorted(host.get("CapAdd") or []) == sorted(expected), host.get("CapAdd")
    security = host["SecurityOpt"] or []
    assert any(opt in ("no-new-privileges", "no-new-privileges:true") for opt in security), security
    assert host["ReadonlyRootfs"] is True
    assert host["Privileged"] is False
    assert host["Memory"] == 256 * MIB
    assert host["MemorySwap"] == 256 * MIB
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] is not None
    assert host["PidsLimit"] > 0
    assert host["Init"] is True
    assert not host.get("Binds"), host.get("Binds")
    assert not host.get("Devices"), host.get("Devices")

    tmpfs = host["Tmpfs"] or {}
    assert "/tmp" in tmpfs, tmpfs
    assert "/workspace" in tmpfs, tmpfs
    tmp_options = tmpfs["/tmp"].split(",")
    assert "nosuid" in tmp_options, tmpfs
    assert "nodev" in tmp_options, tmpfs
    assert any(option.startswith("size=") for option in tmp_options), tmpfs
    assert any(option.startswith("size=") for option in tmpfs["/workspace"].split(",")), tmpfs

    ulimits = {limit["Name"]: limit for limit in host["Ulimits"] or []}
    assert {"nofile", "fsize", "core"} <= set(ulimits), ulimits
    assert ulimits["core"]["Hard"] == 0

    labels = info["Config"]["Labels"]
    assert labels[LABEL_MANAGED] == "true"
    assert labels[LABEL_INSTANCE] == server_process.instance
    assert labels[LABEL_SESSION] == created["sessionId"]
    assert labels[LABEL_LANGUAGE] == "python"

    # No published ports, no network at all.
    assert not info["NetworkSettings"].get("Ports"), info["NetworkSettings"].get("Ports")


async def test_user_code_is_unprivileged(rpc: RpcClient, py_session: str, driver: str) -> None:
    envelope = await rpc.shell(py_session, "id", "-u")
    assert envelope["result"]["stdout"] == "1000\n", envelope
    envelope = await rpc.shell(py_session, "id", "-g")
    assert envelope["result"]["stdout"] == "1000\n", envelope

    envelope = await rpc.shell(py_session, "python3", "-c", PROC_STATUS)
    assert envelope["success"], envelope
    status = json.loads(envelope["result"]["stdout"])
    assert status["NoNewPrivs"] == "1", status
    for capability in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert int(status[capability], 16) == 0, (capability, status[capability])
    # the bounding set may hold SETUID|SETGID (bits 6, 7) for the agent; with no permitted
    # set and no_new_privs, nothing can raise them
    bounding = int(status["CapBnd"], 16)
    assert bounding == (0xC0 if driver == "agent" else 0), status["CapBnd"]
    assert status["Uid"].split() == ["1000"] * 4, status["Uid"]
    assert status["Groups"].split() in ([], ["1000"]), status["Groups"]


async def test_user_code_cannot_become_root_or_touch_the_agent(
    rpc: RpcClient, py_session: str
) -> None:
    """setuid(0), signalling or tracing any process not its own (the agent, PID 1, the
    keep-alive): all refused."""
    script = (
        "import ctypes, json, os, signal\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "results = {'setuid': libc.setuid(0), 'setgid': libc.setgid(0)}\n"
        "for pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    try:\n"
        "        if os.stat(f'/proc/{pid}').st_uid == 1000:\n"
        "            continue\n"
        "    except OSError:\n"
        "        continue\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "        results[f'kill {pid}'] = 'killed'\n"
        "    except PermissionError:\n"
        "        results[f'kill {pid}'] = 'refused'\n"
        "    results[f'ptrace {pid}'] = libc.ptrace(16, pid, None, None)\n"  # PTRACE_ATTACH
        "print(json.dumps(results))\n"
    )
    envelope = await rpc.shell(py_session, "python3", "-c", script)
    assert envelope["success"], envelope
    results = json.loads(envelope["result"]["stdout"])
    assert results["setuid"] == -1, results
    assert results["setgid"] == -1, results
    kills = {key: value for key, value in results.items() if key.startswith("kill")}
    assert kills, results
    assert set(kills.values()) == {"refused"}, results
    assert all(value == -1 for key, value in results.items() if key.startswith("ptrace"))
    # and the session still answers, through the same agent
    assert (await rpc.shell(py_session, "echo", "still here"))["result"]["stdout"] == "still here\n"


async def test_keepalive_runs_as_nobody(rpc: RpcClient, py_session: str) -> None:
    """The keep-alive runs as nobody; PID 1 (docker-init) is not the sandbox user either."""
    envelope = await rpc.sh(py_session, "grep '^Uid:' /proc/1/status; ps -o uid=,args= -C sleep")
    assert envelope["success"], envelope
    lines = envelope["result"]["stdout"].splitlines()
    assert "1000" not in lines[0].split()[1:], envelope
    assert lines[1].split()[0] == "65534", envelope
    assert re.search(r"sleep \d+$", lines[1]), envelope  # ends at the session's lifetime
