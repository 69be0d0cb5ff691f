"""Fakes for the layers below the service: a driver, a sandbox factory and a service
wired to them. The session, RPC and service layers run without Docker."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import posixpath
from collections.abc import Collection
from typing import Any

from codebeaker.exceptions import CommandFailedError, ContainerGoneError
from codebeaker.runtimes import RUNTIMES, Runtime
from codebeaker.sandbox.driver import (
    Driver,
    OutputBuffer,
    OutputSink,
    ProcessRequest,
    ProcessResult,
    StdinPipe,
)
from codebeaker.service import SandboxService
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.settings import Settings

__all__ = ["FakeDriver", "FakeSandboxes", "FakeService"]

MODIFIED_AT = "2026-01-01T00:00:00Z"


class FakeDriver(Driver):
    """Echoes argv; ``sleep N`` sleeps (until its ``cancel``, if it is set first: then it
    is killed, exit 137); ``false`` exits 1; ``cat`` echoes its stdin.

    File operations answer as the guest does, over an in-memory file system. A container
    marked gone raises like Docker would.
    """

    def __init__(self, container_id: str) -> None:
        super().__init__(container_id)
        self.calls: list[tuple[str, ...]] = []
        self.envs: list[dict[str, str]] = []
        self.files: dict[str, bytes] = {}
        self.gone = False
        self.closed = False

    async def run(
        self,
        request: ProcessRequest,
        *,
        on_output: OutputSink | None = None,
        stdin: StdinPipe | None = None,
    ) -> ProcessResult:
        if self.gone:
            raise ContainerGoneError(self.container_id, "container was removed")
        self.calls.append(request.argv)
        self.envs.append(dict(request.env))
        if request.argv[0] == "sleep":
            if request.cancel is None:
                await asyncio.sleep(float(request.argv[1]))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(request.cancel.wait(), float(request.argv[1]))
                if request.cancel.is_set():
                    return ProcessResult(b"", b"", 137, cancelled=True, error="cancelled: killed")
        if request.argv[0] == "false":
            return ProcessResult(b"", b"", 1)
        if request.argv[0] == "cat":  # echoes stdin, live input included, until EOF
            output = OutputBuffer(request.output_limit, on_output)
            output.feed(1, request.stdin or b"")
            while stdin is not None and (chunk := await stdin.read()) is not None:
                output.feed(1, chunk)
            return ProcessResult(output.stdout, b"", 0)
        stdout = " ".join(request.argv).encode()
        if on_output is not None:
            on_output("stdout", stdout)
        return ProcessResult(stdout, b"", 0)

    async def file_op(self, op: str, **params: Any) -> dict[str, Any]:
        if self.gone:
            raise ContainerGoneError(self.container_id, "container was removed")
        path = str(params.get("path", params.get("source", "")))
        self.calls.append((op, path))
        if op == "write":
            data = base64.b64decode(params["content"])
            if params.get("mode") == "Append":
                data = self.files.get(path, b"") + data
            self.files[path] = data
            return {"path": path, "bytes": len(data)}
        if op == "read":
            whole = self._file(path)
            kept = whole[: params["max_bytes"]]
            return {
                "path": path,
                "content": base64.b64encode(kept).decode("ascii"),
                "bytes": len(kept),
                "size": len(whole),
                "truncated": len(kept) < len(whole),
            }
        if op == "mkdir":
            return {"path": path}
        if op == "copy":
            data = self._file(path)
            self.files[params["destination"]] = data
            return {"source": path, "destination": params["destination"], "bytes": len(data)}
        if op == "delete":
            self._file(path)
            del self.files[path]
            return {"path": path, "deleted": True}
        if op == "list":
            entries = [
                {
                    "name": posixpath.basename(name),
                    "path": name,
                    "type": "file",
                    "size": len(data),
                    "modifiedAt": MODIFIED_AT,
                }
                for name, data in sorted(self.files.items())
                if posixpath.dirname(name) == path
            ]
            return {"path": path, "entries": entries, "truncated": False}
        raise AssertionError(f"unexpected file op {op!r}")

    def _file(self, path: str) -> bytes:
        if path not in self.files:
            raise CommandFailedError("file_not_found", path)
        return self.files[path]

    async def aclose(self) -> None:
        self.closed = True

    @property
    def alive(self) -> bool:
        return not self.gone


class FakeSandboxes(SandboxFactory):
    """Drivers in memory. A test can make starting fail (``start_failure``) and hold every
    removal until it opens ``removals`` (set by default: removals go through)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(backend=None, settings=settings, runtimes=RUNTIMES)  # type: ignore[arg-type]
        self.driver_class: type[FakeDriver] = FakeDriver
        self.drivers: list[FakeDriver] = []
        self.removed: list[str] = []
        self.start_failure: Exception | None = None
        self.removals = asyncio.Event()
        self.removals.set()
        self.removing: list[str] = []
        """Removals begun (finished ones are in ``removed`` too)."""

    async def start(
        self,
        runtime: Runtime,
        *,
        kind: str,
        owner: str,
        memory_mb: int,
        cpu_limit: float,
        lifetime_seconds: float | None = None,
    ) -> Driver:
        if self.start_failure is not None:
            raise self.start_failure
        driver = self.new_driver(f"{len(self.drivers):064x}")
        self.drivers.append(driver)
        return driver

    def new_driver(self, container_id: str) -> FakeDriver:
        return self.driver_class(container_id)

    async def remove(self, driver: Driver) -> None:
        self.removing.append(driver.container_id)
        await self.removals.wait()
        await driver.aclose()
        self.removed.append(driver.container_id)

    async def remove_leftovers(self, keep: Collection[str] = ()) -> int:
        return 0

    async def aclose(self) -> None:
        """No engine client to close."""

    async def running_containers(self) -> set[str]:
        return {d.container_id for d in self.drivers if not d.gone} - set(self.removed)


class FakeService(SandboxService):
    """The real service over ``FakeSandboxes``."""

    def __init__(self, settings: Settings) -> None:
        self.sandboxes = FakeSandboxes(settings)
        super().__init__(settings, sandboxes=self.sandboxes)
