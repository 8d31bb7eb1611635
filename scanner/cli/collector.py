"""When Python's cyclic garbage collector runs during a command.

Start-up (click, pydantic building the model's schemas, asyncio, the engine) makes a few
hundred thousand objects that all live until the process ends. Collecting while they are
made finds nothing and, measured on a one-port scan, cost about 15 ms; walking them all
again in the collection the interpreter makes at exit cost about 55 ms more. Both are
skipped here. Collection itself stays on for the work: a scan of a large range still
frees its cycles as it goes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def loading() -> Iterator[None]:
    """No collection while the block imports and builds what the command keeps; then
    what it made is frozen (later collections skip it) and collection is on again.
    Nested blocks leave the outer block in charge."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


def before_exit() -> None:
    """The process is ending: the interpreter's last collection need not walk what it
    holds (files are closed and flushed by then; the operating system takes the rest)."""
    gc.freeze()
