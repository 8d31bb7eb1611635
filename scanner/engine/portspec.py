"""Port specifications in nmap's syntax, and the default port set for imaging networks."""

from __future__ import annotations

from dataclasses import dataclass

from scanner.model.shorthand import is_decimal


class PortSpecError(ValueError):
    """A port list the user gave cannot be parsed."""


@dataclass(frozen=True)
class DefaultPort:
    port: int
    service: str
    why: str


# The default TCP port set, chosen for imaging networks. README.md lists it too.
DEFAULT_PORTS: tuple[DefaultPort, ...] = (
    DefaultPort(104, "dicom", "DICOM well-known port"),
    DefaultPort(11112, "dicom", "DICOM IANA port; dcm4chee, Horos, many PACS"),
    DefaultPort(2761, "dicom-iscl", "DICOM ISCL (retired secure profile)"),
    DefaultPort(2762, "dicom-tls", "DICOM over TLS (IANA)"),
    DefaultPort(4242, "dicom", "Orthanc DICOM default"),
    DefaultPort(5678, "dicom", "Conquest DICOM default"),
    DefaultPort(80, "http", "web consoles, DICOMweb"),
    DefaultPort(443, "https", "web consoles, DICOMweb"),
    DefaultPort(8042, "http", "Orthanc REST API and Explorer"),
    DefaultPort(8080, "http", "dcm4chee-arc UI, DICOMweb"),
    DefaultPort(8443, "https", "dcm4chee-arc UI, DICOMweb over TLS"),
    DefaultPort(2575, "hl7-mllp", "HL7 over MLLP"),
    DefaultPort(21, "ftp", "remote access / legacy (hardening guides: disable if unused)"),
    DefaultPort(22, "ssh", "remote access"),
    DefaultPort(23, "telnet", "remote access / legacy"),
    DefaultPort(135, "msrpc", "Windows RPC"),
    DefaultPort(139, "netbios-ssn", "SMB over NetBIOS"),
    DefaultPort(445, "smb", "SMB file sharing"),
    DefaultPort(3389, "rdp", "remote desktop"),
    DefaultPort(5800, "vnc-http", "VNC web client"),
    DefaultPort(5900, "vnc", "VNC remote desktop"),
)
# UDP is scanned only when asked for (``U:161``): a silent UDP port takes a full timeout.

DEFAULT_PORT_NUMBERS: tuple[int, ...] = tuple(sorted(p.port for p in DEFAULT_PORTS))


@dataclass(frozen=True)
class PortSpec:
    tcp: list[int]
    udp: list[int]


def parse_ports(spec: str) -> list[int]:
    """The TCP ports of ``spec`` (see ``parse_port_spec``); refuses a UDP-only list."""
    parsed = parse_port_spec(spec)
    if not parsed.tcp:
        raise PortSpecError(f"no TCP port in {spec!r} (UDP ports are given with U:)")
    return parsed.tcp


def parse_port_spec(spec: str) -> PortSpec:
    """Parse ``104,11112,2000-3000``, ``-`` (all ports) or ``default`` as nmap does: a
    ``U:`` prefix makes that entry and the ones after it UDP until a ``T:`` (``T:104,U:161``);
    TCP is the default. Sorted and unique per protocol; ``default`` is TCP only."""
    spec = spec.strip()
    if not spec:
        raise PortSpecError("empty port list")
    tcp: set[int] = set()
    udp: set[int] = set()
    ports = tcp
    for raw in spec.split(","):
        part = raw.strip()
        if part.upper().startswith("T:"):
            part, ports = part[2:].strip(), tcp
        elif part.upper().startswith("U:"):
            part, ports = part[2:].strip(), udp
        if part == "default":
            if ports is udp:
                raise PortSpecError("'default' is a TCP port set; give UDP ports by number")
            ports.update(DEFAULT_PORT_NUMBERS)
            continue
        if part == "-":
            part = "1-65535"
        if not part:
            raise PortSpecError(f"empty entry in port list {spec!r}")
        lo_text, dash, hi_text = part.partition("-")
        lo = _port(lo_text or "1", spec)
        hi = _port(hi_text or "65535", spec) if dash else lo
        if hi < lo:
            raise PortSpecError(f"port range {part!r} ends before it starts")
        ports.update(range(lo, hi + 1))
    return PortSpec(sorted(tcp), sorted(udp))


def _port(text: str, spec: str) -> int:
    text = text.strip()
    if not is_decimal(text):
        raise PortSpecError(f"{text!r} in {spec!r} is not a port number")
    value = int(text)
    if not 1 <= value <= 65535:
        raise PortSpecError(f"port {value} in {spec!r} is outside 1-65535")
    return value
