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


def read_bytes(path: str | os.PathLike[str], limit: int = MAX_TEXT) -> bytes:
    """The file's bytes, reading at most ``limit`` (raises TooLarge past it)."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(limit)
    return data


def read_text(path: str | os.PathLike[str], limit: int = MAX_TEXT) -> str:
    """UTF-8 text of the file, at most ``limit`` bytes (TooLarge, UnicodeDecodeError)."""
    return read_bytes(path, limit).decode("utf-8")


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
