"""The send-and-listen loop the ARP and ICMP sweeps share, paced by the scan's rate cap.

A discovery packet is the start of a conversation as much as a connection is: a /16 of
ARP who-has sent back to back is 65,536 broadcasts that every device on the VLAN must
take in, fragile modalities included. So each packet waits for ``pace`` (a slot of the
scan's one rate cap, ``--max-rate``), as nmap's packets do under its ``--max-rate``.
Answers are read between sends, so a host's port scan starts as soon as it answers even
while a slow sweep is still sending; after the last packet the loop listens ``timeout``
seconds more for late answers.

Blocking, for a worker thread: ``pace`` (``ThreadPace``) books each packet's slot of
the scan's rate cap and answers False when the scan is stopping.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable

from probes.sweep_core import RateSlots

# An answer: (address, MAC if the frame carries one), or None for a frame to ignore.
Parse = Callable[[bytes], tuple[str, str | None] | None]
# Called once per address that answered: address, MAC, round trip in ms, time of answer.
OnAnswer = Callable[[str, str | None, float, float], None]
Pace = Callable[[], bool]

_FRAME = 2048  # more than any ARP frame or ICMP echo reply this sweep asks for


class ThreadPace:
    """Blocks a sweep thread until the scan's rate cap grants its next start: the thread
    books the slot itself (``RateSlots.reserve`` is thread-safe) and sleeps until it, so
    a packet never waits for a busy event loop. ``stop()`` (the scan is stopping) frees a
    waiting thread within a quarter of a second and lets it send nothing more."""

    def __init__(self, rate: RateSlots | None) -> None:
        self._rate = rate
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def __call__(self) -> bool:
        rate = self._rate
        if rate is None:
            return not self._stopped.is_set()
        start = rate.reserve(time.monotonic())
        while True:
            while (left := start - time.monotonic()) > 0:
                if self._stopped.wait(min(left, 0.25)):
                    return False
            now = time.monotonic()
            if not rate.late(start, now):
                return not self._stopped.is_set()
            start = rate.reserve(now)  # woke late: a fresh slot, not a bunch


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
