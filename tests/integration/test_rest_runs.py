"""REST one-shot runs: ``POST /api/v1/execute``, asynchronous executions and their records,
and the seed-003 aliases. One server (default settings, agent driver) for the module."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime

import aiodocker
import pytest

from codebeaker.constants import LABEL_KIND

from .conftest import ServerProcess, instance_containers, wait_until
from .rest import Rest, serving

POOL_SIZE = 1
JSON_TYPE = {"content-type": "application/json"}
RUN_FIELDS = {"stdout", "stderr", "exitCode", "timedOut", "truncated", "durationMs"}
GO_HELLO = """package main

import "fmt"

func main() {
	fmt.Println("hello from go", 6*7)
}
"""
GO_BROKEN = """package main

import "fmt"

func main() {
	fmt.Println("this must never print")
	undefinedFunction()
}
"""


@pytest.fixture(scope="module")
async def api(docker: aiodocker.Docker) -> AsyncIterator[tuple[ServerProcess, Rest]]:
    env = {"CODEBEAKER_POOL_SIZES": json.dumps({"python": POOL_SIZE})}
    async with serving(docker, env) as served:
        yield served


@pytest.fixture(scope="module")
async def rest(api: tuple[ServerProcess, Rest]) -> Rest:
    return api[1]


def moment(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


# ------------------------------------------------------------------------- POST /execute


async def test_python_hello(rest: Rest) -> None:
    result = await rest.run("print('hello')")
    assert set(result) == RUN_FIELDS, result  # no ``compile`` for an interpreted language
    assert result["stdout"] == "hello\n"
    assert result["stderr"] == ""
    assert result["exitCode"] == 0
    assert result["timedOut"] is False
    assert result["truncated"] is False
    assert result["durationMs"] >= 0


async def test_stdin_stderr_and_exit_code(rest: Rest) -> None:
    code = (
        "import sys\n"
        "print(sys.stdin.read().upper(), end='')\n"
        "print('warn', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    result = await rest.run(code, language="py", stdin="echo me\n")
    assert result["stdout"] == "ECHO ME\n"
    assert result["stderr"] == "warn\n"
    assert result["exitCode"] == 3


async def test_go_has_compile(rest: Rest) -> None:
    result = await rest.run(GO_HELLO, language="golang")
    assert result["stdout"] == "hello from go 42\n", result
    assert result["exitCode"] == 0
    compiled = result["compile"]
    assert set(compiled) == {"stdout", "stderr", "exitCode", "durationMs"}, compiled
    assert compiled["exitCode"] == 0, compiled


async def test_compile_error_is_not_run(rest: Rest) -> None:
    result = await rest.run(GO_BROKEN, language="go")
    compiled = result["compile"]
    assert compiled["exitCode"] != 0, result
    assert "undefined" in compiled["stderr"], compiled
    assert result["exitCode"] == compiled["exitCode"], result  # the compiler's exit code
    assert result["stdout"] == "", result
    assert "never print" not in str(result)


async def test_timeout(rest: Rest) -> None:
    code = "import time\nprint('before', flush=True)\ntime.sleep(30)\nprint('after')\n"
    started = asyncio.get_running_loop().time()
    result = await rest.run(code, timeoutSeconds=1)
    elapsed = asyncio.get_running_loop().time() - started
    assert result["timedOut"] is True, result
    assert result["exitCode"] == 124, result
    assert result["stdout"] == "before\n", result
    assert elapsed < 15, f"a 1 s timeout took {elapsed:.1f}s"


async def test_snake_case_params(rest: Rest) -> None:
    result = await rest.run("import time; time.sleep(10)", timeout_seconds=0.5)
    assert result["timedOut"] is True, result


async def test_unsupported_language(rest: Rest) -> None:
    body = {"language": "cobol", "code": "DISPLAY 'HI'."}
    for url in ("/api/v1/execute", "/api/v1/execute/async"):
        problem = await rest.problem("POST", url, 422, "unsupported_language", json=body)
        assert {"python", "go", "csharp", "javascript"} <= set(problem["supported"]), problem


# ------------------------------------------------------------------- asynchronous executions


async def test_async_execution_runs_to_completed(rest: Rest) -> None:
    response = await rest.post(
        "/api/v1/execute/async",
        json={"language": "py", "code": "import sys; print(sys.stdin.read() * 2)", "stdin": "ab"},
        expect=202,
    )
    accepted = response.json()
    assert set(accepted) == {"executionId", "status", "statusUrl"}, accepted
    assert accepted["status"] == "queued"
    execution_id = accepted["executionId"]
    assert len(execution_id) >= 16, execution_id
    assert accepted["statusUrl"] == f"/api/v1/executions/{execution_id}"
    assert response.headers["location"] == accepted["statusUrl"]

    record = await rest.wait_for(execution_id)
    assert record["status"] == "completed", record
    assert record["language"] == "python", record  # the canonical name, not the alias
    assert record["result"]["stdout"] == "abab\n", record
    assert record["result"]["exitCode"] == 0, record
    assert record.get("error") is None, record
    created, started = moment(record["createdAt"]), moment(record["startedAt"])
    assert created <= started <= moment(record["finishedAt"]), record
    # statusUrl is a URL of this server, relative to it
    again = await rest.json("GET", accepted["statusUrl"])
    assert again == record


async def test_a_failing_program_is_completed_with_its_exit_code(rest: Rest) -> None:
    execution_id = await rest.submit("import sys; print('oops', file=sys.stderr); sys.exit(7)")
    record = await rest.wait_for(execution_id)
    assert record["status"] == "completed", record  # the program ran; exitCode says how
    assert record["result"]["exitCode"] == 7, record
    assert record["result"]["stderr"] == "oops\n", record


async def test_seed_003_aliases(rest: Rest) -> None:
    result = await rest.json(
        "POST", "/api/execute", json={"language": "python", "code": "print('alias')"}
    )
    assert result["stdout"] == "alias\n", result

    response = await rest.post(
        "/api/execute/async", json={"language": "python", "code": "print('later')"}, expect=202
    )
    accepted = response.json()
    execution_id = accepted["executionId"]
    assert response.headers["location"] == accepted["statusUrl"], response.headers
    record = await rest.wait_for(execution_id)
    assert record["result"]["stdout"] == "later\n", record
    aliased = await rest.json("GET", f"/api/execute/status/{execution_id}")
    assert aliased == record
    await rest.problem("GET", "/api/execute/status/no-such-execution", 404, "execution_not_found")
    await rest.problem(
        "POST", "/api/execute", 400, "parse_error", content=b"{not json", headers=JSON_TYPE
    )


async def test_list_newest_first_with_status_and_limit(rest: Rest) -> None:
    ids = []
    for index in range(3):
        execution_id = await rest.submit(f"print({index})")
        await rest.wait_for(execution_id)
        ids.append(execution_id)
    failing = await rest.submit("import time; time.sleep(30)", timeoutSeconds=0.5)
    record = await rest.wait_for(failing)
    assert record["status"] == "completed", record  # the program ran; it timed out
    assert record["result"]["timedOut"] is True, record
    assert record["result"]["exitCode"] == 124, record

    listing = await rest.json("GET", "/api/v1/executions", params={"limit": 2})
    assert set(listing) == {"executions"}, listing
    assert [record["executionId"] for record in listing["executions"]] == [failing, ids[2]]
    # rows are summaries: everything of the record but its (unbounded) output
    row = listing["executions"][0]
    assert "result" not in row, row
    assert row == {key: value for key, value in record.items() if key != "result"}, row

    everything = (await rest.json("GET", "/api/v1/executions"))["executions"]
    assert all("result" not in row for row in everything), everything
    order = [record["executionId"] for record in everything]
    assert order.index(failing) < order.index(ids[2]) < order.index(ids[1]) < order.index(ids[0])
    created = [moment(record["createdAt"]) for record in everything]
    assert created == sorted(created, reverse=True), created

    completed = await rest.json("GET", "/api/v1/executions", params={"status": "completed"})
    assert completed["executions"], completed
    assert {record["status"] for record in completed["executions"]} == {"completed"}
    assert set(ids) <= {record["executionId"] for record in completed["executions"]}

    cancelled = await rest.json("GET", "/api/v1/executions?status=cancelled&limit=1000")
    assert {record["status"] for record in cancelled["executions"]} <= {"cancelled"}

    for params in ({"status": "bogus"}, {"limit": 0}, {"limit": 1001}, {"limit": "many"}):
        problem = await rest.problem(
            "GET", "/api/v1/executions", 422, "invalid_params", params=params
        )
        named = {str(error["loc"][-1]) for error in problem["errors"]}
        assert named == set(params), problem


async def test_unknown_execution(rest: Rest) -> None:
    for method in ("GET", "DELETE"):
        await rest.problem(method, "/api/v1/executions/no-such-id", 404, "execution_not_found")


async def test_cancel_a_finished_execution_is_409(rest: Rest) -> None:
    execution_id = await rest.submit("print('finished')")
    record = await rest.wait_for(execution_id)
    assert record["status"] == "completed", record
    problem = await rest.problem(
        "DELETE", f"/api/v1/executions/{execution_id}", 409, "execution_finished"
    )
    assert execution_id in problem["detail"] or "completed" in problem["detail"], problem
    assert await rest.execution(execution_id) == record  # unchanged


async def test_nothing_left_behind(
    docker: aiodocker.Docker, api: tuple[ServerProcess, Rest]
) -> None:
    """Every run's sandbox is gone once its answer is out (only the warm pool remains)."""
    server, rest = api
    await rest.run("print('last')")

    async def only_the_pool() -> bool:
        containers = await instance_containers(docker, server.instance)
        return (
            all(info["Labels"].get(LABEL_KIND) == "pool" for info in containers)
            and len(containers) == POOL_SIZE
        )

    assert await wait_until(only_the_pool, 15), await instance_containers(docker, server.instance)
