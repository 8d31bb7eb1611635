"""Site configuration: named scan jobs in one YAML file, checked with pydantic, with
errors that name the file, the line and the key.

A job's keys are the scan command's options (same names, same meaning); paths in it are
relative to the file. ``job_options`` turns a job into options for ``build_settings``:
the command line wins over the file wherever the user gave an option explicitly.
"""

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from scanner.model import DiscoveryMethod, EngineName, ProfileName
from scanner.model.ages import parse_age
from scanner.model.base import empty_list
from scanner.model.documents import (
    TooDeep,
    Unconvertible,
    check_yaml_nesting,
    load_yaml,
    read_text,
)
from scanner.model.drift import DriftKind
from scanner.model.shorthand import is_decimal


class SiteConfigError(ValueError):
    """A problem in the file, with where it is: ``file:line: key: message`` per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OutputSpec(_Strict):
    format: Literal["table", "json", "jsonl", "ocsf", "csv", "html"]
    path: str = Field(description="file to write (relative to the configuration file)")


MAX_RANDOMIZED_DELAY = 7 * 86400  # seconds: a weekly job's whole week, no more
# Port numbers written as YAML integers: strict, so 'true' is not port 1 and -1 is not
# the open range "-1" that the text form allows (the top is the port list's own check).
Port = Annotated[int, Field(strict=True, ge=1)]

# Vixie cron's fields: their ranges and the names it takes (cron refuses a crontab
# holding anything else, so the nightly scan would silently never be installed).
_CRON_FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
                ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                  "sep", "oct", "nov", "dec")),
                ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")))
_CRON_ITEM = re.compile(r"(\*|(\w+)(?:-(\w+))?)(?:/([0-9]+))?", re.ASCII)


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    if text.lower() in names:
        return True
    return is_decimal(text) and len(text) <= 3 and low <= int(text) <= high


def check_cron(value: str) -> str:
    """Five crontab time fields, each number in its field's range (a hand-written check:
    the cron libraries on PyPI accept more syntax than cron itself, e.g. L, W, # and H)."""
    fields = value.split()
    if len(fields) != 5:
        raise ValueError("cron needs five time fields, e.g. '0 2 * * *'")
    for text, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            m = _CRON_ITEM.fullmatch(item)
            ok = m is not None and (m.group(1) == "*" or (
                _cron_value(m.group(2), low, high, names)
                and (m.group(3) is None or _cron_value(m.group(3), low, high, names))))
            step = m.group(4) if m is not None else None
            if not ok or (step is not None and not (len(step) <= 3 and 0 < int(step) <= high)):
                raise ValueError(f"cron {what} {item!r}: not a value, range or step within "
                                 f"{low}-{high}")
    return value


class RetentionSpec(_Strict):
    """After each scheduled scan, ``history prune`` of the job's scans with these rules."""

    older_than: str | None = Field(default=None, description="delete scans older than: 90d, "
                                   "12w, 36h")
    keep: int | None = Field(default=None, ge=1, strict=True,
                             description="keep the job's N newest scans")

    @field_validator("older_than")
    @classmethod
    def _an_age(cls, value: str | None) -> str | None:
        if value is not None:
            parse_age(value)  # AgeError is a ValueError: said with the file's line and key
        return value

    @model_validator(mode="after")
    def _a_rule(self) -> Self:
        if self.older_than is None and self.keep is None:
            raise ValueError("say what to delete: older_than, keep or both")
        return self

    def prune_args(self) -> list[str]:
        """The rules as ``history prune`` options."""
        return ([*(["--older-than", self.older_than] if self.older_than else []),
                 *(["--keep", str(self.keep)] if self.keep else [])])


class ScheduleSpec(_Strict):
    cron: str = Field(default="0 2 * * *", description="crontab time fields (five)")
    on_calendar: str = Field(default="*-*-* 02:00:00", min_length=1,
                             description="systemd OnCalendar=")
    randomized_delay: int = Field(default=300, ge=0, le=MAX_RANDOMIZED_DELAY, strict=True,
                                  description="seconds (systemd timer), at most a week")
    retention: RetentionSpec | None = Field(
        default=None, description="prune the job's stored scans after each scheduled scan")

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        return check_cron(value)


