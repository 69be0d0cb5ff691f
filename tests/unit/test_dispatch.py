import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from codebeaker.audit import AUDIT
from codebeaker.rpc import handle_frame
from codebeaker.rpc.dispatch import MAX_ID_CHARS, MAX_ID_JSON, MAX_PARAMS_MEMBERS, seal
from codebeaker.runtimes import RUNTIMES
from codebeaker.service import SandboxService
from codebeaker.settings import Settings
from codebeaker.tenants import CURRENT_TENANT, LOCAL, Tenant, TokenBucket
from tests.unit.fakes import FakeService


def over_rate(error: dict[str, Any]) -> bool:
    data = error.get("data")
    return isinstance(data, dict) and data.get("limit") == "requests_per_second"


@pytest.fixture
def service(tmp_path: Path) -> SandboxService:
    return FakeService(Settings(max_message_bytes=2048, data_dir=tmp_path))


async def ask(service: SandboxService, message: Any) -> Any:
    text = message if isinstance(message, str) else json.dumps(message)
    reply = await handle_frame(text, service)
    return None if reply is None else json.loads(reply)


def req(method: str, params: Any = None, id_: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        message["params"] = params
    return message


async def test_parse_error_has_null_id(service: SandboxService) -> None:
    reply = await ask(service, "{not json")
    assert reply["error"]["code"] == -32700
    assert reply["id"] is None


@pytest.mark.parametrize(
    "message",
    [{"jsonrpc": "2.0", "id": 1}, {"jsonrpc": "1.0", "method": "session.list", "id": 1}, [], 42],
)
async def test_invalid_requests(service: SandboxService, message: Any) -> None:
    reply = await ask(service, message)
    assert reply["error"]["code"] == -32600


async def test_a_batch_inside_a_batch_is_an_invalid_request(service: SandboxService) -> None:
    replies = await ask(service, [[req("session.list")], req("session.list")])
    assert [reply["error"]["code"] for reply in replies if "error" in reply] == [-32600]
    assert sum("result" in reply for reply in replies) == 1


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity"])
async def test_numbers_json_cannot_hold_are_a_parse_error(
    service: SandboxService, literal: str
) -> None:
    frame = '{"jsonrpc": "2.0", "id": ' + literal + ', "method": "session.list"}'
    reply = json.loads(await handle_frame(frame, service) or "null")
    assert reply["error"]["code"] == -32700
    assert reply["error"]["data"]["kind"] == "parse_error"
    assert reply["id"] is None


async def test_method_not_found(service: SandboxService) -> None:
    assert (await ask(service, req("session.explode")))["error"]["code"] == -32601


async def test_positional_params_are_invalid(service: SandboxService) -> None:
    reply = await ask(service, req("session.close", ["abc"]))
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["errors"][0]["loc"] == ["params"]


async def test_notifications_run_but_get_no_reply(service: SandboxService) -> None:
    notification = {"jsonrpc": "2.0", "method": "session.create", "params": {"language": "py"}}
    assert await ask(service, notification) is None
    assert service.list_sessions(tenant=LOCAL).count == 1


async def test_batch_answers_each_item_and_skips_notifications(service: SandboxService) -> None:
    batch = [
        req("session.list", id_="a"),
        {"jsonrpc": "2.0", "method": "session.list"},
        {"jsonrpc": "2.0", "id": "bad"},
        req("session.create", {"language": "brainfuck"}, id_=3),
    ]
    replies = await ask(service, batch)
    assert len(replies) == 3
    by_code = sorted(r.get("error", {}).get("code", 0) for r in replies)
    assert by_code == [-32600, -32003, 0]
    listed = next(r for r in replies if r.get("id") == "a")
    assert listed["result"] == {"count": 0, "sessions": []}


async def test_all_notification_batch_gets_no_reply(service: SandboxService) -> None:
    assert await ask(service, [{"jsonrpc": "2.0", "method": "session.list"}]) is None


async def test_oversized_frames_are_refused_with_limit_exceeded(service: SandboxService) -> None:
    reply = await ask(service, req("session.create", {"language": "x" * 4096}))
    assert reply["error"]["code"] == -32004
    assert reply["error"]["data"]["kind"] == "limit_exceeded"


async def test_unknown_language_lists_supported(service: SandboxService) -> None:
    reply = await ask(service, req("session.create", {"language": "cobol"}))
    assert reply["error"]["code"] == -32003
    assert reply["error"]["data"]["supported"] == RUNTIMES.names()


async def test_create_execute_close_round_trip(service: SandboxService) -> None:
    created = (await ask(service, req("session.create", {"language": "js"})))["result"]
    assert created["language"] == "javascript"
    assert created["state"] == "Active"
    command = {"type": "execute_shell", "commandName": "echo", "args": ["hi"]}
    executed = await ask(
        service, req("session.execute", {"sessionId": created["sessionId"], "command": command})
    )
    assert executed["result"]["success"] is True
    assert executed["result"]["result"]["stdout"] == "echo hi"
    closed = await ask(service, req("session.close", {"session_id": created["sessionId"]}))
    assert closed["result"] == {"sessionId": created["sessionId"], "closed": True}
    again = await ask(service, req("session.close", {"sessionId": created["sessionId"]}))
    assert again["error"]["data"]["kind"] == "session_not_found"


async def test_no_reply_ever_carries_a_traceback(service: SandboxService) -> None:
    replies = [
        await ask(service, req("session.execute", {"sessionId": 5, "command": None})),
        await ask(service, req("session.create", {"language": "py", "memoryLimitMB": "lots"})),
        await ask(service, req("execution.run", {"language": "py"})),
    ]
    for reply in replies:
        assert reply["error"]["code"] == -32602
        assert "Traceback" not in json.dumps(reply)


async def test_files_written_are_read_back(service: SandboxService) -> None:
    created = (await ask(service, req("session.create", {"language": "python"})))["result"]
    session_id = created["sessionId"]
    write = {"type": "write_file", "path": "a.txt", "content": "hello"}
    written = await ask(
        service, req("session.execute", {"sessionId": session_id, "command": write})
    )
    assert written["result"]["result"] == {"path": "/workspace/a.txt", "bytes": 5}
    read = {"type": "read_file", "path": "a.txt", "maxBytes": 4}
    answer = await ask(service, req("session.execute", {"sessionId": session_id, "command": read}))
    assert answer["result"]["success"] is True
    assert answer["result"]["result"] == {
        "path": "/workspace/a.txt",
        "content": "hell",
        "bytes": 4,
        "size": 5,
        "encoding": "utf8",
        "truncated": True,
    }
    missing = {"type": "read_file", "path": "nope.txt"}
    answer = await ask(
        service, req("session.execute", {"sessionId": session_id, "command": missing})
    )
    assert answer["result"]["success"] is False
    assert answer["result"]["error"].startswith("file_not_found:")
    outside = {"type": "read_file", "path": "../etc/passwd"}
    answer = await ask(
        service, req("session.execute", {"sessionId": session_id, "command": outside})
    )
    assert answer["result"]["error"].startswith("path_outside_workspace:")


async def test_limits_are_checked_against_the_server_settings(service: SandboxService) -> None:
    too_big = service.settings.max_memory_mb + 1
    reply = await ask(service, req("session.create", {"language": "py", "memoryLimitMB": too_big}))
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["errors"][0]["loc"] == ["memoryLimitMB"]
    reply = await ask(service, req("session.create", {"language": "py", "memoryLimitMB": 256}))
    assert reply["result"]["config"]["memoryLimitMB"] == 256


async def test_execution_run_answers_the_run_result(service: SandboxService) -> None:
    reply = await ask(
        service,
        req("execution.run", {"language": "python", "code": "print(1)", "timeoutSeconds": 5}),
    )
    result = reply["result"]
    assert result["exitCode"] == 0
    assert result["stdout"].startswith("python3")
    assert "compile" not in result


@pytest.mark.parametrize(
    "frame", ["[" * 100_000, '{"jsonrpc": "2.0", "params": ' + '{"a":' * 30_000]
)
async def test_a_frame_nested_too_deeply_is_a_parse_error(tmp_path: Path, frame: str) -> None:
    roomy = FakeService(Settings(max_message_bytes=200_000, data_dir=tmp_path))
    text = await handle_frame(frame, roomy)
    assert text is not None
    reply = json.loads(text)
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700
    assert reply["error"]["data"]["kind"] == "parse_error"
    assert "nested too deeply" in reply["error"]["message"]


async def test_a_reply_with_a_name_that_is_not_utf8_is_ascii_json(service: SandboxService) -> None:
    created = (await ask(service, req("session.create", {"language": "python"})))["result"]
    assert isinstance(service, FakeService)
    (driver,) = service.sandboxes.drivers
    driver.files["/workspace/caf\udce9"] = b"x"
    command = {"type": "list_directory", "path": "/workspace"}
    text = await handle_frame(
        json.dumps(req("session.execute", {"sessionId": created["sessionId"], "command": command})),
        service,
    )
    assert text is not None
    assert text.isascii()
    assert "caf\\udce9" in text
    (entry,) = json.loads(text)["result"]["result"]["entries"]
    assert entry["name"] == "caf\udce9"


async def test_a_lone_surrogate_sent_by_a_client_is_invalid_params(service: SandboxService) -> None:
    reply = await ask(
        service,
        '{"jsonrpc":"2.0","id":1,"method":"session.create","params":{"language":"\\udcff"}}',
    )
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["errors"][0]["type"] == "string_unicode"


async def test_contexts_answer_in_process(service: SandboxService) -> None:
    """Without the agent (the fake driver, as the exec driver) contexts are refused with
    their own kind; bad params name their field; other sessions' ids are not found."""
    created = await ask(service, req("session.create", {"language": "python"}))
    sid = created["result"]["sessionId"]
    listed = await ask(service, req("context.list", {"sessionId": sid}))
    assert listed["result"] == {"sessionId": sid, "count": 0, "contexts": []}
    refused = await ask(service, req("session.run_code", {"sessionId": sid, "code": "1"}))
    assert refused["error"]["code"] == -32013
    assert refused["error"]["data"]["kind"] == "contexts_unsupported"
    created_ctx = await ask(service, req("context.create", {"sessionId": sid}))
    assert created_ctx["error"]["data"]["kind"] == "contexts_unsupported"
    missing = await ask(service, req("session.interrupt", {"sessionId": sid, "contextId": "x"}))
    assert missing["error"]["code"] == -32012
    assert missing["error"]["data"]["kind"] == "context_not_found"
    bad = await ask(
        service,
        req("session.run_code", {"sessionId": sid, "code": "1", "timeoutSeconds": 10_000}),
    )
    assert bad["error"]["data"]["errors"][0]["loc"] == ["timeoutSeconds"]
    wrong = await ask(service, req("context.create", {"sessionId": sid, "language": "ruby"}))
    assert wrong["error"]["data"]["errors"][0]["loc"] == ["language"]
    env = await ask(service, req("context.create", {"sessionId": sid, "env": {"A=B": "x"}}))
    assert env["error"]["data"]["errors"][0]["loc"] == ["env"]


async def test_session_cancel_answers_what_it_stopped(service: SandboxService) -> None:
    created = await ask(service, req("session.create", {"language": "python"}))
    sid = created["result"]["sessionId"]
    command = {"type": "execute_shell", "commandName": "sleep", "args": ["30"]}
    running = asyncio.ensure_future(
        ask(service, req("session.execute", {"sessionId": sid, "command": command}, "run-1"))
    )
    await asyncio.sleep(0.01)
    cancel = req("session.cancel", {"sessionId": sid, "requestId": "run-1"}, 2)
    assert (await ask(service, cancel))["result"] == {"sessionId": sid, "cancelled": ["run-1"]}
    stopped = (await running)["result"]
    assert stopped["result"]["cancelled"] is True
    assert stopped["error"].startswith("cancelled:")
    nothing = await ask(service, req("session.cancel", {"sessionId": sid}, 3))
    assert nothing["result"] == {"sessionId": sid, "cancelled": []}
    bad = await ask(service, req("session.cancel", {"sessionId": sid, "requestId": True}, 4))
    assert bad["error"]["code"] == -32602
    assert bad["error"]["data"]["errors"][0]["loc"] == ["requestId"]


async def test_a_batch_longer_than_the_cap_is_one_invalid_request(tmp_path: Path) -> None:
    capped = FakeService(Settings(max_batch_items=3, data_dir=tmp_path))
    replies = await ask(capped, [req("session.list", id_=n) for n in range(3)])
    assert [reply["id"] for reply in replies] == [0, 1, 2]
    reply = await ask(capped, [req("session.list", id_=n) for n in range(4)])
    assert reply["id"] is None
    assert reply["error"]["code"] == -32600
    assert reply["error"]["data"] == {"kind": "limit_exceeded", "limit": "batch_items"}
    assert "at most 3 requests" in reply["error"]["message"]
    assert "holds 4" in reply["error"]["message"]


def test_a_reply_over_the_reply_cap_becomes_limit_exceeded_with_its_id() -> None:
    settings = Settings(max_reply_bytes=1024)
    fits = {"jsonrpc": "2.0", "id": "a", "result": {"stdout": "\0" * 100}}
    assert json.loads(seal(fits, settings)) == fits
    big = {"jsonrpc": "2.0", "id": "a", "result": {"stdout": "\0" * 200}}  # 1,200 bytes as JSON
    reply = json.loads(seal(big, settings))
    assert reply["id"] == "a"
    assert reply["error"]["code"] == -32004
    assert reply["error"]["data"] == {"kind": "limit_exceeded", "limit": "reply_size"}
    assert "1024 byte limit" in reply["error"]["message"]


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), _nested(100_000)])
def test_a_reply_json_cannot_hold_becomes_an_internal_error(value: Any) -> None:
    text = seal({"jsonrpc": "2.0", "id": 7, "result": {"x": value}}, Settings())
    reply = json.loads(text, parse_constant=lambda literal: pytest.fail(literal))
    assert reply["id"] == 7
    assert reply["error"]["code"] == -32603
    assert reply["error"]["data"]["kind"] == "internal_error"


