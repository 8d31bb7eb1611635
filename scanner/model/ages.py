"""Ages written by a person: ``36h``, ``90d``, ``12w`` (``history prune --older-than`` and a
site configuration's retention)."""

import re
from datetime import timedelta

_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_AGE = re.compile(r"([0-9]{1,6})([hdw])")


class AgeError(ValueError):
    """An age that is not a positive number of hours, days or weeks."""


def parse_age(text: str) -> timedelta:
    """``90d``, ``12w`` or ``36h`` as a timedelta; AgeError otherwise (0 too: it would
    mean every scan, which a count of scans to keep says more plainly)."""
    match = _AGE.fullmatch(text.strip().lower())
    if match is None:
        raise AgeError(f"{text!r} is not an age: a number and a unit, h (hours), d (days) "
                       "or w (weeks), e.g. 90d")
    number, unit = int(match[1]), match[2]
    if number == 0:
        raise AgeError(f"{text!r}: an age of 0 would delete every scan; use at least 1{unit}")
    return number * _UNITS[unit]
