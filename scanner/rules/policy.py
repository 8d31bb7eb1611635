"""Site policy: baselines pinned to hosts or networks, and waivers for failing findings.

A policy file is YAML, validated like the baselines (errors name the file, the line and
the key)::

    title: Radiology site policy
    baselines:                      # pins: a host address beats a network, a longer
      - cidr: 10.20.0.0/24          # prefix beats a shorter one
        baseline: generic-modality
      - host: 10.20.0.5
        baseline: orthanc
    do_not_probe:                   # never a packet, in any phase (host, cidr or mac)
      - mac: 00:11:22:33:44:55
        reason: CT console, vendor forbids scanning
    waivers:
      - host: 10.20.0.5             # or cidr:
        rule: port-not-allowed
        port: 8080                  # optional: every port when absent
        reason: vendor remote service, change CHG-1234
        approved_by: J. Smith (CISO)
        expires: 2026-12-31         # valid through this day (UTC)

A waived failing finding gets status ``waived`` with the waiver in its evidence. A waiver
past its expiry date waives nothing and raises ``waiver-expired`` on every scanned host it
covers; a valid one gives a ``waiver-expired`` pass, so an auditor sees which waivers the
verdicts rest on.
"""

import ipaddress
from datetime import date
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scanner.model import Finding, FindingStatus, Host
from scanner.model.base import empty_list
from scanner.model.documents import (
    TooDeep,
    Unconvertible,
    check_yaml_nesting,
    load_yaml,
    read_text,
    yaml_problem,
)
from scanner.model.shorthand import shorthand_problem
from scanner.rules.baseline_model import BaselineError
from scanner.rules.baselines import _explain, _where, shipped
from scanner.rules.catalogue import load_catalogue, make_finding

WAIVER_RULE = "waiver-expired"


class _Loader(yaml.SafeLoader):
    """Dates stay strings, so pydantic checks them and the error names the line."""


def _date_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    assert isinstance(node, yaml.ScalarNode)
    return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _date_as_text)


