"""The Docker create config of a sandbox container: every hardening setting in one place.

docs/security.md says what each line defends against; keep the two in step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codebeaker.constants import AGENT_CAPS, KEEPALIVE_USER, TMP, WORKSPACE
from codebeaker.settings import Settings

__all__ = ["ContainerLimits", "container_config", "fit_tmpfs", "keepalive_seconds"]

MIB = 1024 * 1024
KEEPALIVE_IDS = KEEPALIVE_USER.split(":")
DROP_TO_NOBODY = ("--reuid", KEEPALIVE_IDS[0], "--regid", KEEPALIVE_IDS[1], "--clear-groups")
RESERVE_MB = 32  # memory no file can take: room for the keep-alive and a process to OOM-kill
KEEPALIVE_GRACE_SECONDS = 10  # past the reaper's own close: the server, when alive, acts first


@dataclass(frozen=True)
class ContainerLimits:
    memory_mb: int
    cpu_limit: float
    pids_limit: int
    workspace_size_mb: int
    tmp_size_mb: int
    max_file_size_mb: int
    nofile: int

    @classmethod
    def from_settings(
        cls, settings: Settings, *, memory_mb: int, cpu_limit: float
    ) -> ContainerLimits:
        """The server's limits with a session's own memory and CPU."""
        return cls(
            memory_mb=memory_mb,
            cpu_limit=cpu_limit,
            pids_limit=settings.pids_limit,
            workspace_size_mb=settings.workspace_size_mb,
            tmp_size_mb=settings.tmp_size_mb,
            max_file_size_mb=settings.max_file_size_mb,
            nofile=settings.nofile_limit,
        )


def fit_tmpfs(memory_mb: int, workspace_mb: int, tmp_mb: int) -> tuple[int, int]:
    """Shrink /workspace and /tmp so that, full together, they leave ``RESERVE_MB`` free.

    tmpfs pages are charged to the container's memory cgroup and cannot be reclaimed: if
    files alone could fill the limit, the OOM killer would kill everything, keep-alive
    included, and the session with all its files would be gone.
    """
    budget = max(memory_mb - RESERVE_MB, 2)
    if workspace_mb + tmp_mb <= budget:
        return workspace_mb, tmp_mb
    scale = budget / (workspace_mb + tmp_mb)
    return max(int(workspace_mb * scale), 1), max(int(tmp_mb * scale), 1)


def keepalive_seconds(lifetime_seconds: float, reaper_interval: float) -> int:
    """How long the keep-alive sleeps: the container's whole life. When it ends, docker-init
    exits and the container stops (and is removed), with or without a server: a session
    never outlives its maximum lifetime by more than a reaper interval and a grace."""
    return math.ceil(lifetime_seconds + reaper_interval + KEEPALIVE_GRACE_SECONDS)


def _tmpfs(size_mb: int, *extra: str) -> str:
    """A size-capped tmpfs: no device files, no set-uid binaries. ``exec`` is explicit
    because Docker's tmpfs default is noexec, and compiled programs run from here; user
    code runs interpreters anyway, so noexec would stop nothing."""
    return ",".join(("rw", "exec", "nosuid", "nodev", *extra, f"size={size_mb}m"))


def container_config(
    image: str,
    limits: ContainerLimits,
    labels: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    *,
    agent: bool = True,
    lifetime_seconds: int,
) -> dict[str, Any]:
    """A container that idles as an unprivileged keep-alive until we exec into it, for at
    most ``lifetime_seconds`` (see ``keepalive_seconds``).

    With ``agent``, root in the container keeps CAP_SETUID and CAP_SETGID (and nothing
    else) so the agent, exec'd as root, can start commands as uid 1000. Docker gives a
    process exec'd as another user no capabilities at all, and commands the agent starts
    drop them on setuid; ``no-new-privileges`` keeps them from coming back.
    """
    memory = limits.memory_mb * MIB
    workspace_mb, tmp_mb = fit_tmpfs(limits.memory_mb, limits.workspace_size_mb, limits.tmp_size_mb)
    max_file = limits.max_file_size_mb * MIB
    # docker-init reaps zombies; `sleep` keeps the container up as nobody, so user code
    # (uid 1000) can neither signal it nor take the container down early.
    sleep = ["sleep", str(lifetime_seconds)]
    if agent:
        user, keepalive = "0:0", ["setpriv", *DROP_TO_NOBODY, *sleep]
    else:
        user, keepalive = KEEPALIVE_USER, sleep
    return {
        "Image": image,
        "Cmd": keepalive,
        "User": user,
        "WorkingDir": WORKSPACE,
        "Env": [f"{key}={value}" for key, value in (env or {}).items()],
        "Labels": dict(labels),
        "NetworkDisabled": True,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StopSignal": "SIGKILL",
        "HostConfig": {
            "NetworkMode": "none",
            "CapDrop": ["ALL"],
            "CapAdd": list(AGENT_CAPS) if agent else [],
            "SecurityOpt": ["no-new-privileges:true"],
            "ReadonlyRootfs": True,
            "Privileged": False,
            "Init": True,
            "IpcMode": "private",
            "Memory": memory,
            "MemorySwap": memory,  # equal: no swap, so a memory bomb meets the OOM killer
            "OomKillDisable": False,
            "NanoCpus": int(limits.cpu_limit * 1e9),
            "PidsLimit": limits.pids_limit,
            "Ulimits": [
                {"Name": "nofile", "Soft": limits.nofile, "Hard": limits.nofile},
                {"Name": "fsize", "Soft": max_file, "Hard": max_file},
                {"Name": "core", "Soft": 0, "Hard": 0},
            ],
            "Tmpfs": {
                TMP: _tmpfs(tmp_mb, "mode=1777"),
                WORKSPACE: _tmpfs(workspace_mb, "uid=1000", "gid=1000", "mode=0755"),
            },
            "RestartPolicy": {"Name": "no"},
            # Removed by the engine once the keep-alive ends: nothing is left of a session
            # past its lifetime, even with no server. Adoption only wants running ones.
            "AutoRemove": True,
            "LogConfig": {"Type": "none", "Config": {}},
        },
    }
