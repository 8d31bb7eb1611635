"""The three benchmark sections: detection, throughput and TLS, each on peers it starts."""

from __future__ import annotations

import asyncio
import cProfile
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopback_lab import LOCALHOST, Lab, loopback_only, port_free
from measure import Timing, repeat
from runners import (
    counting_proxy,
    dicom_ports_json,
    dicom_ports_result,
    nmap_dicom_count,
    nmap_dicom_ports,
    run_cli,
    run_job,
    run_nmap,
    scan_settings,
)

from scanner.lab import peers
from scanner.model import ScanResult, ScanSettings

CERTS = Path(__file__).resolve().parent.parent / "fixtures" / "certs"
# The throughput lab: its own /24 inside 127.0.0.0/8, away from the tests' 127.0.0.1.
THROUGHPUT_NET = "127.77.0"
# nmap 7.93 dicom-ping's portrule: these ports, or a port whose service is already "dicom".
NMAP_DICOM_PORTS = (104, 2345, 2761, 2762, 4242, 11112)
STANDARD_PORTS = (104, 11112, 4242)


# --------------------------------------------------------------------------- 1. detection


@dataclass
class Row:
    label: str
    wall: Timing
    found: int
    of: int
    note: str = ""


# What each section hands to the report.
Detection = tuple[list[Row], list[str]]
Throughput = tuple[list[tuple[str, Timing, int]], list[str]]
Tls = tuple[list[tuple[str, Timing, int, str]], list[str]]


def bench_detection(the_lab: Lab, n: int, runs: int) -> Detection:
    standard = [p for p in STANDARD_PORTS if port_free(LOCALHOST, p)][:n]
    ports = list(standard)
    while len(ports) < n:
        port = peers.free_port(LOCALHOST)
        if port not in ports and port not in NMAP_DICOM_PORTS:
            ports.append(port)
    the_lab.storescp([(LOCALHOST, p) for p in ports])
    ports.sort()
    notes = [
        f"{n} storescp peers on 127.0.0.1, ports {', '.join(map(str, ports))} "
        f"({len(standard)} on nmap's DICOM ports)"
    ]
    if len(standard) < min(n, len(STANDARD_PORTS)):
        busy = sorted(set(STANDARD_PORTS) - set(standard))
        notes.append(f"standard port(s) {busy} busy on this machine: not used")

    cli_t, cli_doc = repeat(lambda: run_cli([LOCALHOST], ports), runs)
    settings = scan_settings([LOCALHOST], ports)
    job_t, job_res = repeat(lambda: run_job(settings), runs)
    det_t, det_res = repeat(lambda: run_job(settings, detection_only=True), runs)
    nmap_t, nmap_xml = repeat(lambda: run_nmap(ports, "dicom-ping"), runs)
    nmap_found = nmap_dicom_ports(nmap_xml)
    missed = sorted(set(ports) - nmap_found)
    rows = [
        Row("dicomscan scan (subprocess, full checks)", cli_t, len(dicom_ports_json(cli_doc)), n),
        Row(
            "dicomscan ScanJob in-process, full checks", job_t, len(dicom_ports_result(job_res)), n
        ),
        Row(
            "dicomscan ScanJob in-process, detect only", det_t, len(dicom_ports_result(det_res)), n
        ),
        Row("nmap -sT --script dicom-ping", nmap_t, len(nmap_found), n),
    ]
    notes.append(f"nmap dicom-ping missed ports: {', '.join(map(str, missed)) or 'none'}")
    return rows, notes


# --------------------------------------------------------------------------- 2. throughput


async def _raw_detection(
    endpoints: Sequence[tuple[str, int]], settings: ScanSettings, rounds: int, concurrency: int
) -> int:
    """A bare asyncio loop: probe_port + identify_service (detect, release), no engine."""
    from probes.identify import identify_service
    from probes.ports import probe_port

    slots = asyncio.Semaphore(concurrency)

    async def one(host: str, port: int) -> bool:
        async with slots:
            _, conn = await probe_port(host, port, settings.timeouts.connect)
            if conn is None:
                return False
            try:
                service = await identify_service(conn, settings)
            finally:
                await conn.close()
            return service.name == "dicom"

    work = [one(h, p) for _ in range(rounds) for h, p in endpoints]
    return sum(await asyncio.gather(*work))


