import json
from typing import Any

import pytest

from codebeaker.rpc import Services, handle_frame
from codebeaker.runtimes import RUNTIMES
from codebeaker.sessions import OneShotRunner, SessionManager
from codebeaker.settings import Settings
from tests.unit.fakes import FakeSandboxes


@pytest.fixture
def services() -> Services:
    settings = Settings(max_message_bytes=2048)
    sandboxes = FakeSandboxes(settings)
    return Services(
        settings=settings,
        runtimes=RUNTIMES,
        sessions=SessionManager(sandboxes, settings),
        runner=OneShotRunner(sandboxes, settings),
    )


async def ask(services: Services, message: Any) -> Any:
    text = message if isinstance(message, str) else json.dumps(message)
    reply = await handle_frame(text, services)
    return None if reply is None else json.loads(reply)


def req(method: str, params: Any = None, id_: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        message["params"] = params
    return message


async def test_parse_error_has_null_id(services: Services) -> None:
    reply = await ask(services, "{not json")
    assert reply["error"]["code"] == -32700
    assert reply["id"] is None


@pytest.mark.parametrize(
    "message",
    [{"jsonrpc": "2.0", "id": 1}, {"jsonrpc": "1.0", "method": "session.list", "id": 1}, [], 42],
)
async def test_invalid_requests(services: Services, message: Any) -> None:
    reply = await ask(services, message)
    assert reply["error"]["code"] == -32600


async def test_method_not_found(services: Services) -> None:
    assert (await ask(services, req("session.explode")))["error"]["code"] == -32601


async def test_positional_params_are_invalid(services: Services) -> None:
    reply = await ask(services, req("session.close", ["abc"]))
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["errors"][0]["loc"] == ["params"]


async def test_notifications_run_but_get_no_reply(services: Services) -> None:
    notification = {"jsonrpc": "2.0", "method": "session.create", "params": {"language": "py"}}
    assert await ask(services, notification) is None
    assert len(services.sessions) == 1


async def test_batch_answers_each_item_and_skips_notifications(services: Services) -> None:
    batch = [
        req("session.list", id_="a"),
        {"jsonrpc": "2.0", "method": "session.list"},
        {"jsonrpc": "2.0", "id": "bad"},
        req("session.create", {"language": "brainfuck"}, id_=3),
    ]
    replies = await ask(services, batch)
    assert len(replies) == 3
    by_code = sorted(r.get("error", {}).get("code", 0) for r in replies)
    assert by_code == [-32600, -32003, 0]
    listed = next(r for r in replies if r.get("id") == "a")
    assert listed["result"] == {"count": 0, "sessions": []}


async def test_all_notification_batch_gets_no_reply(services: Services) -> None:
    assert await ask(services, [{"jsonrpc": "2.0", "method": "session.list"}]) is None


async def test_oversized_frames_are_refused_with_limit_exceeded(services: Services) -> None:
    reply = await ask(services, req("session.create", {"language": "x" * 4096}))
    assert reply["error"]["code"] == -32004
    assert reply["error"]["data"]["kind"] == "limit_exceeded"


async def test_unknown_language_lists_supported(services: Services) -> None:
    reply = await ask(services, req("session.create", {"language": "cobol"}))
    assert reply["error"]["code"] == -32003
    assert reply["error"]["data"]["supported"] == RUNTIMES.names()


async def test_create_execute_close_round_trip(services: Services) -> None:
    created = (await ask(services, req("session.create", {"language": "js"})))["result"]
    assert created["language"] == "javascript"
    assert created["state"] == "Active"
    command = {"type": "execute_shell", "commandName": "echo", "args": ["hi"]}
    executed = await ask(
        services, req("session.execute", {"sessionId": created["sessionId"], "command": command})
    )
    assert executed["result"]["success"] is True
    assert executed["result"]["result"]["stdout"] == "echo hi"
    closed = await ask(services, req("session.close", {"session_id": created["sessionId"]}))
    assert closed["result"] == {"sessionId": created["sessionId"], "closed": True}
    again = await ask(services, req("session.close", {"sessionId": created["sessionId"]}))
    assert again["error"]["data"]["kind"] == "session_not_found"


async def test_no_reply_ever_carries_a_traceback(services: Services) -> None:
    replies = [
        await ask(services, req("session.execute", {"sessionId": 5, "command": None})),
        await ask(services, req("session.create", {"language": "py", "memoryLimitMB": "lots"})),
        await ask(services, req("execution.run", {"language": "py"})),
    ]
    for reply in replies:
        assert reply["error"]["code"] == -32602
        assert "Traceback" not in json.dumps(reply)
