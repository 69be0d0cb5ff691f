"""CodeBeaker against raw Docker calls, measured side by side in the same run.

    .venv/bin/python benchmarks/run.py [--iterations 30] [--url ws://HOST:PORT] [--json PATH]
                                       [--only 0,S,A,B,C,T,L,R,K,I]

Without ``--url`` it starts two servers of its own (``python -m codebeaker serve`` on free
ports, each with its own ``CODEBEAKER_INSTANCE``): the agent driver with its warm pool, and the
exec driver without one; the per-command scenarios run against both. Both stop at the end.
Scenario I (interactive runs over ``GET /ws``) gets a third agent server, started when I
begins and stopped when it ends, whose pool holds python, c and java containers.
Scenario K (code contexts: ``session.run_code``, ``context.*``) runs on the agent server
only, in one python session, with ``execute_shell`` in the same session as its baseline.
Every call of ours goes through the SDK (``codebeaker_client``); scenario S measures what
the SDK itself adds, against the same request sent as a bare frame on a plain WebSocket.
Every scenario alternates one CodeBeaker call and its baseline, the equivalent aiodocker
call(s) on a container with the same hardening, after a few warm-up rounds that are not
counted (scenario R takes turns among three calls of ours and one baseline). Every
container the script made is removed at the end, also on error. The image is
``CODEBEAKER_IMAGE_PREFIX``'s python image.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiodocker
import httpx
import llm_sandbox_baseline
from codebeaker_client import AsyncCodeBeaker, AsyncSession, Execution, errors
from codebeaker_client.models import ExecuteRequest, RunRequest, RunResult
from codebeaker_client.models.commands import ExecuteShell
from codebeaker_client.models.jsonrpc import RpcRequest
from codebeaker_client.params import build
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from codebeaker.constants import LABEL_INSTANCE, LABEL_KIND, LABEL_MANAGED
from codebeaker.runtimes import RUNTIMES, Runtime
from codebeaker.sandbox.hardening import ContainerLimits, container_config, keepalive_seconds
from codebeaker.settings import Settings

BENCH_LABEL = "codebeaker.bench"  # on every baseline container, so the final sweep finds them
SANDBOX_USER = "1000:1000"
WORKSPACE = "/workspace"
PROGRAM = "print(sum(range(10)))\n"
PROGRAM_OUTPUT = "45\n"
HELLO = "print('hello')\n"
HELLO_OUTPUT = "hello\n"
RUN_GOAL_MS = 40.0  # the speed issue's goal for a one-shot run (p50, warm pool)
CLEANUP_SECONDS = 60.0
BLOCK = 10  # per-command scenarios alternate in blocks of this many calls a side
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server is local
SCENARIOS = ("0", "S", "A", "B", "C", "T", "L", "R", "K", "I")
LIVE_PROGRAMS = {  # scenario I: each prints HELLO_OUTPUT and exits 0
    "python": HELLO,
    "c": '#include <stdio.h>\n\nint main(void) {\n    puts("hello");\n    return 0;\n}\n',
    "java": (
        "public class Main {\n    public static void main(String[] args) {\n"
        '        System.out.println("hello");\n    }\n}\n'
    ),
}
LIVE_POOL = {language: 2 for language in LIVE_PROGRAMS}
LIVE_GOAL = 1 / 3  # the interactive issue's goal: at most a third of the raw path (not java)
SDK_GOAL = 1.10  # scenario S: the SDK may add at most a tenth to a bare frame's round trip
SDK_ROUNDS = 5  # scenario S: rounds a side per --iteration (the difference is a few percent)
# Scenario K, code contexts: the contexts issue's goals.
CELL_GOAL_MS = 10.0  # a cell on a warm context, p50 end to end
NEW_CONTEXT_GOAL_MS = 100.0  # context.create + its first cell, p50
CONTEXT_PSS_GOAL_MIB = 15.0  # an idle interpreter's proportional set size
INTERRUPT_GOAL_MS = 200.0  # from a cell's deadline to its result, p50
IDLE_CONTEXTS = 4  # contexts (and baseline processes) whose memory K reads
CELL_TIMEOUT = 0.5  # seconds: the timeout of K's endless cells and of its `sleep 100`
TIMEOUT_ROUNDS = 5  # K's timeout rows: rounds a side (at most --iterations)
CELL = "1+1"
SHELL_CELL = ["python3", "-c", "print(1+1)"]
ENDLESS = {  # K's cells that never end by themselves
    "`while True: pass`": "while True:\n    pass\n",
    "sleep loop": "import time\nwhile True:\n    time.sleep(0.001)\n",
}
IDLE_PYTHON = "import time; time.sleep(60)"
# Reads /proc of the pids in argv (context interpreters, "--", baseline processes) as
# uid 1000 inside the sandbox: {"contexts"|"baseline": {pid: {"pss": kB, "rss": kB}}}.
MEMORY_READER = """\
import json, sys

def kb(path, key):
    with open(path) as f:
        return sum(int(line.split()[1]) for line in f if line.startswith(key + ":"))

def usage(pid):
    try:
        pss = kb(f"/proc/{pid}/smaps_rollup", "Pss")
    except FileNotFoundError:  # before Linux 4.14
        pss = kb(f"/proc/{pid}/smaps", "Pss")
    return {"pss": pss, "rss": kb(f"/proc/{pid}/status", "VmRSS")}

cut = sys.argv.index("--")
sides = {"contexts": sys.argv[1:cut], "baseline": sys.argv[cut + 1 :]}
print(json.dumps({side: {pid: usage(pid) for pid in pids} for side, pids in sides.items()}))
"""
# $1: the reader, $2: how many idle pythons to start, the rest: the contexts' pids. Starts the
# baseline processes, lets them settle into their sleep, reads everyone at once (so shared
# pages are split among the same processes for both sides), then stops the baseline.
MEMORY_SCRIPT = """\
reader=$1; count=$2; shift 2
pids=""
i=0
while [ "$i" -lt "$count" ]; do
    python3 -c "$IDLE" </dev/null >/dev/null 2>&1 &
    pids="$pids $!"
    i=$((i + 1))
done
sleep 1
python3 -c "$reader" "$@" -- $pids
status=$?
kill $pids
exit $status
"""


# --------------------------------------------------------------------------- raw Docker


def hardened_config(image: str, labels: dict[str, str]) -> dict[str, Any]:
    """The server's own create config (same module, default limits): only the path differs."""
    defaults = Settings()
    limits = ContainerLimits.from_settings(
        defaults, memory_mb=defaults.default_memory_mb, cpu_limit=defaults.default_cpu_limit
    )
    lifetime = keepalive_seconds(
        defaults.max_lifetime_minutes * 60, defaults.cleanup_interval_seconds
    )
    return container_config(image, limits, labels, lifetime_seconds=lifetime)


