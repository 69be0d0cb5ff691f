"""Starts and removes the hardened containers behind sessions and one-shot runs.

The one place that turns a runtime plus limits into a running container and its driver:
from the warm pool when it has one with those limits, otherwise started cold. The agent
driver is the default; an image that cannot host the agent is remembered and gets the
exec driver from then on. Every container ends by itself at the end of its lifetime (its
keep-alive's sleep); a session container that outlived its server can be adopted by the
next server of the instance (``adopt``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from loguru import logger

from codebeaker.constants import (
    AGENT_PATH,
    AGENT_USER,
    GUEST_PATH,
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_LANGUAGE,
    LABEL_MANAGED,
    LABEL_SESSION,
    SANDBOX_USER,
)
from codebeaker.exceptions import SandboxError
from codebeaker.runtimes import Runtime, RuntimeRegistry
from codebeaker.sandbox.agent_driver import AgentDriver, AgentUnavailableError
from codebeaker.sandbox.docker import DockerBackend
from codebeaker.sandbox.driver import Driver, OutputBuffer
from codebeaker.sandbox.exec_driver import ExecDriver
from codebeaker.sandbox.hardening import ContainerLimits, container_config, keepalive_seconds
from codebeaker.sessions.pool import WarmPool
from codebeaker.sessions.records import DriverKind, SessionRecord
from codebeaker.settings import Settings

__all__ = ["SandboxFactory"]

POOL_OWNER = "pool"
KILL_SECONDS = 10.0
KILL_OLD = """
import os, signal, sys
me = os.getpid()
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\\0")
        if int(pid) != me and sys.argv[1].encode() in argv:
            os.kill(int(pid), signal.SIGKILL)
    except OSError:
        pass
