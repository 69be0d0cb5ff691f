"""``edit_file``'s rule: replace an exact piece of text that occurs exactly once.

Requiring one match (unless ``replace_all``) is what makes an edit safe to apply blind: a
model that quotes too little context gets told where the other matches are instead of
having the wrong one changed.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EditError", "Replaced", "replace_exact"]

SHOWN_LINES = 10
"""At most this many line numbers are listed for an ambiguous ``old_string``."""


class EditError(ValueError):
    """The edit cannot be applied as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Replaced:
    text: str
    count: int


def replace_exact(text: str, old: str, new: str, *, replace_all: bool = False) -> Replaced:
    """``text`` with ``old`` replaced by ``new``: exactly one occurrence, or every one with
    ``replace_all``. Raises ``EditError`` when there is none, or several without it."""
    if not old:
        raise EditError("old_string is empty: quote the exact text to replace")
    if old == new:
        raise EditError("old_string and new_string are the same: nothing would change")
    count = text.count(old)
    if count == 0:
        hint = ""
        if old.strip() and old.strip() in text:
            hint = " (it does with different leading or trailing whitespace)"
        raise EditError(
            f"old_string does not occur in the file{hint}; read_file to see its current text "
            "and quote it exactly, whitespace and indentation included"
        )
    if count > 1 and not replace_all:
        lines = _lines_of(text, old)
        listed = ", ".join(str(line) for line in lines[:SHOWN_LINES])
        if len(lines) > SHOWN_LINES:
            listed += ", ..."
        raise EditError(
            f"old_string occurs {count} times (at lines {listed}); include more of the "
            "surrounding text to make it unique, or pass replace_all=true to change every one"
        )
    return Replaced(text.replace(old, new), count)


def _lines_of(text: str, needle: str) -> list[int]:
    """The 1-based line numbers where each (non-overlapping) occurrence starts."""
    lines: list[int] = []
    start = text.find(needle)
    while start >= 0:
        lines.append(text.count("\n", 0, start) + 1)
        start = text.find(needle, start + len(needle))
    return lines