@dataclass
class RawDocker:
    """The baseline: what a careful caller of the Docker API does, with nothing around it."""

    docker: aiodocker.Docker
    image: str
    run_id: str
    containers: set[str] = field(default_factory=set)

    async def create(self, image: str | None = None) -> str:
        container = await self.docker.containers.create(
            hardened_config(image or self.image, {BENCH_LABEL: self.run_id})
        )
        self.containers.add(container.id)
        await container.start()
        return str(container.id)

    async def remove(self, container_id: str) -> None:
        with contextlib.suppress(aiodocker.DockerError):
            await self.docker.containers.container(container_id).delete(force=True, v=True)
        self.containers.discard(container_id)

    async def exec(
        self,
        container_id: str,
        argv: list[str],
        stdin: bytes | None = None,
        on_stdout: Callable[[], None] | None = None,
    ) -> str:
        """Run argv to the end as the sandbox user; returns stdout, fails on a non-zero exit.
        ``on_stdout`` is called as each piece of stdout arrives."""
        container = self.docker.containers.container(container_id)
        execution = await container.exec(
            argv, stdin=stdin is not None, user=SANDBOX_USER, workdir=WORKSPACE, environment={}
        )
        out = bytearray()
        async with execution.start() as stream:
            if stdin is not None:
                await stream.write_in(stdin)
                # aiodocker has no half-close; this is what `docker exec -i` does at EOF.
                connection = stream._resp.connection if stream._resp else None
                transport = connection.transport if connection else None
                if transport is not None:
                    transport.write_eof()
            while (message := await stream.read_out()) is not None:
                if message.stream == 1:
                    out += message.data
                    if on_stdout is not None:
                        on_stdout()
        for _ in range(100):  # the engine may record the exit code a moment after the stream ends
            info = await execution.inspect()
            if not info["Running"] and info["ExitCode"] is not None:
                break
            await asyncio.sleep(0.005)
        if info["ExitCode"] != 0:
            raise RuntimeError(f"{argv} exited {info['ExitCode']}")
        return out.decode()

    async def program(self, image: str, runtime: Runtime, source: str, expected: str) -> RawRun:
        """One program the whole raw way: create + start a container of ``image``,
        write the source (an exec of ``sh -c 'cat > FILE'``), compile (an exec, if the
        language has a compile step), run (an exec), check stdout, remove."""
        marks = RawRun()
        started = time.perf_counter()

        def since() -> float:
            return (time.perf_counter() - started) * 1000

        def first_stdout() -> None:
            marks.first_stdout_ms = marks.first_stdout_ms or since()

        container_id = await self.create(image)
        try:
            write = ["sh", "-c", f"cat > {runtime.source_file}"]
            await self.exec(container_id, write, source.encode())
            if runtime.compile is not None:
                await self.exec(container_id, list(runtime.compile))
            stdout = await self.exec(container_id, list(runtime.run), on_stdout=first_stdout)
            marks.exit_ms = since()
            expect(stdout == expected, stdout)
        finally:
            await self.remove(container_id)
        marks.total_ms = since()
        return marks

    async def sweep(self) -> int:
        """Remove every container this run made, tracked or not."""
        filters = json.dumps({"label": [f"{BENCH_LABEL}={self.run_id}"]})
        found = {c.id for c in await self.docker.containers.list(all=True, filters=filters)}
        ids = found | self.containers
        await asyncio.gather(*(self.remove(i) for i in ids), return_exceptions=True)
        return len(ids)


@dataclass
class RawRun:
    """Milliseconds into ``RawDocker.program``: its run exec's first stdout, the run exec's
    exit code known, and the container removed."""

    first_stdout_ms: float = 0.0
    exit_ms: float = 0.0
    total_ms: float = 0.0


# --------------------------------------------------------------------------- measuring


@dataclass
class Row:
    metric: str
    unit: str  # "ms" (lower is better) or "ops/s" (higher is better)
    ours_p50: float
    ours_p90: float | None
    base_p50: float | None
    base_p90: float | None
    n: int
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours_p50 / self.base_p50 if self.base_p50 else None


def expect(condition: bool, got: object) -> None:
    """A check that survives ``python -O``: a wrong answer must not pass as a fast one."""
    if not condition:
        raise RuntimeError(f"unexpected result: {got!r}")


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def p90(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=10, method="inclusive")[8]


