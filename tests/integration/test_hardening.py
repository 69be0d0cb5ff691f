"""The session container's Docker configuration, read back from the engine itself."""

from __future__ import annotations

import json

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
) -> None:
    created = await make_session("python", memoryLimitMB=256, cpuLimit=0.5)
    container = await docker.containers.get(created["containerId"])
    info = await container.show()
    host = info["HostConfig"]

    assert info["State"]["Running"] is True
    assert host["NetworkMode"] == "none"
    assert "ALL" in [cap.upper() for cap in host["CapDrop"] or []], host["CapDrop"]
    assert not host.get("CapAdd"), host.get("CapAdd")
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


async def test_user_code_is_unprivileged(rpc: RpcClient, py_session: str) -> None:
    envelope = await rpc.shell(py_session, "id", "-u")
    assert envelope["result"]["stdout"] == "1000\n", envelope
    envelope = await rpc.shell(py_session, "id", "-g")
    assert envelope["result"]["stdout"] == "1000\n", envelope

    envelope = await rpc.shell(py_session, "python3", "-c", PROC_STATUS)
    assert envelope["success"], envelope
    status = json.loads(envelope["result"]["stdout"])
    assert status["NoNewPrivs"] == "1", status
    for capability in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(status[capability], 16) == 0, (capability, status[capability])
    assert status["Uid"].split() == ["1000"] * 4, status["Uid"]


async def test_keepalive_runs_as_nobody(rpc: RpcClient, py_session: str) -> None:
    """PID 1 (docker-init) and its keep-alive child do not run as the sandbox user."""
    envelope = await rpc.sh(py_session, "grep '^Uid:' /proc/1/status")
    assert envelope["success"], envelope
    uids = envelope["result"]["stdout"].split()[1:]
    assert uids == ["65534"] * 4, envelope
