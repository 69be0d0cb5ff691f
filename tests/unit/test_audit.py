import json
import time
from pathlib import Path

from codebeaker.audit import AuditLog


def test_lines_are_json_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    audit = AuditLog()
    audit.open(path)
    audit.record(
        tenant="alice",
        door="jsonrpc",
        method="session.execute",
        outcome="ok",
        session_id="s1",
        command="execute_shell",
        started=time.monotonic() - 0.05,
    )
    audit.record(tenant=None, door="http", method="GET (refused)", outcome="unauthorized")
    audit.close()  # writes what is queued
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first["tenant"] == "alice"
    assert first["door"] == "jsonrpc"
    assert first["method"] == "session.execute"
    assert first["sessionId"] == "s1"
    assert first["command"] == "execute_shell"
    assert first["outcome"] == "ok"
    assert first["durationMs"] >= 50
    assert first["time"].endswith("Z")
    assert second == second | {"tenant": None, "sessionId": None, "durationMs": None}


def test_closed_or_never_opened_it_writes_nothing(tmp_path: Path) -> None:
    audit = AuditLog()
    assert not audit.enabled
    audit.record(tenant="a", door="rest", method="GET /x", outcome="ok")  # a no-op
    path = tmp_path / "audit.jsonl"
    audit.open(path)
    audit.close()
    audit.record(tenant="a", door="rest", method="GET /x", outcome="ok")
    assert path.read_text() == ""
