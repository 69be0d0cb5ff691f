"""The one settings object, read from ``CODEBEAKER_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from codebeaker.exceptions import UnsupportedLanguageError
from codebeaker.runtimes import RUNTIMES

__all__ = ["Settings", "get_settings"]

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Server configuration. Every field is ``CODEBEAKER_<FIELD_NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="CODEBEAKER_", extra="ignore", frozen=True)

    # Transport
    host: str = "127.0.0.1"
    port: int = Field(5000, ge=0, le=65535)
    max_message_bytes: int = Field(16 * MIB, ge=1024)
    """Largest WebSocket text frame or HTTP request body accepted; larger ones get a
    ``limit_exceeded`` error (413 on REST)."""
    api_key: str | None = Field(None, min_length=1)
    """When set, clients must send it as ``Authorization: Bearer …``, ``X-API-Key`` or
    ``?apiKey=``."""

    metrics_key: str | None = Field(None, min_length=16)
    """When set, ``GET /metrics`` wants ``Authorization: Bearer <metrics_key>``; unset, it is
    open like ``/health`` (it names tenants and counts, never content)."""

    # Tenants
    api_keys_file: Path | None = None
    """JSON list of tenants, each with the SHA-256 of its key and optional quotas
    (``maxSessions``, ``maxConcurrentRuns``, ``requestsPerSecond``); read at start-up."""
    audit_log: Path | None = None
    """JSON lines, one per request (tenant, method, session, outcome; never content);
    unset: no audit log."""

    # Limits (what one client can make the server hold; docs/security.md "Limits")
    max_connections: int = Field(1024, ge=1)
    """Open HTTP and WebSocket connections at once; past it new ones get 503 and are closed."""
    handshake_timeout_seconds: float = Field(10, gt=0)
    """A connection that has not sent a whole HTTP request (or finished its WebSocket
    handshake) within this is closed: half-open connections cannot pile up."""
    max_in_flight: int = Field(64, ge=1)
    """Requests (each batch item counts) running at once per connection; past it the
    server stops reading that connection and TCP pushes back."""
    max_batch_items: int = Field(100, ge=1)
    """Requests one JSON-RPC batch may hold; a longer batch is one ``-32600`` error."""
    max_reply_bytes: int = Field(16 * MIB, ge=1024)
    """Largest serialized reply (or batch item's reply); a larger one is replaced by
    ``limit_exceeded`` (``data.limit: "reply_size"``)."""
    max_pending_reply_bytes: int = Field(32 * MIB, ge=1024)
    """Serialized replies one connection may hold unsent (a batch's until it is whole);
    a reply past it is replaced by ``limit_exceeded`` (``"pending_reply_size"``)."""

    # Docker
    docker_url: str | None = None
    """Engine address (``unix:///var/run/docker.sock``, ``tcp://…``); unset means DOCKER_HOST."""
    docker_timeout_seconds: float = Field(30, gt=0)
    """Deadline of each Docker call (an exec running a command: the command's timeout plus
    this). Past it the call fails with ``sandbox_timeout``: an exec into a container frozen
    by ``docker pause`` never returns by itself."""
    instance: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """Name stamped on every container; start-up clean-up only touches its own instance's."""
    image_prefix: str = "codebeaker"
    """Runtime images are ``<image_prefix>/<language>:latest``."""
    base_image: str = "debian:bookworm-slim"
    """Pulled for image builds when a registry answers; otherwise built with debootstrap."""
    debian_mirror: str | None = None
    """Mirror for the offline base image; unset: the first in this machine's apt sources."""

    driver: Literal["agent", "exec"] = "agent"
    """``agent``: one agent per container runs every command (fast); ``exec``: one Docker
    exec per command. Images that cannot host the agent fall back to ``exec`` by themselves."""
    pool_sizes: dict[str, int] = Field(default_factory=lambda: {"python": 2})
    """Warm containers kept ready per language (JSON: ``{"python": 2, "go": 1}``); used by
    ``session.create`` and ``execution.run`` when they ask for the default memory and CPU."""

    # Session defaults and maxima (the spec: values above a maximum are rejected, never clamped)
    max_sessions: int = Field(50, ge=1)
    default_idle_timeout_minutes: float = Field(30, gt=0)
    max_idle_timeout_minutes: float = Field(24 * 60, gt=0)
    default_max_lifetime_minutes: float = Field(120, gt=0)
    max_lifetime_minutes: float = Field(24 * 60, gt=0)
    default_memory_mb: int = Field(512, ge=64)
    max_memory_mb: int = Field(4096, ge=64)
    default_cpu_limit: float = Field(1.0, gt=0)
    max_cpu_limit: float = Field(2.0, gt=0)
    pids_limit: int = Field(256, ge=16)
    workspace_size_mb: int = Field(256, ge=1)
    """tmpfs, counted against the session's memory: shrunk to fit when memory is small."""
    tmp_size_mb: int = Field(128, ge=1)
    max_file_size_mb: int = Field(256, ge=1)
    """``fsize`` ulimit: no single file written by user code may grow beyond this."""
    nofile_limit: int = Field(1024, ge=64)

    # Commands
    default_command_timeout_seconds: float = Field(30, gt=0)
    max_command_timeout_seconds: float = Field(600, gt=0)
    output_limit_bytes: int = Field(MIB, ge=1024)
    """Cap per stream (stdout, stderr) of one command."""
    read_file_limit_bytes: int = Field(10 * MIB, ge=1024)
    """Default and largest ``maxBytes`` of ``read_file``."""
    max_write_bytes: int = Field(10 * MIB, ge=1024)
    """Largest decoded ``content`` of one ``write_file``; also the most ``session.input``
    that may wait in the server for one streamed command or cell."""
    max_parked_input_bytes: int = Field(16 * MIB, ge=1024)
    """``session.input`` waiting in the server for all of a session's streamed commands and
    cells together (queued ones, and running ones that read slower than they are sent)."""

    # Code contexts (context.*, session.run_code)
    max_contexts_per_session: int = Field(8, ge=1)
    """Interpreters one session may hold, its default context included."""
    interrupt_grace_seconds: float = Field(1.0, gt=0)
    """After a cell's timeout or ``session.interrupt``, how long its KeyboardInterrupt may
    take before the interpreter is killed and started again (its state lost)."""
    result_item_limit_bytes: int = Field(2 * MIB, ge=1024)
    """Largest representation of one displayed value (a repr is cut, an image left out)."""
    cell_results_limit_bytes: int = Field(8 * MIB, ge=1024)
    """All displayed values of one cell together (each counts 1 KiB beside its bytes);
    one that does not fit is left out."""

    # execution.run
    max_concurrent_runs: int = Field(4, ge=1)
    run_queue_size: int = Field(32, ge=0)
    """Runs waiting for a slot beyond this are refused with ``limit_exceeded``."""

    # Interactive runs (RUN.md: /ws, POST /session + /ws/session/{id}, the playground)
    max_interactive_runs: int = Field(8, ge=1)
    """Interactive programs running at once, each in its own fresh sandbox."""
    interactive_queue_size: int = Field(16, ge=0)
    """Interactive runs waiting for one of those; past it a run is refused with an error."""
    interactive_timeout_seconds: float = Field(300, gt=0)
    """Wall-clock limit of one interactive program (its compile step has its own)."""
    interactive_idle_seconds: float = Field(120, gt=0)
    """A run with neither input nor output for this long ends as a timeout."""
    max_source_bytes: int = Field(MIB, ge=1024)
    """Largest program source of one interactive run."""
    max_input_bytes: int = Field(64 * 1024, ge=16)
    """Largest single ``input`` message."""
    run_input_limit_bytes: int = Field(MIB, ge=1024)
    """Input one run may be sent in all: a program that never reads cannot make us hold more."""
    pending_run_seconds: float = Field(60, gt=0)
    """A ``POST /session`` run nobody connects to within this is dropped."""
    max_pending_runs: int = Field(256, ge=1)
    socket_idle_seconds: float = Field(600, gt=0)
    """A ``/ws`` connection that sends nothing for this long is closed."""
    shutdown_grace_seconds: float = Field(10, ge=0)
    """On shutdown, how long running interactive programs may still finish."""

    # Asynchronous executions (REST)
    data_dir: Path = Path.home() / ".local" / "share" / "codebeaker"
    """Where the execution and session records live: ``<data_dir>/<instance>.sqlite3``."""

    # Persistence
    shutdown: Literal["remove", "keep"] = "remove"
    """On SIGTERM: ``remove`` every container; ``keep`` the session containers (and their
    records) for the next server of this instance to adopt, as for an upgrade."""
    shutdown_timeout_seconds: float = Field(30, gt=0)
    """Shutdown ends within this even if the engine hangs; what it could not remove is
    logged, and the next start of this instance removes it."""
    execution_ttl_hours: float = Field(24, gt=0)
    """How long a finished execution's record is kept."""
    max_queued_executions: int = Field(1000, ge=1)
    """Asynchronous executions queued or running at once; more are ``limit_exceeded``."""

    # Housekeeping
    cleanup_interval_seconds: float = Field(5, gt=0)
    log_level: str = "INFO"
    log_json: bool = False

    @model_validator(mode="after")
    def _defaults_within_maxima(self) -> Settings:
        pairs = [
            ("default_idle_timeout_minutes", "max_idle_timeout_minutes"),
            ("default_max_lifetime_minutes", "max_lifetime_minutes"),
            ("default_memory_mb", "max_memory_mb"),
            ("default_cpu_limit", "max_cpu_limit"),
            ("default_command_timeout_seconds", "max_command_timeout_seconds"),
            ("max_reply_bytes", "max_pending_reply_bytes"),
        ]
        for default, maximum in pairs:
            if getattr(self, default) > getattr(self, maximum):
                raise ValueError(f"{default} must not exceed {maximum}")
        if any(size < 0 for size in self.pool_sizes.values()):
            raise ValueError("pool_sizes must not be negative")
        return self

    @field_validator("pool_sizes")
    @classmethod
    def _pools(cls, sizes: dict[str, int]) -> dict[str, int]:
        return _canonical_pools(sizes)

    @property
    def database_path(self) -> Path:
        return self.data_dir / f"{self.instance}.sqlite3"

    def image_for(self, language: str) -> str:
        return f"{self.image_prefix}/{language}:latest"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def _canonical_pools(sizes: dict[str, int]) -> dict[str, int]:
    """Pool sizes by canonical language name: an alias (``py``) fills the pool sessions
    are taken from, and a language the registry lacks is refused at start-up instead of
    killing the pool filler later."""
    canonical: dict[str, int] = {}
    for language, size in sizes.items():
        try:
            name = RUNTIMES.get(language).name
        except UnsupportedLanguageError:
            known = ", ".join(RUNTIMES.names())
            raise ValueError(
                f"pool_sizes: unknown language {language!r} (known: {known})"
            ) from None
        canonical[name] = canonical.get(name, 0) + size
    return canonical
