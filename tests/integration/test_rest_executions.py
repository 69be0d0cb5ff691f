"""Asynchronous executions beyond the happy path: cancelling a running one (its processes
die, its worker slot frees), surviving a server killed with SIGKILL, forgetting finished
records after their time to live, a synchronous run going before a backlog of executions,
and a second server of the same instance being refused. Each test has a server of its own
settings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiodocker
import pytest

from codebeaker.constants import LABEL_INSTANCE, LABEL_KIND

from .conftest import (
    SERVERS,
    ServerProcess,
    container_exists,
    remove_instance_containers,
    run_containers,
    stop_and_check,
    wait_until,
)
from .rest import Rest, serving

ONE_SLOT = {
    "CODEBEAKER_MAX_CONCURRENT_RUNS": "1",
    # No warm pool: every run starts a container labelled ``kind=run`` of its own, so the
    # containers (and their creations) of runs can be told apart and counted.
    "CODEBEAKER_POOL_SIZES": "{}",
}
SPAWNS_CHILDREN = """
import subprocess, time
children = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
print("spawned", len(children), flush=True)
time.sleep(60)
print("must never finish")
"""
SLEEPS = "import time\nprint('long started', flush=True)\ntime.sleep(60)\nprint('long finished')\n"


@asynccontextmanager
async def run_creations(instance: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Every ``kind=run`` container this instance creates while the block runs, from the
    engine's live event stream (its own connection, so nothing else's events are touched)."""
    client = aiodocker.Docker(url=os.environ.get("CODEBEAKER_DOCKER_URL"))
    labels = [f"{LABEL_INSTANCE}={instance}", f"{LABEL_KIND}=run"]
    filters = {"type": ["container"], "event": ["create"], "label": labels}
    subscriber = client.events.subscribe(filters=json.dumps(filters))  # type: ignore[no-untyped-call]
    created: list[dict[str, Any]] = []

    async def collect() -> None:
        while (event := await subscriber.get()) is not None:
            created.append(event)

    collector = asyncio.create_task(collect())
    try:

        async def listening() -> bool:
            return client.events.json_stream is not None

        assert await wait_until(listening, 10, 0.05), "the Docker event stream did not open"
        yield created
    finally:
        await client.events.stop()  # type: ignore[no-untyped-call]
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        await client.close()


async def exactly(created: list[dict[str, Any]], count: int, what: str) -> None:
    """``count`` creations arrive, and no more within a moment after."""

    async def arrived() -> bool:
        return len(created) >= count

    await wait_until(arrived, 10, 0.1)
    await asyncio.sleep(0.5)  # a late extra creation would show up here
    assert len(created) == count, f"{what}: {len(created)} run containers created, not {count}"


async def the_run_container(docker: aiodocker.Docker, instance: str) -> str:
    """The id of the one run container of this instance (waits for it to be alone)."""
    found: list[dict[str, Any]] = []

    async def alone() -> bool:
        found[:] = await run_containers(docker, instance)
        return len(found) == 1 and found[0]["State"] == "running"

    assert await wait_until(alone, 15, 0.1), f"not exactly one running run container: {found}"
    return str(found[0]["Id"])


async def sleeping_children(docker: aiodocker.Docker, container_id: str) -> list[str]:
    top = await docker.containers.container(container_id).top()
    column = top["Titles"].index("CMD")
    return [row[column] for row in top["Processes"] if row[column].startswith("sleep 60")]


