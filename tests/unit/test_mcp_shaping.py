"""The MCP server's pure rules: cutting long output, sharing a budget, paging files, exact
edits, and telling images and binary files from text."""

from __future__ import annotations

import pytest
from codebeaker_client.mcp.edits import EditError, replace_exact
from codebeaker_client.mcp.media import image_mime, looks_binary
from codebeaker_client.mcp.shaping import cut_middle, fit, page_lines, share

NUMBERS = "".join(f"{n}\n" for n in range(1, 100_001))


# --------------------------------------------------------------------------- cut_middle


def test_text_within_the_budget_is_untouched() -> None:
    cut = cut_middle("hello\nworld\n", 12)
    assert cut.text == "hello\nworld\n"
    assert not cut.cut
    assert cut.cut_chars == cut.cut_lines == 0


def test_long_text_keeps_its_head_and_tail_and_says_what_was_cut() -> None:
    cut = cut_middle(NUMBERS, 2000, hint="redirect it to a file")
    assert cut.text.startswith("1\n2\n3\n")
    assert cut.text.endswith("99999\n100000\n")
    assert cut.cut
    kept = len(NUMBERS) - cut.cut_chars
    assert kept <= 2000
    assert kept > 1500, "about the whole budget is used"
    assert f"{cut.cut_chars:,} characters ({cut.cut_lines:,} lines) cut here" in cut.text
    assert "redirect it to a file" in cut.text
    assert cut.cut_lines == NUMBERS.count("\n") - cut.text.count("\n") + 1


def test_cuts_fall_on_line_boundaries() -> None:
    cut = cut_middle(NUMBERS, 3000)
    head, marker_and_tail = cut.text.split("[...", 1)
    tail = marker_and_tail.split("...]\n", 1)[1]
    assert head.endswith("\n")
    head_numbers = [int(line) for line in head.splitlines()]
    tail_numbers = [int(line) for line in tail.splitlines()]
    assert head_numbers == list(range(1, len(head_numbers) + 1))
    assert tail_numbers == list(range(100_001 - len(tail_numbers), 100_001))


def test_a_single_huge_line_is_cut_mid_line() -> None:
    text = "a" * 5000 + "b" * 5000
    cut = cut_middle(text, 1000)
    assert cut.text.startswith("a" * 500)
    assert cut.text.endswith("b" * 500)
    assert cut.cut_chars == 9000
    assert cut.cut_lines == 0
    assert "(0 lines)" not in cut.text


# --------------------------------------------------------------------------- share, fit


@pytest.mark.parametrize(
    ("lengths", "budget", "expected"),
    [
        ([10, 20], 100, [10, 20]),
        ([10, 1000], 100, [10, 90]),
        ([1000, 1000], 100, [50, 50]),
        ([1000, 10, 1000], 100, [45, 10, 45]),
        ([], 100, []),
        ([5, 5], 0, [0, 0]),
    ],
)
def test_the_budget_goes_to_short_texts_whole_and_the_rest_to_long_ones(
    lengths: list[int], budget: int, expected: list[int]
) -> None:
    assert share(lengths, budget) == expected


def test_fit_never_cuts_a_short_stderr_for_a_huge_stdout() -> None:
    error = "Traceback: boom\n"
    cuts = fit({"stdout": NUMBERS, "stderr": error}, 4000)
    assert cuts["stderr"].text == error
    assert cuts["stdout"].cut
    assert len(NUMBERS) - cuts["stdout"].cut_chars <= 4000 - len(error)


# --------------------------------------------------------------------------- page_lines

TEXT = "".join(f"line {n}\n" for n in range(1, 11))


def test_a_page_reads_whole_lines_from_an_offset() -> None:
    page = page_lines(TEXT, 3, 2, 10_000)
    assert page.text == "line 3\nline 4\n"
    assert (page.first, page.last, page.total) == (3, 4, 10)
    assert page.next_offset == 5


def test_the_last_page_has_no_next_offset() -> None:
    page = page_lines(TEXT, 8, None, 10_000)
    assert page.text == "line 8\nline 9\nline 10\n"
    assert page.next_offset is None


def test_a_page_stops_at_the_budget_on_a_line_boundary() -> None:
    page = page_lines(TEXT, 1, None, 20)
    assert page.text == "line 1\nline 2\n"
    assert page.next_offset == 3


def test_a_line_longer_than_the_budget_is_cut_so_paging_goes_on() -> None:
    page = page_lines("x" * 5000 + "\nshort\n", 1, None, 1000)
    assert page.last == 1
    assert page.next_offset == 2
    assert "cut here" in page.text


def test_an_offset_past_the_end_reads_nothing() -> None:
    page = page_lines(TEXT, 50, None, 1000)
    assert page.text == ""
    assert page.next_offset is None
    assert page_lines("", 1, None, 1000).total == 0


# --------------------------------------------------------------------------- edits

SOURCE = "def f():\n    return 1\n\ndef g():\n    return 1\n"


def test_a_unique_occurrence_is_replaced() -> None:
    replaced = replace_exact(SOURCE, "def g():\n    return 1", "def g():\n    return 2")
    assert replaced.count == 1
    assert replaced.text.endswith("def g():\n    return 2\n")
    assert replaced.text.startswith("def f():\n    return 1\n")


def test_an_ambiguous_occurrence_is_refused_with_its_lines() -> None:
    with pytest.raises(EditError, match=r"occurs 2 times \(at lines 2, 5\).*replace_all"):
        replace_exact(SOURCE, "return 1", "return 2")


def test_replace_all_changes_every_occurrence() -> None:
    replaced = replace_exact(SOURCE, "return 1", "return 2", replace_all=True)
    assert replaced.count == 2
    assert "return 1" not in replaced.text


def test_a_missing_text_is_refused_and_whitespace_is_pointed_out() -> None:
    with pytest.raises(EditError, match="does not occur"):
        replace_exact(SOURCE, "return 3", "return 4")
    with pytest.raises(EditError, match="different leading or trailing whitespace"):
        replace_exact(SOURCE, "  def g():", "def h():")


@pytest.mark.parametrize(("old", "new"), [("", "x"), ("same", "same")])
def test_empty_or_no_op_edits_are_refused(old: str, new: str) -> None:
    with pytest.raises(EditError):
        replace_exact("same", old, new)


# --------------------------------------------------------------------------- media


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "image/png"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 20, "image/jpeg"),
        (b"GIF89a" + b"\0" * 20, "image/gif"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7", None),
        (b"hello", None),
    ],
)
def test_images_are_known_by_their_signature(data: bytes, mime: str | None) -> None:
    assert image_mime(data) == mime


def test_binary_files_are_told_from_text() -> None:
    assert looks_binary(b"\x7fELF\x02\x01\x01\0\0\0")
    assert looks_binary(b"\xff\xfe\xfa" * 10)
    assert not looks_binary("héllo wörld\n".encode())
    # a multi-byte character split by the sniff window is still text
    assert not looks_binary(("a" * 8191 + "é").encode())
