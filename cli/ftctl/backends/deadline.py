"""An overall time limit for one HTTP attempt, enforced on the socket.

httpx's read timeout bounds each read, so a server that sends one byte a second (in the status
line, the headers or the body) never trips it. ``Deadline`` wraps httpcore's network backend: every
connect, read, write and TLS handshake gets at most the time left before the deadline, and raises
httpcore's own timeout once it has passed, which httpx reports as a ``TimeoutException``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

import httpcore
from ftctl.backends.lean_httpx import httpx


class Deadline(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self.inner = inner or httpcore.SyncBackend()
        self.until: float | None = None

    def install(self, transport: httpx.HTTPTransport) -> httpx.HTTPTransport:
        """Put this between ``transport``'s connection pool and its sockets (httpcore 1.x keeps the
        backend in ``_network_backend``; if a future version moves it, only the body loop's own
        check of the deadline remains)."""
        pool = getattr(transport, "_pool", None)
        if pool is not None and hasattr(pool, "_network_backend"):
            self.inner = pool._network_backend
            pool._network_backend = self
        return transport

    @contextmanager
    def within(self, seconds: float) -> Iterator[float]:
        """Limit everything inside to ``seconds``; yields the monotonic time it ends."""
        self.until = time.monotonic() + seconds
        try:
            yield self.until
        finally:
            self.until = None

    def left(self, timeout: float | None, error: type[Exception] = httpcore.ReadTimeout) -> float | None:
        if self.until is None:
            return timeout
        remaining = self.until - time.monotonic()
        if remaining <= 0:
            raise error("the request's deadline has passed")
        return remaining if timeout is None else min(timeout, remaining)

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        stream = self.inner.connect_tcp(host, port, timeout=self.left(timeout, httpcore.ConnectTimeout),
                                        local_address=local_address, socket_options=socket_options)
        return _Stream(stream, self)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        stream = self.inner.connect_unix_socket(path, timeout=self.left(timeout, httpcore.ConnectTimeout),
                                                socket_options=socket_options)
        return _Stream(stream, self)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self.inner, self.deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, timeout=self.deadline.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, timeout=self.deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self.inner.start_tls(ssl_context, server_hostname=server_hostname,
                                            timeout=self.deadline.left(timeout, httpcore.ConnectTimeout)),
                       self.deadline)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)
