"""CodeBeaker's Python SDK."""
