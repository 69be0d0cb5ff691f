"""The interactive-run doors of RUN.md: framing A (``/ws``) and framing B (``/ws/session/{id}``)."""

from codebeaker.live.framing_a import terminal_socket
from codebeaker.live.framing_b import pending_run_socket

__all__ = ["pending_run_socket", "terminal_socket"]
