#!/usr/bin/env python3
"""dicomscan against nmap on real DCMTK peers on loopback, in one run.

    python bench/bench_dicom.py [--peers N] [--hosts M] [--runs R] [--quick]
                                [--peer-nodelay] [--json FILE] [--cprofile FILE]

1. Detection: N DCMTK ``storescp`` peers on 127.0.0.1, three on the standard DICOM ports
   104, 11112 and 4242 when free, the rest on free high ports. ``dicomscan scan`` (fast
   profile, as a subprocess and in-process) and ``nmap -sT --script dicom-ping`` scan the
   same port set. nmap's dicom-ping only runs on 104, 2345, 2761, 2762, 4242 and 11112,
   so it misses the peers on other ports; dicomscan sends every open port an
   A-ASSOCIATE-RQ.
2. Throughput: M storescp peers, one per loopback address 127.77.0.1..M, scanned in one
   in-process ScanJob: DICOM services per second with the default follow-up checks, with
   detection only (follow-up probes switched off), and for a bare asyncio loop of
   ``probe_port`` + ``identify_service``.
3. TLS: one ``storescp +tls --profile-bcp195 -ic`` service, a full dicomscan scan of that
   port beside ``nmap --script ssl-enum-ciphers,ssl-cert``: time and TCP connections.

Every address is on loopback; every peer is stopped at the end, on Ctrl-C or error too.
Wall times are medians of R runs (hyperfine-like), after one unmeasured warm-up run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loopback_lab import lab
from measure import compile_bytecode, machine
from sections import Detection, Throughput, Tls, bench_detection, bench_throughput, bench_tls

from scanner.lab import peers

# --------------------------------------------------------------------------- report


def print_report(
    info: dict[str, str], detection: Detection, throughput: Throughput, tls: Tls, runs: int
) -> None:
    print(
        f"\nmachine: {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, "
        f"Linux {info['kernel']}, load average at start {info['loadavg']}\n"
        f"code: dicomscan {info['dicomscan']} at {info['commit']}\n"
        f"tools: nmap {info['nmap']}, {info['dcmtk']}"
        f"{' (peers with TCP_NODELAY=1)' if info.get('peer_nodelay') == 'yes' else ''}\n"
        f"times: median of {runs} runs after one warm-up [min-max]; "
        f"nmap/this > 1 means dicomscan was faster"
    )

    rows, notes = detection
    nmap_s = rows[-1].wall.median
    print("\n== 1. DICOM detection on the same port set (dicomscan --profile fast) ==")
    for note in notes:
        print(f"   {note}")
    print(f"   {'':44} {'wall s':>8} {'[min-max]':>13} {'DICOM found':>12} {'nmap/this':>10}")
    for row in rows:
        print(
            f"   {row.label:44} {row.wall.median:8.3f} {row.wall.spread():>13} "
            f"{f'{row.found}/{row.of}':>12} {nmap_s / row.wall.median:9.2f}x"
        )

    results, notes = throughput
    print("\n== 2. Throughput on loopback, fast profile: DICOM services detected per second ==")
    for note in notes:
        print(f"   {note}")
    print(
        f"   {'':44} {'wall s':>8} {'[min-max]':>13} {'services':>9} {'per s':>8} {'cpu/wall':>9}"
    )
    for label, timing, found in results:
        print(
            f"   {label:44} {timing.median:8.3f} {timing.spread():>13} {found:9d} "
            f"{found / timing.median:8.0f} {timing.cpu_share:9.2f}"
        )

    tls_rows, notes = tls
    nmap_tls = tls_rows[-1][1].median
    print("\n== 3. TLS grading of one DICOM-over-TLS service ==")
    for note in notes:
        print(f"   {note}")
    print(f"   {'':32} {'wall s':>8} {'[min-max]':>13} {'TCP conns':>10} {'nmap/this':>10}  what")
    for label, timing, conns, what in tls_rows:
        print(
            f"   {label:32} {timing.median:8.3f} {timing.spread():>13} {conns:10d} "
            f"{nmap_tls / timing.median:9.2f}x  {what}"
        )


def as_json(
    info: dict[str, str], detection: Detection, throughput: Throughput, tls: Tls
) -> dict[str, Any]:
    """The same figures, for keeping beside a README or comparing runs."""
    return {
        "machine": info,
        "detection": [
            {
                "label": r.label,
                "median_s": r.wall.median,
                "runs_s": r.wall.runs,
                "found": r.found,
                "peers": r.of,
            }
            for r in detection[0]
        ],
        "throughput": [
            {
                "label": label,
                "median_s": t.median,
                "runs_s": t.runs,
                "services": n,
                "per_s": n / t.median,
            }
            for label, t, n in throughput[0]
        ],
        "tls": [
            {"label": label, "median_s": t.median, "runs_s": t.runs, "connections": c, "what": w}
            for label, t, c, w in tls[0]
        ],
        "notes": detection[1] + throughput[1] + tls[1],
    }


# --------------------------------------------------------------------------- main


def _exit_on_signal(signum: int, _frame: Any) -> None:
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the finally blocks stop the peers.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=8, help="detection peers (default 8)")
    parser.add_argument("--hosts", type=int, help="throughput peers, 1-254 (default 200; quick 40)")
    parser.add_argument("--runs", type=int, help="timed runs per figure (default 5; quick 3)")
    parser.add_argument("--quick", action="store_true", help="fewer peers and runs (~15 s)")
    parser.add_argument(
        "--peer-nodelay",
        action="store_true",
        help="start the peers with TCP_NODELAY=1 (Nagle off), unlike stock Debian DCMTK",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--cprofile", type=Path, help="write a cProfile of one full ScanJob")
    opts = parser.parse_args(argv)
    if opts.peers < 1 or (opts.hosts is not None and not 1 <= opts.hosts <= 254):
        parser.error("--peers must be at least 1 and --hosts between 1 and 254")
    hosts = opts.hosts or (40 if opts.quick else 200)
    runs = opts.runs or (3 if opts.quick else 5)
    rounds = 5 if opts.quick else 10
    if not os.access(peers.STORESCP_BIN, os.X_OK):
        print(f"{peers.STORESCP_BIN} not found: apt-get install dcmtk", file=sys.stderr)
        return 2
    if shutil.which("nmap") is None:
        print("nmap not found: apt-get install nmap", file=sys.stderr)
        return 2

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    compile_bytecode()
    info = machine()
    info["peer_nodelay"] = "yes" if opts.peer_nodelay else "no"
    started = time.perf_counter()
    try:
        with lab(opts.peer_nodelay) as the_lab:
            detection = bench_detection(the_lab, opts.peers, runs)
            throughput = bench_throughput(the_lab, hosts, runs, rounds, opts.cprofile)
            tls = bench_tls(the_lab, runs)
    except KeyboardInterrupt:
        print("\ninterrupted: all peers stopped", file=sys.stderr)
        return 130
    print_report(info, detection, throughput, tls, runs)
    if opts.json:
        opts.json.write_text(json.dumps(as_json(info, detection, throughput, tls), indent=2))
    with contextlib.suppress(OSError):
        end_load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        print(f"\nload average at end {end_load}", end="")
    print(f"\nbench took {time.perf_counter() - started:.1f} s; all peers stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
