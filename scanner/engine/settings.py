"""From a scan's options (as the command line or a lab gives them) to a checked
``ScanSettings``: targets expanded and scoped, ports parsed, the profile applied.

It raises ``SettingsError`` and never prints, so the command line, the labs and a
future sensor can each report a bad option their own way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from scanner.model import DoNotProbe, ScanSettings, Timeouts, documents
from scanner.model.settings import ae_title_problem

if TYPE_CHECKING:
    from scanner.engine.spans import TargetSpans


class SettingsError(ValueError):
    """A bad option. ``param`` names the option for the user; ``usage`` marks an error in
    how options combine rather than in one value."""

    def __init__(self, message: str, param: str | None = None, usage: bool = False) -> None:
        super().__init__(message)
        self.param = param
        self.usage = usage


def read_text(path: str, what: str) -> str:
    try:
        return documents.read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        why = exc if isinstance(exc, documents.Unreadable | documents.TooLarge) else (
            getattr(exc, "strerror", None) or exc)
        raise SettingsError(f"cannot read {what} {path!r}: {why}") from None


def check_tls_files(ca: str | None, cert: str | None, key: str | None) -> None:
    """Load --ca and --client-cert/--client-key now, so a wrong file is exit 2 before any
    packet, not an error on every TLS service found. Never names the key or its path.
    Each must be a regular file: it is read again at every TLS connection (a named pipe
    made the load wait for ever)."""
    if ca:
        from cryptography import x509

        try:
            x509.load_pem_x509_certificates(documents.read_bytes(ca, regular=True))
        except (OSError, ValueError) as exc:
            why = (str(exc) if isinstance(exc, documents.Unreadable | documents.TooLarge)
                   else exc.strerror if isinstance(exc, OSError) and exc.strerror
                   else "no PEM certificate in it")
            raise SettingsError(f"cannot use {ca!r} as a CA bundle: {why}", param="--ca") from None
    if cert:
        import ssl

        for path, option in ((cert, "--client-cert"), (key, "--client-key")):
            try:
                if path:
                    documents.read_bytes(path, regular=True)
            except OSError as exc:
                raise SettingsError(f"cannot read {option}: {exc.strerror or exc}",
                                    param=option) from None
        try:  # an empty password: an encrypted key fails instead of prompting
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key,
                                                                    password=lambda: b"")
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            reason = getattr(exc, "reason", None) or (
                exc.strerror if isinstance(exc, FileNotFoundError) else "not PEM, or encrypted")
            raise SettingsError(
                f"--client-cert and --client-key do not load as a certificate and its "
                f"unencrypted key: {reason}", param="--client-cert") from None


def check_ae(title: str, option: str) -> str:
    if problem := ae_title_problem(title):
        raise SettingsError(f"{title!r} {problem}", param=option)
    return title


def _wordlist(opts: dict[str, Any]) -> list[str]:
    if opts["ae_wordlist"]:
        text = read_text(opts["ae_wordlist"], "AE title wordlist")
    else:
        from importlib import resources

        text = (resources.files("scanner") / "data" / "ae_titles.txt").read_text()
    titles = [
        check_ae(line.strip(), "--ae-wordlist")
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not titles:
        # An empty list made AE guessing quietly try nothing (and its check read as done).
        raise SettingsError(f"{opts['ae_wordlist']!r} holds no AE title (one a line; blank "
                            "lines and # comments are skipped)", param="--ae-wordlist")
    return titles


def _policy(opts: dict[str, Any]) -> dict[str, Any] | None:
    if opts.get("baseline"):
        from scanner.rules.baseline_model import BaselineError
        from scanner.rules.baselines import resolve

        try:
            resolve(opts["baseline"])
        except BaselineError as exc:
            raise SettingsError(str(exc), param="--baseline") from None
    if not opts.get("policy"):
        return None
    from scanner.rules.policy import PolicyError, read_policy

    try:
        return read_policy(opts["policy"]).model_dump(mode="json")
    except PolicyError as exc:
        raise SettingsError(str(exc), param="--policy") from None


def _do_not_probe(opts: dict[str, Any], policy: dict[str, Any] | None) -> list[DoNotProbe]:
    """Entries from --exclude-file, a site configuration job's and the policy's
    do_not_probe lists."""
    from scanner.engine.do_not_probe import (
        DoNotProbeError,
        make_entries,
        read_exclude_file,
        resolve_names,
    )

    listed: list[DoNotProbe] = []
    policed: list[DoNotProbe] = []
    try:
        for path in opts.get("exclude_file") or ():
            listed += read_exclude_file(read_text(path, "exclude file"), path)
        for i, entry in enumerate(opts.get("do_not_probe") or ()):
            where = f"{opts.get('config') or 'site configuration'} do_not_probe[{i}]"
            listed += make_entries(entry, "site configuration: never to be probed", where)
        for i, item in enumerate((policy or {}).get("do_not_probe") or ()):
            entry = next(item[k] for k in ("host", "cidr", "mac") if item.get(k))
            where = f"{policy['origin'] if policy else 'policy'} do_not_probe[{i}]"
            policed += make_entries(entry, item["reason"], where)
    except DoNotProbeError as exc:
        raise SettingsError(str(exc), param="--exclude-file") from None
    # A name that does not resolve cannot be kept out: refused now, before any packet (the
    # job's fence resolves again when it is built, and refuses likewise).
    for entries, option in ((listed, "--exclude-file"), (policed, "--policy")):
        try:
            resolve_names(entries)
        except DoNotProbeError as exc:
            raise SettingsError(str(exc), param=option) from None
    return listed + policed


def build_settings(opts: dict[str, Any]) -> ScanSettings:
    """Turn scan options into a checked, serialisable scan job."""
    return build_job(opts, expand=True)[0]


def build_job(opts: dict[str, Any], expand: bool) -> tuple[ScanSettings, TargetSpans]:
    """The scan job and its targets as spans. ``expand=False`` (``--plan``) leaves the
    settings' ``targets`` empty: a plan counts and describes the spans and never lists
    16 million addresses; a scan lists them, only once their number is allowed."""
    from scanner.engine.portspec import PortSpecError, parse_port_spec
    from scanner.engine.profiles import PROFILES
    from scanner.engine.targets import (
        MAX_ADDRESSES,
        TargetError,
        exclusion_intervals,
        network,
        plan_targets,
        read_targets_file,
    )
    from scanner.model import DiscoveryMethod, EngineName, ProfileName

    specs = list(opts["targets"])
    if opts["targets_file"]:
        specs += read_targets_file(read_text(opts["targets_file"], "targets file"))
    if not specs:
        raise SettingsError("no targets: give TARGET arguments or --targets-file", usage=True)
    limit = opts.get("max_addresses") or MAX_ADDRESSES
    # Exclusions and scopes parsed first, so an error names the option it is in.
    for values, option, parse in ((opts["exclude"], "--exclude", exclusion_intervals),
                                  (opts["scope"], "--scope", network)):
        try:
            for value in values:
                parse(value)
        except TargetError as exc:
            raise SettingsError(str(exc), param=option) from None
    try:
        targets = plan_targets(specs, opts["exclude"], opts["scope"], opts["allow_public"],
                               max_addresses=limit)
    except TargetError as exc:
        raise SettingsError(str(exc), param="TARGET") from None
    try:
        spec = parse_port_spec(opts["ports"])
    except PortSpecError as exc:
        raise SettingsError(str(exc), param="-p/--ports") from None
    profile = PROFILES[ProfileName(opts["profile"])]
    calling = check_ae(opts["calling_ae"], "--calling-ae")
    if bool(opts.get("client_cert")) != bool(opts.get("client_key")):
        raise SettingsError("--client-cert and --client-key go together", usage=True)
    check_tls_files(opts.get("ca"), opts.get("client_cert"), opts.get("client_key"))
    titles = [check_ae(t, "--ae-title") for t in opts["ae_title"]]
    wordlist = _wordlist(opts)
    ae_guess = profile.ae_guess if opts["ae_guess"] is None else opts["ae_guess"]
    timeouts = profile.timeouts
    if opts.get("timeout"):
        timeouts = _checked(timeouts, dicom=opts["timeout"], dimse=opts["timeout"])
    policy = _policy(opts)
    do_not_probe = _do_not_probe(opts, policy)
    max_rate = profile.max_rate if opts.get("max_rate") is None else opts["max_rate"]
    if opts.get("connect_timeout"):
        timeouts = _checked(timeouts, connect=opts["connect_timeout"])
    engine = EngineName(opts.get("engine") or "embedded")
    if engine is EngineName.NMAP:
        import shutil

        from scanner.engine.nmap_engine import INSTALL_HINT

        if shutil.which("nmap") is None:
            raise SettingsError(f"--engine nmap: {INSTALL_HINT}", usage=True)
    elif opts.get("service_version"):
        raise SettingsError("--service-version needs --engine nmap", usage=True)
    try:
        return ScanSettings(
            discovery=DiscoveryMethod(opts.get("discovery") or "auto"),
            engine=engine,
            service_version=bool(opts.get("service_version")),
            targets=targets.addresses() if expand else [],
            target_specs=specs,
            hostnames=targets.hostnames,
            ports=spec.tcp,
            udp_ports=spec.udp,
            profile=profile.name,
            max_concurrency=profile.max_concurrency,
            per_host_connections=profile.per_host_connections,
            probe_spacing=profile.probe_spacing,
            timeouts=timeouts,
            calling_ae=calling,
            ae_titles=titles,
            ae_guess=ae_guess,
            ae_wordlist=wordlist,
            intrusive=opts["intrusive"],
            allow_public=opts["allow_public"],
            scope=list(opts["scope"]),
            max_addresses=limit,
            do_not_probe=do_not_probe,
            max_rate=max_rate,
            client_cert=opts.get("client_cert"),
            client_key=opts.get("client_key"),
            ca=opts.get("ca"),
            baseline=opts.get("baseline"),
            policy=policy,
        ), targets
    except ValidationError as exc:  # options that came in by another way than click's
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SettingsError(f"{where}: {first['msg']}", usage=True) from None


def _checked(timeouts: Timeouts, **changes: float) -> Timeouts:
    """The profile's timeouts with some replaced, validated again (model_copy is not)."""
    try:
        return Timeouts.model_validate({**timeouts.model_dump(), **changes})
    except ValidationError as exc:
        name = next(iter(changes))
        raise SettingsError(f"{exc.errors()[0]['msg']}: {changes[name]!r}",
                            param=f"--{'connect-' if name == 'connect' else ''}timeout") from None
