"""CodeBeaker: stateful, hardened Docker sandboxes over JSON-RPC 2.0 on a WebSocket."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("codebeaker")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
