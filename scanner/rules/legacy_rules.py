"""Legacy-Windows exposures of modality consoles and workstations: SMB1, SMB without
mandatory signing, RDP without Network Level Authentication, SNMP default communities.

Pure functions of the SMB, RDP and SNMP observations. RDP is judged with the host's
baseline: the evidence says whether the baseline allows remote access on that port, and a
vendor baseline that cites a source for NLA names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scanner.model import Finding, FindingStatus, Host, Service
from scanner.model.legacy_observations import RdpNegotiation, SmbNegotiation, SnmpObservation
from scanner.rules.baseline_model import port_in
from scanner.rules.catalogue import make_finding

if TYPE_CHECKING:
    from scanner.rules.baseline_rules import Selection

F, P, N = FindingStatus.FAIL, FindingStatus.PASS, FindingStatus.NOT_CHECKED


def _smb(host: Host, svc: Service, obs: SmbNegotiation) -> list[Finding]:
    base: dict[str, Any] = {"dialects": list(obs.dialects)}
    base |= {k: v for k in ("server_name", "server_os") if (v := getattr(obs, k))}
    out: list[Finding] = []
    if obs.smb1_accepted is None:
        ev = {**base, "reason": "SMB1 was not offered"}
        out.append(make_finding("smb-v1-enabled", N, host.address, svc.port, ev))
    else:
        smb1 = next((a for a in obs.attempts if a.dialect == "NT LM 0.12"), None)
        ev = {**base, "smb1_negotiate": "accepted" if obs.smb1_accepted else "refused"}
        if smb1 is not None and smb1.detail:
            ev["detail"] = smb1.detail
        status = F if obs.smb1_accepted else P
        out.append(make_finding("smb-v1-enabled", status, host.address, svc.port, ev))
    if obs.signing_required is None:
        ev = {**base, "reason": "no accepted dialect at or below 3.0 reported its signing mode"}
        out.append(make_finding("smb-signing-not-required", N, host.address, svc.port, ev))
    else:
        ev = {**base, "signing_required": obs.signing_required,
              "measured_on_dialect": obs.signing_measured_on}
        status = P if obs.signing_required else F
        out.append(make_finding("smb-signing-not-required", status, host.address, svc.port, ev))
    return out


def _rdp(host: Host, svc: Service, obs: RdpNegotiation, sel: Selection | None) -> Finding:
    ev: dict[str, Any] = {
        "accepted_protocols": [p.value for p in obs.accepted],
        "answers": {"+".join(p.value for p in a.requested): a.answer
                    + (f" {a.selected.value}" if a.selected else "")
                    + (f" {a.failure_text}" if a.failure_text else "")
                    for a in obs.attempts},
    }
    if sel is not None:
        ev |= sel.evidence()
        ra = sel.resolved.expectations.remote_access
        if ra is not None:
            ev["remote_access"] = (
                f"allowed on port {svc.port} by the baseline" if port_in(svc.port, ra.allowed)
                else f"the baseline does not allow remote access on port {svc.port}"
            )
        nla = sel.resolved.expectations.rdp_nla_required
        if nla is not None:
            ev["baseline_expectation"] = {
                "rdp_nla_required": nla.required,
                "set_by": sel.resolved.origin.get("rdp_nla_required", sel.resolved.id),
            }
    if obs.nla_required is None:
        ev["reason"] = obs.detail or "the answers did not show whether NLA is required"
        return make_finding("rdp-nla-not-required", N, host.address, svc.port, ev)
    status = P if obs.nla_required else F
    return make_finding("rdp-nla-not-required", status, host.address, svc.port, ev)


def _snmp(host: Host, svc: Service, obs: SnmpObservation) -> Finding | None:
    if not obs.agent_answered and not obs.community_accepted:
        return None  # no agent seen: nothing to judge
    ev: dict[str, Any] = {"protocol": "udp", "engine_id": obs.engine_id_hex,
                          "enterprise": obs.enterprise}
    if not obs.intrusive:
        ev["reason"] = "default communities are a credential attempt: only tried with --intrusive"
        return make_finding("snmp-default-community", N, host.address, svc.port, ev)
    ev["tried"] = [f"{a.community} (v{a.version})" for a in obs.communities_tried]
    if obs.community_accepted:
        ev |= {"community_accepted": obs.community_accepted, "sysDescr": obs.sys_descr,
               "snmp_version": obs.version_accepted}
        return make_finding("snmp-default-community", F, host.address, svc.port, ev)
    return make_finding("snmp-default-community", P, host.address, svc.port, ev)


def legacy_findings(host: Host, sel: Selection | None = None) -> list[Finding]:
    """SMB, RDP and SNMP findings for one host, in port order (``sel``: its baseline)."""
    out: list[Finding] = []
    for svc in host.services:
        for o in svc.observations:
            if isinstance(o, SmbNegotiation) and o.answered:
                out.extend(_smb(host, svc, o))
            elif isinstance(o, RdpNegotiation) and o.answered:
                out.append(_rdp(host, svc, o, sel))
            elif isinstance(o, SnmpObservation) and (f := _snmp(host, svc, o)) is not None:
                out.append(f)
    return out