async def test_cancel_a_running_execution(docker: aiodocker.Docker) -> None:
    async with (
        serving(docker, ONE_SLOT) as (server, rest),
        run_creations(server.instance) as created,
    ):
        running = await rest.submit(SPAWNS_CHILDREN)
        queued = await rest.submit("print('queued and cancelled')")
        await rest.wait_for(running, frozenset({"running"}), timeout=30)
        container_id = await the_run_container(docker, server.instance)

        children: list[str] = []

        async def spawned() -> bool:
            children[:] = await sleeping_children(docker, container_id)
            return len(children) == 3

        assert await wait_until(spawned, 15, 0.1), f"the program's children: {children}"
        assert (await rest.execution(queued))["status"] == "queued"

        # A queued execution: cancelled, it never runs.
        record = await rest.json("DELETE", f"/api/v1/executions/{queued}")
        assert record["status"] == "cancelled", record
        assert record["startedAt"] is None, record
        assert record["finishedAt"] is not None, record
        assert record["result"] is None, record

        # The running one: killed, its sandbox and every process in it gone.
        began = time.monotonic()
        record = await rest.json("DELETE", f"/api/v1/executions/{running}")
        assert time.monotonic() - began < 15, "the cancel took too long"
        assert record["status"] == "cancelled", record
        assert record["startedAt"] is not None, record
        assert record["finishedAt"] is not None, record
        assert record["result"] is None, record

        async def gone() -> bool:
            return not await container_exists(docker, container_id)

        assert await wait_until(gone, 10, 0.1), f"container {container_id[:12]} still exists"
        assert await run_containers(docker, server.instance) == []

        # The only worker slot is free again: a new run does not wait behind the 60 s one.
        began = time.monotonic()
        result = await rest.run("print('next')", timeoutSeconds=5)
        assert result["stdout"] == "next\n", result
        assert time.monotonic() - began < 15, "the cancelled run still held the slot"

        # Both stay cancelled; the queued one never started.
        assert (await rest.execution(running))["status"] == "cancelled"
        never = await rest.execution(queued)
        assert never["status"] == "cancelled", never
        assert never["startedAt"] is None, never
        listing = await rest.json("GET", "/api/v1/executions", params={"status": "cancelled"})
        assert [entry["executionId"] for entry in listing["executions"]] == [queued, running]
        assert all("result" not in entry for entry in listing["executions"]), listing
        await rest.problem("DELETE", f"/api/v1/executions/{running}", 409, "execution_finished")
        # Run containers: the cancelled program's and the new run's; none for the other.
        await exactly(created, 2, "cancelling")


async def test_executions_survive_a_killed_server(docker: aiodocker.Docker) -> None:
    old = ServerProcess(ONE_SLOT)
    new: ServerProcess | None = None
    try:
        await old.start()
        rest = await Rest.open(old.http_url)
        async with run_creations(old.instance) as created:
            try:
                done = await rest.submit("print('done before the kill')")
                finished = await rest.wait_for(done)
                assert finished["status"] == "completed", finished
                long = await rest.submit(SLEEPS)
                first = await rest.submit("print('first queued')")
                second = await rest.submit("print('second queued')")
                await rest.wait_for(long, frozenset({"running"}), timeout=30)
                orphan = await the_run_container(docker, old.instance)
                for queued in (first, second):
                    assert (await rest.execution(queued))["status"] == "queued"
            finally:
                await rest.aclose()

            assert old.process is not None
            old.process.kill()  # SIGKILL: no shutdown, no clean-up
            await asyncio.to_thread(old.process.wait, 10)
            await old.stop(check=False)
            assert await container_exists(docker, orphan), "the orphan should outlive SIGKILL"

            new = ServerProcess(ONE_SLOT, instance=old.instance)
            await new.start()
            rest = await Rest.open(new.http_url)
            try:

                async def orphan_removed() -> bool:
                    return not await container_exists(docker, orphan)

                assert await wait_until(orphan_removed, 10, 0.1), (
                    "the new server's start-up clean-up left the orphan run container"
                )

                assert await rest.execution(done) == finished

                interrupted = await rest.execution(long)
                assert interrupted["status"] == "failed", interrupted
                assert interrupted["error"]["kind"] == "server_restarted", interrupted
                assert set(interrupted["error"]) == {"kind", "message"}, interrupted
                assert "not run again" in interrupted["error"]["message"], interrupted
                assert interrupted["result"] is None, interrupted
                assert interrupted["startedAt"] is not None, interrupted
                assert interrupted["finishedAt"] is not None, interrupted

                one = await rest.wait_for(first, timeout=30)
                two = await rest.wait_for(second, timeout=30)
                assert one["status"] == two["status"] == "completed", (one, two)
                assert one["result"]["stdout"] == "first queued\n", one
                assert two["result"]["stdout"] == "second queued\n", two
                assert one["startedAt"] <= two["startedAt"], (one, two)  # oldest first

                # The long one is never run again: still failed, and it holds no slot.
                assert (await rest.execution(long))["status"] == "failed"
                # One run container each: done, long (before the kill), first, second.
                await exactly(created, 4, "across the restart")
            finally:
                await rest.aclose()
        old.log_path.unlink(missing_ok=True)  # kept only when something went wrong
    finally:
        if new is not None:
            await stop_and_check(docker, new)  # the instance's containers: none may be left
        elif old in SERVERS:  # failed before the kill
            await stop_and_check(docker, old)
        else:  # failed between the kill and the new server
            await remove_instance_containers(docker, old.instance)


