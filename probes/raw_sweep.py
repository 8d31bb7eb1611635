"""The send-and-listen loop the ARP and ICMP sweeps share, paced by the scan's rate cap.

A discovery packet is the start of a conversation as much as a connection is: a /16 of
ARP who-has sent back to back is 65,536 broadcasts that every device on the VLAN must
take in, fragile modalities included. So each packet waits for ``pace`` (a slot of the
scan's one rate cap, ``--max-rate``), as nmap's packets do under its ``--max-rate``.
Answers are read between sends, so a host's port scan starts as soon as it answers even
while a slow sweep is still sending; after the last packet the loop listens ``timeout``
seconds more for late answers.

Blocking, for a worker thread: the rate cap lives on the event loop, which ``pace``
reaches (``ThreadPace``); ``pace`` answers False when the scan is stopping.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import select
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable

# An answer: (address, MAC if the frame carries one), or None for a frame to ignore.
Parse = Callable[[bytes], tuple[str, str | None] | None]
# Called once per address that answered: address, MAC, round trip in ms, time of answer.
OnAnswer = Callable[[str, str | None, float, float], None]
Pace = Callable[[], bool]

_FRAME = 2048  # more than any ARP frame or ICMP echo reply this sweep asks for


class ThreadPace:
    """Blocks a sweep thread until the event loop's rate cap grants the next start.

    Each call submits one ``pace()`` to the loop and waits for it in short slices, so a
    scan that stops (``stop()``, or the loop cancelling the wait at shutdown) frees the
    thread within a quarter of a second instead of leaving it waiting for ever."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 pace: Callable[[], Awaitable[None]] | None) -> None:
        self._loop, self._pace = loop, pace
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def __call__(self) -> bool:
        if self._stopped.is_set():
            return False
        if self._pace is None:
            return True
        pace = self._pace

        async def slot() -> None:
            await pace()

        try:
            waiting = asyncio.run_coroutine_threadsafe(slot(), self._loop)
        except RuntimeError:  # the loop is closed
            return False
        while True:
            try:
                waiting.result(timeout=0.25)
                return not self._stopped.is_set()
            except TimeoutError:
                if self._stopped.is_set():
                    waiting.cancel()
                    return False
            except (concurrent.futures.CancelledError, asyncio.CancelledError):
                return False


def sweep(sock: socket.socket, packets: Iterable[tuple[str, Callable[[], object]]],
          parse: Parse, timeout: float, on_answer: OnAnswer, pace: Pace | None) -> None:
    """Send each packet (``send()``) when ``pace`` allows, reading answers in between;
    then listen ``timeout`` seconds after the last. Only addresses sent to count, each
    once."""
    sent_at: dict[str, float] = {}
    answered: set[str] = set()

    def drain() -> None:
        while True:
            try:
                frame = sock.recv(_FRAME, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an error queued on the socket (an ICMP one): not an answer
                return
            now = time.time()
            answer = parse(frame)
            if answer is None:
                continue
            address, mac = answer
            if address in sent_at and address not in answered:
                answered.add(address)
                on_answer(address, mac, round((now - sent_at[address]) * 1000, 3), now)

    for address, send in packets:
        if pace is not None and not pace():
            return  # the scan is stopping: send nothing more
        sent_at[address] = time.time()
        with contextlib.suppress(OSError):  # no route to it, or the link is down: silence
            send()
        drain()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            return
        drain()
