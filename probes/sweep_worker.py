"""A sweep helper process: ``sweep_core`` driven by a plain poll loop on another CPU.

Run by path with the standard library only (``python -S -E sweep_worker.py FD``; the
scan's side is ``probes.sweep_remote``). FD is one end of a SOCK_SEQPACKET socket pair;
each message is one record:

    scan -> helper   C <json config> | H <host TAB ports,... TAB countable 0/1> lines
                     R <host> lines | N
    helper -> scan   O <host> <port> <rtt ms>, with the open socket's fd attached
                     D <host TAB port|state|rtt|reason TAB ...> lines
                     Q <host TAB refused 0/1> lines (countable hosts with nothing open)
                     E (every host is done)

The open socket is passed over (SCM_RIGHTS) and closed here; its slots stay taken until
the scan sends R for the host, as with the in-process sweep. The helper exits at E, or
when the scan's end of the socket closes (the scan ended or died).
"""

from __future__ import annotations

import _socket
import contextlib
import json
import math
import os
import resource
import select
import socket
import sys
import time

if __name__ == "__main__":
    import sweep_core  # type: ignore[import-not-found]  # run by path: a sibling
else:
    from probes import sweep_core

CHUNK = 60_000  # bytes per message: well inside a Unix socket's buffer


def pack_lines(kind: bytes, lines: list[str]) -> list[bytes]:
    """Lines as messages of at most about CHUNK bytes each, every one headed by ``kind``."""
    out: list[bytes] = []
    batch: list[str] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line) + 1
        if size >= CHUNK:
            out.append(kind + b" " + "\n".join(batch).encode())
            batch, size = [], 0
    if batch:
        out.append(kind + b" " + "\n".join(batch).encode())
    return out


def serve(ctrl: socket.socket) -> None:
    config = json.loads(ctrl.recv(1 << 16)[2:])
    # As the engine's raise_fd_limit does; this file may import the standard library only.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = config["slots"] + 64  # its share of the connections, and some to spare
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard),
                                hard))
    done: list[str] = []
    quiet: list[str] = []

    def opened(host: str, port: int, sock: _socket.socket, rtt: float) -> None:
        ctrl.setblocking(True)  # a full buffer waits for the scan to read, as D records do
        try:
            socket.send_fds(ctrl, [f"O {host} {port} {rtt:.3f}".encode()], [sock.fileno()])
        finally:
            ctrl.setblocking(False)
        sock.close()  # the scan has its own descriptor now

    def finished(host: str, attempts: list[sweep_core.Attempt]) -> None:
        parts = [host]
        for port, state, reason, rtt in attempts:
            parts.append(f"{port}|{state}|{'' if rtt is None else f'{rtt:.3f}'}|{reason}")
        done.append("\t".join(parts))

    def counted(host: str, refused: bool) -> None:
        quiet.append(f"{host}\t{int(refused)}")

    core = sweep_core.Core(
        timeout=config["timeout"], slots=sweep_core.Counter(config["slots"]),
        window=config["slots"], per_host=config["per_host"], spacing=config["spacing"],
        pace=sweep_core.RateSlots(config["rate"], config["late"]).take,
        on_open=opened, on_done=finished, on_quiet=counted,
    )
    poller = select.epoll()
    poller.register(ctrl.fileno(), select.EPOLLIN)
    poller.register(core.epoll.fileno(), select.EPOLLIN)
    no_more = False
    ctrl.setblocking(False)
    while True:
        wake = core.step()
        if done or quiet:
            ctrl.setblocking(True)  # the scan reads as it goes; a full buffer just waits
            for message in (*pack_lines(b"D", done), *pack_lines(b"Q", quiet)):
                ctrl.send(message)
            ctrl.setblocking(False)
            done.clear()
            quiet.clear()
        if no_more and core.idle():
            ctrl.setblocking(True)
            ctrl.send(b"E")
            return
        timeout = -1.0 if wake == math.inf else max(0.0, wake - time.monotonic())
        for fd, _ in poller.poll(timeout):
            if fd == core.epoll.fileno():
                core.ready()
                continue
            while True:
                try:
                    message = ctrl.recv(1 << 17)
                except BlockingIOError:
                    break
                if not message:
                    return  # the scan is gone
                kind, body = message[:1], message[2:].decode()
                if kind == b"H":
                    for line in body.split("\n"):
                        host, ports, countable = line.split("\t")
                        core.add(host, tuple(int(p) for p in ports.split(",") if p),
                                 countable == "1")
                elif kind == b"R":
                    for host in body.split("\n"):
                        core.release(host)
                elif kind == b"N":
                    no_more = True


if __name__ == "__main__":
    channel = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(channel)
    except (KeyboardInterrupt, BrokenPipeError, ConnectionResetError):
        pass  # Ctrl-C reaches the whole process group: the scan keeps what it has
    finally:
        channel.close()
    os._exit(0)
