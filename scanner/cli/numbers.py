"""Number options that refuse what no setting can mean.

click's FloatRange lets "nan" through (every comparison with it is false) and a scan
would then wait NaN seconds; "inf" is refused only where the range has an upper bound.
"""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteRange(click.FloatRange):
    """A FloatRange that takes only finite numbers."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if isinstance(number, float) and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number