async def timed(action: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = await action()
    return (time.perf_counter() - started) * 1000, value


Measure = Callable[[], Awaitable[float]]
"""One sample: runs the action and returns its milliseconds."""


async def alternate(
    rounds: int, warmup: int, ours: Measure, base: Measure, block: int = 1
) -> tuple[list[float], list[float]]:
    """Run both ``warmup + rounds`` times, ``block`` calls of one side then of the other,
    taking turns at going first; keep the last ``rounds`` of each.

    Blocks longer than 1 keep the engine's clean-up after a raw exec (it goes on after the
    exec has answered) from landing on a command of ours that never calls the engine.
    """
    ours_ms, base_ms = await rotate(rounds, warmup, [ours, base], block)
    return ours_ms, base_ms


async def rotate(
    rounds: int, warmup: int, actions: list[Measure], block: int = 1
) -> list[list[float]]:
    """``alternate`` for any number of sides: each block the order rotates by one, so each
    side goes first, second, ... equally often. Samples come back in ``actions``' order."""
    samples: list[list[float]] = [[] for _ in actions]
    sides = list(zip(actions, samples, strict=True))
    done = 0
    while done < warmup + rounds:
        size = min(block, warmup + rounds - done)
        for action, kept in sides:
            for k in range(size):
                ms = await action()
                if done + k >= warmup:
                    kept.append(ms)
        sides = sides[1:] + sides[:1]
        done += size
    return samples


def latency_row(metric: str, ours: list[float], base: list[float] | None, note: str = "") -> Row:
    return Row(
        metric,
        "ms",
        p50(ours),
        p90(ours),
        p50(base) if base else None,
        p90(base) if base else None,
        len(ours),
        note,
    )


@dataclass
class Target:
    """One server under test: its SDK client (one connection), its driver, where its /health
    is, an HTTP client for its REST API (base URL and API key set), and its instance if
    known."""

    driver: str
    client: AsyncCodeBeaker
    health_url: str
    http: httpx.AsyncClient
    instance: str | None


class Bench:
    def __init__(
        self,
        targets: list[Target],
        raw: RawDocker,
        args: argparse.Namespace,
        settings: Settings,
        headers: dict[str, str],
    ) -> None:
        self.targets = targets
        self.raw = raw
        self.args = args
        self.settings = settings
        self.headers = headers  # the API key, for what the SDK does not speak: /ws, bare frames
        self.sessions: dict[str, AsyncSession] = {}
        self.rows: list[Row] = []
        self.turns: dict[str, list[float]] = {}  # scenario C's samples per driver, for L

    def log(self, text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    async def open_session(
        self, client: AsyncCodeBeaker, memory_limit_mb: int | None = None
    ) -> AsyncSession:
        session = await client.create_session("python", memory_limit_mb=memory_limit_mb)
        self.sessions[session.id] = session
        return session

    async def close_session(self, session: AsyncSession) -> None:
        await session.close()
        del self.sessions[session.id]

    async def close_all(self) -> None:
        closing = [self.close_session(session) for session in list(self.sessions.values())]
        await asyncio.gather(*closing, return_exceptions=True)

    async def run(self) -> list[Row]:
        wanted = self.args.only.__contains__
        if self.targets:  # none when only I runs (it starts a server of its own)
            await self.per_command(wanted)
        if wanted("I"):
            await self.interactive()
        return self.rows

    async def per_command(self, wanted: Callable[[str], bool]) -> None:
        main = self.targets[0]
        if wanted("0"):
            await self.round_trip(main.client)
        if wanted("S"):
            await self.sdk_overhead(main)
        if wanted("A"):
            await self.cold_start(main.client)
            await self.pooled_start(main)
        for target in self.targets:
            if wanted("B") or wanted("C"):
                ours_box, base_box = await asyncio.gather(
                    self.open_session(target.client), self.raw.create()
                )
                try:
                    if wanted("B"):
                        await self.single_command(target, ours_box, base_box)
                    if wanted("C"):
                        await self.agent_turn(target, ours_box, base_box)
                finally:
                    await self.close_session(ours_box)
                    await self.raw.remove(base_box)
            if wanted("T"):
                await self.throughput(target)
        if wanted("L"):
            await self.llm_sandbox(main.driver)
        if wanted("R"):
            await self.one_shot(main)
        if wanted("K"):
            await self.code_contexts(main)

    async def round_trip(self, client: AsyncCodeBeaker) -> None:
        """``session.list``: the WebSocket and JSON-RPC cost alone, no Docker call behind it."""
        self.log("0: session.list round trip")
        samples = [
            (await timed(client.list_sessions))[0]
            for _ in range(self.args.warmup + self.args.iterations)
        ]
        note = "no Docker call: the protocol's own cost"
        self.rows.append(latency_row("0  session.list", samples[self.args.warmup :], None, note))

    async def sdk_overhead(self, target: Target) -> None:
        """What the SDK adds to a call: ``session.exec(["true"])`` against the same
        ``session.execute`` sent as a bare text frame on a plain ``websockets`` connection to
        the same server, in the same session, one call a side in turn. The frame is the
        one the SDK sends (its models, written out once, untimed), so both sides put the
        same bytes on the wire and the server does the same work; the baseline pays only
        send, receive, ``json.loads`` and a look at ``success`` and the exit code."""
        rounds = self.args.iterations * SDK_ROUNDS
        self.log(f"S: session.exec `true` through the SDK vs a bare frame ({rounds} rounds)")
        await pool_refilled(target.health_url)  # a server just started is still filling it
        session = await self.open_session(target.client)
        command = build(ExecuteShell, type="execute_shell", command_name="true")
        request = build(ExecuteRequest, session_id=session.id, command=command)
        # One id for every call: the calls never overlap, so each reply is the one awaited.
        frame = json.dumps(
            RpcRequest(method="session.execute", params=request.to_wire(), id=1).to_wire()
        )
        url = target.client.connection.url
        try:
            async with connect(url, additional_headers=self.headers, proxy=None) as websocket:

                async def ours() -> float:
                    ms, result = await timed(lambda: session.exec(["true"]))
                    expect(result.ok, result)
                    return ms

                async def base() -> float:
                    started = time.perf_counter()
                    await websocket.send(frame)
                    reply = json.loads(await websocket.recv())
                    ms = (time.perf_counter() - started) * 1000
                    outcome = reply["result"]
                    expect(outcome["success"] and outcome["result"]["exitCode"] == 0, reply)
                    return ms

                ours_ms, base_ms = await alternate(rounds, self.args.warmup, ours, base)
        finally:
            await self.close_session(session)
        row = latency_row(f"S  SDK overhead: exec `true` ({target.driver})", ours_ms, base_ms)
        verdict = "met" if row.ratio is not None and row.ratio <= SDK_GOAL else "missed"
        row.note = (
            f"session.exec(['true']) vs the same session.execute as a bare frame on a plain "
            f"websockets connection, same session; goal <= {SDK_GOAL:.2f}x: {verdict}"
        )
        self.rows.append(row)

    async def cold_start(self, client: AsyncCodeBeaker) -> None:
        """Limits the pool does not hold, so every create starts a container of its own."""
        memory = unpooled_memory()
        self.log(f"A: session.create cold ({memory} MiB, not pooled) vs raw create+start")
        close_ms: list[float] = []
        remove_ms: list[float] = []

        async def ours() -> float:
            ms, session = await timed(lambda: self.open_session(client, memory))
            close_ms.append((await timed(lambda: self.close_session(session)))[0])
            return ms

        async def base() -> float:
            ms, container_id = await timed(self.raw.create)
            remove_ms.append((await timed(lambda: self.raw.remove(container_id)))[0])
            return ms

        args = self.args
        ours_ms, base_ms = await alternate(args.iterations, args.warmup, ours, base)
        self.rows.append(latency_row("A  session.create cold", ours_ms, base_ms))
        self.rows.append(
            latency_row(
                "   session.close (vs raw remove)",
                close_ms[args.warmup :],
                remove_ms[args.warmup :],
            )
        )

    async def pooled_start(self, target: Target) -> None:
        """Default limits: the pool hands out a started container. Both sides wait (untimed)
        for the pool to refill first, so its background starts do not land on either."""
        if not (await pool_state(target.health_url)).get("size"):
            self.log("A: no python pool on this server: pooled create skipped")
            return
        self.log("A: session.create from the warm pool vs raw create+start")

        async def ours() -> float:
            await pool_refilled(target.health_url)
            ms, session = await timed(lambda: self.open_session(target.client))
            await self.close_session(session)
            return ms

        async def base() -> float:
            await pool_refilled(target.health_url)
            ms, container_id = await timed(self.raw.create)
            await self.raw.remove(container_id)
            return ms

        args = self.args
        ours_ms, base_ms = await alternate(args.iterations, args.warmup, ours, base)
        note = "the pool refilled before each round (untimed)"
        self.rows.append(latency_row("A  session.create pooled", ours_ms, base_ms, note))

    async def single_command(
        self, target: Target, session: AsyncSession, container_id: str
    ) -> None:
        self.log(f"B: execute_shell `true` ({target.driver} driver) vs raw exec")

        async def ours() -> float:
            return (await timed(lambda: session.exec(["true"], check=True)))[0]

        async def base() -> float:
            return (await timed(lambda: self.raw.exec(container_id, ["true"])))[0]

        rounds = self.args.iterations * 2
        ours_ms, base_ms = await alternate(rounds, self.args.warmup, ours, base, BLOCK)
        self.rows.append(latency_row(f"B  execute `true` ({target.driver})", ours_ms, base_ms))

    async def agent_turn(self, target: Target, session: AsyncSession, container_id: str) -> None:
        self.log(f"C: write_file + python3 main.py ({target.driver} driver) vs two raw execs")
        steps: dict[str, list[float]] = {"ours": [], "base": []}  # the write step's share

        async def ours() -> float:
            write_ms = (await timed(lambda: session.files.write("main.py", PROGRAM)))[0]
            run_ms, result = await timed(lambda: session.exec(["python3", "main.py"], check=True))
            expect(result.stdout == PROGRAM_OUTPUT, result)
            steps["ours"].append(write_ms)
            return write_ms + run_ms

        async def base() -> float:
            argv, content = ["sh", "-c", "cat > main.py"], PROGRAM.encode()
            write_ms = (await timed(lambda: self.raw.exec(container_id, argv, content)))[0]
            run_ms, stdout = await timed(
                lambda: self.raw.exec(container_id, ["python3", "main.py"])
            )
            expect(stdout == PROGRAM_OUTPUT, stdout)
            steps["base"].append(write_ms)
            return write_ms + run_ms

        warmup = self.args.warmup
        ours_ms, base_ms = await alternate(self.args.iterations, warmup, ours, base, BLOCK)
        self.turns[target.driver] = ours_ms
        name = f"C  write_file + run ({target.driver})"
        self.rows.append(latency_row(name, ours_ms, base_ms))
        self.rows.append(
            latency_row(
                "   of which write_file (vs sh -c cat)",
                steps["ours"][warmup:],
                steps["base"][warmup:],
            )
        )

    async def llm_sandbox(self, driver: str) -> None:
        """Scenario C's two steps against llm-sandbox's ``session.run`` of the same code."""
        if driver not in self.turns:
            self.log("L: compares with row C, which did not run: skipped")
            return
        if not llm_sandbox_baseline.available():
            self.log("L: llm-sandbox is not installed (pip install -e '.[bench]'): skipped")
            return
        self.log("L: llm-sandbox session.run of the same program")
        labels = {BENCH_LABEL: self.raw.run_id}
        base_ms = await asyncio.to_thread(
            llm_sandbox_baseline.measure,
            self.args.image,
            PROGRAM,
            PROGRAM_OUTPUT,
            self.args.iterations,
            self.args.warmup,
            labels,
        )
        note = f"baseline: llm-sandbox {llm_sandbox_baseline.version()} session.run, same image"
        name = f"L  write_file + run ({driver}) vs llm-sandbox"
        self.rows.append(latency_row(name, self.turns[driver], base_ms, note))

    async def throughput(self, target: Target) -> None:
        n, seconds = self.args.concurrency, self.args.duration
        self.log(f"T: {n} concurrent `true` loops ({target.driver}), {seconds:g}s for each side")
        sessions = await asyncio.gather(*(self.open_session(target.client) for _ in range(n)))
        container_ids = await asyncio.gather(*(self.raw.create() for _ in range(n)))
        try:
            # A short untimed burst first, so both sides start warm.
            await asyncio.gather(
                *(s.exec(["true"], check=True) for s in sessions),
                *(self.raw.exec(c, ["true"]) for c in container_ids),
            )
            actions: dict[str, list[Callable[[], Awaitable[Any]]]] = {
                "ours": [functools.partial(s.exec, ["true"], check=True) for s in sessions],
                "base": [functools.partial(self.raw.exec, c, ["true"]) for c in container_ids],
            }
            # Two half-length windows each, ours-base-base-ours, so drift in the machine's
            # load falls on both sides alike.
            tallies: dict[str, list[tuple[int, float, list[float]]]] = {"ours": [], "base": []}
            for side in ("ours", "base", "base", "ours"):
                tallies[side].append(await loops(actions[side], seconds / 2))
            ours_rate, ours_ms = rate(tallies["ours"])
            base_rate, base_ms = rate(tallies["base"])
        finally:
            await asyncio.gather(*(self.close_session(s) for s in sessions))
            await asyncio.gather(*(self.raw.remove(c) for c in container_ids))
        note = f"{n} sessions on one connection vs {n} raw exec loops"
        self.rows.append(
            Row(
                f"T  throughput `true` x{n} ({target.driver})",
                "ops/s",
                ours_rate,
                None,
                base_rate,
                None,
                len(ours_ms),
                note,
            )
        )
        self.rows.append(latency_row(f"   latency under load x{n}", ours_ms, base_ms))

    async def one_shot(self, target: Target) -> None:
        """One-shot runs over JSON-RPC and REST from the warm pool, and cold (limits the pool
        does not hold), taking turns with one raw baseline. Before every sample, untimed: the
        pool full again and the server's one-shot containers gone (it removes them after it
        has answered), so neither lands on the next sample of either side."""
        rounds = self.args.run_iterations
        self.log(f"R: execution.run warm, cold and over REST vs raw run+remove ({rounds} rounds)")
        memory = unpooled_memory()
        pooled = bool((await pool_state(target.health_url)).get("size"))
        client = target.client
        body = build(RunRequest, language="python", code=HELLO).to_wire()

        async def rest() -> RunResult:
            response = await target.http.post("/api/v1/execute", json=body)
            response.raise_for_status()
            return RunResult.model_validate(response.json())

        calls: dict[str, Callable[[], Awaitable[RunResult]]] = {
            "R  execution.run (python hello)": lambda: client.run("python", HELLO),
            "R  POST /api/v1/execute (python hello)": rest,
            "R  execution.run cold (python hello)": lambda: client.run(
                "python", HELLO, memory_limit_mb=memory
            ),
        }

        async def ours(call: Callable[[], Awaitable[RunResult]]) -> float:
            await self.settled(target)
            ms, result = await timed(call)
            expect(result.stdout == HELLO_OUTPUT and result.exit_code == 0, result)
            return ms

        python = RUNTIMES.get("python")

        async def base() -> float:
            await self.settled(target)
            run = await self.raw.program(self.args.image, python, HELLO, HELLO_OUTPUT)
            return run.total_ms

        sides = [functools.partial(ours, call) for call in calls.values()]
        *ours_ms, base_ms = await rotate(rounds, min(self.args.warmup, 2), [*sides, base])
        notes = [warm_note(p50(samples), pooled) for samples in ours_ms[:2]]
        notes.append(f"{memory} MiB, not pooled: a container of its own every run")
        for name, samples, note in zip(calls, ours_ms, notes, strict=True):
            self.rows.append(latency_row(name, samples, base_ms, note))

    async def code_contexts(self, target: Target) -> None:
        """Scenario K in one python session: cells on a warm context, a new context's first
        cell, the memory of idle interpreters, and a cell's timeout; each against the same
        work through ``execute_shell`` (a fresh ``python3``) in the same session."""
        session = await self.open_session(target.client)
        try:
            try:  # untimed: waits for the default context, which session.create started
                await run_cell(session, CELL)
            except errors.ContextsUnsupported:
                self.log("K: this server has no code contexts (contexts_unsupported): skipped")
                return
            await self.warm_cell(session)
            await self.new_context(session)
            await self.idle_memory(session)
            await self.cell_timeout(session)
        finally:
            await self.close_session(session)

    @staticmethod
    async def shell_cell(session: AsyncSession) -> float:
        """K's baseline: ``python3 -c "print(1+1)"`` through ``execute_shell``."""
        ms, result = await timed(lambda: session.exec(SHELL_CELL, check=True))
        expect(result.stdout == "2\n", result)
        return ms

    async def warm_cell(self, session: AsyncSession) -> None:
        self.log("K: `1+1` on the warm default context vs execute_shell python3 -c")

        async def ours() -> float:
            return (await timed(lambda: run_cell(session, CELL)))[0]

        args = self.args
        ours_ms, base_ms = await alternate(
            args.iterations, args.warmup, ours, functools.partial(self.shell_cell, session), BLOCK
        )
        row = latency_row("K  cell `1+1`, warm context", ours_ms, base_ms)
        row.note = f"baseline: `python3 -c` via execute_shell; {goal_note(row, CELL_GOAL_MS)}"
        self.rows.append(row)

    async def new_context(self, session: AsyncSession) -> None:
        self.log("K: context.create + first `1+1` vs execute_shell python3 -c")
        create_ms: list[float] = []
        close_ms: list[float] = []

        async def ours() -> float:
            ms, info = await timed(session.contexts.create)
            context_id = info.context_id
            try:
                cell_ms = (await timed(lambda: run_cell(session, CELL, context_id)))[0]
            finally:
                close_ms.append((await timed(lambda: session.contexts.close(context_id)))[0])
            create_ms.append(ms)
            return ms + cell_ms

        args = self.args
        ours_ms, base_ms = await alternate(
            args.iterations, args.warmup, ours, functools.partial(self.shell_cell, session)
        )
        row = latency_row("K  context.create + first `1+1`", ours_ms, base_ms)
        row.note = (
            f"each context closed after (untimed, p50 {fmt(p50(close_ms[args.warmup :]))} ms); "
            f"{goal_note(row, NEW_CONTEXT_GOAL_MS)}"
        )
        self.rows.append(row)
        self.rows.append(
            latency_row("   of which context.create", create_ms[args.warmup :], base_ms)
        )

    async def idle_memory(self, session: AsyncSession) -> None:
        """PSS and RSS of ``IDLE_CONTEXTS`` contexts that ran a cell, read at the same moment
        as those of as many idle ``python3 -c 'time.sleep(60)'`` processes."""
        self.log(f"K: memory of {IDLE_CONTEXTS} idle contexts vs idle python3 processes")
        ids: list[str] = []
        try:
            for _ in range(IDLE_CONTEXTS):
                ids.append((await session.contexts.create()).context_id)
                await run_cell(session, "1", ids[-1])
            listed = await session.contexts.list()
            pids = [str(c.pid) for c in listed if c.context_id in ids]
            expect(len(pids) == IDLE_CONTEXTS and "0" not in pids, listed)
            argv = ["sh", "-c", MEMORY_SCRIPT, "sh", MEMORY_READER, str(IDLE_CONTEXTS), *pids]
            read = await session.exec(argv, env={"IDLE": IDLE_PYTHON}, check=True)
            usage = json.loads(read.stdout)
        finally:
            for context_id in ids:
                await session.contexts.close(context_id)
        expect(len(usage["contexts"]) == len(usage["baseline"]) == IDLE_CONTEXTS, usage)
        for key, name in (("pss", "K  idle context PSS"), ("rss", "   idle context RSS")):
            ours = [entry[key] / 1024 for entry in usage["contexts"].values()]
            base = [entry[key] / 1024 for entry in usage["baseline"].values()]
            row = latency_row(name, ours, base)
            row.unit = "MiB"
            row.note = (
                f"{IDLE_CONTEXTS} contexts after one cell each, mean {fmt(statistics.mean(ours))}"
                f" MiB; baseline: {IDLE_CONTEXTS} idle `python3 -c '{IDLE_PYTHON}'` in the same"
                f" session, mean {fmt(statistics.mean(base))} MiB"
            )
            if key == "pss":
                verdict = "met" if statistics.mean(ours) <= CONTEXT_PSS_GOAL_MIB else "missed"
                row.note += f"; goal mean <= {CONTEXT_PSS_GOAL_MIB:g} MiB: {verdict}"
            self.rows.append(row)

    async def cell_timeout(self, session: AsyncSession) -> None:
        """Milliseconds from a cell's deadline (``timeoutSeconds`` after it was sent) to its
        result, for a pure-Python loop and a loop of sleeps, taking turns with
        ``execute_shell`` ``sleep 100`` under the same timeout."""
        rounds, warmup = min(self.args.iterations, TIMEOUT_ROUNDS), min(self.args.warmup, 1)
        self.log(f"K: cell timeout -> result vs execute_shell `sleep 100` ({rounds} rounds)")
        deadline_ms = CELL_TIMEOUT * 1000
        preserved: list[bool] = []

        async def ours(code: str) -> float:
            ms, cell = await timed(
                lambda: run_cell(session, code, timeout=CELL_TIMEOUT, status="timeout")
            )
            preserved.append(cell.state_preserved)
            return ms - deadline_ms

        async def base() -> float:
            ms, result = await timed(lambda: session.exec(["sleep", "100"], timeout=CELL_TIMEOUT))
            expect(result.timed_out and result.error is not None, result)  # failed: timeout
            return ms - deadline_ms

        sides = [functools.partial(ours, code) for code in ENDLESS.values()]
        *ours_ms, base_ms = await rotate(rounds, warmup, [*sides, base])
        kept = "state kept every time" if all(preserved) else "state lost at least once"
        for name, samples in zip(ENDLESS, ours_ms, strict=True):
            row = latency_row(f"K  timeout -> result, {name}", samples, base_ms)
            row.note = (
                f"round trip minus the {CELL_TIMEOUT:g} s timeout; baseline: execute_shell "
                f"`sleep 100` with the same timeout; {kept}; "
                f"{goal_note(row, INTERRUPT_GOAL_MS, 'past the deadline')}"
            )
            self.rows.append(row)

    async def settled(
        self, server: Target | Endpoint, kind: str = "run", language: str = "python"
    ) -> None:
        """The warm pool for ``language`` full and none of the server's containers of
        ``kind`` (one-shot or interactive runs) left (with ``--url`` its instance is
        unknown: then nobody's on this engine)."""
        await pool_refilled(server.health_url, language)
        labels = [f"{LABEL_MANAGED}=true", f"{LABEL_KIND}={kind}"]
        if server.instance is not None:
            labels.append(f"{LABEL_INSTANCE}={server.instance}")
        filters = json.dumps({"label": labels})

        async def none_left() -> bool:
            return not await self.raw.docker.containers.list(all=True, filters=filters)

        await until(none_left, f"the server's {kind} containers are still there")

    async def interactive(self) -> None:
        """Scenario I on a server of its own whose pool holds every language of the scenario
        (or on ``--url``'s server, whatever its pool)."""
        if self.args.url:
            await self.live_rows(Endpoint("server", ws_url(self.args.url)))
            return
        server = Server("agent", CODEBEAKER_POOL_SIZES=json.dumps(LIVE_POOL))
        self.log(f"I: agent server {server.instance} on port {server.port}, pool {LIVE_POOL}")
        failed = True
        try:
            await asyncio.to_thread(server.wait_healthy)
            await self.live_rows(Endpoint(server.driver, server.url, server.instance))
            failed = False
        except asyncio.CancelledError:
            failed = False  # interrupted: the server's log says nothing of interest
            raise
        finally:
            await asyncio.to_thread(stop_servers, [server], self.settings, failed)

    async def live_rows(self, endpoint: Endpoint) -> None:
        for language in LIVE_PROGRAMS:
            await until(
                functools.partial(pool_full, endpoint.health_url, language),
                f"the {language} pool did not fill",
                seconds=180,  # the first containers of a language may wait for its image
            )
        for language in LIVE_PROGRAMS:
            await self.live_language(endpoint, language)

    async def live_language(self, endpoint: Endpoint, language: str) -> None:
        """A program that prints a line, sent as framing A's ``code`` message, taking turns
        with ``RawDocker.program`` of the same program on the same image. Before every
        sample, untimed: the language's pool full again and the server's interactive
        containers (removed after ``exit``) gone."""
        runtime = RUNTIMES.get(language)
        source, image = LIVE_PROGRAMS[language], self.settings.image_for(language)
        rounds, warmup = self.args.interactive_iterations, min(self.args.warmup, 2)
        if language == "java":  # a second or two a side
            rounds, warmup = max(1, rounds // 2), min(warmup, 1)
        pooled = bool((await pool_state(endpoint.health_url, language)).get("size"))
        self.log(f"I: {language} over /ws vs raw create+start+execs+remove ({rounds} rounds)")
        url, compiled = live_url(endpoint.url), runtime.compile is not None
        ours_runs: list[tuple[float, float]] = []
        base_runs: list[RawRun] = []

        async def ours() -> float:
            await self.settled(endpoint, "interactive", language)
            run = await live_run(url, self.headers, language, source, compiled)
            ours_runs.append(run)
            return run[1]

        async def base() -> float:
            await self.settled(endpoint, "interactive", language)
            run = await self.raw.program(image, runtime, source, HELLO_OUTPUT)
            base_runs.append(run)
            return run.total_ms

        await rotate(rounds, warmup, [ours, base])
        ours_runs, base_runs = ours_runs[warmup:], base_runs[warmup:]
        base_exit = p50([run.exit_ms for run in base_runs])
        first = latency_row(
            f"I  /ws {language}: code -> first stdout",
            [run[0] for run in ours_runs],
            [run.first_stdout_ms for run in base_runs],
        )
        end = latency_row(
            f"   /ws {language}: code -> exit",
            [run[1] for run in ours_runs],
            [run.total_ms for run in base_runs],
        )
        steps = "write + compile + run execs" if compiled else "write + run execs"
        first.note = f"{live_note(language, first, pooled)}; raw: create + start + {steps}"
        end.note = (
            f"{live_note(language, end, pooled)}; raw: the same + remove (before the remove "
            f"{fmt(base_exit)} ms, ours/that {end.ours_p50 / base_exit:.2f}x)"
        )
        self.rows += [first, end]


async def run_cell(
    session: AsyncSession,
    code: str,
    context_id: str | None = None,
    timeout: float | None = None,
    status: str = "ok",
) -> Execution:
    """``session.run_code`` that insists on ``status`` (and on ``2`` for ``1+1``)."""
    cell = await session.run_code(code, context=context_id, timeout=timeout)
    expect(cell.status == status, cell)
    if code == CELL:
        expect(cell.text == "2", cell)
    return cell


def goal_note(row: Row, goal_ms: float, what: str = "") -> str:
    verdict = "met" if row.ours_p50 <= goal_ms else "missed"
    return f"goal p50 <= {goal_ms:g} ms{' ' + what if what else ''}: {verdict}"


def unpooled_memory() -> int:
    """A memory limit the pool does not hold (it holds the default)."""
    return 256 if Settings().default_memory_mb != 256 else 384


def live_note(language: str, row: Row, pooled: bool) -> str:
    pool = "pool refilled first (untimed)" if pooled else f"no {language} pool: cold starts"
    if language == "java":
        return f"{pool}; no goal"
    verdict = "met" if row.ratio is not None and row.ratio <= LIVE_GOAL else "missed"
    return f"{pool}; goal <= 1/3 of raw: {verdict}"


async def live_run(
    url: str, headers: dict[str, str], language: str, source: str, compiled: bool
) -> tuple[float, float]:
    """One program over framing A: milliseconds from sending its ``code`` message to the
    first ``stdout`` message and to ``exit``. Checks the messages: the output, one
    ``compile_success`` for a compiled language, ``exit`` 0 last, then the server closes."""
    messages: list[dict[str, Any]] = []
    first: float | None = None
    end: float | None = None
    async with connect(url, additional_headers=headers, proxy=None) as websocket:
        code = json.dumps({"type": "code", "language": language, "source": source})
        started = time.perf_counter()
        await websocket.send(code)
        async for frame in websocket:  # until the server closes
            ms = (time.perf_counter() - started) * 1000
            messages.append(json.loads(frame))
            kind = messages[-1]["type"]
            if kind == "stdout" and first is None:
                first = ms
            elif kind == "exit":
                end = ms
    kinds = [message["type"] for message in messages]
    stdout = "".join(message["data"] for message in messages if message["type"] == "stdout")
    if first is None or end is None or stdout != HELLO_OUTPUT:
        raise RuntimeError(f"unexpected result: {messages!r}")
    expect(
        kinds.count("compile_success") == int(compiled)
        and kinds[-1] == "exit"
        and messages[-1]["return_code"] == 0,
        messages,
    )
    return first, end


def warm_note(p50_ms: float, pooled: bool) -> str:
    if not pooled:
        return "this server has no warm pool: every run starts cold"
    verdict = "met" if p50_ms <= RUN_GOAL_MS else "missed"
    return f"pool refilled before each round (untimed); goal p50 <= {RUN_GOAL_MS:g} ms: {verdict}"


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 60) -> None:
    """Poll ``check`` until it holds; after ``seconds``, fail saying ``what``."""
    deadline = time.perf_counter() + seconds
    while not await check():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{what} after {seconds:g}s")
        await asyncio.sleep(0.02)


async def pool_refilled(health_url: str, language: str = "python") -> None:
    """Until /health shows the language's pool full (at once if the server has none)."""
    await until(functools.partial(pool_full, health_url, language), "the warm pool did not refill")


async def pool_full(health_url: str, language: str) -> bool:
    state = await pool_state(health_url, language)
    return state.get("ready", 0) >= state.get("size", 0)


async def pool_state(health_url: str, language: str = "python") -> dict[str, int]:
    """The server's warm pool for ``language`` as /health shows it (empty: no pool)."""

    def get() -> dict[str, int]:
        try:
            with NO_PROXY.open(health_url, timeout=5) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:  # 503 still carries the body
            body = json.load(exc)
        state: dict[str, int] = body.get("pool", {}).get(language, {})
        return state

    return await asyncio.to_thread(get)


async def loops(
    actions: list[Callable[[], Awaitable[Any]]], seconds: float
) -> tuple[int, float, list[float]]:
    """One loop per action, each repeating it until the deadline: (ops, seconds, latencies)."""
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds

    async def loop(action: Callable[[], Awaitable[Any]]) -> None:
        while time.perf_counter() < deadline:
            latencies.append((await timed(action))[0])

    await asyncio.gather(*(loop(action) for action in actions))
    return len(latencies), time.perf_counter() - started, latencies


def rate(windows: list[tuple[int, float, list[float]]]) -> tuple[float, list[float]]:
    """Operations per second over all windows, and every latency in them."""
    ops = sum(window[0] for window in windows)
    seconds = sum(window[1] for window in windows)
    return ops / seconds, [ms for window in windows for ms in window[2]]


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``python -m codebeaker serve`` as a subprocess, with an instance name of its own."""

    def __init__(self, driver: str, **env: str) -> None:
        self.driver = driver
        self.port = free_port()
        self.instance = f"bench-{driver}-{secrets.token_hex(4)}"
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
            prefix="codebeaker-bench-", suffix=".log", delete=False
        )
        env = {
            **os.environ,
            "CODEBEAKER_INSTANCE": self.instance,
            "CODEBEAKER_DRIVER": driver,
            **env,
        }
        argv = [sys.executable, "-m", "codebeaker", "serve", "--host", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*argv, "--port", str(self.port)], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/jsonrpc"

    @property
    def health_url(self) -> str:
        return health_url(self.url)

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with NO_PROXY.open(self.health_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not healthy after {timeout:g}s:\n{self.tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def tail(self, lines: int = 30) -> str:
        text = Path(self.log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- output


def fmt(value: float | None, unit: str = "ms") -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if unit == "ops/s" or value >= 100 else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    header = ("metric", "ours p50", "ours p90", "base p50", "base p90", "ours/base")
    lines = [header]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        if row.unit == "ops/s":
            ratio += " (ops/s, >1 = faster)"
        lines.append(
            (
                f"{row.metric} ({row.unit})",
                fmt(row.ours_p50, row.unit),
                fmt(row.ours_p90, row.unit),
                fmt(row.base_p50, row.unit),
                fmt(row.base_p90, row.unit),
                ratio,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for k, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:-1], widths[1:-1], strict=True)]
        cells.append(line[-1])
        out.append("  ".join(cells))
        if k == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def ws_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else "/ws/jsonrpc"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def http_url(url: str, path: str = "") -> str:
    """The server's HTTP address (of ``path``), from its WebSocket URL."""
    parts = urllib.parse.urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))


