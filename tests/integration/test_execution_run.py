"""execution.run: one-shot programs in every language, leaving nothing behind."""

from __future__ import annotations

import time
from typing import Any

import aiodocker
import pytest

from codebeaker.runtimes import RUNTIMES

from .client import RpcClient
from .conftest import MIB, ServerProcess, run_containers, wait_until
from .test_sessions import assert_invalid_params

RUN_FIELDS = {"stdout", "stderr", "exitCode", "timedOut", "truncated", "durationMs"}
COMPILE_FIELDS = {"stdout", "stderr", "exitCode", "durationMs"}

GO_HELLO = """package main

import "fmt"

func main() {
	fmt.Println("hello from go", 6*7)
}
"""
GO_BROKEN = """package main

func main() {
	undefinedFunction()
}
"""
CSHARP_HELLO = """using System;

public class Program
{
    public static void Main()
    {
        Console.WriteLine("hello from c# " + (6 * 7));
    }
}
"""
C_HELLO = """#include <stdio.h>
#include <math.h>

int main(void) {
    printf("hello from c %d\\n", (int)sqrt(1764.0));
    return 0;
}
"""
C_ECHO = """#include <stdio.h>

int main(void) {
    char line[256];
    while (fgets(line, sizeof line, stdin) != NULL)
        printf("echo: %s", line);
    fprintf(stderr, "done\\n");
    return 3;
}
"""
C_BROKEN = """int main(void) {
    return undefined_symbol;
}
"""
CPP_HELLO = """#include <iostream>
#include <vector>
#include <numeric>

int main() {
    std::vector<int> v{20, 22};
    auto sum = std::accumulate(v.begin(), v.end(), 0);
    std::cout << "hello from c++ " << sum << std::endl;
}
"""
CPP_ECHO = """#include <iostream>
#include <string>

int main() {
    for (std::string line; std::getline(std::cin, line);)
        std::cout << "echo: " << line << "\\n";
    std::cerr << "done\\n";
    return 3;
}
"""
CPP_BROKEN = """#include <string>

int main() {
    std::string s = 42;
}
"""
JAVA_HELLO = """public class Main {
    public static void main(String[] args) {
        System.out.println("hello from java " + (6 * 7));
    }
}
"""
JAVA_ECHO = """import java.io.BufferedReader;
import java.io.InputStreamReader;

public class Main {
    public static void main(String[] args) throws Exception {
        var in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null;) {
            System.out.println("echo: " + line);
        }
        System.err.println("done");
        System.exit(3);
    }
}
"""
JAVA_BROKEN = """public class Main {
    public static void main(String[] args) {
        undefinedMethod();
    }
}
"""
JAVA_GREETER = """import java.util.List;

/** The public class is not named after the file (Main.java). */
public class Greeter {
    record Greeting(String who) {}

    public static void main(String[] args) {
        for (var greeting : List.of(new Greeting("world"))) {
            System.out.println("hello, " + greeting.who() + " from " + Greeter.class.getName());
        }
    }
}

class Helper {
    static void main() {}
}
"""
JAVA_BIG_ARRAY = """public class Main {
    public static void main(String[] args) {
        byte[] block = new byte[100 * 1024 * 1024];
        java.util.Arrays.fill(block, (byte) 7);
        long sum = 0;
        for (byte b : block) sum += b;
        System.out.println(sum + " " + Runtime.getRuntime().maxMemory() / (1024 * 1024));
    }
}
"""
HELLO = {
    "c": (C_HELLO, "hello from c 42\n"),
    "cpp": (CPP_HELLO, "hello from c++ 42\n"),
    "java": (JAVA_HELLO, "hello from java 42\n"),
}
ECHO = {"c": C_ECHO, "cpp": CPP_ECHO, "java": JAVA_ECHO}
BROKEN = {
    "c": (C_BROKEN, "undefined_symbol"),
    "cpp": (CPP_BROKEN, "conversion from"),
    "java": (JAVA_BROKEN, "undefinedMethod"),
}


async def run(rpc: RpcClient, params: dict[str, Any], timeout: float = 170) -> dict[str, Any]:
    result = await rpc.result("execution.run", params, timeout=timeout)
    assert isinstance(result, dict), result
    assert set(result) >= RUN_FIELDS, result
    assert isinstance(result["durationMs"], int)
    assert isinstance(result["exitCode"], int)
    return result


