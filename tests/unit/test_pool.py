"""The warm pool's bookkeeping, with fake drivers instead of containers."""

import asyncio

from codebeaker_client.models import PoolReadiness

from codebeaker.exceptions import SandboxError
from codebeaker.sandbox.driver import Driver
from codebeaker.sessions.pool import WarmPool
from tests.unit.fakes import FakeDriver


class Launcher:
    def __init__(self, failures: int = 0) -> None:
        self.started: list[FakeDriver] = []
        self.discarded: list[str] = []
        self.failures = failures

    async def launch(self, language: str) -> Driver:
        await asyncio.sleep(0)
        if self.failures:
            self.failures -= 1
            raise SandboxError("engine hiccup")
        driver = FakeDriver(f"{language}-{len(self.started)}")
        self.started.append(driver)
        return driver

    async def discard(self, driver: Driver) -> None:
        self.discarded.append(driver.container_id)


def ready(pool: WarmPool, language: str) -> int:
    return pool.readiness()[language].ready


async def settle(pool: WarmPool, language: str, count: int) -> None:
    for _ in range(200):
        if ready(pool, language) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"pool has {ready(pool, language)} {language}, wanted {count}")


async def test_fills_hands_out_and_refills() -> None:
    launcher = Launcher()
    pool = WarmPool({"python": 2, "go": 0}, launcher.launch, launcher.discard)
    assert pool.take("python") is None  # nothing started yet
    assert pool.readiness() == {"python": PoolReadiness(ready=0, size=2)}  # go: no pool at all
    pool.start()
    await settle(pool, "python", 2)
    assert pool.readiness() == {"python": PoolReadiness(ready=2, size=2)}
    taken = pool.take("python")
    assert taken is not None
    assert taken.container_id == "python-0"
    await settle(pool, "python", 2)
    assert len(launcher.started) == 3
    assert pool.take("go") is None  # not pooled at all
    await pool.close()
    assert sorted(launcher.discarded) == ["python-1", "python-2"]
    assert pool.take("python") is None


async def test_dead_containers_are_discarded_not_handed_out() -> None:
    launcher = Launcher()
    pool = WarmPool({"python": 2}, launcher.launch, launcher.discard)
    pool.start()
    await settle(pool, "python", 2)
    for driver in launcher.started:
        driver.gone = True
    assert pool.take("python") is None
    await asyncio.sleep(0.05)
    assert sorted(launcher.discarded) == ["python-0", "python-1"]
    await pool.close()


async def test_failed_starts_are_retried() -> None:
    launcher = Launcher(failures=1)
    pool = WarmPool({"python": 1}, launcher.launch, launcher.discard)
    pool.start()
    for _ in range(300):
        if ready(pool, "python"):
            break
        await asyncio.sleep(0.01)
    assert ready(pool, "python") == 1  # after one 1 s back-off
    await pool.close()
