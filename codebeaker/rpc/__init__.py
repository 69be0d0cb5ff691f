"""The JSON-RPC layer: params, methods, error mapping and frame dispatch."""

from codebeaker.rpc.dispatch import dumps, handle_frame
from codebeaker.rpc.methods import METHODS, Services

__all__ = ["METHODS", "Services", "dumps", "handle_frame"]
