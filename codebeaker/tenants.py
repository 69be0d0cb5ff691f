"""Tenants: who an API key speaks for, and what that tenant may hold at once.

A server without keys, or with the single ``CODEBEAKER_API_KEY``, has one tenant
(``LOCAL_TENANT``). ``CODEBEAKER_API_KEYS_FILE`` names a JSON list of tenants, each with the
SHA-256 of its key (the file never holds a key) and optional quotas:

    [{"name": "alice", "keySha256": "<hex>", "maxSessions": 20,
      "maxConcurrentRuns": 4, "requestsPerSecond": 50}]

A ``Tenant`` is a plain value the doors hand to the service with every call; its rate bucket
rides along so that every door can charge a request to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import time
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

from codebeaker.constants import LOCAL_TENANT
from codebeaker.exceptions import LimitExceededError

__all__ = [
    "ANONYMOUS",
    "CURRENT_TENANT",
    "LOCAL",
    "RUN_RETRY_SECONDS",
    "KeysFileError",
    "Tenant",
    "TenantEntry",
    "TenantRuns",
    "Tenants",
    "TokenBucket",
    "exposure_warning",
    "key_digest",
    "load_keys_file",
]

RUN_RETRY_SECONDS = 1.0
"""``retryAfter`` of a run refused by ``maxConcurrentRuns``: runs are short, so soon."""
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def key_digest(key: str) -> bytes:
    """What a key is known by: its SHA-256 (a key with lone surrogates still hashes)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class TokenBucket:
    """``rate`` requests a second on average, bursts of up to ``burst`` (at least one)."""

    def __init__(self, rate: float, burst: float | None = None, now: float | None = None) -> None:
        self.rate = rate
        self.burst = max(1.0, rate if burst is None else burst)
        self._tokens = self.burst
        self._stamp = time.monotonic() if now is None else now

    def take(self, now: float | None = None) -> float:
        """Take one token: 0 when admitted, else the seconds until one will be there."""
        now = time.monotonic() if now is None else now
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._stamp) * self.rate)
        self._stamp = max(now, self._stamp)
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


@dataclass(frozen=True)
class Tenant:
    """One tenant and its quotas (None: only the server-wide limits apply)."""

    name: str
    max_sessions: int | None = None
    max_concurrent_runs: int | None = None
    requests_per_second: float | None = None
    bucket: TokenBucket | None = field(default=None, compare=False, repr=False)

    def admit(self) -> None:
        """Charge one request (a batch's items each count) to the tenant's rate."""
        if self.bucket is None:
            return
        wait = self.bucket.take()
        if wait:
            raise LimitExceededError(
                "requests_per_second",
                f"tenant {self.name!r} is over its {self.requests_per_second:g} requests "
                "per second",
                retry_after=round(wait, 3),
            )


LOCAL = Tenant(LOCAL_TENANT)
"""The tenant of a server without keys, and of the single ``CODEBEAKER_API_KEY``."""
ANONYMOUS = Tenant("(anonymous)")
"""A keyed server's caller without a key, on the open paths: owns nothing (no keys-file
name can be this one)."""

CURRENT_TENANT: ContextVar[Tenant] = ContextVar("codebeaker_tenant", default=LOCAL)
"""The tenant of the request being served, set by the auth middleware for every door (it
is also on the ASGI scope's state); tasks a request starts inherit it."""

Digest = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$", strip_whitespace=True, to_lower=True)
]


