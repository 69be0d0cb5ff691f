"""What the server writes is bounded and always JSON: capped error lists, clipped echoes,
no NaN."""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel, ConfigDict

from codebeaker.api.wire import (
    MAX_DETAILED_ERRORS,
    MAX_ECHO_CHARS,
    MAX_FIELD_ERRORS,
    dumps,
    field_errors,
    parse,
)
from codebeaker.exceptions import InvalidParamsError
from codebeaker.settings import Settings


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    numbers: list[int] = []


def errors_of(data: object) -> list[dict[str, object]]:
    with pytest.raises(InvalidParamsError) as caught:
        parse(Strict, data, Settings())
    return caught.value.errors


def test_error_lists_are_capped_with_a_count_of_the_rest() -> None:
    errors = errors_of({f"k{n}": 1 for n in range(500)})
    assert len(errors) == MAX_FIELD_ERRORS + 1
    assert errors[0] == {
        "loc": ["k0"],
        "msg": "Extra inputs are not permitted",
        "type": "extra_forbidden",
    }
    assert errors[-1] == {"loc": [], "msg": "480 more errors not listed", "type": "too_many_errors"}


def test_a_few_errors_are_listed_whole() -> None:
    errors = errors_of({"numbers": ["a", 2, "b"]})
    assert [error["loc"] for error in errors] == [["numbers", 0], ["numbers", 2]]


def test_past_the_detail_limit_errors_are_only_counted() -> None:
    count = MAX_DETAILED_ERRORS + 1
    assert errors_of({"numbers": ["x"] * count}) == [
        {
            "loc": [],
            "msg": f"{count} errors, too many to list (unknown keys, or many bad items?)",
            "type": "too_many_errors",
        }
    ]


def test_a_client_key_is_echoed_clipped() -> None:
    (error,) = errors_of({"k" * 100_000: 1})
    assert error["loc"] == ["k" * MAX_ECHO_CHARS + "…"]
    long_msg = field_errors([{"loc": ["a"], "msg": "m" * 10_000, "type": "t"}])[0]["msg"]
    assert isinstance(long_msg, str)
    assert len(long_msg) <= 201


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_dumps_refuses_numbers_json_has_not(number: float) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        dumps({"x": number})


def test_dumps_is_ascii_so_its_length_is_its_size() -> None:
    text = dumps({"name": "café\udce9", "nul": "\0"})
    assert text.isascii()
    assert len(text) == len(text.encode())