"""
"""Kills the earlier server's agent (or resident guest) in an adopted container, should it
still run: a fresh one takes over. Its own uid may signal it without CAP_KILL."""


class SandboxFactory:
    def __init__(
        self, backend: DockerBackend, settings: Settings, runtimes: RuntimeRegistry
    ) -> None:
        self.backend = backend
        self.settings = settings
        self._runtimes = runtimes
        self._hosts_agent: dict[str, bool] = {}
        """Per image: whether the agent started in it (unknown until the first try)."""
        self._chores: set[asyncio.Task[None]] = set()
        self._ends: dict[str, float] = {}
        """Per container we started: when its keep-alive ends (monotonic)."""
        self.pool = WarmPool(settings.pool_sizes, self._launch_pooled, self.remove)

    def owned_labels(self) -> dict[str, str]:
        """Labels that mark a container as this server instance's."""
        return {LABEL_MANAGED: "true", LABEL_INSTANCE: self.settings.instance}

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
        """A container for ``lifetime_seconds`` (a session's maximum lifetime; a run's when
        not given: ``run_lifetime``): a pooled one only if its keep-alive lasts that long."""
        settings = self.settings
        lifetime = self.run_lifetime() if lifetime_seconds is None else lifetime_seconds
        if memory_mb == settings.default_memory_mb and cpu_limit == settings.default_cpu_limit:
            driver = self.pool.take(runtime.name)
            if (
                driver is not None
                and self._ends.get(driver.container_id, 0) < time.monotonic() + lifetime
            ):
                self.discard(driver)  # waited in the pool too long for this lifetime
            elif driver is not None:
                logger.debug("{} {} takes pooled {}", kind, owner, driver.container_id[:12])
                return driver
        return await self._start_cold(
            runtime,
            kind=kind,
            owner=owner,
            memory_mb=memory_mb,
            cpu_limit=cpu_limit,
            ready=False,
            lifetime=lifetime,
        )

    def run_lifetime(self) -> float:
        """The longest a one-shot or interactive run may hold its container: a compile and
        a run at the longest command timeout, or an interactive program's wall clock."""
        settings = self.settings
        return max(2 * settings.max_command_timeout_seconds, settings.interactive_timeout_seconds)

    async def _launch_pooled(self, language: str) -> Driver:
        settings = self.settings
        return await self._start_cold(
            self._runtimes.get(language),
            kind=POOL_OWNER,
            owner=POOL_OWNER,
            memory_mb=settings.default_memory_mb,
            cpu_limit=settings.default_cpu_limit,
            ready=True,
            lifetime=settings.max_lifetime_minutes * 60,
        )

    async def _start_cold(
        self,
        runtime: Runtime,
        *,
        kind: str,
        owner: str,
        memory_mb: int,
        cpu_limit: float,
        ready: bool,
        lifetime: float,
    ) -> Driver:
        """A new container. With ``ready`` its driver is started before we return;
        otherwise the agent starts in the background and the first command waits for it."""
        settings = self.settings
        image = settings.image_for(runtime.name)
        agent = settings.driver == "agent" and self._hosts_agent.get(image, True)
        limits = ContainerLimits.from_settings(settings, memory_mb=memory_mb, cpu_limit=cpu_limit)
        labels = {
            **self.owned_labels(),
            LABEL_KIND: kind,
            LABEL_SESSION: owner,
            LABEL_LANGUAGE: runtime.name,
        }
        seconds = keepalive_seconds(lifetime, settings.cleanup_interval_seconds)
        config = container_config(
            image, limits, labels, runtime.env, agent=agent, lifetime_seconds=seconds
        )
        container_id = await self.backend.start_container(config)
        self._ends[container_id] = time.monotonic() + seconds
        logger.debug("started {} container {} for {}", kind, container_id[:12], owner)
        driver: Driver = (
            AgentDriver(self.backend, container_id)
            if agent
            else ExecDriver(self.backend, container_id)
        )
        try:
            if agent and image not in self._hosts_agent:
                driver = await self._probe_agent(image, driver)
            elif ready:
                await driver.start()
            else:
                self._soon(driver.start(), f"agent start in {container_id[:12]}")
        except BaseException:
            await self.remove(driver)
            raise
        return driver

    async def _probe_agent(self, image: str, driver: Driver) -> Driver:
        """First container of an image: start the agent now, to learn whether it can."""
        try:
            await driver.start()
        except AgentUnavailableError as exc:
            logger.warning("{} cannot host the agent, using one exec per command: {}", image, exc)
            self._hosts_agent[image] = False
            await driver.aclose()
            fallback = ExecDriver(self.backend, driver.container_id)
            await fallback.start()
            return fallback
        self._hosts_agent[image] = True
        return driver

    def _soon(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run in the background; a failure is logged (the next command meets it again)."""

        async def quietly() -> None:
            try:
                await work
            except Exception as exc:
                logger.warning("{} failed: {}", what, exc)

        task = asyncio.create_task(quietly())
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def remove(self, driver: Driver) -> None:
        await driver.aclose()
        await self.backend.remove_container(driver.container_id)
        self._ends.pop(driver.container_id, None)

    @staticmethod
    def kind_of(driver: Driver) -> DriverKind:
        """What a session record notes: which driver its container was made for."""
        return "agent" if isinstance(driver, AgentDriver) else "exec"

    async def adopt(self, record: SessionRecord) -> Driver | None:
        """The recorded session's container, still running with this instance's labels,
        with a fresh driver (the old agent killed first); None when it cannot be adopted
        (the caller leaves it to the leftover clean-up)."""
        cid = record.container_id
        try:  # by id: a session taken from the pool still carries the pool's labels
            if cid not in await self.backend.labelled(self.owned_labels(), running=True):
                logger.info("session {} not adopted: its container is gone", record.session_id)
                return None
            agent = record.driver == "agent" and self.settings.driver == "agent"
            user, program = (AGENT_USER, AGENT_PATH) if agent else (SANDBOX_USER, GUEST_PATH)
            await self.backend.run_exec(
                cid,
                ("python3", "-I", "-S", "-c", KILL_OLD, program),
                user=user,
                env={},
                workdir="/",
                stdin=None,
                timeout=KILL_SECONDS,
                output=OutputBuffer(4096),
            )
            driver: Driver = (
                AgentDriver(self.backend, cid) if agent else ExecDriver(self.backend, cid)
            )
            await driver.start()
        except SandboxError as exc:
            logger.warning("session {} not adopted: {}", record.session_id, exc)
            return None
        return driver

    def discard(self, driver: Driver, then: Callable[[], None] | None = None) -> None:
        """Remove in the background (a run's reply need not wait ~100 ms for it), then
        call ``then`` whatever happened."""

        async def removal() -> None:
            try:
                await self.remove(driver)
            finally:
                if then is not None:
                    then()

        self._soon(removal(), f"removal of {driver.container_id[:12]}")

    async def remove_quietly(self, driver: Driver) -> None:
        """Remove now; a failure is logged (start-up or shutdown clean-up catches it)."""
        try:
            await self.remove(driver)
        except SandboxError as exc:
            logger.warning("could not remove {}: {}", driver.container_id[:12], exc)

    async def drain(self) -> None:
        """Wait for every background start and removal (at shutdown)."""
        while self._chores:
            await asyncio.gather(*list(self._chores), return_exceptions=True)

    async def remove_leftovers(self, keep: Collection[str] = ()) -> int:
        """Containers of an earlier run of this instance that nobody can reach any more:
        all but ``keep`` (adopted sessions, or those kept for the next server)."""
        return await self.backend.remove_labelled(self.owned_labels(), keep)

    async def engine_ok(self) -> bool:
        return await self.backend.ping()

    async def aclose(self) -> None:
        """Close the engine client (after everything of ours is removed)."""
        await self.backend.close()

    async def running_containers(self) -> set[str]:
        return set(await self.backend.labelled(self.owned_labels(), running=True))
