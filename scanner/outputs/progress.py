"""Progress on a terminal; silence when output is piped or --quiet is given."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Report = Callable[[int, int, str], None]


@contextlib.contextmanager
def progress_reporter(enabled: bool) -> Iterator[Report | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ports"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("scan", total=None, last="")

        def report(done: int, total: int, last: str) -> None:
            progress.update(task, completed=done, total=total, last=last)

        yield report
