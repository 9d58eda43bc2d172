"""uvicorn, bounded: how `serve` runs the HTTP service so that no client can hold it.

uvicorn closes a connection that idles between requests (keep-alive), but not one
that never finishes its request: a client that connects and sends nothing, or sends
half a header and waits, holds a file descriptor for ever, and enough of them stop
the server answering anyone. `GuardedProtocol` gives every request a deadline from
its first byte (or from the connection) to its last body byte, caps the bytes of a
request's head, and caps the connections open at once. The body's size is capped by
`web.BodyLimit`, chunked or not. A kept-alive connection is closed after
`REQUESTS_PER_CONNECTION` requests, so that `serve --workers` clients spread over
the workers.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from acode_placement.errors import InputError

MAX_CONNECTIONS = 256  # open at once; more are answered 503 and closed
REQUEST_SECONDS = 10.0  # from a request's first byte to its last
IDLE_SECONDS = 5  # between requests on a kept-alive connection
MAX_HEAD_BYTES = 64 * 1024  # request line and headers
# Requests a kept-alive connection carries before it is closed (nginx's
# `keepalive_requests`, whose default this was until 1.19.10). `serve --workers`
# shares one listening socket, and the worker awake when a burst of clients
# connects accepts them all; a kept-alive client then stayed on it for good (30 of
# wrk's 32 connections on one worker in one run: p99 194 ms against 41 ms). Closed
# now and then, a client reconnects to whichever worker is free to accept.
REQUESTS_PER_CONNECTION = 100

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"connection: close\r\ncontent-length: 0\r\n\r\n"
)


class HeadTooLargeError(Exception):
    """A request's line and headers exceed the limit (answered 431)."""


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request deadline, a head size cap and a
    connection cap, and a number of requests a connection carries before it is closed
    (class attributes, so that `serve` can set them)."""

    max_connections = MAX_CONNECTIONS
    request_seconds = REQUEST_SECONDS
    max_head_bytes = MAX_HEAD_BYTES
    requests_per_connection = REQUESTS_PER_CONNECTION

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes: int | None = None  # counting while a request's head arrives
        self._too_large = False
        self._requests = 0  # begun on this connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(_BUSY)
            transport.close()
            return
        self._start_request()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._start_request()  # the next request on a kept-alive connection
        in_head = self._head_bytes is not None
        super().data_received(data)
        if in_head and self._head_bytes is not None:  # the head is still not complete
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
                self._head_too_large()

    def on_message_begin(self) -> None:
        if self._deadline is None:  # a pipelined request, begun in an earlier chunk
            self._start_request()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            # Raised in a parser callback, this stops the parser; uvicorn then answers
            # with send_400_response, which answers 431 instead.
            self._too_large = True
            raise HeadTooLargeError(size)
        super().on_headers_complete()
        self._requests += 1
        if self._requests >= self.requests_per_connection and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with `connection: close`, then closed

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            self._head_too_large()
        else:
            super().send_400_response(msg)

    def _head_too_large(self) -> None:
        self._stop()
        self.transport.write(_HEAD_TOO_LARGE)
        self.transport.close()

    def on_message_complete(self) -> None:
        self._stop()  # the whole request arrived: the application's time is its own
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)

    def _start_request(self) -> None:
        self._stop()
        self._head_bytes = 0
        self._deadline = self.loop.call_later(self.request_seconds, self._expired)

    def _stop(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or InputError saying in one line why not
    (address in use, no such host, not allowed), before anything is served."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise InputError(f"--host {host} --port {port}: cannot listen: {reason}") from None
    sock.set_inheritable(True)
    return sock


def config(
    app: Any,
    host: str,
    port: int,
    protocol: type[GuardedProtocol] = GuardedProtocol,
    **options: Any,
) -> uvicorn.Config:
    """uvicorn's settings for `serve`: the guarded protocol, short idle timeouts."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        timeout_keep_alive=IDLE_SECONDS,
        log_level="warning",
        server_header=False,
        **options,
    )