class JobSpec(_Strict):
    targets: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=empty_list)
    do_not_probe: list[str] = Field(
        default_factory=empty_list,
        description="devices never to touch (fragile): addresses, networks, ranges, host names "
        "or MACs, kept out as --exclude-file entries are and listed in scan.skipped")
    scope: list[str] = Field(default_factory=empty_list)
    allow_public: StrictBool = False  # 1 or "yes" is a typo, not a yes
    profile: ProfileName = ProfileName.SAFE
    ports: str | list[Port | str] = "default"
    policy: str | None = None
    calling_ae: str = "DICOMSCAN"
    ae_titles: list[str] = Field(default_factory=empty_list)
    client_cert: str | None = None
    client_key: str | None = None
    ca: str | None = None
    discovery: DiscoveryMethod = DiscoveryMethod.AUTO
    engine: EngineName = EngineName.EMBEDDED
    fail_on: Literal["info", "low", "medium", "high", "critical", "never"] = "high"
    outputs: list[OutputSpec] = Field(default_factory=empty_list)
    syslog: str | None = Field(default=None, description="CEF over syslog: udp|tcp|tls://HOST:PORT")
    drift_output: str | None = Field(
        default=None, description="JSON Lines drift events since the job's previous scan")
    fail_on_drift: list[DriftKind | Literal["any"]] = Field(default_factory=empty_list)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)

    @property
    def needs_raw_sockets(self) -> bool:
        """ARP and ICMP discovery (auto may choose either) need CAP_NET_RAW."""
        return self.discovery in (DiscoveryMethod.AUTO, DiscoveryMethod.ARP,
                                  DiscoveryMethod.ICMP)


def job_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a job, or None. Names become systemd unit names and
    history keys, and are printed in tables: kept plain wherever they are given."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", name):
        return None
    return (f"job name {name[:80]!r}: letters, digits, '-' and '_' only (at most 64, "
            "starting with a letter or digit)")


class SiteConfig(_Strict):
    version: Literal[1] = 1
    history: str | None = Field(default=None, min_length=1,
                                description="history path or database URL")
    jobs: dict[str, JobSpec] = Field(min_length=1)

    @field_validator("jobs")
    @classmethod
    def _job_names(cls, jobs: dict[str, JobSpec]) -> dict[str, JobSpec]:
        # Names become systemd unit names and history keys: keep them plain.
        for name in jobs:
            if problem := job_name_problem(name):
                raise ValueError(problem)
        return jobs

    def job(self, name: str | None) -> tuple[str, JobSpec]:
        if name is None:
            if len(self.jobs) == 1:
                return next(iter(self.jobs.items()))
            raise SiteConfigError([f"several jobs ({', '.join(self.jobs)}): choose one with "
                                   "--job"])
        if name not in self.jobs:
            raise SiteConfigError([f"no job {name!r} (jobs: {', '.join(self.jobs)})"])
        return name, self.jobs[name]


_PATH_KEYS = ("policy", "client_cert", "client_key", "ca")


