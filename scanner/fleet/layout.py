"""What ``central init`` and ``central add-sensor`` write, and reading it back.

A central directory holds ``central.json`` (this file's ``CentralConfig``), the CA and
certificates under ``pki/``, the ``nats-server.conf`` rendered from the configuration,
the server's state under ``nats/``, the job ledger ``jobs.sqlite`` and, unless the store
URL says otherwise, the history ``history.sqlite``. Each sensor's bundle is a directory
``sensors/NAME/`` with its certificate, key, the CA and ``sensor.json``: everything a
sensor needs, copied to the sensor's host as it is.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from pydantic import Field, StrictBool, ValidationError, field_validator, model_validator

from scanner.fleet import pki
from scanner.model.base import Frozen
from scanner.model.documents import MAX_TEXT, TooLarge
from scanner.model.shorthand import shorthand_problem

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
CENTRAL_USER = "central"
# Subjects and streams: jobs.<sensor>, results.<sensor>.<job>, progress.<sensor>.<job>.
JOBS, RESULTS, PROGRESS, EVENTS = "JOBS", "RESULTS", "PROGRESS", "JOBEVENTS"
MAX_DELIVERIES_SUBJECT = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JOBS.*"
MAX_PAYLOAD = 8 * 1024 * 1024


class FleetError(Exception):
    """A central directory or bundle that is missing, unreadable or inconsistent."""


class SensorEntry(Frozen):
    scope: list[str] = Field(description="networks the sensor may scan (CIDR)")
    allow_public: StrictBool = Field(
        default=False, description="its scope may hold public addresses (add-sensor "
                                   "--allow-public)")


# central.json and sensor.json are files a person may edit: numbers keep the ranges
# 'central init' allows, and strictly (JSON true is not port 1; 1e308 s is no lease).
_ACK_WAIT = Field(ge=1, le=3600, strict=True,
                  description="seconds a job lease lasts without progress")


class CentralConfig(Frozen):
    listen_host: str = Field(min_length=1)
    listen_port: int = Field(gt=0, lt=65536, strict=True)
    addresses: list[str] = Field(min_length=1,
                                 description="names/addresses sensors dial (server cert SANs)")
    store: str = Field(min_length=1, description="history store: a path or a database URL")
    ack_wait: float = _ACK_WAIT
    max_deliver: int = Field(ge=1, le=100, strict=True,
                             description="deliveries before a job is failed")
    sensors: dict[str, SensorEntry] = Field(default_factory=dict)

    @field_validator("addresses")
    @classmethod
    def _checked_addresses(cls, value: list[str]) -> list[str]:
        try:
            return [check_address(a, "address") for a in value]
        except FleetError as exc:
            raise ValueError(str(exc)) from None

    # central.json is a file a person may edit: what add-sensor checks is checked on
    # reading too, or a bad name or scope surfaced as a traceback in submit.
    @field_validator("sensors")
    @classmethod
    def _checked_sensors(cls, value: dict[str, SensorEntry]) -> dict[str, SensorEntry]:
        for name, entry in value.items():
            try:
                check_name(name)
                check_scope(entry.scope, entry.allow_public)
            except FleetError as exc:
                raise ValueError(str(exc)) from None
        return value

    @property
    def url(self) -> str:
        host = self.addresses[0]
        return f"tls://[{host}]:{self.listen_port}" if ":" in host else \
            f"tls://{host}:{self.listen_port}"


class SensorBundle(Frozen):
    name: str
    # nats-py, told to reconnect forever, spins on an empty server list.
    servers: list[str] = Field(min_length=1)
    tls_hostname: str = Field(min_length=1)
    scope: list[str]
    ack_wait: float = _ACK_WAIT
    allow_public: StrictBool = False

    @field_validator("servers")
    @classmethod
    def _checked_servers(cls, value: list[str]) -> list[str]:
        # What central writes: tls://HOST:PORT. Anything else was dialled for ever.
        from urllib.parse import urlsplit

        for url in value:
            try:
                parts = urlsplit(url)
                port = parts.port
            except ValueError:
                port = None
                parts = None
            if parts is None or parts.scheme != "tls" or not parts.hostname or port is None \
                    or not 0 < port < 65536:
                raise ValueError(f"server {url[:80]!r} is not tls://HOST:PORT")
            if problem := shorthand_problem(parts.hostname):
                raise ValueError(f"server {url[:80]!r}: host {problem}")
        return value

    @model_validator(mode="after")
    def _checked_scope(self) -> SensorBundle:
        try:
            check_scope(self.scope, self.allow_public)
        except FleetError as exc:
            raise ValueError(str(exc)) from None
        return self


def one_line(exc: ValidationError) -> str:
    """pydantic's first problem as one line (its own text spans lines and a web link)."""
    first = exc.errors()[0]
    where = ".".join(map(str, first["loc"]))
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    msg = str(first["msg"]).removeprefix("Value error, ")
    return f"{where + ': ' if where else ''}{msg}{more}"