async def test_a_long_method_name_is_not_echoed_whole(service: SandboxService) -> None:
    reply = await ask(service, req("m" * 1500))
    assert reply["error"]["code"] == -32601
    assert reply["error"]["data"] == "m" * 64 + "…"


async def test_params_with_more_members_than_any_method_takes_are_refused(
    service: SandboxService,
) -> None:
    many = {f"k{n}": 1 for n in range(MAX_PARAMS_MEMBERS + 1)}
    reply = await ask(service, req("session.create", many))
    assert reply["error"]["code"] == -32602
    (error,) = reply["error"]["data"]["errors"]
    assert error["loc"] == ["params"]
    assert error["msg"].startswith(f"params has {MAX_PARAMS_MEMBERS + 1} members")
    assert await ask(service, {"jsonrpc": "2.0", "method": "session.list", "params": many}) is None


@pytest.mark.parametrize(
    "frame",
    [
        "[" + "[" * 900 + "]" * 900 + "]",
        '[{"jsonrpc":"2.0","id":1,"method":"session.list","params":' + "[" * 50_000 + "}]",
        '{"jsonrpc":"2.0","id":1,"method":"session.create","params":{"language":'
        + "[" * 900
        + "]" * 900
        + "}}",
    ],
)
async def test_deep_nesting_inside_batches_and_params_is_answered(
    tmp_path: Path, frame: str
) -> None:
    roomy = FakeService(Settings(max_message_bytes=200_000, data_dir=tmp_path))
    text = await handle_frame(frame, roomy)
    assert text is not None
    reply = json.loads(text)
    first = reply[0] if isinstance(reply, list) else reply
    assert first["error"]["code"] in (-32700, -32600, -32602), first


