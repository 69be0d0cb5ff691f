"""The server's own image (docker/server), run the way compose.yaml runs it: host network, the
engine's socket mounted, /data on a named volume, the keys file read-only. It serves a session
end to end, turns healthy, and leaves nothing of its instance behind when stopped.

It runs once, not once per driver: the image serves with the default driver, and the drivers
have their own tests. The image is built first when it is missing or stale (``images build
server`` is a no-op when it is current), so the test always runs this checkout's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiodocker
import pytest
from codebeaker_client import AsyncCodeBeaker

from .conftest import (
    IMAGE_PREFIX,
    container_exists,
    free_port,
    http_get,
    instance_containers,
    remove_instance_containers,
    wait_until,
)

SERVER_IMAGE = f"{IMAGE_PREFIX}/server:latest"
REPOSITORY = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1800.0
"""A cold build installs Python with apt and the server's dependencies with pip."""
KEYS_PATH = "/etc/codebeaker/keys.json"
SERVER_UID = "10001:10001"


async def docker_cli(*argv: str, timeout: float = 60) -> str:
    """Run the ``docker`` command line, as an operator would; its output, or a failure
    showing what it printed."""
    process = await asyncio.create_subprocess_exec(
        "docker",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"docker {' '.join(argv[:2])} failed: {text}"
    return text


def engine_socket() -> str:
    """The host path of the engine's socket the tests use (the container gets the same)."""
    url = os.environ.get("CODEBEAKER_DOCKER_URL") or os.environ.get("DOCKER_HOST")
    url = url or "unix:///var/run/docker.sock"
    assert url.startswith("unix://"), f"the server image test needs a local socket, not {url}"
    return url.removeprefix("unix://")


@pytest.fixture(scope="module")
async def server_image() -> str:
    """The server image of this checkout, built unless its content hash says it is current."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "codebeaker",
        "images",
        "build",
        "server",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=REPOSITORY,
    )
    output, _ = await asyncio.wait_for(process.communicate(), BUILD_TIMEOUT)
    assert process.returncode == 0, f"images build server failed:\n{output.decode()}"
    return SERVER_IMAGE


@dataclass(frozen=True)
class Deployment:
    """One containerised server: its instance, port and API key, and what it is named."""

    instance: str
    port: int
    key: str
    keys_file: Path

    @property
    def container(self) -> str:
        return f"codebeaker-{self.instance}"

    @property
    def volume(self) -> str:
        return f"codebeaker-{self.instance}-data"


@pytest.fixture
async def deployment(docker: aiodocker.Docker, tmp_path: Path) -> AsyncIterator[Deployment]:
    """Names for one containerised server; whatever the test leaves is removed after it."""
    made = Deployment(
        instance=f"it-image-{secrets.token_hex(6)}",
        port=free_port(),
        key=secrets.token_urlsafe(24),
        keys_file=tmp_path / "keys.json",
    )
    try:
        yield made
    finally:
        with contextlib.suppress(AssertionError):
            await docker_cli("rm", "--force", "--volumes", made.container)
        await remove_instance_containers(docker, made.instance)
        with contextlib.suppress(AssertionError):
            await docker_cli("volume", "rm", "--force", made.volume)


async def health_status(docker: aiodocker.Docker, container: str) -> str:
    info = await docker.containers.get(container)
    return str(info["State"].get("Health", {}).get("Status", "none"))


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
async def test_server_image_serves_a_session_and_leaves_nothing_behind(
    docker: aiodocker.Docker, server_image: str, deployment: Deployment
) -> None:
    instance, container, port = deployment.instance, deployment.container, deployment.port
    key_digest = hashlib.sha256(deployment.key.encode()).hexdigest()
    keys_file = deployment.keys_file
    keys_file.write_text(json.dumps([{"name": "compose", "keySha256": key_digest}]))
    keys_file.chmod(0o644)
    socket = engine_socket()
    await docker_cli(
        "run", "--detach", "--name", container,
        "--network", "host",
        "--group-add", str(os.stat(socket).st_gid),
        "--volume", f"{socket}:/var/run/docker.sock",
        "--volume", f"{deployment.volume}:/data",
        "--volume", f"{keys_file}:{KEYS_PATH}:ro",
        "--env", f"CODEBEAKER_INSTANCE={instance}",
        "--env", f"CODEBEAKER_PORT={port}",
        "--env", f"CODEBEAKER_IMAGE_PREFIX={IMAGE_PREFIX}",
        "--env", f"CODEBEAKER_API_KEYS_FILE={KEYS_PATH}",
        "--health-interval", "1s",  # the image's own check, polled faster than its 15 s
        server_image,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    async def answers() -> bool:
        with contextlib.suppress(OSError):
            return (await http_get(url + "/health", timeout=2))[0] == 200
        return False

    if not await wait_until(answers, timeout=60, interval=0.3):
        logs = await docker_cli("logs", container)
        pytest.fail(f"the server container never answered /health:\n{logs}", pytrace=False)
    status, health = await http_get(url + "/health")
    assert (status, health["status"], health["docker"]) == (200, "ok", "ok"), health
    info = await docker.containers.get(container)
    assert info["Config"]["User"] == SERVER_UID  # not root, yet it reaches the engine
    refused, _ = await http_get(url + "/api/v1/sessions")
    assert refused == 401  # the mounted keys file is in force

    async with (
        AsyncCodeBeaker(f"ws://127.0.0.1:{port}/ws/jsonrpc", api_key=deployment.key) as client,
        client.create_session("python") as session,
    ):
        result = await session.exec(["python3", "-c", "print(6*7)"])
        assert (result.stdout, result.exit_code) == ("42\n", 0)
        # Its sandboxes (the session's and the warm pool's) are siblings on the host's
        # engine, with no host path mounted into any of them.
        sandboxes = await instance_containers(docker, instance)
        assert sandboxes
        assert {sandbox["Image"] for sandbox in sandboxes} == {f"{IMAGE_PREFIX}/python:latest"}
        assert [
            mount for box in sandboxes for mount in box["Mounts"] if mount["Type"] == "bind"
        ] == []

    # The records live on the named volume, written by the unprivileged user; the keys
    # file is there to read and not to write.
    listing = await docker_cli("exec", container, "ls", "/data")
    assert f"{instance}.sqlite3" in listing.split(), listing
    access = await docker_cli(
        "exec", container, "python3", "-c",
        f"import os; print(os.access({KEYS_PATH!r}, os.R_OK), os.access({KEYS_PATH!r}, os.W_OK))",
    )  # fmt: skip
    assert access.split() == ["True", "False"]

    async def healthy() -> bool:
        return await health_status(docker, container) == "healthy"

    assert await wait_until(healthy, timeout=30), await health_status(docker, container)

    await docker_cli("stop", "--time", "30", container, timeout=60)
    stopped = await docker.containers.get(container)
    logs = await docker_cli("logs", container)
    assert stopped["State"]["ExitCode"] == 0, logs
    assert await instance_containers(docker, instance) == [], logs
    await docker_cli("rm", "--volumes", container)
    assert not await container_exists(docker, container)
