"""SMB: which dialects a server accepts (SMB1 or not, SMB 2.0.2 to 3.1.1), whether it
requires signing, and the name and OS its NTLM challenge discloses.

Only NEGOTIATE exchanges and one anonymous (null) session setup, with impacket (the
maintained SMB client that still speaks SMB1). No user name or password is ever sent.
Each dialect is offered alone on its own connection, because a server answers a
multi-dialect NEGOTIATE with only its favourite. Signing is read on a dialect at or below
3.0: impacket reports signing as required whenever 3.1.1 is negotiated, whatever the
server said (peers.md, measured on Samba 4.17).

impacket is blocking: each exchange runs in a worker thread, inside the host's connection
gate, with impacket's socket timeout and an asyncio deadline over it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scanner.model.legacy_observations import DialectAttempt, SmbNegotiation

if TYPE_CHECKING:
    from probes.context import ProbeContext, ServiceState

SMB_PORTS = (139, 445)


@dataclass(frozen=True)
class _Dialect:
    label: str
    code: str | int | None  # impacket's preferredDialect; None lets the client pick the highest


def _dialects() -> tuple[_Dialect, ...]:
    from impacket.smb import SMB_DIALECT
    from impacket.smb3structs import SMB2_DIALECT_002, SMB2_DIALECT_21, SMB2_DIALECT_30

    return (
        _Dialect("NT LM 0.12", SMB_DIALECT),
        _Dialect("2.0.2", SMB2_DIALECT_002),
        _Dialect("2.1", SMB2_DIALECT_21),
        _Dialect("3.0", SMB2_DIALECT_30),
        _Dialect("highest", None),
    )


def dialect_label(code: object) -> str:
    """impacket's getDialect() value as a name: 'NT LM 0.12' or '2.0.2' ... '3.1.1'."""
    if isinstance(code, int):
        major, minor = code >> 8, code & 0xFF
        return f"{major}.{minor >> 4}.{minor & 0xF}" if minor & 0xF else f"{major}.{minor >> 4}"
    return str(code)


def is_smb_candidate(svc: ServiceState) -> bool:
    """SMB servers close or reset the connection on a DICOM A-ASSOCIATE-RQ (Samba resets
    it), so an unnamed service on 139 or 445 is tried; a port that spoke DICOM never is."""
    return svc.name == "smb" or (svc.name == "unknown" and svc.port in SMB_PORTS)


def _clean(value: Any) -> str | None:
    text = str(value or "").strip().strip("\x00")
    return text or None


def _one(host: str, port: int, d: _Dialect, timeout: float, null_session: bool) -> dict[str, Any]:
    """One connection: NEGOTIATE with one dialect, then (optionally) the null session."""
    from impacket.smbconnection import SMBConnection

    name = "*SMBSERVER" if port == 139 else host
    out: dict[str, Any] = {}
    try:
        conn = SMBConnection(name, host, sess_port=port, timeout=timeout,
                             preferredDialect=d.code)
    except Exception as exc:  # impacket raises struct.error, SessionError, socket errors...
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    try:
        negotiated = conn.getDialect()
        out["negotiated"] = dialect_label(negotiated)
        out["signing_required"] = bool(conn.isSigningRequired())
        if null_session:
            try:
                conn.login("", "")  # anonymous: empty user, empty password, no domain
                out["null_session"] = "accepted"
            except Exception as exc:
                out["null_session"] = f"refused: {exc}"[:200]
            # Filled from the NTLM CHALLENGE, which arrives before the session is decided.
            for key, getter in (
                ("server_name", conn.getServerName),
                ("server_domain", conn.getServerDomain),
                ("dns_host_name", conn.getServerDNSHostName),
                ("server_os", conn.getServerOS),
            ):
                with contextlib.suppress(Exception):
                    out[key] = _clean(getter())
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return out


async def negotiate(ctx: ProbeContext, port: int) -> SmbNegotiation:
    """Every dialect on its own connection through the host's gate; no credentials."""
    timeout = ctx.settings.timeouts.connect + ctx.settings.timeouts.dicom
    attempts: list[DialectAttempt] = []
    extra: dict[str, Any] = {}
    for d in _dialects():
        highest = d.code is None
        async with ctx.gate.slot():
            try:
                res = await asyncio.wait_for(
                    asyncio.to_thread(_one, ctx.host, port, d, timeout, highest), timeout + 2
                )
            except TimeoutError:
                res = {"error": f"no answer within {timeout + 2:g} s"}
        if "error" in res:
            attempts.append(DialectAttempt(dialect=d.label, accepted=False, detail=res["error"]))
            if _silent(res["error"]):  # a port that does not answer will not answer the rest
                break
            continue
        got = res["negotiated"]
        label = got if highest else d.label
        # An SMB1 request answered in SMB2 (or a downgrade) does not count as accepted.
        accepted = highest or got == d.label
        signing = None if got == "3.1.1" else res["signing_required"]
        attempts.append(DialectAttempt(dialect=label, accepted=accepted, negotiated=got,
                                       signing_required=signing))
        if highest:
            extra = {k: v for k, v in res.items() if k not in ("negotiated", "signing_required")}
    return summarise(attempts, extra)


def _silent(error: str) -> bool:
    """A timeout or refused connection, as opposed to an SMB server refusing a dialect."""
    lowered = error.lower()
    return any(w in lowered for w in ("timeout", "timed out", "no answer", "refused"))


def summarise(attempts: list[DialectAttempt], extra: dict[str, Any]) -> SmbNegotiation:
    accepted = [a for a in attempts if a.accepted]
    dialects = list(dict.fromkeys(a.dialect for a in accepted))
    smb1 = next((a for a in attempts if a.dialect == "NT LM 0.12"), None)
    # Signing from the highest measured dialect that reports it honestly (<= 3.0).
    honest = [a for a in accepted if a.signing_required is not None]
    pick = honest[-1] if honest else None
    null = extra.get("null_session")
    return SmbNegotiation(
        answered=bool(accepted),
        attempts=attempts,
        smb1_accepted=None if smb1 is None else smb1.accepted,
        dialects=dialects,
        signing_required=None if pick is None else pick.signing_required,
        signing_measured_on=None if pick is None else pick.dialect,
        server_name=extra.get("server_name"),
        server_domain=extra.get("server_domain"),
        dns_host_name=extra.get("dns_host_name"),
        server_os=extra.get("server_os"),
        null_session=None if null is None else null.split(":")[0],
        detail="" if accepted else "no dialect was accepted",
    )


async def smb_probe(ctx: ProbeContext, svc: ServiceState) -> None:
    """Negotiate on ports named SMB (or unnamed 139/445); names the service on an answer."""
    if not is_smb_candidate(svc):
        return
    obs = await negotiate(ctx, svc.port)
    if obs.answered:
        svc.name = "smb"
        svc.observations.append(obs)
    elif svc.name == "smb":
        svc.observations.append(obs)