def health_url(url: str) -> str:
    return http_url(url, "/health")


def live_url(url: str) -> str:
    """Framing A's ``/ws`` on the server of ``url`` (a WebSocket URL)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/ws", parts.query, ""))


@dataclass
class Endpoint:
    driver: str
    url: str
    instance: str | None = None  # known when the bench started the server

    @property
    def health_url(self) -> str:
        return health_url(self.url)


async def bench(
    args: argparse.Namespace, endpoints: list[Endpoint], settings: Settings
) -> list[Row]:
    # SIGTERM cancels only this task (Ctrl-C does the same, by asyncio.run), so the
    # connections' readers are still alive for the clean-up below.
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    raw = RawDocker(aiodocker.Docker(url=settings.docker_url), args.image, secrets.token_hex(6))
    targets: list[Target] = []
    runner: Bench | None = None
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    try:
        images = [args.image]
        if "I" in args.only:
            images += [settings.image_for(language) for language in LIVE_PROGRAMS]
        for image in images:  # fail fast, before any timing
            await raw.docker.images.inspect(image)
        args.docker_version = (await raw.docker.version()).get("Version", "?")
        for endpoint in endpoints:
            # One connect attempt: the SDK would open a dropped socket again by itself,
            # and a sample that paid for that would pass as a slow call.
            client = AsyncCodeBeaker(endpoint.url, api_key=settings.api_key, reconnect_attempts=1)
            http = httpx.AsyncClient(  # the server is local: no proxy from the environment
                base_url=http_url(endpoint.url), headers=headers, timeout=60, trust_env=False
            )
            targets.append(
                Target(endpoint.driver, client, endpoint.health_url, http, endpoint.instance)
            )
            await client.connection.open()
        runner = Bench(targets, raw, args, settings, headers)
        rows = await runner.run()
        for target in targets:
            if target.client.connection.reconnects:
                raise errors.ConnectionLost(
                    f"the connection to the {target.driver} server dropped mid-run and was "
                    f"opened again {target.client.connection.reconnects} time(s)"
                )
        return rows
    finally:
        print("cleaning up", file=sys.stderr)
        if runner is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runner.close_all(), CLEANUP_SECONDS)
        for target in targets:
            await target.client.close()
            await target.http.aclose()
        try:
            await asyncio.wait_for(raw.sweep(), CLEANUP_SECONDS)
        except Exception as exc:
            print(f"warning: baseline containers not removed: {exc!r}", file=sys.stderr)
        await raw.docker.close()
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, interrupted)


def leftovers(settings: Settings, instance: str) -> int:
    """Containers the stopped server left behind (there should be none); removes them."""

    async def sweep() -> int:
        async with aiodocker.Docker(url=settings.docker_url) as docker:
            filters = json.dumps({"label": [f"{LABEL_INSTANCE}={instance}"]})
            found = await docker.containers.list(all=True, filters=filters)
            for container in found:
                with contextlib.suppress(aiodocker.DockerError):
                    await container.delete(force=True, v=True)
            return len(found)

    return asyncio.run(sweep())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--iterations",
        type=int,
        default=30,
        help=f"measured rounds per scenario (30; twice for B, {SDK_ROUNDS}x for S)",
    )
    parser.add_argument("--warmup", type=int, default=3, help="uncounted rounds first (3)")
    parser.add_argument(
        "--run-iterations", type=int, help="rounds of execution.run (default: --iterations)"
    )
    parser.add_argument(
        "--interactive-iterations",
        type=int,
        default=10,
        help="rounds of scenario I per language (10; java half)",
    )
    parser.add_argument("--concurrency", type=int, default=10, help="throughput clients (10)")
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds of throughput loops per side (5)"
    )
    parser.add_argument(
        "--url", help="measure only this running server (ws://HOST:PORT[/ws/jsonrpc])"
    )
    parser.add_argument("--image", help="baseline image (default: the server's python image)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run, of {','.join(SCENARIOS)} (all)",
    )
    args = parser.parse_args()
    if args.run_iterations is None:
        args.run_iterations = args.iterations
    counts = (args.iterations, args.run_iterations, args.interactive_iterations, args.concurrency)
    if min(counts) < 1 or args.warmup < 0:
        parser.error("counts must be at least 1 (--warmup at least 0)")
    args.only = {name.strip().upper() for name in args.only.split(",") if name.strip()}
    if not args.only or args.only - set(SCENARIOS):
        parser.error(f"--only takes scenarios of {','.join(SCENARIOS)}")
    return args


def interrupted(signum: int, frame: object) -> None:
    """SIGTERM takes the same way out as Ctrl-C, through every clean-up."""
    raise KeyboardInterrupt


def start_servers() -> list[Server]:
    """The agent driver with the default pool, and the exec driver with none (its rows
    measure the per-command path; an idle pool would only take memory)."""
    servers = [Server("agent"), Server("exec", CODEBEAKER_POOL_SIZES="{}")]
    for server in servers:
        print(
            f"starting {server.driver} server {server.instance} on port {server.port}",
            file=sys.stderr,
        )
    for server in servers:
        server.wait_healthy()
    return servers


def stop_servers(servers: list[Server], settings: Settings, failed: bool) -> None:
    for server in servers:
        server.stop()
        if failed:
            print(
                f"{server.driver} server log {server.log.name} ends:\n{server.tail()}",
                file=sys.stderr,
            )
        else:
            Path(server.log.name).unlink(missing_ok=True)
        left = leftovers(settings, server.instance)
        if left:
            print(f"warning: the server left {left} container(s); removed", file=sys.stderr)


def report(
    rows: list[Row], args: argparse.Namespace, endpoints: list[Endpoint], elapsed: float
) -> None:
    print()
    print(table(rows))
    print()
    for row in rows:
        if row.note:
            print(f"{row.metric.strip()}: {row.note}")
    print(
        f"iterations={args.iterations} (execution.run: {args.run_iterations}, B: "
        f"{args.iterations * 2}, S: {args.iterations * SDK_ROUNDS}), warmup={args.warmup}, "
        f"concurrency={args.concurrency}, "
        f"duration={args.duration:g}s, I: {args.interactive_iterations} (java "
        f"{max(1, args.interactive_iterations // 2)}), K timeouts: "
        f"{min(args.iterations, TIMEOUT_ROUNDS)}, scenarios {','.join(sorted(args.only))}, "
        f"total {elapsed:.0f}s; ratio = ours p50 / baseline p50"
    )
    if args.json:
        figures = {
            "meta": {
                "servers": {endpoint.driver: endpoint.url for endpoint in endpoints},
                "image": args.image,
                "iterations": args.iterations,
                "runIterations": args.run_iterations,
                "interactiveIterations": args.interactive_iterations,
                "scenarios": sorted(args.only),
                "warmup": args.warmup,
                "concurrency": args.concurrency,
                "durationSeconds": args.duration,
                "docker": args.docker_version,
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "totalSeconds": round(elapsed, 1),
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            "rows": [
                {**asdict(row), "metric": row.metric.strip(), "ratio": row.ratio} for row in rows
            ],
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, interrupted)
    settings = Settings()
    args.image = args.image or settings.image_for("python")
    servers: list[Server] = []
    began = time.perf_counter()
    failed = True
    try:
        if args.url:
            url = ws_url(args.url)
            endpoints = [Endpoint("server", url)]
        elif args.only - {"I"}:  # scenario I starts a server of its own
            servers = start_servers()
            endpoints = [Endpoint(s.driver, s.url, s.instance) for s in servers]
        else:
            endpoints = []
        names = ", ".join(f"{e.driver} {e.url}" for e in endpoints) or "scenario I's server"
        print(f"benchmarking {names} against raw aiodocker on {args.image}", file=sys.stderr)
        rows = asyncio.run(bench(args, endpoints, settings))
        failed = False
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        failed = False  # the server's log says nothing of interest then
        return 130
    except (ConnectionClosed, errors.ConnectionLost) as exc:
        print(f"error: the server closed the connection mid-run: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_servers(servers, settings, failed)
    report(rows, args, endpoints, time.perf_counter() - began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
