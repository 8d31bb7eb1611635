"""The asyncio scan engine: concurrency limits, per-host gates and the probe pipeline.

A scan is one ``ScanJob``: settings in, ``ScanResult`` out, no module state, so
a job can later be shipped to another site's scanner. Results accumulate on
the job as they arrive, which is what lets Ctrl-C keep everything found so far.

Live hosts wait in a queue as addresses and a fixed pool of workers scans them, so
memory holds the hosts in flight and the hosts with something to report, not every
address: in a scan of more than ``SUMMARISE_ABOVE`` addresses a host with nothing open,
served, discovered or failed is counted in ``scan.quiet`` instead of listed. The port
phase connects in batches (``scanner.engine.port_phase``), and only a host with something
to say goes on to the workers.

Per host the pipeline is: connect to every port (the connection that finds a
port open goes straight on to service identification, which sends the DICOM
A-ASSOCIATE-RQ first), then the UDP ports, the follow-up probes registered in
``scanner.engine.registry`` for each identified service, then fingerprint and role.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import Callable
from typing import Any

from probes import sweep
from probes.context import HostGate, HostState, ProbeContext, ServiceState
from probes.ports import OpenConnection
from probes.udp import udp_phase
from scanner.engine.backoff import Watch
from scanner.engine.containment import (
    contained_probe,
    finish_host,
    port_order,
    service_order,
)
from scanner.engine.do_not_probe import Fence
from scanner.engine.port_phase import PortPhase, connect_each, helpers_for
from scanner.engine.rate import RateCap
from scanner.model import (
    DiscoveryInfo,
    EngineName,
    Finding,
    Host,
    HostDiscovery,
    PortObservation,
    PortState,
    QuietHosts,
    ScanError,
    ScanMeta,
    ScanResult,
    ScanSettings,
    utcnow,
)

ProgressCallback = Callable[[int, int, str], None]
# Scans of more addresses than this count their hosts with nothing to report instead of
# listing them: a /16 sweep's memory stays flat. Smaller scans list every host.
SUMMARISE_ABOVE = 256


def fill_mac(state: HostState) -> None:
    """The MAC from the discovery answer, else from the kernel's neighbour table, and its vendor."""
    from probes.discovery import neighbour_mac
    from scanner.identify.oui import mac_vendor

    if state.mac is None:
        seen = state.discovery.mac if state.discovery is not None else None
        state.mac = seen or neighbour_mac(state.address)
    if state.mac is not None:
        state.mac_vendor = mac_vendor(state.mac)


def nothing_to_judge(hosts: list[Host], policy: dict[str, Any] | None) -> bool:
    """True when no rule could give a verdict: every rule family judges services or open
    ports (a host with no open port gets no baseline verdict), and only a site policy
    speaks of hosts as such. Then the rules are not even loaded (start-up time)."""
    return policy is None and not any(
        h.services or any(p.state is PortState.OPEN for p in h.ports) for h in hosts
    )