@pytest.mark.parametrize(
    "long_id",
    ["i" * (MAX_ID_CHARS + 1), "\0" * 43, 10**300, {"k": "v" * 300}],
)
async def test_a_request_id_over_the_bound_is_refused_before_anything_runs(
    service: SandboxService, long_id: Any
) -> None:
    """Every reply repeats the id: a 15 MiB one made each budget error 15 MiB."""
    roomy = FakeService(Settings(max_message_bytes=200_000, data_dir=service.settings.data_dir))
    for message in (
        req("session.create", {"language": "python"}, long_id),
        [req("session.list", id_=1), req("session.create", {"language": "python"}, long_id)],
    ):
        reply = await ask(roomy, message)
        assert isinstance(reply, dict), reply  # one error for the whole frame
        assert reply["id"] is None
        assert reply["error"]["code"] == -32600
        assert reply["error"]["data"] == {"kind": "limit_exceeded", "limit": "id_length"}
        assert f"at most {MAX_ID_CHARS} characters" in reply["error"]["message"]
    assert roomy.list_sessions(tenant=LOCAL).count == 0


@pytest.mark.parametrize("fits", ["i" * MAX_ID_CHARS, "é" * 42, -(10**255), {"k": 1}])
async def test_an_id_within_the_bound_is_answered_as_before(
    service: SandboxService, fits: Any
) -> None:
    reply = await ask(service, req("session.list", id_=fits))
    if isinstance(fits, dict):  # no valid id: jsonrpcserver's invalid request
        assert reply["error"]["code"] == -32600
        assert reply["error"]["data"] != {"kind": "limit_exceeded", "limit": "id_length"}
    else:
        assert reply["id"] == fits
        assert "result" in reply


