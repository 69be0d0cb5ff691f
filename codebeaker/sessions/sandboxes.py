"""Starts and removes the hardened containers behind sessions and one-shot runs.

The one place that turns a runtime plus limits into a running container and its driver;
a warm pool or another driver plugs in here without the callers noticing.
"""

from __future__ import annotations

from collections.abc import Mapping

from loguru import logger

from codebeaker.constants import (
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_LANGUAGE,
    LABEL_MANAGED,
    LABEL_SESSION,
)
from codebeaker.runtimes import Runtime
from codebeaker.sandbox.docker import DockerBackend
from codebeaker.sandbox.driver import Driver
from codebeaker.sandbox.exec_driver import ExecDriver
from codebeaker.sandbox.hardening import ContainerLimits, container_config
from codebeaker.settings import Settings

__all__ = ["SandboxFactory"]


class SandboxFactory:
    def __init__(self, backend: DockerBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings

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
        env: Mapping[str, str] | None = None,
    ) -> Driver:
        settings = self.settings
        limits = ContainerLimits.from_settings(settings, memory_mb=memory_mb, cpu_limit=cpu_limit)
        labels = {
            **self.owned_labels(),
            LABEL_KIND: kind,
            LABEL_SESSION: owner,
            LABEL_LANGUAGE: runtime.name,
        }
        config = container_config(
            settings.image_for(runtime.name), limits, labels, {**runtime.env, **(env or {})}
        )
        container_id = await self.backend.start_container(config)
        logger.debug("started {} container {} for {}", kind, container_id[:12], owner)
        return ExecDriver(self.backend, container_id)

    async def remove(self, driver: Driver) -> None:
        await driver.aclose()
        await self.backend.remove_container(driver.container_id)

    async def remove_leftovers(self) -> int:
        """Containers of an earlier run of this instance: nobody can reach them any more."""
        return await self.backend.remove_labelled(self.owned_labels())

    async def running_containers(self) -> set[str]:
        return set(await self.backend.labelled(self.owned_labels(), running=True))