def _node_at(node: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    """The deepest YAML node on the path of a pydantic error location."""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if child is None:
                key = next((k for k, _ in node.value if getattr(k, "value", None) == part), None)
                return key or node
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def _where(path: Path, node: yaml.Node | None) -> str:
    return f"{path}:{node.start_mark.line + 1}" if node is not None else str(path)


def load_site_config(path: str | Path, check_files: bool = True) -> SiteConfig:
    """Read and check a site configuration; relative paths become absolute."""
    path = Path(path)
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        check_yaml_nesting(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = load_yaml(text, yaml.SafeLoader)
    except (TooDeep, Unconvertible) as exc:
        raise SiteConfigError([f"{path}: {exc}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SiteConfigError([f"{path}{line}: not valid YAML: "
                               f"{getattr(exc, 'problem', None) or exc}"]) from None
    if not isinstance(data, dict):
        raise SiteConfigError([f"{path}: expected a mapping with 'jobs:' at the top"])
    try:
        config = SiteConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not isinstance(p, str) or
                        not p.startswith(("function-", "literal[", "list[", "str", "constrained-")))
            key = ".".join(str(p) for p in loc) or "(top)"
            problems.append(f"{_where(path, _node_at(root, loc))}: {key}: {err['msg']}")
        raise SiteConfigError(problems) from None
    return _resolve_paths(config, path, root, check_files)


def _not_a_file(full: Path) -> str:
    """Why a path named in the file is no file to read ("no such file" for a folder or a
    named pipe sent the user looking for a typo)."""
    import os

    from scanner.model.documents import file_kind

    try:
        return f"{file_kind(os.stat(full).st_mode)}, not a file: {full}"
    except OSError:
        return f"no such file: {full}"


def _resolve_paths(config: SiteConfig, path: Path, root: yaml.Node | None,
                   check_files: bool) -> SiteConfig:
    base = path.absolute().parent
    problems: list[str] = []
    jobs: dict[str, JobSpec] = {}
    for name, job in config.jobs.items():
        update: dict[str, Any] = {}
        for key in _PATH_KEYS:
            value = getattr(job, key)
            if value is None:
                continue
            full = (base / value).resolve()
            if check_files and not full.is_file():
                node = _node_at(root, ("jobs", name, key))
                problems.append(f"{_where(path, node)}: jobs.{name}.{key}: {_not_a_file(full)}")
            update[key] = str(full)
        if bool(job.client_cert) != bool(job.client_key):
            node = _node_at(root, ("jobs", name, "client_cert" if job.client_cert
                                   else "client_key"))
            problems.append(f"{_where(path, node)}: jobs.{name}: client_cert and client_key "
                            "go together")
        if job.drift_output:  # [FORMAT:]PATH: the path is relative, not "ocsf:..."
            from scanner.outputs.registry import drift_file

            fmt, where = drift_file(job.drift_output)
            full = str((base / where).absolute())
            update["drift_output"] = full if where == job.drift_output else f"{fmt}:{full}"
        update["outputs"] = [o.model_copy(update={"path": str((base / o.path).absolute())})
                             for o in job.outputs]
        jobs[name] = job.model_copy(update=update)
    if problems:
        raise SiteConfigError(problems)
    history = config.history
    if history and "://" not in history:
        history = str((base / history).absolute())
    return config.model_copy(update={"jobs": jobs, "history": history})


def job_options(job: JobSpec, given: dict[str, Any], explicit: set[str]) -> dict[str, Any]:
    """The scan command's options from a job; options in ``explicit`` keep their value."""
    ports = job.ports if isinstance(job.ports, str) else ",".join(str(p) for p in job.ports)
    from_job: dict[str, Any] = {
        "targets": tuple(job.targets),
        "exclude": tuple(job.exclude),
        # Do-not-probe entries, not exclusions: a host name or MAC there is honoured (as an
        # exclusion it was refused), and each device kept out is listed with its reason.
        "do_not_probe": tuple(job.do_not_probe),
        "scope": tuple(job.scope),
        "allow_public": job.allow_public,
        "profile": job.profile.value,
        "ports": ports,
        "policy": job.policy,
        "calling_ae": job.calling_ae,
        "ae_title": tuple(job.ae_titles),
        "client_cert": job.client_cert,
        "client_key": job.client_key,
        "ca": job.ca,
        "discovery": job.discovery.value,
        "engine": job.engine.value,
        "fail_on": job.fail_on,
        "fail_on_drift": ",".join(str(k) for k in job.fail_on_drift) or None,
        "drift_output": job.drift_output,
        "outputs": tuple(f"{o.format}:{o.path}" for o in job.outputs),
        "syslog": job.syslog,
    }
    merged = dict(given)
    for key, value in from_job.items():
        if key not in explicit:
            merged[key] = value
    return merged