@pytest.fixture
async def nothing_left_behind(docker: aiodocker.Docker, server_process: ServerProcess) -> Any:
    yield

    async def none_left() -> bool:
        return not await run_containers(docker, server_process.instance)

    # removal happens after the reply, in the background: give it a moment, not forever
    if not await wait_until(none_left, timeout=15):
        left = await run_containers(docker, server_process.instance)
        pytest.fail(f"execution.run left containers: {[c['Id'][:12] for c in left]}")


pytestmark = pytest.mark.usefixtures("nothing_left_behind")


async def test_python_hello(rpc: RpcClient) -> None:
    result = await run(rpc, {"language": "python", "code": "print('hello')"})
    assert result["stdout"] == "hello\n"
    assert result["stderr"] == ""
    assert result["exitCode"] == 0
    assert result["timedOut"] is False
    assert result["truncated"] is False


async def test_python_stdin_stderr_and_exit_code(rpc: RpcClient) -> None:
    code = (
        "import sys\n"
        "data = sys.stdin.read()\n"
        "print(data.upper(), end='')\n"
        "print('warn', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    result = await run(rpc, {"language": "py", "code": code, "stdin": "echo me\n"})
    assert result["stdout"] == "ECHO ME\n"
    assert result["stderr"] == "warn\n"
    assert result["exitCode"] == 3


async def test_javascript(rpc: RpcClient) -> None:
    result = await run(rpc, {"language": "js", "code": "console.log(6 * 7)"})
    assert result["stdout"] == "42\n", result
    assert result["exitCode"] == 0


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_go_compiles_and_runs(rpc: RpcClient) -> None:
    result = await run(rpc, {"language": "go", "code": GO_HELLO})
    assert "compile" in result, result
    assert set(result["compile"]) >= COMPILE_FIELDS, result
    assert result["compile"]["exitCode"] == 0, result["compile"]
    assert result["stdout"] == "hello from go 42\n", result
    assert result["exitCode"] == 0


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_go_compile_error_does_not_run(rpc: RpcClient) -> None:
    result = await run(rpc, {"language": "golang", "code": GO_BROKEN})
    compiled = result["compile"]
    assert compiled["exitCode"] != 0, result
    assert "undefinedFunction" in compiled["stdout"] + compiled["stderr"], compiled
    assert result["exitCode"] == compiled["exitCode"]
    assert result["stdout"] == ""
    assert result["timedOut"] is False


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_csharp(rpc: RpcClient) -> None:
    result = await run(rpc, {"language": "csharp", "code": CSHARP_HELLO})
    assert result["compile"]["exitCode"] == 0, result["compile"]
    assert result["stdout"] == "hello from c# 42\n", result
    assert result["exitCode"] == 0


@pytest.mark.timeout(60)
async def test_timeout(rpc: RpcClient) -> None:
    started = time.monotonic()
    result = await run(
        rpc,
        {
            "language": "python",
            "code": "print('spin', flush=True)\nwhile True:\n    pass\n",
            "timeoutSeconds": 1,
        },
    )
    assert time.monotonic() - started < 30
    assert result["timedOut"] is True
    assert result["exitCode"] == 124
    assert result["stdout"] == "spin\n"


@pytest.mark.timeout(60)
async def test_output_flood(rpc: RpcClient) -> None:
    started = time.monotonic()
    code = "import sys\nwhile True:\n    sys.stdout.write('y' * 4096)\n"
    result = await run(rpc, {"language": "python", "code": code, "timeoutSeconds": 30})
    assert time.monotonic() - started < 25, "the flood was not cut at the output cap"
    assert result["truncated"] is True
    assert 0 < len(result["stdout"]) <= MIB


async def test_memory_limit(rpc: RpcClient) -> None:
    result = await run(
        rpc, {"language": "python", "code": "x = b'x' * (1024 ** 3)", "memoryLimitMB": 64}
    )
    assert result["exitCode"] == 137, result
    assert result["timedOut"] is False


async def test_unknown_language(rpc: RpcClient) -> None:
    error = await rpc.error(
        "execution.run",
        {"language": "brainfuck", "code": "+"},
        code=-32003,
        kind="unsupported_language",
    )
    assert "python" in error["data"]["supported"]


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"language": "python"}, ("code",)),
        ({"code": "print(1)"}, ("language",)),
        (
            {"language": "python", "code": "1", "memoryLimitMB": 999999},
            ("memoryLimitMB", "memory_limit_mb", "memoryLimitMb"),
        ),
        (
            {"language": "python", "code": "1", "timeoutSeconds": -1},
            ("timeoutSeconds", "timeout_seconds"),
        ),
        ({"language": "python", "code": "1", "stdin": 5}, ("stdin",)),
    ],
)
async def test_bad_params(rpc: RpcClient, params: dict[str, Any], names: tuple[str, ...]) -> None:
    error = await rpc.error("execution.run", params)
    assert_invalid_params(error, *names)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("language", ["c", "c++", "java"])
