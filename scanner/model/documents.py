"""Documents users hand the scanner (YAML configuration, policies, baselines; saved JSON
scans): their shape, not only their content, must never crash the reader.

libyaml's loader builds a nested document by recursing in C: a few ten thousand levels of
``[[[...`` end the process with a segmentation fault, and PyYAML's own loader and
Python's json module raise RecursionError. Real documents nest a handful of levels.
"""

from __future__ import annotations

MAX_NESTING = 100


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
