"""The browser protocols' models (RUN.md), which only the server speaks; the shared wire
models are in ``codebeaker_client.models``."""
