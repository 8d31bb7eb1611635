"""Scan profiles: how hard the scanner may push a network.

Medical devices are fragile (vendors ask sites not to sweep imaging VLANs at
all), so the default is gentle: two connections at a time to a host, spaced
apart, generous timeouts. ``fast`` exists for labs and loopback benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.model import ProfileName, Timeouts


@dataclass(frozen=True)
class Profile:
    name: ProfileName
    max_concurrency: int
    per_host_connections: int
    probe_spacing: float
    max_rate: float  # new connections per second across the whole scan
    timeouts: Timeouts
    ae_guess: bool
    summary: str


PROFILES: dict[ProfileName, Profile] = {
    ProfileName.SAFE: Profile(
        name=ProfileName.SAFE,
        max_concurrency=64,
        per_host_connections=2,
        probe_spacing=0.1,
        max_rate=50.0,
        timeouts=Timeouts(connect=3.0, dicom=10.0, dimse=10.0, host=300.0),
        ae_guess=False,
        summary="default: 2 connections per host, 0.1 s between connections, no AE guessing",
    ),
    ProfileName.NORMAL: Profile(
        name=ProfileName.NORMAL,
        max_concurrency=256,
        per_host_connections=4,
        probe_spacing=0.02,
        max_rate=200.0,
        timeouts=Timeouts(connect=2.0, dicom=5.0, dimse=5.0, host=300.0),
        ae_guess=True,
        summary="robust servers: 4 connections per host, AE title guessing on",
    ),
    ProfileName.FAST: Profile(
        name=ProfileName.FAST,
        max_concurrency=1024,
        per_host_connections=64,
        probe_spacing=0.0,
        max_rate=5000.0,
        timeouts=Timeouts(connect=1.0, dicom=3.0, dimse=3.0, host=120.0),
        ae_guess=True,
        summary="labs only: 64 connections per host, no spacing",
    ),
}
