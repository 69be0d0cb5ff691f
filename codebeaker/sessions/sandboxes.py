"""Starts and removes the hardened containers behind sessions and one-shot runs.

The one place that turns a runtime plus limits into a running container and its driver:
from the warm pool when it has one with those limits, otherwise started cold. The agent
driver is the default; an image that cannot host the agent is remembered and gets the
exec driver from then on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from loguru import logger

from codebeaker.constants import (
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_LANGUAGE,
    LABEL_MANAGED,
    LABEL_SESSION,
)
from codebeaker.exceptions import SandboxError
from codebeaker.runtimes import Runtime, RuntimeRegistry
from codebeaker.sandbox.agent_driver import AgentDriver, AgentUnavailableError
from codebeaker.sandbox.docker import DockerBackend
from codebeaker.sandbox.driver import Driver
from codebeaker.sandbox.exec_driver import ExecDriver
from codebeaker.sandbox.hardening import ContainerLimits, container_config
from codebeaker.sessions.pool import WarmPool
from codebeaker.settings import Settings

__all__ = ["SandboxFactory"]

POOL_OWNER = "pool"


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
        self.pool = WarmPool(settings.pool_sizes, self._launch_pooled, self.remove)

    def owned_labels(self) -> dict[str, str]:
        """Labels that mark a container as this server instance's."""
        return {LABEL_MANAGED: "true", LABEL_INSTANCE: self.settings.instance}

    async def start(
        self, runtime: Runtime, *, kind: str, owner: str, memory_mb: int, cpu_limit: float
    ) -> Driver:
        settings = self.settings
        if memory_mb == settings.default_memory_mb and cpu_limit == settings.default_cpu_limit:
            driver = self.pool.take(runtime.name)
            if driver is not None:
                logger.debug("{} {} takes pooled {}", kind, owner, driver.container_id[:12])
                return driver
        return await self._start_cold(
            runtime, kind=kind, owner=owner, memory_mb=memory_mb, cpu_limit=cpu_limit, ready=False
        )

    async def _launch_pooled(self, language: str) -> Driver:
        settings = self.settings
        return await self._start_cold(
            self._runtimes.get(language),
            kind=POOL_OWNER,
            owner=POOL_OWNER,
            memory_mb=settings.default_memory_mb,
            cpu_limit=settings.default_cpu_limit,
            ready=True,
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
        config = container_config(image, limits, labels, runtime.env, agent=agent)
        container_id = await self.backend.start_container(config)
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

    async def remove_leftovers(self) -> int:
        """Containers of an earlier run of this instance: nobody can reach them any more."""
        return await self.backend.remove_labelled(self.owned_labels())

    async def engine_ok(self) -> bool:
        return await self.backend.ping()

    async def aclose(self) -> None:
        """Close the engine client (after everything of ours is removed)."""
        await self.backend.close()

    async def running_containers(self) -> set[str]:
        return set(await self.backend.labelled(self.owned_labels(), running=True))
