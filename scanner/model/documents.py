"""Documents users hand the scanner (YAML configuration, policies, baselines; saved JSON
scans): their shape, not only their content, must never crash the reader.

libyaml's loader builds a nested document by recursing in C: a few ten thousand levels of
``[[[...`` end the process with a segmentation fault, and PyYAML's own loader and
Python's json module raise RecursionError. Real documents nest a handful of levels.

Their size is capped too: a path such as /dev/zero (or a huge file given by mistake)
would otherwise be read until memory ran out. A pipe or process substitution still works.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

MAX_NESTING = 100
MIB = 1 << 20
# A site's targets, policy or configuration are kilobytes; 16 MiB is far past any real one.
MAX_TEXT = 16 * MIB
# A saved scan holds about 50 KiB per DICOM device: 256 MiB is thousands of devices.
MAX_SCAN = 256 * MIB


class TooLarge(OSError):
    """A file is longer than its reader's cap (an OSError, so every reader's 'cannot read'
    handling reports it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(errno.EFBIG, f"larger than {limit // MIB} MiB, the most accepted")

    def __str__(self) -> str:
        return str(self.strerror)


class Unconvertible(ValueError):
    """A scalar the YAML loader matched as a type but Python cannot build: an integer of
    more than 4,300 digits (Python's limit on converting digits), a date like 2026-13-40."""


def load_yaml(text: str, loader: Any) -> Any:
    """``yaml.load`` whose constructors' ValueErrors become Unconvertible (they are no
    yaml.YAMLError, so a reader's syntax handling would not catch them)."""
    import yaml

    try:
        return yaml.load(text, Loader=loader)
    except ValueError as exc:
        why = str(exc)
        if "integer string conversion" in why:
            why = "an integer of more than 4,300 digits"
        raise Unconvertible(f"a value that cannot be read: {why}") from None


def yaml_problem(exc: Exception) -> str:
    """A YAML error as one line, ``line N: problem``: PyYAML's own text spans several lines
    and quotes the document's lines back."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem is None:  # TooDeep, Unconvertible and reader errors are one line already
        return " ".join(str(exc).split())
    return f"line {mark.line + 1}: {problem}" if mark is not None else str(problem)


# A pipe or device read gives up after this long without a byte (a named pipe nobody
# writes to waited for ever, as cat does); a regular file is read at once.
PIPE_WAIT = 30.0


class Unreadable(OSError):
    """A user's file that is no file to read: a folder, a broken link, an empty file, text
    that is not UTF-8, a pipe that stays silent (one line, as TooLarge)."""

    def __init__(self, why: str, code: int = errno.EINVAL) -> None:
        super().__init__(code, why)

    def __str__(self) -> str:
        return str(self.strerror)


def file_kind(mode: int) -> str:
    return ("a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "no regular file")


def _open(path: str | os.PathLike[str]) -> int:
    """A read descriptor that never blocks in open() (a FIFO without a writer did)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if os.path.islink(path):
            raise Unreadable(f"a link to {os.readlink(path)!r}, which does not exist",
                             errno.ENOENT) from None
        raise
    except IsADirectoryError:
        raise Unreadable("a folder, not a file", errno.EISDIR) from None


def _read_waiting(fd: int, most: int, wait: float) -> bytes:
    """Up to ``most`` bytes of a pipe or device, giving up after ``wait`` seconds without
    one (Unreadable): an end or a byte resets the clock, so a slow writer still works."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    parts: list[bytes] = []
    size = 0
    while size < most:
        if not poller.poll(wait * 1000):
            raise Unreadable(f"nothing came from it for {wait:g} s (a named pipe needs a "
                             "writer; give a regular file)", errno.ETIMEDOUT)
        try:
            chunk = os.read(fd, min(most - size, 1 << 20))
        except BlockingIOError:  # woken without data (a writer came and went)
            continue
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def read_bytes(path: str | os.PathLike[str], limit: int = MAX_TEXT,
               regular: bool = False) -> bytes:
    """The file's bytes, reading at most ``limit`` (raises TooLarge past it). A folder, a
    broken link or an empty file is Unreadable; a pipe or device (``-T <(...)``,
    /dev/stdin) is read with a bounded wait, or refused when ``regular`` (a file read
    again later, such as a TLS key, must be a regular file)."""
    fd = _open(path)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise Unreadable("a folder, not a file", errno.EISDIR)
        if stat.S_ISREG(mode):
            os.set_blocking(fd, True)
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = fh.read(limit + 1)
        elif regular:
            raise Unreadable(f"{file_kind(mode)}, not a regular file")
        else:
            data = _read_waiting(fd, limit + 1, PIPE_WAIT)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise TooLarge(limit)
    if not data:
        raise Unreadable("empty (0 bytes)")
    return data


def decode_text(data: bytes) -> str:
    """UTF-8 text (a byte order mark, as Windows editors write, is dropped); UTF-16, other
    encodings and NUL bytes are Unreadable with where they are."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise Unreadable("UTF-16 text (it starts with a UTF-16 byte order mark); save it "
                         "as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise Unreadable(f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                         "save it as UTF-8") from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise Unreadable(f"a NUL byte on line {line}: not a text file")
    return text


def read_text(path: str | os.PathLike[str], limit: int = MAX_TEXT) -> str:
    """UTF-8 text of the file, at most ``limit`` bytes (TooLarge, Unreadable)."""
    return decode_text(read_bytes(path, limit))


class TooDeep(ValueError):
    """A document nests its collections deeper than ``MAX_NESTING``."""


def check_yaml_nesting(text: str, limit: int = MAX_NESTING) -> None:
    """Raise TooDeep before loading ``text`` when it nests deeper than ``limit``.

    The event parser keeps an explicit stack (no recursion), so it is safe to run first;
    its syntax errors are yaml.YAMLError, as the loader's would be.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > limit:
                line = event.start_mark.line + 1 if event.start_mark is not None else 0
                raise TooDeep(f"line {line}: nested more than {limit} levels deep")
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1