class PolicyError(ValueError):
    """The policy file is invalid; ``problems`` holds one line per error."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Scope(_Strict):
    host: str | None = Field(default=None, min_length=1,
                             description="an address or the name scanned")
    cidr: str | None = None

    @field_validator("host")
    @classmethod
    def _not_shorthand(cls, value: str | None) -> str | None:
        # 0x7f000001 never equals a scanned address or name: the entry would silently
        # match nothing (or, as a do-not-probe name, fence what the resolver guessed).
        if value is not None and (problem := shorthand_problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("cidr")
    @classmethod
    def _network(cls, value: str | None) -> str | None:
        if value is not None:
            if problem := shorthand_problem(value.partition("/")[0]):
                raise ValueError(problem)
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not a network like 10.0.0.0/24") from None
        return value

    @model_validator(mode="after")
    def _one_scope(self) -> Self:
        if (self.host is None) == (self.cidr is None):
            raise ValueError("give exactly one of 'host' and 'cidr'")
        return self

    def prefix(self, host: Host) -> int | None:
        """How specifically this entry covers the host (higher wins), None when not."""
        if self.host is not None:
            return 129 if self.host in (host.address, host.hostname) else None
        assert self.cidr is not None
        net = ipaddress.ip_network(self.cidr, strict=False)
        try:
            addr = ipaddress.ip_address(host.address)
        except ValueError:
            return None
        return net.prefixlen if addr.version == net.version and addr in net else None

    @property
    def scope(self) -> str:
        return f"host {self.host}" if self.host is not None else f"cidr {self.cidr}"


class Pin(_Scope):
    baseline: str = Field(min_length=1)


class Waiver(_Scope):
    rule: str
    # strict: YAML 'true' was port 1, and a number (0) was a date (1970-01-01, expired)
    port: int | None = Field(default=None, ge=1, le=65535, strict=True)
    reason: str = Field(min_length=1)
    approved_by: str = Field(min_length=1)
    expires: date

    @field_validator("expires", mode="before")
    @classmethod
    def _a_date(cls, value: object) -> object:
        if not isinstance(value, (str, date)):
            raise ValueError(f"{value!r} is not a date like 2027-01-31")
        return value

    def expired(self, today: date) -> bool:
        return today > self.expires

    def covers(self, finding: Finding, host: Host) -> bool:
        return (
            finding.rule_id == self.rule
            and (self.port is None or finding.port == self.port)
            and self.prefix(host) is not None
        )

    def evidence(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "rule": self.rule,
            "port": self.port,
            "reason": self.reason,
            "approved_by": self.approved_by,
            "expires": self.expires.isoformat(),
        }


class NoProbe(_Strict):
    """A ``do_not_probe`` entry: exactly one of host, cidr and mac, and why."""

    host: str | None = Field(default=None, min_length=1,
                             description="an address or the name scanned")
    cidr: str | None = None
    mac: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")
    reason: str = Field(min_length=1)

    _network = field_validator("cidr")(_Scope._network.__func__)  # type: ignore[attr-defined]
    _not_shorthand = field_validator("host")(
        _Scope._not_shorthand.__func__)  # type: ignore[attr-defined]

    @model_validator(mode="after")
    def _one(self) -> Self:
        if sum(v is not None for v in (self.host, self.cidr, self.mac)) != 1:
            raise ValueError("give exactly one of 'host', 'cidr' and 'mac'")
        return self

    @property
    def entry(self) -> str:
        return next(v for v in (self.host, self.cidr, self.mac) if v is not None)


class SitePolicy(_Strict):
    title: str | None = None
    origin: str = Field(default="policy", description="the file it was read from")
    baselines: list[Pin] = Field(default_factory=empty_list)
    waivers: list[Waiver] = Field(default_factory=empty_list)
    do_not_probe: list[NoProbe] = Field(
        default_factory=empty_list, description="devices never to send a packet to, with reasons"
    )

    def pin_for(self, host: Host) -> Pin | None:
        hits = [(p.prefix(host), i, p) for i, p in enumerate(self.baselines)]
        covered = [(n, -i, p) for n, i, p in hits if n is not None]
        return max(covered, key=lambda t: (t[0], t[1]))[2] if covered else None


def parse_policy(text: str, origin: str) -> SitePolicy:
    """A policy from YAML text; raises PolicyError naming ``origin``, line and key."""
    try:
        check_yaml_nesting(text)
        root = yaml.compose(text)
        raw: Any = load_yaml(text, _Loader)  # _Loader is a SafeLoader
    except (yaml.YAMLError, TooDeep, Unconvertible) as exc:
        raise PolicyError([f"{origin}: not valid YAML: {yaml_problem(exc)}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PolicyError([f"{origin}: expected a mapping with 'baselines' and/or 'waivers'"])
    if "origin" in raw:
        raise PolicyError([f"{_where(origin, root, ('origin',))}: unknown key 'origin'"])
    try:
        policy = SitePolicy.model_validate({**raw, "origin": origin})
    except ValidationError as exc:
        raise PolicyError(
            [f"{_where(origin, root, tuple(e['loc']))}: {_explain(dict(e))}" for e in exc.errors()]
        ) from None
    problems: list[str] = []
    try:
        known = shipped()
    except BaselineError as exc:
        raise PolicyError(exc.problems) from None
    for i, pin in enumerate(policy.baselines):
        if pin.baseline not in known:
            where = _where(origin, root, ("baselines", i, "baseline"))
            problems.append(
                f"{where}: unknown baseline {pin.baseline!r} (known: {', '.join(sorted(known))})"
            )
    catalogue = load_catalogue()
    for i, w in enumerate(policy.waivers):
        if w.rule not in catalogue:
            where = _where(origin, root, ("waivers", i, "rule"))
            problems.append(f"{where}: unknown rule ID {w.rule!r} (not in the rule catalogue)")
    if problems:
        raise PolicyError(problems)
    return policy


def read_policy(path: str) -> SitePolicy:
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([f"{path}: cannot read: {exc}"]) from None
    return parse_policy(text, path)


def _repin(finding: Finding, pin: Pin, policy: SitePolicy) -> Finding:
    """Say that a pinned baseline was chosen by the policy, not by --baseline."""
    if finding.evidence.get("selected_by") != "forced":
        return finding
    why = [f"pinned to {pin.baseline} by site policy {policy.origin} ({pin.scope})"]
    return finding.model_copy(
        update={"evidence": {**finding.evidence, "selected_by": "policy", "why": why}}
    )


def apply_policy(
    host: Host,
    findings: list[Finding],
    policy: SitePolicy,
    today: date,
    pinned: bool = False,
) -> list[Finding]:
    """Waivers applied to the host's failing findings, plus a ``waiver-expired`` verdict
    for every waiver covering the host. ``pinned``: the policy chose the host's baseline."""
    pin = policy.pin_for(host) if pinned else None
    covering = [w for w in policy.waivers if w.prefix(host) is not None]
    out: list[Finding] = []
    for f in findings:
        if pin is not None:
            f = _repin(f, pin, policy)
        if f.status is FindingStatus.FAIL and f.host == host.address:
            waiver = next(
                (w for w in covering if not w.expired(today) and w.covers(f, host)), None
            )
            if waiver is not None:
                ev = {**f.evidence, "waiver": {**waiver.evidence(), "policy": policy.origin}}
                f = f.model_copy(update={"status": FindingStatus.WAIVED, "evidence": ev})
        out.append(f)
    for w in covering:
        ev = {**w.evidence(), "policy": policy.origin, "checked_on": today.isoformat()}
        if w.expired(today):
            ev["verdict"] = f"expired on {w.expires.isoformat()}; it waives nothing"
            status = FindingStatus.FAIL
        else:
            ev["verdict"] = f"valid through {w.expires.isoformat()}"
            status = FindingStatus.PASS
        out.append(make_finding(WAIVER_RULE, status, host.address, w.port, ev))
    return out
