"""Bare TCP connects in bulk, for the sweep's port phase.

One ``epoll`` holds every socket whose connect is in flight and is itself watched by the
event loop, so a ready batch is handled in one callback; the timeouts, all the same
length, wait in one first-in first-out queue behind one timer. Per attempt that leaves a
socket, its connect and a future, instead of a selector registration, a timer handle and
their removal (``connect_socket``): about five times fewer microseconds per refused
connect on loopback (bench/README.md). Linux only; elsewhere ``connect_socket`` is used.
Nothing is sent: a connected socket goes back to the caller untouched.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
from collections import deque

AVAILABLE = hasattr(select, "epoll")


class Connector:
    """``await connector.connect(host, port)``: the connected socket, or OSError (its errno's
    subclass) or TimeoutError. ``close()`` when the scan is over."""

    def __init__(self, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._epoll = select.epoll()
        self._waiting: dict[int, tuple[socket.socket, asyncio.Future[int]]] = {}
        self._deadlines: deque[tuple[float, int, asyncio.Future[int]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop.add_reader(self._epoll.fileno(), self._ready)

    async def connect(self, host: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                             socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            err = sock.connect_ex((host, port))
            if err == errno.EINPROGRESS:
                err = await self._wait(sock)
            if err:
                raise OSError(err, os.strerror(err))
        except BaseException:
            sock.close()
            raise
        return sock

    async def _wait(self, sock: socket.socket) -> int:
        fd = sock.fileno()
        fut: asyncio.Future[int] = self._loop.create_future()
        self._waiting[fd] = (sock, fut)
        self._epoll.register(fd, select.EPOLLOUT)
        self._deadlines.append((self._loop.time() + self._timeout, fd, fut))
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadlines[0][0], self._expire)
        try:
            return await fut
        finally:
            self._forget(fd, fut)  # cancelled or timed out: no longer watched

    def _forget(self, fd: int, fut: asyncio.Future[int]) -> None:
        entry = self._waiting.get(fd)
        if entry is not None and entry[1] is fut:
            del self._waiting[fd]
            self._epoll.unregister(fd)

    def _ready(self) -> None:
        for fd, _ in self._epoll.poll(0):
            entry = self._waiting.pop(fd, None)
            if entry is None:
                continue
            sock, fut = entry
            self._epoll.unregister(fd)
            if not fut.done():
                fut.set_result(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))

    def _expire(self) -> None:
        self._timer = None
        now = self._loop.time()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, fd, fut = self._deadlines.popleft()
            if not fut.done():  # a done future's fd may already be another socket's
                self._forget(fd, fut)
                fut.set_exception(TimeoutError())
        if self._deadlines:
            self._timer = self._loop.call_at(self._deadlines[0][0], self._expire)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop.remove_reader(self._epoll.fileno())
        for sock, fut in self._waiting.values():
            if not fut.done():
                fut.cancel()
            sock.close()
        self._waiting.clear()
        self._deadlines.clear()
        self._epoll.close()
