"""IPv4 numeric shorthands: ``0x7f000001``, ``2130706433``, ``127.1``, ``0177.0.0.1``.

The system's resolver reads them as addresses (``inet_aton``: hex, octal, fewer than
four parts), other tools read some of them otherwise (``0177`` is 177 to many, 127 to
``inet_aton``), and ``ipaddress`` takes none of them. A scanner with do-not-probe fences
and scope limits must not guess which host was meant, so wherever a host name is
accepted these are refused with the dotted form the system would have used.
"""

from __future__ import annotations

import socket

# inet_aton also takes "127.1 anything": only these characters can make a shorthand.
_NUMERIC = frozenset("0123456789abcdefABCDEFxX.")


def numeric_shorthand(text: str) -> str | None:
    """The dotted quad the system reads ``text`` as, when ``text`` is an IPv4 address
    written any other way; None for a dotted quad, a name or anything else."""
    if not text or not set(text) <= _NUMERIC:
        return None
    try:
        dotted = socket.inet_ntoa(socket.inet_aton(text))
    except OSError:
        return None
    return None if dotted == text else dotted


def shorthand_problem(text: str) -> str | None:
    """The one-line refusal for a numeric shorthand, or None when ``text`` is not one."""
    dotted = numeric_shorthand(text.strip())
    if dotted is None:
        return None
    return (f"{text.strip()}: a numeric shorthand for {dotted}; write the address dotted "
            "(tools read hex, octal and short forms differently)")


# Decimal numbers, here beside the address shorthands so that a scan's start-up loads no
# module more: str.isdigit() is also true for superscripts ('¹', which int() refuses: a
# ValueError traceback after the check passed) and other scripts' digits ('٤', which int()
# reads as 4 while cron, nats-server or a peer read it otherwise). Only ASCII 0-9 make a
# number; re patterns take [0-9] for the same reason (\d is Unicode).
def is_decimal(text: str) -> bool:
    """True when ``text`` is one or more of the ASCII digits 0-9 and nothing else."""
    return text.isascii() and text.isdigit()
