"""Remote-access and HL7 services: what their answer to our A-ASSOCIATE-RQ discloses.

SSH, FTP, VNC and telnet servers send their banner first, so the ``banner`` observation
that service identification recorded already holds it; this probe parses it (SSH
protocol and software version, RFB version, FTP greeting, telnet's pre-login text) and
sends nothing. RDP, SMB
and RPC are recorded as answered or not. HL7 MLLP (2575) is recorded as present only:
no HL7 message is ever sent.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from scanner.model.http_observations import ServiceBannerInfo
from scanner.model.observations import Association, Banner

if TYPE_CHECKING:
    from probes.context import ProbeContext, ServiceState

# Named from the first bytes by probes/identify.py.
_BY_NAME = {
    "ssh": "ssh",
    "vnc": "vnc",
    "telnet": "telnet",
    "rdp": "rdp",
    "smb": "smb",  # named by probes/smb.py from its NEGOTIATE answer
    "hl7-mllp": "hl7-mllp",
    "ftp-or-smtp": "ftp",
}
# Services that sent nothing recognisable: named by the conventional port.
_BY_PORT = {
    21: "ftp",
    22: "ssh",
    23: "telnet",
    135: "rpc",
    139: "smb",
    445: "smb",
    2575: "hl7-mllp",
    3389: "rdp",
    5900: "vnc",
    5901: "vnc",
}
_SMTP_PORTS = (25, 465, 587)

_SSH_RE = re.compile(r"^SSH-([0-9.]+)-(\S+)(?: (.*))?$")
_RFB_RE = re.compile(r"^RFB (\d{3})\.(\d{3})")


def _first_line(data: bytes) -> str:
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    return "".join(chr(b) if 32 <= b < 127 else "." for b in line[:200])


def strip_telnet_commands(data: bytes) -> bytes:
    """The text of a telnet greeting without its IAC option negotiation (RFC 854/855)."""
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] != 0xFF:
            out.append(data[i])
            i += 1
        elif i + 1 < len(data) and data[i + 1] == 0xFF:  # an escaped 0xFF data byte
            out.append(0xFF)
            i += 2
        elif i + 1 < len(data) and data[i + 1] == 250:  # SB ... IAC SE
            end = data.find(b"\xff\xf0", i + 2)
            i = len(data) if end < 0 else end + 2
        elif i + 1 < len(data) and 251 <= data[i + 1] <= 254:  # WILL/WONT/DO/DONT option
            i += 3
        else:
            i += 2
    return bytes(out)


def parse(protocol: str, data: bytes) -> ServiceBannerInfo:
    """The facts one service's first bytes disclose (pure: no I/O)."""
    category = "hl7" if protocol == "hl7-mllp" else "remote-access"
    info = ServiceBannerInfo(protocol=protocol, category=category, answered=bool(data))
    if protocol == "telnet":
        # The pre-login text (often /etc/issue.net: the OS and its release) is disclosure.
        text = next((ln for ln in strip_telnet_commands(data).splitlines() if ln.strip()), b"")
        return info.model_copy(update={"banner": _first_line(text.strip()) or None})
    if not data or protocol in ("rdp", "smb", "rpc", "hl7-mllp"):
        return info  # binary negotiation or presence only: nothing readable to keep
    line = _first_line(data)
    update: dict[str, str | None] = {"banner": line}
    if protocol == "ssh" and (m := _SSH_RE.match(line)):
        update |= {"protocol_version": m.group(1), "software": m.group(2), "comment": m.group(3)}
    elif protocol == "vnc" and (m := _RFB_RE.match(line)):
        update["protocol_version"] = f"{int(m.group(1))}.{int(m.group(2))}"
    elif protocol == "ftp" and line.startswith("220"):
        update["software"] = line[3:].lstrip(" -") or None
    return info.model_copy(update=update)


def protocol_of(svc: ServiceState) -> str | None:
    if svc.name == "ftp-or-smtp" and svc.port in _SMTP_PORTS:
        return None
    if svc.name in _BY_NAME:
        return _BY_NAME[svc.name]
    if svc.name == "unknown":
        return _BY_PORT.get(svc.port)
    return None


def first_bytes(svc: ServiceState) -> bytes:
    for obs in svc.observations:
        if isinstance(obs, Banner) and obs.first_bytes_hex:
            return bytes.fromhex(obs.first_bytes_hex)
    for obs in svc.observations:
        if isinstance(obs, Association) and obs.first_bytes_hex:
            return bytes.fromhex(obs.first_bytes_hex)
    return b""


async def banner_probe(ctx: ProbeContext, svc: ServiceState) -> None:
    """Parse what identification already read; sends nothing."""
    del ctx  # no connection is needed
    protocol = protocol_of(svc)
    if protocol is None:
        return
    info = parse(protocol, first_bytes(svc))
    if info not in svc.observations:
        svc.observations.append(info)
