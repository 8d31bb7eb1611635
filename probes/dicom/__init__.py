"""DICOM upper-layer probe: detection, AE title exposure, unknown-peer operations.

pydicom's package imports its pixel handlers (numpy) and its test-data downloader
(requests, tqdm) whenever they are installed; the probes use neither (no pixel data is
ever decoded, nothing is downloaded), and pydicom runs without them by design. So they
are hidden while pydicom and pynetdicom load, once, here: about 0.2 s less for every
scan that finds a port open (bench/README.md). Modules already loaded are left alone.
"""

from __future__ import annotations

import sys

_NOT_NEEDED = ("numpy", "requests", "tqdm")


def _load_without_extras() -> None:
    hidden = [name for name in _NOT_NEEDED if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes "import name" fail
    try:
        import pydicom  # noqa: F401
        import pynetdicom  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


_load_without_extras()