def bench_throughput(
    the_lab: Lab, hosts: int, runs: int, rounds: int, cprofile: Path | None
) -> Throughput:
    addresses = [loopback_only(f"{THROUGHPUT_NET}.{i}") for i in range(1, hosts + 1)]
    # Port 104 on every host, as on an imaging network, unless something already has it.
    port = 104 if all(port_free(a, 104) for a in addresses) else peers.free_port(addresses[0])
    the_lab.storescp([(a, port) for a in addresses])
    spec = f"{addresses[0]}-{hosts}"
    settings = scan_settings([spec], [port])
    assert settings.targets == addresses, settings.targets

    full_t, full_res = repeat(lambda: run_job(settings), runs)
    det_t, det_res = repeat(lambda: run_job(settings, detection_only=True), runs)
    endpoints = [(a, port) for a in addresses]
    # One connection in flight per peer, as the engine has with one port per host.
    concurrency = len(endpoints)
    raw_t, raw_found = repeat(
        lambda: asyncio.run(_raw_detection(endpoints, settings, rounds, concurrency)), runs
    )
    # The same sweep end to end: the CLI (interpreter start-up included) against nmap.
    cli_runs = min(runs, 3)
    cli_t, cli_doc = repeat(lambda: run_cli([spec], [port]), cli_runs)
    nmap_t, nmap_root = repeat(lambda: run_nmap([port], "dicom-ping", spec), cli_runs)
    results = [
        ("dicomscan scan (subprocess, full checks)", cli_t, len(dicom_ports_json(cli_doc))),
        ("nmap -sT --script dicom-ping", nmap_t, nmap_dicom_count(nmap_root)),
        ("ScanJob, detect + default follow-up checks", full_t, len(dicom_ports_result(full_res))),
        ("ScanJob, detection only (follow-ups off)", det_t, len(dicom_ports_result(det_res))),
        ("bare loop: probe_port + identify_service", raw_t, raw_found),
    ]
    notes = [
        f"{hosts} storescp peers, one per address {addresses[0]}..{addresses[-1]}, port {port}; "
        f"bare loop: {rounds} rounds x {hosts} services, {concurrency} at a time",
        "cpu/wall: this process's CPU time over wall time (the peers run on the other core)",
    ]
    if cprofile is not None:
        profiler = cProfile.Profile()
        profiler.enable()
        run_job(settings)
        profiler.disable()
        profiler.dump_stats(cprofile)
        notes.append(f"cProfile of one full ScanJob run written to {cprofile}")
    return results, notes


# --------------------------------------------------------------------------- 3. TLS


def bench_tls(the_lab: Lab, runs: int) -> Tls:
    key, cert = CERTS / "server.key", CERTS / "server.pem"
    args = ["+tls", str(key), str(cert), "--profile-bcp195", "-ic"]
    port = peers.free_port(LOCALHOST)
    the_lab.storescp([(LOCALHOST, port)], args)

    nmap_scripts = "ssl-enum-ciphers,ssl-cert"
    nmap_t, nmap_xml = repeat(lambda: run_nmap([port], nmap_scripts), runs)
    cli_t, cli_doc = repeat(lambda: run_cli([LOCALHOST], [port]), runs)
    settings = scan_settings([LOCALHOST], [port])
    job_t, job_res = repeat(lambda: run_job(settings), runs)

    # Connections: one more run of each through the counting proxy.
    with counting_proxy(port) as (proxy_port, count):
        run_nmap([proxy_port], nmap_scripts)
        nmap_conns, count[0] = count[0], 0
        proxied = run_cli([LOCALHOST], [proxy_port])
        cli_conns, count[0] = count[0], 0
        run_job(scan_settings([LOCALHOST], [proxy_port]))
        job_conns = count[0]

    nmap_versions = sorted(
        table.get("key", "")
        for script in nmap_xml.iter("script")
        if script.get("id") == "ssl-enum-ciphers"
        for table in script.findall("table")
    )
    nmap_cert = any(s.get("id") == "ssl-cert" for s in nmap_xml.iter("script"))
    ours = _tls_summary(cli_doc)
    rows = [
        ("dicomscan scan (subprocess)", cli_t, cli_conns, ours),
        ("dicomscan ScanJob in-process", job_t, job_conns, _tls_summary_result(job_res)),
        (
            "nmap ssl-enum-ciphers,ssl-cert",
            nmap_t,
            nmap_conns,
            f"versions {', '.join(nmap_versions) or 'none'}; cert {'yes' if nmap_cert else 'no'}",
        ),
    ]
    notes = [
        f"storescp +tls server.key server.pem --profile-bcp195 -ic on 127.0.0.1:{port}; "
        f"connections counted on one more run of each through a counting proxy",
        f"dicomscan through the proxy: {_tls_summary(proxied)}",
    ]
    return rows, notes


def _services(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [svc for host in document["hosts"] for svc in host["services"]]


def _tls_summary(document: dict[str, Any]) -> str:
    for svc in _services(document):
        summary = next((o for o in svc["observations"] if o.get("kind") == "tls-summary"), None)
        if summary is None:
            return f"{svc['name']}: no TLS summary"
        return (
            f"{svc['name']}, versions {', '.join(summary['versions_accepted']) or 'none'}, "
            f"DICOM inside {summary['dicom_inside']}, profile {summary['best_profile']}, "
            f"client cert required {summary['client_cert_required']}"
        )
    return "no service"


def _tls_summary_result(result: ScanResult) -> str:
    document: dict[str, Any] = json.loads(result.model_dump_json())
    return _tls_summary(document)
