"""The JSON-RPC door: frame dispatch, methods and notifications over the service."""

from codebeaker.rpc.dispatch import dumps, handle_frame
from codebeaker.rpc.methods import METHODS

__all__ = ["METHODS", "dumps", "handle_frame"]
