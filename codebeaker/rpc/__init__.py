"""The JSON-RPC layer: params, methods, error mapping and frame dispatch."""

from codebeaker.rpc.dispatch import handle_frame
from codebeaker.rpc.methods import METHODS, Services

__all__ = ["METHODS", "Services", "handle_frame"]
