"""Peer text is data: make what a peer sent safe for a human output.

A DICOM version name such as ``fo-dicom [/x]`` is rich markup to ``Console.print``, and
an ANSI or OSC sequence in a banner would drive the reader's terminal. Every string a
peer can influence goes through ``for_rich`` before a table cell or a printed line gets
it. Control characters (C0, DEL, C1, which include ESC and the 8-bit CSI/OSC
introducers) are replaced by a visible ``\\xNN`` so the evidence stays readable; JSON
outputs keep the exact value and do not use this module.
"""

from __future__ import annotations

import re

from rich.markup import escape as _escape_markup

# C0 controls except none (tab and newline too: one cell, one line), DEL, and C1.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with every control character shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def for_rich(text: object) -> str:
    """``text`` as a literal in rich markup: controls made visible, then markup escaped."""
    return _escape_markup(visible(str(text)))
