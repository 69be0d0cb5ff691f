"""``CodeBeaker``: the same client for code without an event loop. It runs ``AsyncCodeBeaker``
on a loop in a thread of its own, so both have one implementation and one behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from codebeaker_client.client import AsyncCodeBeaker
from codebeaker_client.connection import Listener
from codebeaker_client.errors import ConnectionLost, Partial
from codebeaker_client.files import AsyncFiles
from codebeaker_client.models.commands import DirectoryEntry
from codebeaker_client.models.contexts import ContextInfo
from codebeaker_client.models.jsonrpc import OutputChunk
from codebeaker_client.models.results import RunResult, SessionSummary
from codebeaker_client.process import AsyncProcess
from codebeaker_client.results import ExecResult, Execution, Result
from codebeaker_client.session import AsyncContexts, AsyncSession, Cmd

__all__ = ["CodeBeaker", "Contexts", "Files", "Process", "Session"]

T = TypeVar("T")


class _Portal:
    """An event loop in a daemon thread, and a way to run coroutines on it and wait."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="codebeaker-client", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError(
                "a CodeBeaker call from inside one of its own callbacks would wait for ever;"
                " hand the work to another thread, or use AsyncCodeBeaker"
            )
        if self._loop.is_closed():
            coroutine.close()
            raise ConnectionLost("the client was closed", sent=False)
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


class Process:
    """A spawned command: iterate for its output chunks; ``write``, ``close_stdin``, ``wait``,
    ``cancel``."""

    def __init__(self, portal: _Portal, process: AsyncProcess) -> None:
        self._portal = portal
        self._process = process
        self.id = process.id

    def __iter__(self) -> Iterator[OutputChunk]:
        while True:
            try:
                yield self._portal.run(self._process.__anext__())
            except StopAsyncIteration:
                return

    @property
    def done(self) -> bool:
        return self._process.done

    def output_so_far(self) -> Partial:
        return self._process.output_so_far()

    def wait(self) -> ExecResult:
        return self._portal.run(self._process.wait())

    def write(self, data: str, *, eof: bool = False) -> int:
        return self._portal.run(self._process.write(data, eof=eof))

    def close_stdin(self) -> None:
        self._portal.run(self._process.close_stdin())

    def cancel(self) -> ExecResult:
        return self._portal.run(self._process.cancel())


class Files:
    """``Session.files``: see ``AsyncFiles``."""

    def __init__(self, portal: _Portal, files: AsyncFiles) -> None:
        self._portal = portal
        self._files = files

    def read_text(self, path: str, *, max_bytes: int | None = None) -> str:
        return self._portal.run(self._files.read_text(path, max_bytes=max_bytes))

    def read_bytes(self, path: str, *, max_bytes: int | None = None) -> bytes:
        return self._portal.run(self._files.read_bytes(path, max_bytes=max_bytes))

    def write(self, path: str, data: str | bytes) -> int:
        return self._portal.run(self._files.write(path, data))

    def list(
        self, path: str = ".", *, recursive: bool = False, include_hidden: bool = False
    ) -> list[DirectoryEntry]:
        listing = self._files.list(path, recursive=recursive, include_hidden=include_hidden)
        return self._portal.run(listing)

    def mkdir(self, path: str) -> None:
        self._portal.run(self._files.mkdir(path))

    def copy(self, source: str, destination: str, *, overwrite: bool = True) -> None:
        self._portal.run(self._files.copy(source, destination, overwrite=overwrite))

    def remove(self, path: str, *, recursive: bool = False) -> None:
        self._portal.run(self._files.remove(path, recursive=recursive))

    def exists(self, path: str) -> bool:
        return self._portal.run(self._files.exists(path))

    def upload(self, local: str | Path, remote: str) -> int:
        return self._portal.run(self._files.upload(local, remote))

    def download(self, remote: str, local: str | Path) -> int:
        return self._portal.run(self._files.download(remote, local))


class Contexts:
    """``Session.contexts``: see ``AsyncContexts``."""

    def __init__(self, portal: _Portal, contexts: AsyncContexts) -> None:
        self._portal = portal
        self._contexts = contexts

    def create(
        self, *, cwd: str | None = None, env: Mapping[str, str] | None = None
    ) -> ContextInfo:
        return self._portal.run(self._contexts.create(cwd=cwd, env=env))

    def list(self) -> list[ContextInfo]:
        return self._portal.run(self._contexts.list())

    def restart(self, context: str) -> ContextInfo:
        return self._portal.run(self._contexts.restart(context))

    def close(self, context: str) -> None:
        self._portal.run(self._contexts.close(context))


