import asyncio

import pytest
from codebeaker_client.models import SessionConfig
from codebeaker_client.models.commands import ExecuteShell, ShellResult

from codebeaker.exceptions import (
    InputClosedError,
    LimitExceededError,
    SessionNotFoundError,
    SessionTerminatedError,
)
from codebeaker.runtimes import RUNTIMES
from codebeaker.sessions import SessionManager
from codebeaker.settings import Settings
from tests.unit.fakes import FakeDriver, FakeSandboxes

CONFIG = SessionConfig(
    idle_timeout_minutes=30, max_lifetime_minutes=120, memory_limit_mb=512, cpu_limit=1
)


def shell(*argv: str) -> ExecuteShell:
    return ExecuteShell(type="execute_shell", command_name=argv[0], args=list(argv[1:]))


@pytest.fixture
def sandboxes() -> FakeSandboxes:
    return FakeSandboxes(Settings(max_sessions=2))


@pytest.fixture
def manager(sandboxes: FakeSandboxes) -> SessionManager:
    return SessionManager(sandboxes, sandboxes.settings)


async def test_commands_on_one_session_run_in_arrival_order(manager: SessionManager) -> None:
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    commands = [
        shell("sleep", "0.02"),
        shell("echo", "2"),
        shell("sleep", "0.01"),
        shell("echo", "4"),
    ]
    await asyncio.gather(*(manager.execute(session.id, c) for c in commands))
    driver = session.driver
    assert isinstance(driver, FakeDriver)
    assert [call[1] for call in driver.calls] == ["0.02", "2", "0.01", "4"]
    assert session.execution_count == 4


async def test_nonzero_exit_is_a_result_not_an_exception(manager: SessionManager) -> None:
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    outcome = await manager.execute(session.id, shell("false"))
    assert not outcome.success
    assert outcome.error is not None
    assert outcome.error.startswith("nonzero_exit:")
    assert isinstance(outcome.result, ShellResult)
    assert outcome.result.exit_code == 1


async def test_session_limit(manager: SessionManager) -> None:
    for _ in range(2):
        await manager.create(RUNTIMES.get("go"), CONFIG)
    with pytest.raises(LimitExceededError):
        await manager.create(RUNTIMES.get("go"), CONFIG)


async def test_close_removes_the_container_and_forgets(
    manager: SessionManager, sandboxes: FakeSandboxes
) -> None:
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    await manager.close(session.id)
    assert sandboxes.removed == [session.container_id]
    with pytest.raises(SessionNotFoundError):
        await manager.close(session.id)
    with pytest.raises(SessionNotFoundError):
        await manager.execute(session.id, shell("true"))


async def test_a_vanished_container_is_reported_once_then_not_found(
    manager: SessionManager,
) -> None:
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    assert isinstance(session.driver, FakeDriver)
    session.driver.gone = True
    with pytest.raises(SessionTerminatedError):
        await manager.execute(session.id, shell("true"))
    with pytest.raises(SessionNotFoundError):
        await manager.execute(session.id, shell("true"))


async def test_reaper_notices_a_container_that_died_while_idle(manager: SessionManager) -> None:
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    assert isinstance(session.driver, FakeDriver)
    session.driver.gone = True
    await manager.reap()
    assert len(manager) == 0
    with pytest.raises(SessionTerminatedError):
        manager.get(session.id)


async def test_reaper_closes_idle_and_old_sessions(manager: SessionManager) -> None:
    idle = await manager.create(
        RUNTIMES.get("python"),
        SessionConfig(
            idle_timeout_minutes=0.001, max_lifetime_minutes=10, memory_limit_mb=64, cpu_limit=1
        ),
    )
    await asyncio.sleep(0.1)
    await manager.reap()
    assert [s.id for s in manager.list()] == []
    with pytest.raises(SessionNotFoundError):
        manager.get(idle.id)


async def test_a_running_command_keeps_the_session_from_idling(manager: SessionManager) -> None:
    session = await manager.create(
        RUNTIMES.get("python"),
        SessionConfig(
            idle_timeout_minutes=0.001, max_lifetime_minutes=10, memory_limit_mb=64, cpu_limit=1
        ),
    )
    running = asyncio.create_task(manager.execute(session.id, shell("sleep", "0.3")))
    await asyncio.sleep(0.15)
    await manager.reap()
    assert manager.get(session.id) is session
    assert session.state() == "Active"
    await running


async def test_session_env_reaches_commands_and_their_own_env_wins(
    manager: SessionManager, sandboxes: FakeSandboxes
) -> None:
    config = SessionConfig(
        idle_timeout_minutes=30,
        max_lifetime_minutes=120,
        memory_limit_mb=512,
        cpu_limit=1,
        env={"A": "session", "B": "session"},
    )
    session = await manager.create(RUNTIMES.get("python"), config)
    command = ExecuteShell(type="execute_shell", command_name="env", env={"B": "command"})
    await manager.execute(session.id, command)
    assert sandboxes.drivers[0].envs[-1] == {"A": "session", "B": "command"}


