"""What the hostile-client tests assert beside each attack: a bystander keeps being served
quickly, and the server's memory stays bounded.

``async with bystander(server) as watch:`` opens a session on a connection of its own and runs
``true`` in it every 0.2 s while the attack goes on; on leaving, every call must have answered
(no error) within ``BYSTANDER_LIMIT_SECONDS``. ``server_rss_mb(server)`` reads the server
process's resident memory from ``/proc``; ``assert_rss_below`` checks it against the issue's
bound once, ``async with peak_rss(server)`` checks its peak over a block.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from codebeaker_client import AsyncCodeBeaker

from tests.integration.conftest import ServerProcess

__all__ = [
    "BYSTANDER_LIMIT_SECONDS",
    "RSS_LIMIT_MB",
    "Bystander",
    "assert_rss_below",
    "bystander",
    "peak_rss",
    "server_rss_mb",
]

BYSTANDER_LIMIT_SECONDS = 1.0
RSS_LIMIT_MB = 300.0
PERIOD_SECONDS = 0.2


@dataclass
class Bystander:
    """What the bystander saw: each call's latency, and any failure."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max(self.latencies, default=0.0)


def server_rss_mb(server: ServerProcess) -> float:
    """Resident memory of the server process (``VmRSS``), in MiB."""
    assert server.process is not None, "the server is not running"
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc status")


def assert_rss_below(server: ServerProcess, limit_mb: float = RSS_LIMIT_MB) -> None:
    rss = server_rss_mb(server)
    assert rss < limit_mb, f"server RSS {rss:.0f} MiB, over {limit_mb:.0f} MiB"


@contextlib.asynccontextmanager
async def peak_rss(server: ServerProcess) -> AsyncIterator[list[float]]:
    """Sample the server's resident memory every 50 ms during the block; its peak must
    stay under the issue's bound (memory freed by the end would hide a spike)."""
    samples: list[float] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            samples.append(server_rss_mb(server))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        stop.set()
        await task
    assert max(samples) < RSS_LIMIT_MB, f"server RSS peaked at {max(samples):.0f} MiB"


@contextlib.asynccontextmanager
async def bystander(
    server: ServerProcess, *, api_key: str | None = None, language: str = "python"
) -> AsyncIterator[Bystander]:
    """Another client's session answering throughout the block; asserted on leaving."""
    seen = Bystander()
    async with (
        AsyncCodeBeaker(server.url + "/ws/jsonrpc", api_key=api_key) as client,
        client.create_session(language) as session,
    ):
        stop = asyncio.Event()

        async def probe() -> None:
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    result = await asyncio.wait_for(session.exec(["true"]), 30)
                    if result.exit_code != 0:
                        seen.failures.append(f"exit {result.exit_code}")
                except Exception as exc:  # a bystander records, the test asserts
                    seen.failures.append(repr(exc))
                seen.latencies.append(time.perf_counter() - began)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), PERIOD_SECONDS)

        task = asyncio.create_task(probe())
        try:
            yield seen
        finally:
            stop.set()
            await task
    assert not seen.failures, f"the bystander failed: {seen.failures[:3]}"
    assert seen.latencies, "the bystander never ran"
    assert seen.worst < BYSTANDER_LIMIT_SECONDS, (
        f"the bystander waited {seen.worst:.2f}s (limit {BYSTANDER_LIMIT_SECONDS}s)"
    )
