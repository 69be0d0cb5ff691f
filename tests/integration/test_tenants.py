"""Tenants on a real server started with a keys file (and the single key beside it): a
session is only ever found by the key that created it, on every door; quotas and the rate
answer ``limit_exceeded`` with ``retryAfter`` (429 with ``Retry-After`` on REST); the audit
log has one line per request and never any content; a bad keys file stops the start-up
with a message naming the entry and field; serving beyond loopback without a key warns.

Tenancy does not depend on the driver, so these tests run once, on the default one."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from codebeaker_client import AsyncCodeBeaker
from codebeaker_client.errors import LimitExceeded
from websockets.exceptions import InvalidStatus

from .client import RpcClient
from .conftest import ServerProcess, free_port, http_get, stop_and_check, wait_until
from .live import LiveClient
from .rest import Rest, serving

SECRET = f"s3cret-{secrets.token_hex(8)}"
"""Put in code, arguments, environment, files and input: never in the audit log."""
KEYS = {"alice": "alice-key-1", "bob": "bob-key-2", "carol": "carol-key-3"}
SINGLE_KEY = "the-single-key"
ALICE_SESSIONS = 2
CAROL_RATE = 2


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class Keyed:
    server: ServerProcess
    rest: Rest
    audit: Path

    def rest_as(self, name: str) -> Rest:
        return self.rest.with_headers(Authorization=f"Bearer {KEYS[name]}")

    async def connect(self, name: str) -> RpcClient:
        key = SINGLE_KEY if name == "local" else KEYS[name]
        return await RpcClient.connect(
            self.server.url, additional_headers={"Authorization": f"Bearer {key}"}
        )

    def audit_lines(self) -> list[dict[str, Any]]:
        text = self.audit.read_text() if self.audit.exists() else ""
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
async def keyed(docker: aiodocker.Docker) -> AsyncIterator[Keyed]:
    folder = Path(tempfile.mkdtemp(prefix="codebeaker-tenants-"))
    keys_file = folder / "keys.json"
    entries = [
        {"name": "alice", "keySha256": digest(KEYS["alice"]), "maxSessions": ALICE_SESSIONS},
        {"name": "bob", "keySha256": digest(KEYS["bob"]), "maxConcurrentRuns": 1},
        {"name": "carol", "keySha256": digest(KEYS["carol"]), "requestsPerSecond": CAROL_RATE},
    ]
    keys_file.write_text(json.dumps(entries))
    audit = folder / "audit.jsonl"
    env = {
        "CODEBEAKER_API_KEYS_FILE": str(keys_file),
        "CODEBEAKER_API_KEY": SINGLE_KEY,
        "CODEBEAKER_AUDIT_LOG": str(audit),
    }
    async with serving(docker, env) as (server, rest):
        yield Keyed(server, rest, audit)


@pytest.fixture
async def clients(keyed: Keyed) -> AsyncIterator[dict[str, RpcClient]]:
    """One connection per tenant (``local`` is the single key's)."""
    opened = {name: await keyed.connect(name) for name in (*KEYS, "local")}
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.close()


async def test_another_tenants_session_is_not_found_on_any_door(
    keyed: Keyed, clients: dict[str, RpcClient]
) -> None:
    alice, bob, local = clients["alice"], clients["bob"], clients["local"]
    created = await alice.result("session.create", {"language": "python"})
    sid = created["sessionId"]
    try:
        await alice.ok(sid, {"type": "write_file", "path": "mine.txt", "content": SECRET})
        unknown = "no-such-session-" + secrets.token_hex(4)
        ref = {"sessionId": sid}
        calls: list[tuple[str, dict[str, Any]]] = [
            ("session.execute", {**ref, "command": {"type": "read_file", "path": "mine.txt"}}),
            ("session.input", {**ref, "data": "typed by another"}),
            ("session.cancel", ref),
            ("session.watch", ref),
            ("session.unwatch", ref),
            ("session.run_code", {**ref, "code": "print(1)"}),
            ("session.interrupt", {**ref, "contextId": "default"}),
            ("context.create", ref),
            ("context.list", ref),
            ("context.restart", {**ref, "contextId": "default"}),
            ("context.close", {**ref, "contextId": "default"}),
            ("session.close", ref),
        ]
        for client in (bob, local):
            assert await client.result("session.list") == {"count": 0, "sessions": []}
            for method, params in calls:
                error = await client.error(method, params, code=-32001, kind="session_not_found")
                # told exactly what an id that never existed is told
                other = await client.error(method, {**params, "sessionId": unknown})
                assert error["message"] == other["message"].replace(unknown, sid), method

        # REST: the same, and the session is not listed
        bob_rest = keyed.rest_as("bob")
        try:
            listing = await bob_rest.json("GET", "/api/v1/sessions")
            assert listing == {"count": 0, "sessions": []}
            base = f"/api/v1/sessions/{sid}"
            requests: list[tuple[str, str, dict[str, Any]]] = [
                ("GET", base, {}),
                ("POST", f"{base}/commands", {"json": {"type": "list_directory"}}),
                ("POST", f"{base}/cancel", {}),
                ("GET", f"{base}/files/mine.txt", {}),
                ("PUT", f"{base}/files/mine.txt", {"content": b"overwritten"}),
                ("DELETE", base, {}),
            ]
            for method, url, kwargs in requests:
                await bob_rest.problem(method, url, 404, "session_not_found", **kwargs)
        finally:
            await bob_rest.aclose()

        # the owner still has it, whole, on both doors
        (mine,) = (await alice.result("session.list"))["sessions"]
        assert mine["sessionId"] == sid
        assert (await alice.ok(sid, {"type": "read_file", "path": "mine.txt"}))["content"] == SECRET
        alice_rest = keyed.rest_as("alice")
        try:
            response = await alice_rest.get(f"/api/v1/sessions/{sid}/files/mine.txt")
            assert response.status_code == 200
            assert response.content == SECRET.encode()
        finally:
            await alice_rest.aclose()
    finally:
        await alice.result("session.close", {"sessionId": sid})


async def test_max_sessions_is_limit_exceeded_with_retry_after(
    keyed: Keyed, clients: dict[str, RpcClient]
) -> None:
    alice, bob = clients["alice"], clients["bob"]
    made = [
        (await alice.result("session.create", {"language": "python", "idleTimeoutMinutes": 5}))
        for _ in range(ALICE_SESSIONS)
    ]
    try:
        error = await alice.error(
            "session.create", {"language": "python"}, code=-32004, kind="limit_exceeded"
        )
        assert error["data"]["limit"] == "tenant_sessions", error
        # when the first of alice's sessions would idle out: about 5 minutes
        assert 60 < error["data"]["retryAfter"] <= 300, error

        alice_rest = keyed.rest_as("alice")
        try:
            response = await alice_rest.post("/api/v1/sessions", json={"language": "python"})
            assert response.status_code == 429, response.text
            assert response.json()["kind"] == "limit_exceeded"
            assert int(response.headers["Retry-After"]) >= 60
        finally:
            await alice_rest.aclose()

        # the SDK reads the field the server sends
        sdk = AsyncCodeBeaker(
            keyed.server.url + "/ws/jsonrpc", api_key=KEYS["alice"], reconnect_attempts=1
        )
        async with sdk:
            with pytest.raises(LimitExceeded) as caught:
                await sdk.create_session("python")
        assert caught.value.limit == "tenant_sessions"
        assert caught.value.retry_after is not None
        assert caught.value.retry_after > 60

        # another tenant's quota is its own
        other = await bob.result("session.create", {"language": "python"})
        await bob.result("session.close", {"sessionId": other["sessionId"]})
        # and a closed session frees the place
        await alice.result("session.close", {"sessionId": made.pop()["sessionId"]})
        made.append(await alice.result("session.create", {"language": "python"}))
    finally:
        for created in made:
            await alice.result("session.close", {"sessionId": created["sessionId"]})


async def test_max_concurrent_runs_counts_commands_cells_and_runs(
    keyed: Keyed, clients: dict[str, RpcClient]
) -> None:
    bob = clients["bob"]
    created = await bob.result("session.create", {"language": "python"})
    sid = created["sessionId"]
    bob_rest = keyed.rest_as("bob")
    try:
        sleeping = await bob.start(
            "session.execute",
            {
                "sessionId": sid,
                "command": {"type": "execute_shell", "commandName": "sleep", "args": ["3"]},
            },
        )
        await asyncio.sleep(0.5)
        refused: list[tuple[str, dict[str, Any]]] = [
            ("session.execute", {"sessionId": sid, "command": {"type": "list_directory"}}),
            ("session.run_code", {"sessionId": sid, "code": "1"}),
            ("execution.run", {"language": "python", "code": "print(1)"}),
        ]
        for method, params in refused:
            error = await bob.error(method, params, code=-32004, kind="limit_exceeded")
            assert error["data"]["limit"] == "concurrent_runs", error
            assert error["data"]["retryAfter"] == 1.0, error
        response = await bob_rest.post("/api/v1/execute", json={"language": "python", "code": "1"})
        assert response.status_code == 429, response.text
        assert response.headers["Retry-After"] == "1"
        # another tenant runs meanwhile
        assert (
            await clients["local"].result(
                "execution.run", {"language": "python", "code": "print(2)"}
            )
        )["stdout"] == "2\n"
        assert (await asyncio.wait_for(sleeping, 30))["result"]["success"]
        # the slot is free again
        result = await bob.result("execution.run", {"language": "python", "code": "print(3)"})
        assert result["stdout"] == "3\n"
    finally:
        await bob_rest.aclose()
        await bob.result("session.close", {"sessionId": sid})


async def test_requests_per_second_counts_every_batch_item_and_request(
    keyed: Keyed, clients: dict[str, RpcClient]
) -> None:
    carol, bob = clients["carol"], clients["bob"]
    await asyncio.sleep(1.5)  # a full bucket
    batch = [{"jsonrpc": "2.0", "id": 1000 + n, "method": "session.list"} for n in range(6)]
    await carol.send_raw(json.dumps(batch))
    replies = await carol.recv_raw(10)
    assert isinstance(replies, list), replies
    assert len(replies) == 6, replies
    refused = [reply["error"] for reply in replies if "error" in reply]
    assert len(refused) >= 6 - CAROL_RATE - 1, replies  # a burst of 2 (and a refill)
    for error in refused:
        assert error["data"]["kind"] == "limit_exceeded", error
        assert error["data"]["limit"] == "requests_per_second", error
        assert 0 < error["data"]["retryAfter"] <= 1 / CAROL_RATE, error
    # another tenant is not slowed
    for _ in range(10):
        await bob.result("session.list")
    # REST requests draw on the same bucket
    carol_rest = keyed.rest_as("carol")
    try:
        statuses = []
        for _ in range(4):
            response = await carol_rest.get("/api/v1/sessions")
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json()["limit"] == "requests_per_second"
                assert response.headers["Retry-After"] == "1"
        assert 429 in statuses, statuses
        await asyncio.sleep(1.5)
        assert (await carol.result("session.list"))["count"] == 0
    finally:
        await carol_rest.aclose()


async def test_requests_no_method_runs_are_charged_and_audited_too(
    keyed: Keyed, clients: dict[str, RpcClient]
) -> None:
    """Unknown methods and invalid requests were answered free and unlogged, at any rate."""
    carol = clients["carol"]
    await asyncio.sleep(1.5)  # a full bucket
    batch: list[Any] = [{"jsonrpc": "2.0", "id": 2000 + n, "method": "no.such"} for n in range(8)]
    batch += [{"jsonrpc": "2.0", "id": 2100}, 42]
    await carol.send_raw(json.dumps(batch))
    replies = await carol.recv_raw(10)
    assert isinstance(replies, list), replies
    assert len(replies) == 10, replies
    refused = [
        reply["error"]
        for reply in replies
        if isinstance(reply["error"].get("data"), dict)
        and reply["error"]["data"].get("limit") == "requests_per_second"
    ]
    assert len(refused) >= 10 - CAROL_RATE - 1, replies
    assert all(0 < error["data"]["retryAfter"] <= 1 / CAROL_RATE for error in refused)

    async def audited() -> bool:
        lines = [line for line in keyed.audit_lines() if line["tenant"] == "carol"]
        unknown = [line for line in lines if line["method"] == "no.such"]
        invalid = [line for line in lines if line["method"] == "(invalid request)"]
        return len(unknown) >= 8 and len(invalid) >= 2

    assert await wait_until(audited, 10, 0.2), keyed.audit_lines()[-12:]
    await asyncio.sleep(1.5)
    assert (await carol.result("session.list"))["count"] == 0


async def test_the_audit_log_has_one_line_per_request_and_no_content(
    keyed: Keyed, clients: dict[str, RpcClient]
) -> None:
    alice, bob = clients["alice"], clients["bob"]
    created = await alice.result("session.create", {"language": "python", "env": {"TOKEN": SECRET}})
    sid = created["sessionId"]
    try:
        await alice.shell(sid, "echo", SECRET, env={"ALSO": SECRET})
        await alice.ok(sid, {"type": "write_file", "path": "s.txt", "content": SECRET})
        reading = await alice.start(
            "session.execute",
            {
                "sessionId": sid,
                "stream": True,
                "command": {"type": "execute_shell", "commandName": "head", "args": ["-c", "4"]},
            },
        )
        await asyncio.sleep(0.3)
        await alice.result("session.input", {"sessionId": sid, "data": SECRET})
        assert (await asyncio.wait_for(reading, 30))["result"]["success"]
        await alice.result("session.run_code", {"sessionId": sid, "code": f"print({SECRET!r})"})
        await alice.result("execution.run", {"language": "python", "code": f"print({SECRET!r})"})
        await bob.error(
            "session.execute", {"sessionId": sid, "command": {"type": "list_directory"}}
        )
        rest = keyed.rest_as("alice")
        try:
            await rest.put(
                f"/api/v1/sessions/{sid}/files/r.txt", content=SECRET.encode(), expect=200
            )
            await rest.post(
                f"/api/v1/sessions/{sid}/commands",
                json={"type": "execute_shell", "commandName": "echo", "args": [SECRET]},
                expect=200,
            )
        finally:
            await rest.aclose()
        anonymous = await keyed.rest.get("/api/v1/sessions")
        assert anonymous.status_code == 401
    finally:
        await alice.result("session.close", {"sessionId": sid})

    def seen(lines: list[dict[str, Any]]) -> bool:
        return any(line["method"] == "session.close" and line["sessionId"] == sid for line in lines)

    async def closed_is_logged() -> bool:
        return seen(keyed.audit_lines())

    assert await wait_until(closed_is_logged, 10, 0.2), keyed.audit_lines()[-5:]
    text = keyed.audit.read_text()
    assert SECRET not in text
    for key in (*KEYS.values(), SINGLE_KEY):
        assert key not in text
    lines = keyed.audit_lines()
    for line in lines:
        assert set(line) == {
            "time",
            "tenant",
            "door",
            "method",
            "sessionId",
            "command",
            "outcome",
            "durationMs",
        }, line
    mine = [line for line in lines if line["sessionId"] == sid]

    def find(**fields: Any) -> dict[str, Any]:
        matching = [line for line in mine if all(line[k] == v for k, v in fields.items())]
        assert matching, f"no line with {fields} among {mine}"
        return matching[0]

    find(tenant="alice", door="jsonrpc", method="session.create", outcome="ok")
    find(tenant="alice", method="session.execute", command="execute_shell", outcome="ok")
    find(tenant="alice", method="session.execute", command="write_file", outcome="ok")
    find(tenant="alice", method="session.input", outcome="ok")
    find(tenant="alice", method="session.run_code", command="run_code", outcome="ok")
    find(
        tenant="bob",
        method="session.execute",
        command="list_directory",
        outcome="session_not_found",
    )
    find(
        tenant="alice",
        door="rest",
        method="PUT /api/v1/sessions/{sessionId}/files/{path:path}",
        command="write_file",
    )
    find(
        tenant="alice",
        door="rest",
        method="POST /api/v1/sessions/{sessionId}/commands",
        command="execute_shell",
    )
    assert any(
        line["tenant"] == "alice"
        and line["method"] == "execution.run"
        and line["command"] == "python"
        for line in lines
    )
    assert any(line["tenant"] is None and line["outcome"] == "unauthorized" for line in lines)


def _serve_argv() -> list[str]:
    return [sys.executable, "-m", "codebeaker", "serve"]


async def test_a_bad_keys_file_stops_the_start_up_naming_entry_and_field(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    entries = [
        {"name": "alice", "keySha256": digest("a")},
        {"name": "bob", "keySha256": digest("b"), "maxSessions": 0},
    ]
    keys_file.write_text(json.dumps(entries))
    server = ServerProcess({"CODEBEAKER_API_KEYS_FILE": str(keys_file)})
    env = server.environment() | {"CODEBEAKER_PORT": str(free_port())}
    done = await asyncio.to_thread(
        subprocess.run, _serve_argv(), env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "entry 1 ('bob'): maxSessions: Input should be greater than or equal to 1" in done.stderr


async def test_serving_beyond_loopback_without_a_key_warns(docker: aiodocker.Docker) -> None:
    server = ServerProcess({"CODEBEAKER_HOST": "0.0.0.0", "CODEBEAKER_PORT": ""})
    server.overrides["CODEBEAKER_PORT"] = str(server.port)
    with server.log_path.open("wb") as log:
        server.process = subprocess.Popen(
            _serve_argv(), stdout=log, stderr=subprocess.STDOUT, env=server.environment()
        )

    async def answering() -> bool:
        try:
            return (await http_get(server.http_url + "/health", timeout=2))[0] == 200
        except OSError:
            return False

    try:
        assert await wait_until(answering, 30, 0.3), server.log()
        assert "serving on '0.0.0.0', beyond loopback, without an API key" in server.log()
    finally:
        await stop_and_check(docker, server)


async def test_asynchronous_executions_are_the_submitting_tenants(keyed: Keyed) -> None:
    alice, bob = keyed.rest_as("alice"), keyed.rest_as("bob")
    try:
        execution_id = await alice.submit(f"print({SECRET!r})")
        url = f"/api/v1/executions/{execution_id}"
        await bob.problem("GET", url, 404, "execution_not_found")
        await bob.problem("GET", f"/api/execute/status/{execution_id}", 404, "execution_not_found")
        await bob.problem("DELETE", url, 404, "execution_not_found")
        listed = await bob.json("GET", "/api/v1/executions")
        assert execution_id not in {row["executionId"] for row in listed["executions"]}
        record = await alice.wait_for(execution_id)
        assert record["result"]["stdout"] == f"{SECRET}\n"
        listed = await alice.json("GET", "/api/v1/executions")
        assert execution_id in {row["executionId"] for row in listed["executions"]}
    finally:
        await alice.aclose()
        await bob.aclose()


async def test_a_pending_run_is_claimed_only_with_the_key_that_posted_it(keyed: Keyed) -> None:
    alice = keyed.rest_as("alice")
    try:
        created = await alice.json(
            "POST", "/session", expect=201, json={"language": "python", "code": "print(6 * 7)"}
        )
    finally:
        await alice.aclose()
    url = f"{keyed.server.url}/ws/session/{created['sessionId']}"
    with pytest.raises(InvalidStatus) as refused:
        await LiveClient.open(f"{url}?apiKey={KEYS['bob']}")
    assert refused.value.response.status_code == 404
    client = await LiveClient.open(f"{url}?apiKey={KEYS['alice']}")  # still there for alice
    try:
        await client.until_closed()
    finally:
        await client.close()
    assert client.text() == "42\n"
    assert client.messages[-1] == {"type": "exit", "code": 0}

    async def run_is_logged() -> bool:
        return any(
            line["door"] == "live" and line["tenant"] == "alice" and line["command"] == "python"
            for line in keyed.audit_lines()
        )

    assert await wait_until(run_is_logged, 10, 0.2)
