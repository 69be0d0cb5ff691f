"""session.output coalescing, without a connection: notifications land in a list."""

import asyncio
import itertools
from typing import Any

from codebeaker_client.models import OutputChunk, WireModel
from codebeaker_client.models.contexts import DisplayData

from codebeaker.rpc.streaming import FLUSH_SECONDS, OutputForwarder


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[float, dict[str, Any]]] = []

    async def __call__(self, method: str, params: WireModel) -> None:
        assert method == "session.output"
        assert isinstance(params, OutputChunk)
        self.sent.append((asyncio.get_running_loop().time(), params.to_wire()))


async def test_first_piece_goes_at_once_then_one_per_interval() -> None:
    recorder = Recorder()
    forwarder = OutputForwarder(recorder, "s1", 7)
    started = asyncio.get_running_loop().time()
    forwarder.feed("stdout", b"prompt? ")
    await asyncio.sleep(0.01)
    assert [params["data"] for _, params in recorder.sent] == ["prompt? "]
    assert recorder.sent[0][0] - started < FLUSH_SECONDS

    for index in range(50):  # 50 pieces within ~0.15 s
        forwarder.feed("stdout", f"{index},".encode())
        await asyncio.sleep(0.003)
    await forwarder.close()
    times = [at for at, _ in recorder.sent]
    assert len(recorder.sent) <= 2 + (times[-1] - times[0]) / FLUSH_SECONDS
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= FLUSH_SECONDS * 0.9
    text = "".join(params["data"] for _, params in recorder.sent)
    assert text == "prompt? " + "".join(f"{index}," for index in range(50))
    assert {params["requestId"] for _, params in recorder.sent} == {7}
    assert {params["sessionId"] for _, params in recorder.sent} == {"s1"}


async def test_streams_are_kept_apart_and_utf8_survives_splits() -> None:
    recorder = Recorder()
    forwarder = OutputForwarder(recorder, "s1", None)
    euro = "€".encode()
    forwarder.feed("stdout", euro[:1])
    forwarder.feed("stderr", b"err")
    forwarder.feed("stdout", euro[1:])
    forwarder.feed("stdout", b"\xff")  # invalid: replaced, at close at the latest
    await forwarder.close()
    by_stream: dict[str, str] = {}
    for _, params in recorder.sent:
        by_stream[params["stream"]] = by_stream.get(params["stream"], "") + params["data"]
    assert by_stream == {"stdout": "€\ufffd", "stderr": "err"}


async def test_nothing_fed_sends_nothing() -> None:
    recorder = Recorder()
    forwarder = OutputForwarder(recorder, "s1", 1)
    await forwarder.close()
    assert recorder.sent == []


async def test_a_display_follows_the_output_before_it_and_precedes_what_follows() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    async def record(method: str, params: WireModel) -> None:
        sent.append((method, params.to_wire()))

    forwarder = OutputForwarder(record, "s1", 3)
    forwarder.feed("stdout", b"a")
    forwarder.feed("stdout", b"b")  # held: within the first interval
    forwarder.show(DisplayData(kind="display", data={"text/plain": "1"}))
    forwarder.feed("stdout", b"c")
    forwarder.show(DisplayData(kind="result", data={"text/plain": "2"}))
    await forwarder.close()
    shown = [
        params["result"]["data"]["text/plain"] if method == "session.display" else params["data"]
        for method, params in sent
    ]
    assert "".join(shown) == "ab1c2"
    assert shown.index("1") > max(i for i, part in enumerate(shown) if part in ("a", "b", "ab"))
    assert shown[-1] == "2"
    assert sent[-1][1] == {
        "sessionId": "s1",
        "requestId": 3,
        "result": {"kind": "result", "data": {"text/plain": "2"}},
    }