async def test_finished_records_expire(docker: aiodocker.Docker) -> None:
    env = {
        "CODEBEAKER_EXECUTION_TTL_HOURS": "0.0003",  # about 1 s
        "CODEBEAKER_CLEANUP_INTERVAL_SECONDS": "1",
        "CODEBEAKER_POOL_SIZES": "{}",
    }
    async with serving(docker, env) as (_, rest):
        long = await rest.submit("import time; time.sleep(60)")
        short = await rest.submit("print('short-lived')")
        assert (await rest.wait_for(short))["status"] == "completed"

        async def pruned(execution_id: str) -> bool:
            response = await rest.get(f"/api/v1/executions/{execution_id}")
            if response.status_code == 200:
                return False
            assert response.status_code == 404, response.text
            assert response.json()["kind"] == "execution_not_found", response.text
            return True

        async def short_pruned() -> bool:
            return await pruned(short)

        assert await wait_until(short_pruned, 15, 0.2), "a finished record outlived its TTL"
        listing = await rest.json("GET", "/api/v1/executions")
        assert short not in {record["executionId"] for record in listing["executions"]}

        # Unfinished executions are kept, however old.
        record = await rest.execution(long)
        assert record["status"] in ("queued", "running"), record
        cancelled = await rest.json("DELETE", f"/api/v1/executions/{long}")
        assert cancelled["status"] == "cancelled", cancelled


STARTS_SLOWLY = """
import time
print(time.time(), flush=True)  # when it started (the host's clock: containers share it)
time.sleep({seconds})
"""


async def test_a_synchronous_run_goes_before_queued_executions(docker: aiodocker.Docker) -> None:
    """One slot, a backlog of slow executions: ``POST /api/v1/execute`` takes the next free
    slot instead of waiting behind the backlog, and the backlog (more than the run queue
    holds) does not get it refused either."""
    env = {**ONE_SLOT, "CODEBEAKER_RUN_QUEUE_SIZE": "1"}
    async with serving(docker, env) as (_, rest):
        backlog = [await rest.submit(STARTS_SLOWLY.format(seconds=2)) for _ in range(4)]
        await rest.wait_for(backlog[0], frozenset({"running"}), timeout=30)
        waiting = [(await rest.execution(e))["status"] for e in backlog[1:]]
        assert waiting == ["queued"] * 3, waiting  # 3 waiting executions > RUN_QUEUE_SIZE

        began = time.monotonic()
        result = await rest.run(STARTS_SLOWLY.format(seconds=0), timeoutSeconds=10)
        took = time.monotonic() - began
        sync_started = float(result["stdout"])
        # the first execution's remaining ≤ 2 s, then this run: not 3 more of 2 s each
        assert took < 6.5, f"the synchronous run took {took:.1f}s: it waited behind the backlog"

        records = [await rest.wait_for(e, timeout=60) for e in backlog]
        assert [r["status"] for r in records] == ["completed"] * 4, records
        started = [float(r["result"]["stdout"]) for r in records]
        assert started[0] < sync_started < min(started[1:]), (sync_started, started)
        assert started[1:] == sorted(started[1:]), started  # the backlog kept its order


async def a_second_server_of(server: ServerProcess) -> str:
    """Start another server with the same instance name (and data directory); it must fail.
    Its output."""
    second = ServerProcess(ONE_SLOT, instance=server.instance)
    try:
        with pytest.raises(pytest.fail.Exception, match="exited with code"):
            await second.start()
        assert second.process is not None
        assert second.process.returncode != 0
        return second.log()
    finally:
        await second.stop(check=False)
        second.log_path.unlink(missing_ok=True)


async def test_a_second_server_of_the_same_instance_is_refused(docker: aiodocker.Docker) -> None:
    """It would run every queued execution a second time: the store is held exclusively."""
    async with serving(docker, ONE_SLOT) as (server, rest):
        output = await a_second_server_of(server)
        assert "in use" in output, output
        assert "CODEBEAKER_INSTANCE" in output, output
        # the first one serves on, its store intact
        execution_id = await rest.submit("print('still here')")
        record = await rest.wait_for(execution_id)
        assert record["result"]["stdout"] == "still here\n", record


async def test_a_refused_second_server_leaves_the_first_ones_sandboxes_alone(
    docker: aiodocker.Docker,
) -> None:
    async with serving(docker, ONE_SLOT) as (server, rest):
        created = await rest.json("POST", "/api/v1/sessions", 201, json={"language": "python"})
        session_id = created["sessionId"]
        try:
            await a_second_server_of(server)
            assert await container_exists(docker, created["containerId"]), "removed"
            outcome = await rest.json(
                "POST",
                f"/api/v1/sessions/{session_id}/commands",
                json={"type": "execute_shell", "commandName": "echo", "args": ["alive"]},
            )
            assert outcome["result"]["stdout"] == "alive\n", outcome
        finally:
            await rest.request("DELETE", f"/api/v1/sessions/{session_id}")
