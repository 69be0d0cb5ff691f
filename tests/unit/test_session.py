import re

import pytest
from codebeaker_client.models import SessionConfig

from codebeaker.runtimes import RUNTIMES
from codebeaker.sessions.contexts import ContextRegistry
from codebeaker.sessions.session import Lifecycle, Session
from codebeaker.settings import Settings
from tests.unit.fakes import FakeDriver


def make(idle: float = 30, lifetime: float = 120) -> Session:
    config = SessionConfig(
        idle_timeout_minutes=idle, max_lifetime_minutes=lifetime, memory_limit_mb=512, cpu_limit=1
    )
    driver = FakeDriver("c" * 64)
    contexts = ContextRegistry("sid", driver, Settings(), config.env)
    return Session("sid", RUNTIMES.get("py"), config, driver, contexts)


def test_state_follows_the_one_minute_window() -> None:
    session = make()
    now = session.age_seconds()  # relative clock: pretend time passes by adding to it
    base = session._touched
    assert session.state(base + 59) == "Active"
    assert session.state(base + 61) == "Idle"
    session.running = 1
    assert session.state(base + 600) == "Active"
    assert now >= 0


def test_expiry_reasons() -> None:
    session = make(idle=1, lifetime=2)
    start = session._touched
    assert session.expiry_reason(start + 30) is None
    assert session.expiry_reason(start + 61) == "idle timeout"
    assert session.expiry_reason(start + 121) == "max lifetime reached"


def test_illegal_transitions_are_rejected() -> None:
    session = make()
    with pytest.raises(RuntimeError):
        session.transition(Lifecycle.CLOSED)
    session.transition(Lifecycle.CLOSING)
    session.transition(Lifecycle.CLOSED)
    with pytest.raises(RuntimeError):
        session.transition(Lifecycle.OPEN)


def test_wire_shapes() -> None:
    session = make()
    described = session.describe().to_wire()
    assert described["language"] == "python"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", described["createdAt"])
    assert described["config"] == {
        "idleTimeoutMinutes": 30,
        "maxLifetimeMinutes": 120,
        "memoryLimitMB": 512,
        "cpuLimit": 1,
    }
    summary = session.summary().to_wire()
    assert set(summary) == {
        "sessionId",
        "containerId",
        "language",
        "createdAt",
        "lastActivity",
        "state",
        "executionCount",
        "idleMinutes",
        "lifetimeMinutes",
    }


def test_session_env_is_never_echoed() -> None:
    config = SessionConfig(
        idle_timeout_minutes=30,
        max_lifetime_minutes=120,
        memory_limit_mb=512,
        cpu_limit=1,
        env={"TOKEN": "secret"},
    )
    driver = FakeDriver("c" * 64)
    contexts = ContextRegistry("sid", driver, Settings(), config.env)
    session = Session("sid", RUNTIMES.get("py"), config, driver, contexts)
    described = session.describe()
    assert described.config.env == {"TOKEN": "secret"}
    assert "env" not in described.to_wire()["config"]
    assert "secret" not in str(described.to_wire())
