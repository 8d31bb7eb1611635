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
@click.option("--netns", is_flag=True,
              help="Root only: run the lab as an imaging VLAN of network namespaces "
                   "(198.18.0.0/24, no route out) to show discovery, MAC vendors and "
                   "filtered ports.")
def demo(fmt: str, profile: str, netns: bool) -> None:
    """Start a local lab (real Orthanc and DCMTK when installed, pynetdicom otherwise), scan it,
    print the findings and stop the lab. Touches only 127.0.0.1 (or, with --netns, only
    namespaces it creates)."""
    if netns:
        from scanner.lab.netns_demo import run_netns_demo

        sys.exit(run_netns_demo(fmt, profile))
    from scanner.lab.demo_lab import run_demo

    sys.exit(run_demo(fmt, profile))
