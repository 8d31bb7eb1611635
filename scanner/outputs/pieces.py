"""An output written a piece at a time (a host, an event), so a large report never sits
whole in memory: a /23 of live DICOM devices is a 16 MB JSON document, and its text (twice,
while the serialiser hands it over) was the scan's peak of memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator


class Pieces:
    """The text of an output as the pieces ``make`` yields, made anew on each iteration:
    a second pass (the results kept elsewhere after a failed write) renders them again."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[], Iterator[str]]) -> None:
        self._make = make

    def __iter__(self) -> Iterator[str]:
        return self._make()

    def text(self) -> str:
        return "".join(self._make())


Text = str | Pieces


def whole(text: Text) -> str:
    return text if isinstance(text, str) else text.text()
