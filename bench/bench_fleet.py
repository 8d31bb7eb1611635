#!/usr/bin/env python3
"""Central and three sensors on loopback: dispatch-to-pickup latency, results per second
into the central history, and memory of nats-server and of each sensor.

    python bench/bench_fleet.py [--jobs N] [--sensors S] [--json FILE]

Starts ``dicomscan central run`` (with Debian's nats-server) and S sensors (default 3) as
real processes, queues N jobs (default 150) round-robin over the sensors on one central
connection, each a scan of one closed loopback port (profile fast, no discovery), and waits
until every job is done. Latency: the sensor's pickup time (its first progress report)
minus central's submit time, both on this host's clock. Throughput: jobs stored per second
from the first submit to the last result stored. Memory: VmRSS/VmHWM from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanner.fleet.central import Submitter  # noqa: E402
from scanner.fleet.ledger import FINAL, JobState, Ledger  # noqa: E402
from scanner.fleet.server import running_pid  # noqa: E402
from tests.fleet_harness import Fleet, loopback_settings  # noqa: E402


def rss(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=150)
    ap.add_argument("--sensors", type=int, default=3)
    ap.add_argument("--sequential", type=int, default=30,
                    help="jobs queued one at a time first, for the idle pickup latency")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    names = [f"s{i}" for i in range(args.sensors)]
    with tempfile.TemporaryDirectory(prefix="dicomscan-bench-fleet-") as tmp:
        fleet = Fleet(Path(tmp), ack_wait=30, max_deliver=4)
        try:
            for n in names:
                fleet.add_sensor(n, "127.0.0.0/8")
            fleet.start_central()
            server_pid = running_pid(fleet.d)
            assert server_pid is not None
            idle_server = rss(server_pid)
            for n in names:
                fleet.start_sensor(n)
            for n in names:
                fleet.wait_sensor_ready(n)
            idle_sensor = rss(fleet.sensors[names[0]].pid)
            settings = loopback_settings("20300", "fast")

            async def queue() -> list[str]:
                async with Submitter(fleet.d) as sub:
                    return [await sub.submit(names[i % len(names)], settings)
                            for i in range(args.jobs)]

            async def one_by_one() -> list[float]:
                """Idle sensors: each job queued once the previous one is done."""
                out = []
                async with Submitter(fleet.d) as sub:
                    for i in range(args.sequential):
                        job_id = await sub.submit(names[i % len(names)], settings)
                        while True:
                            row = sub.ledger.get(job_id)
                            if row is not None and row.state in FINAL:
                                break
                            await asyncio.sleep(0.05)
                        if row.picked_at:
                            out.append(1000 * (row.picked_at - row.submitted_at))
                return out

            idle_lat = asyncio.run(one_by_one())
            started = time.time()
            ids = asyncio.run(queue())
            ledger = Ledger(fleet.d.ledger)
            deadline = time.monotonic() + 600
            while True:
                rows = [r for r in ledger.all(limit=args.jobs + 10) if r.job_id in set(ids)]
                if all(r.state in FINAL for r in rows) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            ledger.close()
            done = [r for r in rows if r.state is JobState.DONE]
            lat = [1000 * (r.picked_at - r.submitted_at) for r in done if r.picked_at]
            last = max(r.finished_at or 0 for r in done)
            report = {
                "jobs": args.jobs, "sensors": args.sensors, "done": len(done),
                "idle_pickup_ms_p50": round(statistics.median(idle_lat), 1),
                "idle_pickup_ms_p95": round(pct(idle_lat, 0.95), 1),
                "idle_pickup_ms_max": round(max(idle_lat), 1),
                "burst_pickup_ms_p50": round(statistics.median(lat), 1),
                "burst_pickup_ms_p95": round(pct(lat, 0.95), 1),
                "results_per_s": round(len(done) / (last - started), 1),
                "nats_server_mb_idle": idle_server,
                "nats_server_mb_after": rss(server_pid),
                "sensor_mb_idle": idle_sensor,
                "sensor_mb_after": {n: rss(fleet.sensors[n].pid) for n in names},
            }
        finally:
            fleet.stop()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
