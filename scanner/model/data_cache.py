"""The shipped data tables (rule catalogue, baselines, fingerprints, vendors, advisories,
certificates) as parsed once and kept in the user's cache folder.

Every scan that finds a service reads a dozen YAML files: importing PyYAML and parsing
them took about 30 ms of a 1 s scan. Parsed data is kept as a marshal file named by the
SHA-256 of the text it came from, so a changed file (an upgrade, an edited checkout) is
simply another entry, and a scan that finds them all never imports PyYAML. Only our own
files come here: a user's file is checked for nesting and read by ``documents`` each time.
Marshal holds the plain types YAML gives (a table with a date in it is just not cached);
a bad or unwritable cache only costs the parse.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any


@cache
def cache_folder() -> Path:
    import platformdirs

    return platformdirs.user_cache_path("dicomscan")


def read_marshal(path: Path) -> tuple[bool, Any]:
    """(True, value) from a cache file, (False, None) when it is missing or unreadable."""
    with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
        return True, marshal.loads(path.read_bytes())
    return False, None


def write_marshal(path: Path, value: Any) -> None:
    """Whole or not at all (a rename), whoever writes it at the same time; raises
    OSError, or ValueError for a value marshal cannot hold."""
    data = marshal.dumps(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise


class DataError(ValueError):
    """One of our data files is not valid YAML (a packaging or editing mistake)."""


def shipped_yaml(text: str, folder: Path | None = None) -> Any:
    """The YAML document ``text`` (one of our data files), parsed or from the cache;
    DataError when it does not parse."""
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    path = (folder or cache_folder()) / f"data-{key}.marshal"
    found, value = read_marshal(path)
    if found and isinstance(value, dict | list):
        return value
    import yaml

    try:
        value = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        raise DataError(" ".join(str(exc).split())) from None
    with contextlib.suppress(OSError, ValueError):  # no folder, or a date in it: parse again
        write_marshal(path, value)
    return value
