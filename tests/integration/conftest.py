"""Fixtures of the integration suite: a real Docker engine, real server processes, real sockets.

Nothing here is mocked. A missing engine or a missing runtime image fails the run with a
message saying what to do; it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from aiodocker.exceptions import DockerError

from codebeaker.constants import AGENT_PATH, GUEST_PATH, KERNEL_PATH, LABEL_INSTANCE, LABEL_KIND

from .client import ALL_FRAMES, RpcClient

LANGUAGES = ("python", "python-data", "javascript", "go", "csharp", "c", "cpp", "java")
IMAGE_PREFIX = os.environ.get("CODEBEAKER_IMAGE_PREFIX", "codebeaker")
"""The servers under test use the same prefix (the setting's default unless overridden)."""
IMAGES = tuple(f"{IMAGE_PREFIX}/{language}:latest" for language in LANGUAGES)
PASSED_THROUGH = ("CODEBEAKER_IMAGE_PREFIX", "CODEBEAKER_DOCKER_URL")
"""Settings of the environment the servers under test inherit; every other one is reset."""
MIB = 1024 * 1024
DRIVERS = ("agent", "exec")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
DATA_DIR = Path(tempfile.mkdtemp(prefix="codebeaker-it-data-"))
"""Every server under test keeps its execution records here (one file per instance)."""
SERVERS: list[ServerProcess] = []
"""Servers running right now; their logs are attached to the report of a failed test."""


# --------------------------------------------------------------------------- server process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _http_get(url: str, timeout: float = 5) -> tuple[int, dict[str, Any]]:
    """GET a JSON document without any proxy from the environment; (status, body)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, {"raw": body.decode(errors="replace")}


async def http_get(url: str, timeout: float = 5) -> tuple[int, dict[str, Any]]:
    return await asyncio.to_thread(_http_get, url, timeout)


class ServerProcess:
    """``python -m codebeaker serve`` on a free port, with its own instance name."""

    def __init__(
        self, env: dict[str, str], instance: str | None = None, *, healthy: bool = True
    ) -> None:
        self.healthy = healthy
        """Wait for /health to say 200 (or, when False, just to answer at all)."""
        self.port = free_port()
        self.instance = instance or f"it-{secrets.token_hex(6)}"
        self.http_url = f"http://127.0.0.1:{self.port}"
        self.url = f"ws://127.0.0.1:{self.port}"
        self.overrides = dict(env)
        handle, name = tempfile.mkstemp(prefix=f"codebeaker-{self.instance}-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self.process: subprocess.Popen[bytes] | None = None
        self.mark = 0
        """Log offset at the start of the current test."""

    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("CODEBEAKER_") or key in PASSED_THROUGH
        }
        env.update(
            {
                "CODEBEAKER_INSTANCE": self.instance,
                "CODEBEAKER_CLEANUP_INTERVAL_SECONDS": "1",
                "CODEBEAKER_DATA_DIR": str(DATA_DIR),
                "CODEBEAKER_MAX_MESSAGE_BYTES": str(MIB),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.overrides)
        return env

    def log(self, since: int = 0) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(since)
                return handle.read().decode(errors="replace")
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    async def start(self) -> None:
        argv = [sys.executable, "-m", "codebeaker", "serve"]
        argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                cwd=Path(__file__).resolve().parents[2],
            )
        SERVERS.append(self)
        deadline = time.monotonic() + START_TIMEOUT
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"server exited with code {self.process.returncode} before /health "
                    f"answered; its output:\n{self.log()}",
                    pytrace=False,
                )
            try:
                status, body = await http_get(self.http_url + "/health", timeout=2)
            except OSError as exc:
                last = repr(exc)
            else:
                if status == 200 or not self.healthy:
                    return
                last = f"HTTP {status}: {body}"
            await asyncio.sleep(0.2)
        await self.stop(check=False)
        pytest.fail(
            f"server did not answer GET /health within {START_TIMEOUT:g}s ({last}); "
            f"its output:\n{self.log()}",
            pytrace=False,
        )

    async def stop(self, check: bool = True) -> int | None:
        """SIGTERM, wait, and (with ``check``) assert the process exited."""
        process = self.process
        if process is None:
            return None
        with contextlib.suppress(ValueError):
            SERVERS.remove(self)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait, 10)
                if check:
                    pytest.fail(
                        f"server {self.instance} did not exit within {STOP_TIMEOUT:g}s of "
                        f"SIGTERM; its output:\n{self.log()}",
                        pytrace=False,
                    )
        return process.returncode


async def instance_containers(
    docker: aiodocker.Docker, instance: str, **labels: str
) -> list[dict[str, Any]]:
    """Every container (running or not) labelled with this server instance."""
    wanted = [f"{LABEL_INSTANCE}={instance}"]
    wanted += [f"{key}={value}" for key, value in labels.items()]
    containers = await docker.containers.list(all=True, filters=json.dumps({"label": wanted}))
    return [container._container for container in containers]


async def run_containers(docker: aiodocker.Docker, instance: str) -> list[dict[str, Any]]:
    return await instance_containers(docker, instance, **{LABEL_KIND: "run"})


async def remove_instance_containers(docker: aiodocker.Docker, instance: str) -> list[str]:
    """Force-remove whatever a server left behind; the ids removed."""
    removed = []
    for info in await instance_containers(docker, instance):
        with contextlib.suppress(DockerError):
            await docker.containers.container(info["Id"]).delete(force=True)
            removed.append(info["Id"][:12])
    return removed


async def container_exists(docker: aiodocker.Docker, container_id: str) -> bool:
    try:
        await docker.containers.get(container_id)
    except DockerError as exc:
        if exc.status == 404:
            return False
        raise
    return True


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.5
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


def escaping_tree(then: str) -> str:
    """A shell script that leaves background children, a new session, a double fork and an
    emptied environment behind, then runs ``then``: the tree a timeout or a cancel kills."""
    return (
        "sleep 1001 & "
        "setsid sleep 1002 & "
        "(sleep 1003 &); "
        "nohup sleep 1004 >/dev/null 2>&1 & "
        "env -i /bin/sleep 1005 & "
        "python3 -c 'import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(1006)\n"
        "' & " + then
    )


PROCESS_LISTING = r"""
import json, os
me = os.getpid()
rows = []
for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) == me:
        continue
    try:
        with open(f"/proc/{name}/status") as handle:
            status = dict(line.split(":", 1) for line in handle if ":" in line)
        with open(f"/proc/{name}/cmdline", "rb") as handle:
            cmd = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        continue
    rows.append({"pid": int(name), "uid": int(status["Uid"].split()[0]),
                 "state": status["State"].split()[0], "cmd": cmd})