class Session:
    """A sandbox session: see ``AsyncSession``. ``with`` closes it unless ``detach()``."""

    def __init__(self, portal: _Portal, session: AsyncSession) -> None:
        self._portal = portal
        self._session = session
        self.id = session.id
        self.language = session.language
        self.files = Files(portal, session.files)
        self.contexts = Contexts(portal, session.contexts)

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.language}>"

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._portal.run(self._session.__aexit__(exc_type, exc, traceback))

    def detach(self) -> str:
        return self._session.detach()

    def close(self) -> None:
        self._portal.run(self._session.close())

    def exec(
        self,
        cmd: Cmd,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> ExecResult:
        run = self._session.exec(cmd, cwd=cwd, env=env, stdin=stdin, timeout=timeout, check=check)
        return self._portal.run(run)

    def spawn(
        self,
        cmd: Cmd,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout: float | None = None,
    ) -> Process:
        started = self._session.spawn(cmd, cwd=cwd, env=env, stdin=stdin, timeout=timeout)
        return Process(self._portal, self._portal.run(started))

    def cancel(self, request_id: int | str | None = None) -> list[int | str]:
        return self._portal.run(self._session.cancel(request_id))

    def run_code(
        self,
        code: str,
        *,
        context: str | None = None,
        timeout: float | None = None,
        on_output: Callable[[OutputChunk], None] | None = None,
        on_result: Callable[[Result], None] | None = None,
    ) -> Execution:
        """``on_output``/``on_result`` are called on the client's event-loop thread."""
        run = self._session.run_code(
            code, context=context, timeout=timeout, on_output=on_output, on_result=on_result
        )
        return self._portal.run(run)

    def interrupt(self, context: str = "default") -> bool:
        return self._portal.run(self._session.interrupt(context))


class CodeBeaker:
    """A client of one CodeBeaker server, for code without an event loop; the same methods
    as ``AsyncCodeBeaker``. Close it (or use ``with``) to end its thread."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        connect_timeout: float = 20.0,
        reconnect_attempts: int = 5,
        on_frame: Callable[[str], None] | None = None,
        on_notification: Listener | None = None,
    ) -> None:
        self._portal = _Portal()
        self._client = AsyncCodeBeaker(
            url,
            api_key=api_key,
            connect_timeout=connect_timeout,
            reconnect_attempts=reconnect_attempts,
            on_frame=on_frame,
            on_notification=on_notification,
        )
        self.connection = self._client.connection

    def __enter__(self) -> CodeBeaker:
        try:
            self._portal.run(self.connection.open())
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the connection and the client's thread; calling it again does nothing."""
        with contextlib.suppress(ConnectionLost):
            self._portal.run(self._client.close())
        self._portal.stop()

    def create_session(
        self,
        language: str,
        *,
        memory_limit_mb: int | None = None,
        cpu_limit: float | None = None,
        idle_timeout_minutes: float | None = None,
        max_lifetime_minutes: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Session:
        start = self._client.create_session(
            language,
            memory_limit_mb=memory_limit_mb,
            cpu_limit=cpu_limit,
            idle_timeout_minutes=idle_timeout_minutes,
            max_lifetime_minutes=max_lifetime_minutes,
            env=env,
        )

        async def created() -> AsyncSession:
            return await start

        return Session(self._portal, self._portal.run(created()))

    def get_session(self, session_id: str) -> Session:
        return Session(self._portal, self._portal.run(self._client.get_session(session_id)))

    def list_sessions(self) -> list[SessionSummary]:
        return self._portal.run(self._client.list_sessions())

    def run(
        self,
        language: str,
        code: str,
        *,
        stdin: str | None = None,
        timeout: float | None = None,
        memory_limit_mb: int | None = None,
    ) -> RunResult:
        one_shot = self._client.run(
            language, code, stdin=stdin, timeout=timeout, memory_limit_mb=memory_limit_mb
        )
        return self._portal.run(one_shot)