async def test_input_goes_to_the_oldest_interactive_command_even_before_it_starts(
    manager: SessionManager,
) -> None:
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    busy = asyncio.create_task(manager.execute(session.id, shell("sleep", "0.05")))
    first = asyncio.create_task(manager.execute(session.id, shell("cat"), interactive=True))
    second = asyncio.create_task(manager.execute(session.id, shell("cat"), interactive=True))
    await asyncio.sleep(0)
    manager.send_input(session.id, b"one\n", eof=True)  # closes the first one's stdin
    manager.send_input(session.id, b"two", eof=False)  # so this goes to the second
    manager.send_input(session.id, b"", eof=True)
    await busy
    first_result, second_result = (await first).result, (await second).result
    assert isinstance(first_result, ShellResult)
    assert isinstance(second_result, ShellResult)
    assert first_result.stdout == "one\n"
    assert second_result.stdout == "two"
    with pytest.raises(InputClosedError):
        manager.send_input(session.id, b"late", eof=False)
    assert not session.inputs


async def test_input_without_an_interactive_command_is_refused(manager: SessionManager) -> None:
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    with pytest.raises(InputClosedError):
        manager.send_input(session.id, b"x", eof=False)
    with pytest.raises(SessionNotFoundError):
        manager.send_input("nope", b"x", eof=False)


async def test_streamed_output_reaches_the_sink(manager: SessionManager) -> None:
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    seen: list[tuple[str, bytes]] = []
    await manager.execute(
        session.id, shell("echo", "hi"), on_output=lambda stream, data: seen.append((stream, data))
    )
    assert seen == [("stdout", b"echo hi")]


# ------------------------------------------------------------------------------ cancel


async def test_cancel_stops_the_running_command_and_the_next_one_runs(
    manager: SessionManager,
) -> None:
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    busy = asyncio.create_task(manager.execute(session.id, shell("sleep", "30"), call_id=1))
    after = asyncio.create_task(manager.execute(session.id, shell("echo", "next"), call_id=2))
    await asyncio.sleep(0.01)
    assert await asyncio.wait_for(manager.cancel(session.id), 5) == [1]
    stopped = await busy
    assert not stopped.success
    assert stopped.error is not None
    assert stopped.error.startswith("cancelled:")
    assert isinstance(stopped.result, ShellResult)
    assert stopped.result.cancelled
    assert stopped.result.exit_code == 137
    ran = await asyncio.wait_for(after, 5)
    assert ran.success
    assert not session.jobs


async def test_cancel_a_queued_command_by_its_id(manager: SessionManager) -> None:
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    busy = asyncio.create_task(manager.execute(session.id, shell("sleep", "30"), call_id="a"))
    queued = asyncio.create_task(manager.execute(session.id, shell("echo", "x"), call_id="b"))
    await asyncio.sleep(0.01)
    assert await manager.cancel(session.id, "b") == ["b"]
    never = await asyncio.wait_for(queued, 5)
    assert (never.success, never.result) == (False, None)
    assert never.error is not None
    assert never.error.startswith("cancelled:")
    assert not busy.done()
    assert await manager.cancel(session.id, "b") == []
    assert await manager.cancel(session.id, "nope") == []
    assert await manager.cancel(session.id, "a") == ["a"]
    await busy
    driver = session.driver
    assert isinstance(driver, FakeDriver)
    assert ("echo", "x") not in driver.calls


async def test_cancel_with_nothing_running_stops_nothing(manager: SessionManager) -> None:
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    assert await manager.cancel(session.id) == []
    with pytest.raises(SessionNotFoundError):
        await manager.cancel("nope")


async def test_input_goes_to_the_call_it_names(manager: SessionManager) -> None:
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    first = asyncio.create_task(
        manager.execute(session.id, shell("cat"), interactive=True, call_id=1)
    )
    second = asyncio.create_task(
        manager.execute(session.id, shell("cat"), interactive=True, call_id=2)
    )
    await asyncio.sleep(0)
    manager.send_input(session.id, b"two", eof=True, call_id=2)
    manager.send_input(session.id, b"one", eof=True, call_id=1)
    one, two = (await first).result, (await second).result
    assert isinstance(one, ShellResult)
    assert isinstance(two, ShellResult)
    assert (one.stdout, two.stdout) == ("one", "two")
    with pytest.raises(InputClosedError):
        manager.send_input(session.id, b"late", eof=False, call_id=1)