print(json.dumps(rows))
"""


async def sandbox_processes(client: RpcClient, session_id: str) -> list[dict[str, Any]]:
    """Every live process in the session's container but the one listing them."""
    envelope = await client.shell(session_id, "python3", "-c", PROCESS_LISTING, timeout=60)
    assert envelope["success"], envelope
    rows: list[dict[str, Any]] = json.loads(envelope["result"]["stdout"])
    return [row for row in rows if row["state"] not in ("Z", "X")]


def is_server_helper(row: dict[str, Any]) -> bool:
    """The server's own process in the container: the agent (root), a code context's
    interpreter (uid 1000; python sessions start one), or under the exec driver the
    resident ``guest.py serve`` (uid 1000) started before the first command."""
    cmd = str(row["cmd"])
    if row["uid"] == 0:
        return cmd.endswith(AGENT_PATH)
    return row["uid"] == 1000 and (cmd.endswith(f"{GUEST_PATH} serve") or KERNEL_PATH in cmd)


async def leftover_user_processes(
    client: RpcClient, session_id: str, settle: float = 3.0
) -> list[dict[str, Any]]:
    """Processes of the sandbox user (uid 1000) still alive; polls ``settle`` seconds.
    The server's own helper process is not a leftover."""
    deadline = time.monotonic() + settle
    while True:
        rows = [
            row
            for row in await sandbox_processes(client, session_id)
            if row["uid"] == 1000 and not is_server_helper(row)
        ]
        if not rows or time.monotonic() >= deadline:
            return rows
        await asyncio.sleep(0.3)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
async def docker() -> AsyncIterator[aiodocker.Docker]:
    """The real Docker engine; the run fails (never skips) when it or an image is missing."""
    client = aiodocker.Docker(url=os.environ.get("CODEBEAKER_DOCKER_URL"))
    try:
        problem: Exception | None = None
        try:
            await client.version()
        except Exception as exc:
            problem = exc
        if problem is not None:
            pytest.fail(
                f"the Docker engine is unreachable ({problem}). The integration suite needs a "
                "running engine: start it (`make test` installs and starts one), or point "
                "DOCKER_HOST at one.",
                pytrace=False,
            )
        missing = []
        for image in IMAGES:
            try:
                await client.images.inspect(image)
            except DockerError as exc:
                if exc.status != 404:
                    raise
                missing.append(image)
        if missing:
            pytest.fail(
                f"runtime image(s) missing: {', '.join(missing)}. Build them with `make images` "
                "(or `python -m codebeaker images build`).",
                pytrace=False,
            )
        yield client
    finally:
        await client.close()


ServerFactory = Callable[..., Awaitable[ServerProcess]]


async def stop_and_check(docker: aiodocker.Docker, server: ServerProcess) -> None:
    returncode = await server.stop()
    leftovers = await remove_instance_containers(docker, server.instance)
    assert returncode is not None
    assert not leftovers, (
        f"server {server.instance} exited (code {returncode}) but left containers "
        f"{leftovers} behind"
    )
    server.log_path.unlink(missing_ok=True)  # kept only when something went wrong