def check_name(name: str) -> str:
    if not NAME_RE.match(name) or name == CENTRAL_USER:
        raise FleetError(f"bad sensor name {name!r}: 1-32 of a-z, 0-9 and '-', starting with "
                         f"a letter or digit, and not {CENTRAL_USER!r}")
    return name


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def check_address(value: str, option: str = "--address") -> str:
    """An IP address or an ASCII host name: it goes into the server certificate (whose
    library raised ValueError on an empty, non-ASCII or over-long name) and the bundles."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    # 127.1 and 0x7f000001 pass as host names made of digits; sensors' resolvers would
    # read them as addresses, and which one was meant is a guess.
    if problem := shorthand_problem(value):
        raise FleetError(f"{option} {problem}")
    labels = value.removesuffix(".").split(".")
    if len(value) <= 253 and all(_LABEL.fullmatch(label) for label in labels):
        return value
    raise FleetError(f"{option} {value!r} is neither an IP address nor a host name "
                     "(letters, digits and '-' in dot-separated labels; IDNs as xn--)")


def _public_part(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str | None:
    """The first globally routable stretch of the network, judged as the scan's own guard
    judges targets (scanner/engine/spans.py), or None when it holds none."""
    from scanner.engine.spans import public_parts, range_text

    parts = public_parts(net.version, int(net[0]), int(net[-1]))
    return range_text(net.version, *parts[0]) if parts else None


def check_scope(scope: list[str], allow_public: bool = False) -> list[str]:
    """The scope as networks; one that may hold public addresses only with allow_public
    (the scan refuses public targets unless told --allow-public: a sensor's scope is the
    same promise, made once for all its jobs)."""
    if not scope:
        raise FleetError("a sensor needs at least one --scope network")
    out = []
    for spec in scope:
        try:
            net = ipaddress.ip_network(spec.strip(), strict=False)
        except ValueError:
            if problem := shorthand_problem(spec.strip().partition("/")[0]):
                raise FleetError(f"--scope {problem}") from None
            raise FleetError(f"--scope {spec!r} is not a network (CIDR)") from None
        public = None if allow_public else _public_part(net)
        if public is not None:
            raise FleetError(f"--scope {net} holds public addresses ({public}); a sensor "
                             "may scan them only when added with --allow-public (as a scan "
                             "needs --allow-public)")
        out.append(str(net))
    return out


def read_state(path: Path) -> bytes:
    """A file the fleet wrote itself (central.json, sensor.json), at most 16 MiB, and only
    a regular file: a FIFO put in its place made every command wait for ever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(MAX_TEXT + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_TEXT:
        raise TooLarge(MAX_TEXT)
    return data


def write_json(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class CentralDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pki = root / "pki"
        self.nats = root / "nats"
        self.config_file = root / "central.json"
        self.server_conf = root / "nats-server.conf"
        self.pid_file = self.nats / "nats-server.pid"
        self.log_file = self.nats / "nats-server.log"
        self.ledger = root / "jobs.sqlite"

    def bundle(self, name: str) -> Path:
        return self.root / "sensors" / name

    def check_pki(self, *names: str) -> None:
        """The certificate files about to be read are there and plain files: OpenSSL and
        nats-server read a FIFO put there for ever, a missing CA key was a traceback."""
        for name in names:
            path = self.pki / name
            try:
                mode = path.stat().st_mode
            except OSError as exc:
                raise FleetError(f"cannot read {path}: {exc.strerror or exc}") from None
            if not stat.S_ISREG(mode):
                raise FleetError(f"cannot read {path}: not a regular file")

    def load(self) -> CentralConfig:
        try:
            return CentralConfig.model_validate_json(read_state(self.config_file))
        except FileNotFoundError:
            raise FleetError(f"{self.root} is not a central directory (no central.json; "
                             "run 'dicomscan central init' first)") from None
        except OSError as exc:
            raise FleetError(f"cannot read {self.config_file}: {exc}") from None
        except ValidationError as exc:
            raise FleetError(f"cannot read {self.config_file}: {one_line(exc)}") from None

    def save(self, config: CentralConfig) -> None:
        write_json(self.config_file, config.model_dump_json(indent=2))
        write_public_conf(self, config)

    def store_location(self, config: CentralConfig) -> str:
        return config.store if "://" in config.store else str(self.root / config.store)


def _q(text: str) -> str:
    return json.dumps(text)  # nats-server's config takes JSON-style quoted strings


def sensor_permissions(name: str) -> str:
    """Only its own work: fetch from and ack on its consumer, publish its results and
    progress, and receive on its own inbox prefix (pull deliveries and publish acks go to
    the requester's inbox, so a shared ``_INBOX.>`` would leak other sensors' jobs)."""
    publish = [f"$JS.API.CONSUMER.MSG.NEXT.{JOBS}.{name}", f"$JS.ACK.{JOBS}.{name}.>",
               f"results.{name}.>", f"progress.{name}.>"]
    subscribe = [f"_INBOX_{name}.>"]
    return ("permissions: { publish: { allow: [" + ", ".join(map(_q, publish)) + "] }, "
            "subscribe: { allow: [" + ", ".join(map(_q, subscribe)) + "] } }")


def render_server_conf(d: CentralDir, config: CentralConfig) -> str:
    users = [f"    {{ user: {_q(pki.identity(CENTRAL_USER))} }}"]
    users += [f"    {{ user: {_q(pki.identity(n))}, {sensor_permissions(n)} }}"
              for n in sorted(config.sensors)]
    host = config.listen_host
    listen = f"[{host}]:{config.listen_port}" if ":" in host else f"{host}:{config.listen_port}"
    return "\n".join([
        "# Written by 'dicomscan central'; edits are overwritten by add-sensor.",
        f"server_name: {_q('dicomscan_central')}",
        f"listen: {_q(listen)}",
        f"max_payload: {MAX_PAYLOAD}",
        f"jetstream {{ store_dir: {_q(str(d.nats / 'js'))} }}",
        "tls {",
        f"  cert_file: {_q(str(d.pki / 'server.pem'))}",
        f"  key_file: {_q(str(d.pki / 'server.key'))}",
        f"  ca_file: {_q(str(d.pki / 'ca.pem'))}",
        "  verify_and_map: true  # the client certificate's e-mail SAN is the user",
        "  timeout: 5",
        "}",
        "authorization {",
        "  users = [",
        ",\n".join(users),
        "  ]",
        "}",
        "",
    ])


def write_public_conf(d: CentralDir, config: CentralConfig) -> None:
    write_json(d.server_conf, render_server_conf(d, config))


def init_central(root: Path, listen_host: str, listen_port: int, addresses: list[str],
                 store: str | None, ack_wait: float, max_deliver: int) -> CentralConfig:
    d = CentralDir(root)
    if d.config_file.exists():
        raise FleetError(f"{root} already holds a central configuration")
    if not addresses:
        raise FleetError("give --address: the name or address sensors dial")
    check_address(listen_host, "--listen host")
    addresses = [check_address(a) for a in addresses]
    if len(addresses[0]) > 64:
        raise FleetError(f"--address {addresses[0]!r}: the first address is the server "
                         "certificate's common name, at most 64 characters")
    try:
        root.mkdir(parents=True, exist_ok=True)
        d.pki.mkdir(mode=0o700, exist_ok=True)
        d.nats.mkdir(exist_ok=True)
        pki.make_ca(d.pki)
        pki.issue(d.pki, d.pki / "server.pem", d.pki / "server.key", addresses[0],
                  server_hosts=addresses)
        pki.issue(d.pki, d.pki / "central.pem", d.pki / "central.key", CENTRAL_USER,
                  client_name=CENTRAL_USER)
    except OSError as exc:  # a folder that cannot be made or written
        raise FleetError(f"cannot write the central directory {root}: {exc}") from None
    config = CentralConfig(listen_host=listen_host, listen_port=listen_port,
                           addresses=addresses, store=store or "history.sqlite",
                           ack_wait=ack_wait, max_deliver=max_deliver)
    d.save(config)
    return config


def add_sensor(root: Path, name: str, scope: list[str], allow_public: bool = False,
               ) -> tuple[CentralConfig, Path]:
    d = CentralDir(root)
    config = d.load()
    check_name(name)
    scope = check_scope(scope, allow_public)
    d.check_pki("ca.pem", "ca.key")
    if name in config.sensors:
        raise FleetError(f"sensor {name!r} already exists")
    bundle = d.bundle(name)
    if bundle.exists():
        raise FleetError(f"{bundle} exists but central.json has no sensor {name!r}; remove "
                         "it (nothing trusts a bundle central.json does not list) and retry")
    # Built aside and renamed into place: an interrupted add-sensor leaves no half bundle
    # that the next attempt trips over.
    try:
        bundle.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=bundle.parent))  # mode 0700
    except OSError as exc:  # a file or an unwritable folder in the way: was a traceback
        raise FleetError(f"cannot make the bundle folder in {bundle.parent}: "
                         f"{exc.strerror or exc}") from None
    try:
        try:
            pki.issue(d.pki, work / "sensor.pem", work / "sensor.key", name, client_name=name)
        except ValueError as exc:  # not PEM, not the CA's kind of key
            raise FleetError(f"cannot use the central CA in {d.pki}: {exc}") from None
        pki.write_public(work / "ca.pem", (d.pki / "ca.pem").read_bytes())
        info = SensorBundle(name=name, servers=[config.url], tls_hostname=config.addresses[0],
                            scope=scope, ack_wait=config.ack_wait,
                            allow_public=allow_public)
        write_json(work / "sensor.json", info.model_dump_json(indent=2))
        os.rename(work, bundle)
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, OSError):
            raise FleetError(f"cannot write the bundle {bundle}: {exc}") from None
        raise
    config = config.model_copy(update={"sensors": {**config.sensors,
                                                   name: SensorEntry(
                                                       scope=scope,
                                                       allow_public=allow_public)}})
    d.save(config)
    return config, bundle


def load_bundle(folder: Path) -> SensorBundle:
    try:
        bundle = SensorBundle.model_validate_json(read_state(folder / "sensor.json"))
    except FileNotFoundError:
        raise FleetError(f"{folder} is not a sensor bundle (no sensor.json)") from None
    except OSError as exc:
        raise FleetError(f"cannot read {folder / 'sensor.json'}: {exc}") from None
    except ValidationError as exc:
        raise FleetError(f"cannot read {folder / 'sensor.json'}: {one_line(exc)}") from None
    for part in ("sensor.pem", "sensor.key", "ca.pem"):
        if not (folder / part).is_file():
            raise FleetError(f"sensor bundle {folder} lacks {part}")
    try:  # checked before dialling: a damaged bundle was a traceback or refused for ever
        ca, cert, key = (read_state(folder / p) for p in ("ca.pem", "sensor.pem", "sensor.key"))
    except OSError as exc:
        raise FleetError(f"cannot read sensor bundle {folder}: {exc}") from None
    problem = pki.client_problem(ca, cert, key, bundle.name)
    if problem is not None:
        raise FleetError(f"sensor bundle {folder}: {problem}")
    return bundle
