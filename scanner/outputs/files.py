"""Writing an output file atomically, and keeping the results when that fails.

A report is written to a temporary file in the destination's own folder, flushed to disk
(fsync) and renamed over the destination (``os.replace``), so a reader never sees half a
report and an old report survives a failed write. Only a regular file (or a new one) is
replaced so: a device, a pipe or a terminal (``-o /dev/null``, ``-o /dev/stdout``, a
FIFO) is written to as it is, since renaming over it would put a plain file in its place
(as root, that replaces /dev/null for the whole machine); a symbolic link to a report is
followed, so the link stays and its file is replaced. When the destination cannot be written
(missing folder, no permission, full disk), the same text goes to a file in the system's
temporary folder instead, and the caller says where: the scan's results are never lost.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from scanner.outputs.pieces import Text


class OutputError(Exception):
    """An output could not be written where asked; ``kept_at`` holds the results instead
    (None when even the temporary folder failed)."""

    def __init__(self, path: str, reason: str, kept_at: str | None) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path, self.reason, self.kept_at = path, reason, kept_at


def _mode_for(target: Path) -> int:
    """The mode a replaced file had, else what the umask gives a new file."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_fifo(path: str | Path, text: Text) -> None:
    """Write to a named pipe that someone reads. A blocking open of a FIFO with no reader
    waits for one for ever (the scan hung at its very end); opened without blocking, it
    fails at once with ENXIO instead, and the results are kept elsewhere."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, "a named pipe that no process reads") from None
        raise
    os.set_blocking(fd, True)  # a reader is there: let it read at its own pace
    with os.fdopen(fd, "wb") as stream:
        _write_text(stream, text)


# Encoded a slice at a time: a report of a few thousand devices is tens of MB, and its
# whole UTF-8 copy would sit beside the text at the scan's peak of memory.
_SLICE = 1 << 20


def _write_text(handle: BinaryIO, text: Text) -> None:
    for piece in (text,) if isinstance(text, str) else text:
        for start in range(0, len(piece), _SLICE):
            handle.write(piece[start:start + _SLICE].encode("utf-8"))


def write_atomic(path: str | Path, text: Text) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; OSError when it cannot."""
    try:
        mode = os.stat(path).st_mode  # follows links: what a plain write would reach
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISFIFO(mode):
        _write_fifo(path, text)
        return
    if mode is not None and not stat.S_ISREG(mode):
        with open(path, "wb") as stream:  # a device or terminal: never renamed over
            _write_text(stream, text)
        return
    target = Path(os.path.realpath(path))  # through a link: replace its file, keep the link
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp's file is private (0600); give the report the mode a plain write would.
        os.fchmod(fd, _mode_for(target))
        with os.fdopen(fd, "wb") as handle:
            _write_text(handle, text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename is durable only once the folder's entry is on disk too.
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def keep_elsewhere(name: str, text: Text) -> str | None:
    """Save ``text`` in the temporary folder under a fresh name; its path, or None."""
    try:
        fd, tmp = tempfile.mkstemp(prefix="dicomscan-", suffix=f"-{Path(name).name}")
        with os.fdopen(fd, "wb") as handle:
            _write_text(handle, text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        return None
    return tmp


def write_or_keep(path: str | Path, text: Text) -> None:
    """Write atomically; on failure keep the text in a temporary file and raise
    ``OutputError`` naming both."""
    try:
        write_atomic(path, text)
    except OSError as exc:
        kept = keep_elsewhere(str(path), text)
        raise OutputError(str(path), exc.strerror or str(exc), kept) from exc