@pytest.fixture(scope="session", params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    """Every test that talks to a server runs once per driver (``CODEBEAKER_DRIVER``)."""
    return str(request.param)


@pytest.fixture(scope="session")
async def server_process(docker: aiodocker.Docker, driver: str) -> AsyncIterator[ServerProcess]:
    """The shared server most tests talk to."""
    server = ServerProcess({"CODEBEAKER_DRIVER": driver})
    try:
        await server.start()
        yield server
    finally:
        await stop_and_check(docker, server)


@pytest.fixture(scope="session")
def server(server_process: ServerProcess) -> str:
    """Base URL (``ws://127.0.0.1:PORT``) of the shared server."""
    return server_process.url


@pytest.fixture
async def start_server(docker: aiodocker.Docker, driver: str) -> AsyncIterator[ServerFactory]:
    """Start extra servers with other settings (and the test's driver); each is stopped
    (and checked) afterwards."""
    started: list[ServerProcess] = []

    async def start(instance: str | None = None, healthy: bool = True, **env: str) -> ServerProcess:
        server = ServerProcess(
            {"CODEBEAKER_DRIVER": driver, **env}, instance=instance, healthy=healthy
        )
        started.append(server)
        await server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            await stop_and_check(docker, server)


@pytest.fixture(scope="session")
async def rpc(server: str) -> AsyncIterator[RpcClient]:
    """A session-wide connection to the shared server."""
    client = await RpcClient.connect(server)
    try:
        yield client
    finally:
        await client.close()


ConnectFactory = Callable[..., Awaitable[RpcClient]]


@pytest.fixture
async def connect(server: str) -> AsyncIterator[ConnectFactory]:
    """Open extra connections (to the shared server by default); closed afterwards."""
    clients: list[RpcClient] = []

    async def open_client(url: str | None = None, **kwargs: Any) -> RpcClient:
        client = await RpcClient.connect(url or server, **kwargs)
        clients.append(client)
        return client

    try:
        yield open_client
    finally:
        for client in clients:
            await client.close()


SessionFactory = Callable[..., Awaitable[dict[str, Any]]]


async def close_quietly(client: RpcClient, session_id: str) -> None:
    """Close a session, ignoring "not found"/"terminated" (it may have expired or died)."""
    with contextlib.suppress(ConnectionError):
        response = await client.call("session.close", {"sessionId": session_id}, timeout=60)
        if "error" in response:
            assert response["error"]["code"] in (-32001, -32002), response


@pytest.fixture
async def make_session(rpc: RpcClient) -> AsyncIterator[SessionFactory]:
    """``await make_session(language="python", **params)`` → the session.create result.

    ``client=`` picks another connection (e.g. to another server). Every session made is
    closed when the test ends.
    """
    made: list[tuple[RpcClient, str]] = []

    async def make(
        language: str = "python", *, client: RpcClient | None = None, **params: Any
    ) -> dict[str, Any]:
        client = client or rpc
        created = await client.result("session.create", {"language": language, **params})
        made.append((client, created["sessionId"]))
        assert isinstance(created, dict), created
        return created

    try:
        yield make
    finally:
        for client, session_id in made:
            if not client.closed:
                await close_quietly(client, session_id)


@pytest.fixture(scope="session")
async def py_session(rpc: RpcClient) -> AsyncIterator[str]:
    """One python session shared by the tests that do not hurt it; its sessionId."""
    created = await rpc.result("session.create", {"language": "python"})
    try:
        yield created["sessionId"]
    finally:
        await close_quietly(rpc, created["sessionId"])


@pytest.fixture
async def workdir(rpc: RpcClient, py_session: str, request: pytest.FixtureRequest) -> str:
    """A fresh directory in the shared session, so tests never see each other's files."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:60]
    path = f"/workspace/t-{name}-{secrets.token_hex(3)}"
    await rpc.ok(py_session, {"type": "create_directory", "path": path})
    return path


def _server_side(frame: str) -> str:
    """A frame without what user code produced: a cell's own traceback is its result."""
    try:
        parsed = json.loads(frame)
    except ValueError:
        return frame
    result = parsed.get("result") if isinstance(parsed, dict) else None
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        result["error"].pop("traceback", None)
        result["error"].pop("value", None)
    return json.dumps(parsed)


@pytest.fixture(autouse=True)
def no_tracebacks_on_the_wire() -> Iterator[None]:
    """No frame any client receives may carry a stack trace of the server's."""
    start = len(ALL_FRAMES)
    yield
    leaked = [frame for frame in ALL_FRAMES[start:] if "Traceback" in _server_side(frame)]
    assert not leaked, f"a reply carried a traceback: {leaked[0][:2000]}"


# --------------------------------------------------------------------------- reporting


def pytest_runtest_setup(item: pytest.Item) -> None:
    for server in SERVERS:
        server.mark = server.log_size()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        for server in SERVERS:
            text = server.log(server.mark)
            if len(text) > 20000:
                text = "…" + text[-20000:]
            report.sections.append((f"server {server.instance} log ({server.log_path})", text))
    return report
