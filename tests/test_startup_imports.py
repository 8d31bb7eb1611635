"""Start-up: a scan that finds nothing open loads none of the heavy machinery (pynetdicom,
pydicom, numpy, cryptography, SQLAlchemy, the probes and the rules); a scan that finds a
port open loads what it needs, and not numpy or requests through pydicom. Checked on the
real command, in a fresh interpreter."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scanner.engine.job import nothing_to_judge
from scanner.model import Host, PortObservation, PortState
from scanner.rules.evaluate import evaluate

HEAVY = ("pynetdicom", "pydicom", "numpy", "cryptography", "sqlalchemy", "requests",
         "rich",  # the table, the progress bar and the escaper of error messages only
         "probes.dicom.client", "probes.tls", "probes.identify", "scanner.rules.evaluate",
         "scanner.identify.host_analysis", "scanner.outputs.html_report",
         # the other commands' modules (scanner/cli/main.py loads a command when it runs)
         "scanner.cli.audit", "scanner.cli.central", "scanner.cli.jobs", "scanner.cli.sensor",
         "scanner.cli.rules", "scanner.cli.baselines", "scanner.cli.report", "scanner.cli.demo",
         "scanner.cli.info", "scanner.cli.history",
         # history's drift model, only with --fail-on-drift or a history
         "scanner.model.drift",
         # the observation models, built once a service has one (lazy_observations.py)
         "scanner.model.observations", "scanner.model.tls_observations",
         "scanner.model.http_observations", "scanner.model.legacy_observations")

RUN = """
import json, sys
from scanner.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write(json.dumps(sorted(m for m in sys.modules)))
"""


def loaded_by(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a scan with ``args`` loaded, in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", RUN, "scan", *args, "--format", "json",
                          "--fail-on", "never", "-q"], capture_output=True, text=True,
                         timeout=120, env=env)
    names: list[str] = json.loads(out.stderr.strip().splitlines()[-1])
    return set(names)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("to_file", [False, True], ids=["stdout", "file"])
def test_closed_port_scan_loads_nothing_heavy(to_file: bool, tmp_path: Path) -> None:
    out = ("-o", str(tmp_path / "scan.json")) if to_file else ()
    loaded = loaded_by("127.0.0.1", "-p", str(closed_port()), *out)
    assert "scanner.engine.job" in loaded  # it did scan
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY)
    assert heavy == [], heavy
    assert not to_file or (tmp_path / "scan.json").stat().st_size > 0


def test_open_port_scan_loads_the_dicom_machinery() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    try:
        loaded = loaded_by("127.0.0.1", "-p", str(srv.getsockname()[1]), "--profile", "fast")
    finally:
        srv.close()
    assert {"pynetdicom", "probes.dicom.client", "scanner.rules.evaluate"} <= loaded
    # pydicom's pixel handlers and data downloader stay out (probes/dicom/__init__.py).
    assert not {"numpy", "requests"} & loaded
    # The web product table waits for a web server, the policy's models for a policy.
    assert not {"probes.web_products", "scanner.rules.policy"} & loaded


def test_rules_judge_nothing_on_hosts_without_open_ports_or_services() -> None:
    """The assumption that lets the engine skip loading the rules."""
    now = datetime.now(UTC)
    hosts = [Host(address=f"127.0.0.{i}", ports=[
        PortObservation(port=p, state=s, method="tcp-connect", reason="test", observed_at=now)
        for p, s in ((22, PortState.CLOSED), (104, PortState.FILTERED), (3389, PortState.CLOSED))
    ]) for i in (1, 2)]
    assert nothing_to_judge(hosts, None)
    assert evaluate(hosts) == []
    assert not nothing_to_judge(hosts, {"waivers": []})


# Modules outside scanner.model whose models a scan builds: the data tables' shapes
# (probes, fingerprints, vendors, advisories, certificates, rules, baselines), the policy
# and the site configuration. The lab's spec is held to the same rule.
SCAN_MODEL_MODULES = (
    "probes.web_products", "scanner.identify.product_table", "scanner.identify.vendor",
    "scanner.rules.advisories", "scanner.rules.baseline_model", "scanner.rules.catalogue",
    "scanner.rules.default_certs", "scanner.rules.policy", "scanner.engine.site_config",
    "scanner.lab.netns_spec")


def test_models_avoid_pydantic_s_slow_paths_at_import() -> None:
    """Every model is built when a scan starts (scanner/model/base.py says why these two
    matter): no string annotations to evaluate, no builtin default factory whose text
    signature pydantic would parse."""
    import importlib
    import pkgutil

    import pydantic

    import scanner.model

    checked = 0
    names = [f"scanner.model.{info.name}" for info in pkgutil.iter_modules(scanner.model.__path__)]
    for name in [*names, *SCAN_MODEL_MODULES]:
        module = importlib.import_module(name)
        models = [v for v in vars(module).values() if isinstance(v, type)
                  and issubclass(v, pydantic.BaseModel) and v.__module__ == module.__name__]
        if not models:
            continue
        assert "annotations" not in vars(module), f"{module.__name__}: from __future__ import"
        for model in models:
            for name, field in model.model_fields.items():
                factory = field.default_factory
                assert factory not in (list, dict, set, tuple), f"{model.__name__}.{name}"
                checked += 1
    assert checked > 150


def test_the_command_line_skips_pydantic_plugin_discovery() -> None:
    """pydantic would read every installed distribution's entry points when the first model
    is built (scanner/cli/main.py); a user's own setting of the variable is kept."""
    code = ("import os, sys\n"
            "from pydantic.plugin import _loader\n"
            "from scanner.cli.main import main\n"
            "try:\n"
            "    main(['scan', '127.0.0.1', '-p', sys.argv[1], '--format', 'json', '-q'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "setting = os.environ.get('PYDANTIC_DISABLE_PLUGINS')\n"
            "sys.stderr.write(repr((_loader._plugins, setting)))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    out = subprocess.run([sys.executable, "-c", code, str(closed_port())], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.stderr.strip().splitlines()[-1] == "(None, '__all__')"
    out = subprocess.run([sys.executable, "-c", code, str(closed_port())], capture_output=True,
                         text=True, timeout=120, env={**env, "PYDANTIC_DISABLE_PLUGINS": ""})
    assert out.stderr.strip().splitlines()[-1] == "({}, '')"
