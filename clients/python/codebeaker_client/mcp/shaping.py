"""Fitting output into a tool result: long text keeps its head and tail, several texts share
one budget, and files are read a page of lines at a time.

A model reads every character a tool returns, and the start (what ran) and the end (how it
ended) of a long output matter most; the middle is cut with a note saying how much went and
how to read it all. Pure functions, so the rules are unit-tested without a server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Cut", "Page", "cut_middle", "fit", "page_lines", "share"]

SNAP = 200
"""How far a cut may move to fall on a line boundary instead of mid-line."""


@dataclass(frozen=True)
class Cut:
    """A text after ``cut_middle``: ``text`` is what is shown, marker included."""

    text: str
    cut_chars: int = 0
    """Characters left out (0: the text is whole)."""
    cut_lines: int = 0
    """Line breaks among the characters left out."""

    @property
    def cut(self) -> bool:
        return self.cut_chars > 0


def cut_middle(text: str, budget: int, hint: str = "") -> Cut:
    """``text`` unchanged when it fits in ``budget`` characters; otherwise its head and tail
    (about half each, moved to a line boundary when one is near) around a marker saying
    how much was cut and, with ``hint``, how to read the rest."""
    if len(text) <= budget:
        return Cut(text)
    budget = max(budget, 0)
    head_end = _snap_back(text, budget // 2)
    tail_start = _snap_forward(text, len(text) - (budget - head_end))
    tail_start = max(tail_start, head_end)
    cut_chars = tail_start - head_end
    cut_lines = text.count("\n", head_end, tail_start)
    marker = f"[... {cut_chars:,} characters"
    if cut_lines:
        marker += f" ({cut_lines:,} lines)"
    marker += " cut here"
    marker += f"; {hint}" if hint else ""
    marker += " ...]"
    head, tail = text[:head_end], text[tail_start:]
    joint = "" if not head or head.endswith("\n") else "\n"
    return Cut(f"{head}{joint}{marker}\n{tail}", cut_chars, cut_lines)


def _snap_back(text: str, end: int) -> int:
    """``end`` moved back just past a newline within ``SNAP`` characters, if there is one."""
    newline = text.rfind("\n", max(0, end - SNAP), end)
    return newline + 1 if newline >= 0 else end


def _snap_forward(text: str, start: int) -> int:
    """``start`` moved forward just past a newline within ``SNAP`` characters, if any."""
    newline = text.find("\n", start, min(len(text), start + SNAP))
    return newline + 1 if newline >= 0 else start


def share(lengths: Sequence[int], budget: int) -> list[int]:
    """Split ``budget`` among texts of ``lengths``: a text that needs less than an equal
    share keeps all of it, and what it leaves over goes to the longer ones (water-filling).
    So a short stderr is never cut to make room for a huge stdout."""
    shares = [0] * len(lengths)
    pending = sorted(range(len(lengths)), key=lambda index: lengths[index])
    left = max(budget, 0)
    while pending:
        equal = left // len(pending)
        index = pending[0]
        if lengths[index] <= equal:
            shares[index] = lengths[index]
            left -= lengths[index]
            pending.pop(0)
            continue
        for index in pending:
            shares[index] = equal
        break
    return shares


def fit(texts: Mapping[str, str], budget: int, hint: str = "") -> dict[str, Cut]:
    """Cut several texts (named) so that together they keep at most ``budget`` characters."""
    names = list(texts)
    shares = share([len(texts[name]) for name in names], budget)
    return {
        name: cut_middle(texts[name], limit, hint)
        for name, limit in zip(names, shares, strict=True)
    }


@dataclass(frozen=True)
class Page:
    """Lines ``first``..``last`` (1-based, inclusive) of a text of ``total`` lines."""

    text: str
    first: int
    last: int
    total: int

    @property
    def next_offset(self) -> int | None:
        """The ``offset`` that reads on, or None when the page reaches the end."""
        return self.last + 1 if self.last < self.total else None


def page_lines(text: str, offset: int, limit: int | None, budget: int) -> Page:
    """Whole lines from line ``offset`` (1-based): at most ``limit`` of them and at most
    ``budget`` characters (a single line longer than that is cut, so a page is never empty
    while there are lines left)."""
    lines = text.splitlines(keepends=True)
    total = len(lines)
    first = max(offset, 1)
    if first > total:
        return Page("", first, first - 1, total)
    end = total if limit is None else min(total, first - 1 + max(limit, 1))
    taken: list[str] = []
    size = 0
    for line in lines[first - 1 : end]:
        if taken and size + len(line) > budget:
            break
        if not taken and len(line) > budget:
            line = cut_middle(line, budget).text
        taken.append(line)
        size += len(line)
    return Page("".join(taken), first, first - 1 + len(taken), total)