async def test_c_family_and_java_hello(rpc: RpcClient, language: str) -> None:
    name = RUNTIMES.get(language).name
    code, expected = HELLO[name]
    result = await run(rpc, {"language": language, "code": code})
    assert set(result["compile"]) >= COMPILE_FIELDS, result
    assert result["compile"]["exitCode"] == 0, result["compile"]
    assert result["stdout"] == expected, result
    assert result["stderr"] == "", result
    assert result["exitCode"] == 0


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("language", ["c", "cpp", "java"])
async def test_c_family_and_java_stdin(rpc: RpcClient, language: str) -> None:
    result = await run(rpc, {"language": language, "code": ECHO[language], "stdin": "one\ntwo ✓\n"})
    assert result["compile"]["exitCode"] == 0, result["compile"]
    assert result["stdout"] == "echo: one\necho: two ✓\n", result
    assert result["stderr"] == "done\n", result
    assert result["exitCode"] == 3


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("language", ["c", "cpp", "java"])
async def test_c_family_and_java_compile_error_does_not_run(rpc: RpcClient, language: str) -> None:
    code, message = BROKEN[language]
    result = await run(rpc, {"language": language, "code": code})
    compiled = result["compile"]
    assert compiled["exitCode"] != 0, result
    assert message in compiled["stdout"] + compiled["stderr"], compiled
    assert result["exitCode"] == compiled["exitCode"]
    assert result["stdout"] == ""
    assert result["timedOut"] is False


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_java_compile_error_names_the_submitted_file(rpc: RpcClient) -> None:
    code = JAVA_BROKEN.replace("public class Main", "public class Greeter")
    result = await run(rpc, {"language": "java", "code": code})
    assert result["compile"]["exitCode"] == 1, result
    assert "Main.java:3: error: cannot find symbol" in result["compile"]["stderr"], result


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_java_public_class_not_named_after_the_file(rpc: RpcClient) -> None:
    result = await run(rpc, {"language": "java", "code": JAVA_GREETER})
    assert result["compile"]["exitCode"] == 0, result["compile"]
    assert result["compile"]["stderr"] == "", result["compile"]
    assert result["stdout"] == "hello, world from Greeter\n", result
    assert result["stderr"] == "", result
    assert result["exitCode"] == 0


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_java_fits_the_default_memory_limit(rpc: RpcClient) -> None:
    result = await run(rpc, {"language": "java", "code": JAVA_BIG_ARRAY})
    assert result["exitCode"] == 0, result
    total, max_heap_mb = result["stdout"].split()
    assert int(total) == 7 * 100 * MIB
    assert 256 <= int(max_heap_mb) < 512, result  # most of the 512 MB, not the JVM's 25%


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("language", RUNTIMES.names())
async def test_sample_programs_greet(rpc: RpcClient, language: str) -> None:
    runtime = RUNTIMES.get(language)
    result = await run(rpc, {"language": language, "code": runtime.sample, "stdin": "Ada\n"})
    assert result.get("compile", {"exitCode": 0})["exitCode"] == 0, result["compile"]
    assert result["stdout"] == "What is your name? Hello, Ada!\n", result
    assert result["stderr"] == "", result
    assert result["exitCode"] == 0
