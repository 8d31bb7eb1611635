"""``dicomscan demo``: start a small imaging lab on loopback, scan it, show the findings."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "jsonl"]),
    default="table",
    show_default=True,
)
@click.option(
    "--profile", type=click.Choice(["safe", "normal", "fast"]), default="normal", show_default=True
)
def demo(fmt: str, profile: str) -> None:
    """Start a local lab (real Orthanc and DCMTK when installed, pynetdicom otherwise), scan it,
    print the findings and stop the lab. Touches only 127.0.0.1."""
    from scanner.lab.demo_lab import run_demo

    sys.exit(run_demo(fmt, profile))