def test_an_error_replacing_a_reply_fits_the_smallest_budget() -> None:
    settings = Settings(max_reply_bytes=1024)  # the least the setting allows
    worst = "\0" * ((MAX_ID_JSON - 2) // 6)  # each written as \\u0000
    text = seal({"jsonrpc": "2.0", "id": worst, "result": {"stdout": "x" * 2000}}, settings)
    assert json.loads(text)["error"]["data"]["limit"] == "reply_size"
    assert len(text) < 1024


@pytest.fixture
def audit_log(tmp_path: Path) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    path = tmp_path / "audit.jsonl"
    AUDIT.open(path)

    def lines() -> list[dict[str, Any]]:
        AUDIT.close()  # writes what is queued
        return [json.loads(line) for line in path.read_text().splitlines()]

    try:
        yield lines
    finally:
        AUDIT.close()


async def test_every_request_is_charged_once_and_audited_method_or_not(
    service: SandboxService, audit_log: Callable[[], list[dict[str, Any]]]
) -> None:
    """Unknown methods and invalid requests were answered free and unlogged: 4,000 a
    second past a rate of 20."""
    tenant = Tenant("carol", requests_per_second=3, bucket=TokenBucket(3))
    token = CURRENT_TENANT.set(tenant)
    try:
        unknown = [req("no.such", id_=n) for n in range(5)]
        replies = await ask(service, [*unknown, {"jsonrpc": "2.0", "id": 9}, 42])
    finally:
        CURRENT_TENANT.reset(token)
    errors = [reply["error"] for reply in replies]
    refused = [error for error in errors if over_rate(error)]
    assert len(refused) == 7 - 3, errors  # a burst of 3, then nothing
    assert all(0 < error["data"]["retryAfter"] <= 1 / 3 for error in refused)
    assert sum(error["code"] == -32601 for error in errors) + len(refused) >= 5
    lines = audit_log()
    assert len(lines) == 7
    assert {line["tenant"] for line in lines} == {"carol"}
    assert sum(line["outcome"] == "limit_exceeded" for line in lines) == 4
    assert {line["outcome"] for line in lines} <= {
        "limit_exceeded",
        "method_not_found",
        "invalid_request",
    }
    assert {line["method"] for line in lines} == {"no.such", "(invalid request)"}


async def test_a_method_call_is_charged_once(service: SandboxService) -> None:
    """The method itself no longer charges: three calls fit a burst of three."""
    tenant = Tenant("carol", requests_per_second=3, bucket=TokenBucket(3))
    token = CURRENT_TENANT.set(tenant)
    try:
        replies = await ask(service, [req("session.list", id_=n) for n in range(4)])
    finally:
        CURRENT_TENANT.reset(token)
    assert ["result" in reply for reply in replies] == [True, True, True, False], replies
    assert over_rate(replies[3]["error"])
