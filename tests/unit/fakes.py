"""A fake driver and sandbox factory: the session and RPC layers without Docker."""

from __future__ import annotations

import asyncio
from typing import Any

from codebeaker.exceptions import ContainerGoneError
from codebeaker.runtimes import RUNTIMES, Runtime
from codebeaker.sandbox.driver import (
    Driver,
    OutputBuffer,
    OutputSink,
    ProcessRequest,
    ProcessResult,
    StdinPipe,
)
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.settings import Settings


class FakeDriver(Driver):
    """Echoes argv; ``sleep N`` sleeps; a container marked gone raises like Docker would."""

    def __init__(self, container_id: str) -> None:
        super().__init__(container_id)
        self.calls: list[tuple[str, ...]] = []
        self.envs: list[dict[str, str]] = []
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
            await asyncio.sleep(float(request.argv[1]))
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
        self.calls.append((op, str(params.get("path", ""))))
        return {"path": params.get("path"), "op": op}

    async def aclose(self) -> None:
        self.closed = True

    @property
    def alive(self) -> bool:
        return not self.gone


class FakeSandboxes(SandboxFactory):
    def __init__(self, settings: Settings) -> None:
        super().__init__(backend=None, settings=settings, runtimes=RUNTIMES)  # type: ignore[arg-type]
        self.drivers: list[FakeDriver] = []
        self.removed: list[str] = []

    async def start(
        self,
        runtime: Runtime,
        *,
        kind: str,
        owner: str,
        memory_mb: int,
        cpu_limit: float,
    ) -> Driver:
        driver = FakeDriver(f"{len(self.drivers):064x}")
        self.drivers.append(driver)
        return driver

    async def remove(self, driver: Driver) -> None:
        await driver.aclose()
        self.removed.append(driver.container_id)

    async def running_containers(self) -> set[str]:
        return {d.container_id for d in self.drivers if not d.gone} - set(self.removed)