class TenantEntry(BaseModel):
    """One entry of the keys file."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    """Shown in the audit log and logs; a session belongs to it."""
    key_sha256: Digest
    """Hex SHA-256 of the key (``printf %s KEY | sha256sum``): the file never holds a key."""
    max_sessions: int | None = Field(None, ge=1)
    """Sessions the tenant may hold open at once."""
    max_concurrent_runs: int | None = Field(None, ge=1)
    """Commands, cells and one-shot runs the tenant may have running or queued at once."""
    requests_per_second: float | None = Field(None, gt=0)
    """Requests a second on average (bursts of as many); every door and batch item counts."""

    def tenant(self) -> Tenant:
        rate = self.requests_per_second
        return Tenant(
            self.name,
            self.max_sessions,
            self.max_concurrent_runs,
            rate,
            None if rate is None else TokenBucket(rate),
        )


class KeysFileError(ValueError):
    """The keys file cannot be used; the message names the file, the entry and the field."""


def load_keys_file(path: Path) -> list[TenantEntry]:
    """The file's entries; names and digests must be unique."""
    where = f"CODEBEAKER_API_KEYS_FILE {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KeysFileError(f"{where}: cannot be read as JSON: {exc}") from None
    if not isinstance(data, list):
        raise KeysFileError(f"{where}: must be a JSON list of tenants")
    entries: list[TenantEntry] = []
    for index, item in enumerate(data):
        label = f"entry {index}"
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            label += f" ({item['name'][:64]!r})"
        try:
            entries.append(TenantEntry.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'entry'}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise KeysFileError(f"{where}: {label}: {problems}") from None
    _unique(where, [entry.name for entry in entries], "name")
    _unique(where, [entry.key_sha256 for entry in entries], "keySha256")
    return entries


def _unique(where: str, values: list[str], what: str) -> None:
    seen: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in seen:
            raise KeysFileError(
                f"{where}: entry {index}: {what} repeats entry {seen[value]}'s; each must be unique"
            )
        seen[value] = index


class Tenants:
    """Which tenant a key speaks for: looked up by the key's digest (a digest of a secret
    reveals nothing through the lookup's timing)."""

    def __init__(self, by_digest: dict[bytes, Tenant]) -> None:
        self._by_digest = by_digest

    @classmethod
    def configure(cls, api_key: str | None, keys_file: Path | None) -> Tenants:
        by_digest = {}
        if keys_file is not None:
            by_digest = {
                bytes.fromhex(entry.key_sha256): entry.tenant()
                for entry in load_keys_file(keys_file)
            }
        if api_key is not None:
            digest = key_digest(api_key)
            clash = by_digest.get(digest) or next(
                (tenant for tenant in by_digest.values() if tenant.name == LOCAL_TENANT), None
            )
            if clash is not None:
                raise KeysFileError(
                    f"CODEBEAKER_API_KEY is tenant {LOCAL_TENANT!r}; the keys file's "
                    f"tenant {clash.name!r} has the same key or name"
                )
            by_digest[digest] = LOCAL
        return cls(by_digest)

    @property
    def required(self) -> bool:
        """Whether clients must present a key (any is configured)."""
        return bool(self._by_digest)

    def __len__(self) -> int:
        return len(self._by_digest)

    def resolve(self, key: str) -> Tenant | None:
        """The tenant of ``key``; without keys configured, the local tenant."""
        if not self._by_digest:
            return LOCAL
        return self._by_digest.get(key_digest(key))


class TenantRuns:
    """Runs each tenant has queued or running, against its ``maxConcurrentRuns``."""

    def __init__(self) -> None:
        self._running: Counter[str] = Counter()

    def count(self, tenant: str) -> int:
        return self._running[tenant]

    @contextlib.contextmanager
    def hold(self, tenant: Tenant) -> Iterator[None]:
        """One run for its whole life, from before it queues until it ended."""
        limit = tenant.max_concurrent_runs
        if limit is not None and self._running[tenant.name] >= limit:
            raise LimitExceededError(
                "concurrent_runs",
                f"tenant {tenant.name!r} has its maximum of {limit} runs queued or running",
                retry_after=RUN_RETRY_SECONDS,
            )
        self._running[tenant.name] += 1
        try:
            yield
        finally:
            self._running[tenant.name] -= 1
            if not self._running[tenant.name]:
                del self._running[tenant.name]


def exposure_warning(host: str, tenants: Tenants) -> str | None:
    """Why serving on ``host`` is dangerous, when it is: beyond loopback without any key,
    anyone who can reach the port runs code as this server's tenant."""
    if tenants.required or _loopback(host):
        return None
    return (
        f"serving on {host!r}, beyond loopback, without an API key: anyone who reaches "
        "this port can run code here. Set CODEBEAKER_API_KEY or CODEBEAKER_API_KEYS_FILE."
    )


def _loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