def raise_fd_limit(wanted: int) -> None:
    """Lift the soft open-files limit toward ``wanted`` so high concurrency cannot hit EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class ScanJob:
    def __init__(self, settings: ScanSettings, progress: ProgressCallback | None = None) -> None:
        self.settings = settings
        self._progress = progress
        self._started = utcnow()
        # Hosts being scanned or kept for the report; a HostState is made when a host
        # answers discovery (or is taken as live), not for every target up front.
        self._hosts: dict[str, HostState] = {}
        # Hosts whose pipeline is over: frozen and judged the moment they finish, so the
        # rules' work interleaves with the other hosts' waits on the network.
        self._finished: dict[str, tuple[Host, list[Finding]]] = {}
        self._seen_by: dict[str, HostDiscovery] = {}
        self._summarise = len(settings.targets) > SUMMARISE_ABOVE
        self._quiet = 0  # hosts counted instead of listed (see _keep)
        self._quiet_refused = 0
        self._errors: list[ScanError] = []
        self._discovery: DiscoveryInfo | None = None
        # Ports a discovery TCP ping found open and already identified on its connection.
        self._handoff: dict[tuple[str, int], tuple[PortObservation, ServiceState]] = {}
        self._done = 0
        self._total = len(settings.targets) * len(settings.ports)
        self._fence = Fence(settings)  # do-not-probe entries, applied in every phase
        # Sweep helper processes each take a share of the rate cap; the scan keeps its own.
        self._helpers = helpers_for(settings)
        self._rate = RateCap(settings.max_rate / (self._helpers + 1))
        self._ports: PortPhase | None = None  # the embedded engine's batched port phase

    def _tick(self, count: int, what: str) -> None:
        self._done += count
        if self._progress:
            self._progress(self._done, self._total, what)

    async def run(self) -> ScanResult:
        from scanner.engine.targets import guard_addresses

        s = self.settings
        guard_addresses(s.targets, s.allow_public, s.scope, s.max_addresses)
        raise_fd_limit(self.settings.max_concurrency * 2 + 256)
        global_slots = sweep.Slots(self.settings.max_concurrency)
        try:
            await self._discover_and_scan(global_slots)
        except asyncio.CancelledError:
            return self.result(interrupted=True)
        finally:
            if self._ports is not None:
                self._ports.close()
                self._ports = None
        return self.result(interrupted=False)

    async def _discover_and_scan(self, global_slots: sweep.Slots) -> None:
        """Only live hosts are scanned. With the embedded engine a host's scan starts the
        moment it answers discovery, so the sweep's wait for silent addresses overlaps the
        scanning; nmap scans once its discovery is over. Until a host answers it is not
        listed, so an interrupted scan never shows unprobed hosts."""
        from scanner.engine.discovery import run_discovery

        s = self.settings
        targets = self._fence.before_discovery(list(s.targets))
        allowed = set(targets)
        started: set[str] = set()  # hosts taken as live (kept or already counted)
        self._total = 0
        stream = s.engine is EngineName.EMBEDDED
        # A fixed pool of workers takes live hosts from a queue: memory holds the hosts in
        # flight, not one task per address; the connection caps are the gate's, as before.
        # A host's state is made when a worker takes it: queued addresses cost a few bytes.
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        seen_by = self._seen_by  # discovery answers (live hosts only)
        # As many hosts at once as fill the global slots with their port connections and no
        # more: waiters on a contended asyncio.Semaphore cost O(waiters) per release.
        per_host = max(1, min(len(s.ports), s.per_host_connections))
        count = max(1, min(len(targets), s.max_concurrency // per_host))
        workers = [asyncio.ensure_future(self._worker(queue, seen_by, global_slots))
                   for _ in range(count)]
        ordered = tuple(port_order(s.ports))
        if stream and sweep.AVAILABLE:
            self._ports = PortPhase(
                s, global_slots, self._rate.take, host=lambda a: self._host(a, seen_by),
                handoff=self._handoff, ready=queue.put_nowait,
                countable=(lambda a: a not in seen_by)  # discovery's answer is worth listing
                if self._summarise and not s.udp_ports else None,
                count=self._count_quiet,
                tick=self._tick, helpers=self._helpers,
                helpers_done=lambda: self._rate.set_rate(s.max_rate),
            )

        def alive(address: str, seen: HostDiscovery | None) -> None:
            if address not in allowed:
                return
            state = self._hosts.get(address)
            discovery = seen or seen_by.get(address)  # a later, fuller answer (RTT) wins
            if discovery is not None:
                seen_by[address] = discovery
                if state is not None:
                    state.discovery = discovery
            mac = discovery.mac if discovery is not None else None
            if not self._fence.allows(address, mac, "after discovery"):
                return
            if address not in started:
                started.add(address)
                self._total += len(s.ports)
                if self._ports is not None:
                    self._ports.add(address, ordered)
                elif stream:
                    queue.put_nowait(address)

        try:
            self._discovery, found = await run_discovery(
                s, targets, alive, self._take_over, self._rate
            )
            for n, address in enumerate(targets if found is None else found, 1):
                alive(address, None if found is None else found[address])
                if n % 1024 == 0:
                    await asyncio.sleep(0)  # the sweep starts on these while more are added
            if not stream:
                from scanner.engine.nmap_engine import nmap_port_scan

                # nmap scans the live hosts first; the workers then take them as usual.
                for address in started:
                    self._host(address, seen_by)
                await nmap_port_scan(s, self._hosts)
                for address in list(self._hosts):
                    queue.put_nowait(address)
            if self._ports is not None:
                await self._ports.finish()  # every host is with the workers or counted
            for _ in workers:
                queue.put_nowait(None)  # no more hosts: each worker stops after its last
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()

    def _host(self, address: str, seen_by: dict[str, HostDiscovery]) -> HostState:
        state = self._hosts.get(address)
        if state is None:
            state = HostState(address, self.settings.hostnames.get(address))
            state.discovery = seen_by.get(address)
            self._hosts[address] = state
        return state

    async def _worker(self, queue: asyncio.Queue[str | None], seen_by: dict[str, HostDiscovery],
                      global_slots: sweep.Slots) -> None:
        while (address := await queue.get()) is not None:
            state = self._host(address, seen_by)
            await self._scan_host(state, global_slots)
            self._keep(state)
            if state.address in self._hosts:
                host = state.freeze()
                self._finished[host.address] = (host, self._judge(host))
                del self._hosts[host.address]

    def _judge(self, host: Host) -> list[Finding]:
        """The host's findings (rules judge each host on its own). A rule that fails costs
        this host its findings and is reported, never the scan."""
        if nothing_to_judge([host], self.settings.policy):
            return []
        from scanner.rules.evaluate import evaluate

        try:
            return evaluate([host], self.settings.baseline, self.settings.policy)
        except Exception as exc:
            msg = f"internal error in the rules: {type(exc).__name__}: {exc}"
            self._errors.append(ScanError(host=host.address, message=msg, unjudged=True))
            return []

    def _count_quiet(self, refused: bool) -> None:
        """The port phase's quiet host (nothing open) in a large scan: counted, not built."""
        self._quiet += 1
        self._quiet_refused += refused

    def _keep(self, state: HostState) -> None:
        """In a large scan, a host with nothing to report is counted, not kept (flat memory)."""
        if not self._summarise or state.services or state.udp_services or state.errors:
            return
        if state.discovery is not None or state.mac is not None or state.role is not None:
            return
        if any(o.state is PortState.OPEN for o in (*state.ports.values(),
                                                   *state.udp_ports.values())):
            return
        self._quiet += 1
        self._quiet_refused += any(o.state is PortState.CLOSED for o in state.ports.values())
        del self._hosts[state.address]

    async def _take_over(self, conn: OpenConnection, rtt_ms: float) -> None:
        """A discovery TCP ping's open connection: identify the service on it, as the port
        probe would, and keep the result so the port is not connected to again."""
        from scanner.engine.registry import identify_service

        if not self._fence.allows(conn.host, None, "after the TCP ping"):
            return  # its MAC is listed: closed without a single byte sent
        obs = PortObservation(
            port=conn.port,
            state=PortState.OPEN,
            method="tcp-connect",
            reason="connected (discovery TCP ping)",
            rtt_ms=rtt_ms,
            observed_at=utcnow(),
        )
        svc = await identify_service(conn, self.settings)
        self._handoff[(conn.host, conn.port)] = (obs, svc)

    async def _scan_host(self, state: HostState, global_slots: sweep.Slots) -> None:
        s = self.settings
        watch = Watch()  # device health: back-off, and stop when it fails
        gate = HostGate(global_slots, s.per_host_connections, s.probe_spacing, self._rate.wait,
                        watch)
        ctx = ProbeContext(state.address, s, gate, state)
        # The host's time runs from its first open port: its identification is part of it.
        began = self._ports.began(state.address) if self._ports is not None else None
        deadline = (began or asyncio.get_running_loop().time()) + s.timeouts.host
        try:
            async with asyncio.timeout_at(deadline):  # no extra task, unlike wait_for
                await self._host_pipeline(ctx, watch)
        except TimeoutError:
            state.errors.append(
                f"host time limit of {s.timeouts.host:g} s reached; results partial"
            )
        except Exception as exc:  # a probe bug must not lose the other hosts' results
            msg = f"internal error while scanning: {type(exc).__name__}: {exc}"
            state.errors.append(msg)
            self._errors.append(ScanError(host=state.address, message=msg))
        else:
            return
        from scanner.engine.registry import HOST_ANALYSES

        # Cut short: what was found still gets its analysis (and so its findings).
        finish_host(state, (fill_mac, *HOST_ANALYSES), self._errors)

    async def _host_pipeline(self, ctx: ProbeContext, watch: Watch) -> None:
        from scanner.engine.registry import HOST_ANALYSES, follow_up_probes, health_checked

        if ctx.settings.engine is EngineName.NMAP:
            await self._identify_open(ctx)
        elif self._ports is not None:
            await self._ports.identified(ctx.host)  # the port phase is over for this host
        elif ports := port_order(ctx.settings.ports):  # none: a UDP-only scan (-p U:161)
            await connect_each(ctx, ports, self._handoff, self._tick)
        await udp_phase(ctx)  # UDP ports given with U: (probes/udp.py)
        services = service_order(ctx.state.services.values())
        if not services and not ctx.state.udp_services:
            # Nothing open to follow up or health-check; a quiet host of a large scan needs
            # no analysis either (it is counted, see _keep).
            if self._summarise and not ctx.state.errors and ctx.state.discovery is None:
                return
            finish_host(ctx.state, (fill_mac,), self._errors)
            if ctx.state.mac is not None:  # no service and no MAC: nothing to analyse
                finish_host(ctx.state, HOST_ANALYSES, self._errors)
            return
        from scanner.engine.health import after_probes, before_probes, still_answering

        probes = follow_up_probes(ctx.settings)
        if health_checked(ctx.settings):  # the checks bracket the follow-up probes
            await before_probes(ctx)  # those whose detection gave no check before
        for probe in probes:
            if not await still_answering(ctx, watch):
                break  # the device stopped answering: no further probes to it
            await asyncio.gather(*(contained_probe(probe, ctx, s, self._errors) for s in services))
            await before_probes(ctx)  # DICOM this stage found inside TLS, before its checks
        await after_probes(ctx, watch)
        finish_host(ctx.state, (fill_mac, *HOST_ANALYSES), self._errors)

    async def _identify_open(self, ctx: ProbeContext) -> None:
        """nmap found the ports: identify each open one on a connection of our own."""
        from scanner.engine.nmap_engine import merge_nmap_service
        from scanner.engine.registry import identify_service

        async def one(port: int) -> None:
            try:
                async with ctx.connect(port) as conn:
                    svc = await identify_service(conn, ctx.settings)
            except (OSError, TimeoutError) as exc:
                ctx.state.errors.append(f"port {port}: nmap saw it open, connect failed: {exc}")
                return
            ctx.state.services[port] = merge_nmap_service(svc, ctx.state.nmap_services.get(port))

        await asyncio.gather(*(one(p) for p in ctx.state.open_ports()))
        self._tick(len(ctx.settings.ports), ctx.host)  # nmap measured them all

    def result(self, interrupted: bool) -> ScanResult:
        order = {a: i for i, a in enumerate(self.settings.targets)}
        judged = dict(self._finished)
        for state in self._hosts.values():  # in flight when interrupted, or never taken
            if state.address not in judged:
                host = state.freeze()
                judged[host.address] = (host, self._judge(host))
        hosts: list[Host] = []
        findings: list[Finding] = []
        for address in sorted(judged, key=order.__getitem__):
            host, found = judged[address]
            later = self._seen_by.get(address)  # a fuller discovery answer came after it
            if later is not None and host.discovery != later:
                host = host.model_copy(update={"discovery": later})
            hosts.append(host)
            findings += found
        meta = ScanMeta(
            id=self.settings.scan_id,
            started_at=self._started,
            finished_at=utcnow(),
            targets=list(self.settings.target_specs),
            profile=self.settings.profile,
            ports=list(self.settings.ports),
            udp_ports=list(self.settings.udp_ports),
            interrupted=interrupted,
            errors=list(self._errors),
            engine=self.settings.engine,
            discovery=self._discovery,
            skipped=self._fence.skipped,
            max_rate=self.settings.max_rate or None,
            quiet=QuietHosts(hosts=self._quiet, refused=self._quiet_refused)
            if self._summarise else None,
        )
        return ScanResult(
            scan=meta,
            hosts=hosts,
            findings=findings,
        )
