"""What every model shares: frozen, strict pydantic models and one clock.

Start-up time: a scan pays for building every model below at import (the report's schema
needs them all), so the model modules keep that cheap. They do without ``from __future__
import annotations`` (pydantic would compile and evaluate each field's annotation string),
and their list and dict defaults come from the functions here rather than the builtins
(pydantic reads a default factory's signature, which for a builtin means parsing its
text signature: about half a millisecond a field).
"""

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


def utcnow() -> datetime:
    return datetime.now(UTC)


def empty_list() -> list[Any]:
    return []


def empty_dict() -> dict[str, Any]:
    return {}


def checked_regex(value: str | None) -> str | None:
    """A validator for a field holding a regular expression from a data file: one that
    does not compile is the file's error, said when it is loaded, not when it is used."""
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class Frozen(BaseModel):
    # No NaN or infinity in any setting or result: "wait NaN seconds" means nothing.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def model_post_init(self, context: Any, /) -> None:
        # Each instance's set of the fields it was given (pydantic's fields_set) is about
        # 700 bytes, and models of one kind are given the same fields: one set is kept
        # per distinct content and shared. Safe for frozen models: pydantic changes the
        # set only on assignment, which they refuse, and model_copy copies it first.
        given = self.__pydantic_fields_set__
        key = frozenset(given)
        shared = _FIELD_SETS.get(key)
        if shared is None:
            if len(_FIELD_SETS) < _FIELD_SETS_AT_MOST:
                _FIELD_SETS[key] = given
        elif shared is not given:
            object.__setattr__(self, "__pydantic_fields_set__", shared)


_FIELD_SETS: dict[frozenset[str], set[str]] = {}
_FIELD_SETS_AT_MOST = 4096
