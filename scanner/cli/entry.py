"""The process entry point: the command group, with standard output guarded.

A reader that goes away (``dicomscan rules list | head -1``), a full disk behind ``>
file`` or a closed descriptor (``>&-``) made a write to standard output raise an OSError
in whichever command was printing: a traceback, exit 1 (click's answer to a broken pipe,
which reads as "failed findings") or an ``Exception ignored`` at exit. Every command's
stdout goes through one guarded writer instead, so any of them ends the same way: exit 4
("an output could not be written"), one line on stderr (none for a broken pipe: the
reader left on purpose), and no further write attempted.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import Any

import click

from scanner.cli.collector import before_exit, loading
from scanner.cli.common import EXIT_INTERRUPTED, EXIT_OUTPUT


class StdoutFailed(BaseException):
    """Standard output cannot be written. A BaseException, so neither click's OSError
    handling nor a command's ``except Exception`` takes it for something else."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))
        self.error = error


class GuardedStdout(io.RawIOBase):
    """File descriptor 1, raising StdoutFailed on the first failed write and swallowing
    every write after it (the interpreter's final flush included)."""

    def __init__(self, fd: int | None) -> None:
        super().__init__()
        self._fd = fd
        self.failed = False

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._fd is not None and os.isatty(self._fd)

    def fileno(self) -> int:
        if self._fd is None:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return self._fd

    def write(self, data: Any) -> int:
        size = len(memoryview(data))
        if self.failed:
            return size
        try:
            if self._fd is None:  # the process was started with descriptor 1 closed
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            return os.write(self._fd, data)
        except OSError as exc:
            self.failed = True
            raise StdoutFailed(exc) from None


def _fill_closed_descriptors() -> None:
    """Descriptors 0-2 closed at start get /dev/null, so no file the scan opens later (an
    -o file, a server's log) becomes "standard output" for a child process or a print."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def guard_stdout() -> GuardedStdout:
    """Put the guarded writer under ``sys.stdout``, keeping its encoding and buffering.
    Standard output closed at start stays an error to write to (exit 4), not a sink."""
    old = sys.stdout
    _fill_closed_descriptors()
    raw = GuardedStdout(old.fileno() if old is not None else None)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw), encoding=getattr(old, "encoding", None) or "utf-8",
        errors=getattr(old, "errors", None) or "strict",
        line_buffering=bool(getattr(old, "line_buffering", False)) or raw.isatty())
    return raw


def _run(group: click.Command) -> int:
    """click's standalone handling, but Ctrl-C outside a scan's own handling (while a
    file is read, a job waited for) is 130 like Ctrl-C during a scan, not click's 1 (which
    reads as "failed findings")."""
    try:
        code = group.main(standalone_mode=False)
    except click.exceptions.Abort as exc:
        if sys.stderr is not None:
            print("Aborted!", file=sys.stderr)
        return EXIT_INTERRUPTED if isinstance(exc.__context__, KeyboardInterrupt) else 1
    except click.ClickException as exc:
        from scanner.cli.common import shown

        # a usage error quotes the value given (an --events list, a saved scan's key, a
        # path): its control characters are shown, not obeyed by the terminal
        exc.message = shown(exc.message)
        exc.show()
        return exc.exit_code
    return code if isinstance(code, int) else 0  # --help, --version: click.Exit's code


def main() -> None:
    with loading():
        from scanner.cli.main import main as group

    guard_stdout()
    try:
        try:
            code = _run(group)
        finally:  # output still buffered is written now, while a failure can be reported
            sys.stdout.flush()
    except StdoutFailed as exc:
        if exc.error.errno != errno.EPIPE and sys.stderr is not None:
            print(f"dicomscan: cannot write standard output: {exc}", file=sys.stderr)
        before_exit()
        sys.exit(EXIT_OUTPUT)
    before_exit()
    sys.exit(code)
