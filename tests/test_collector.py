"""The garbage collector during a command: off while start-up loads what lives to the
end, then on (with that frozen) for the work itself, so a long scan still frees cycles."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from scanner.cli.collector import loading
from tests.test_startup_imports import closed_port


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_loading_collects_nothing_then_freezes_what_it_made_and_collects_again() -> None:
    gc.enable()
    gc.unfreeze()
    with loading():
        assert not gc.isenabled()
        kept = [Node() for _ in range(100)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(kept)  # later collections skip the loaded objects
    del kept
    Node()  # garbage made after loading is still collected
    assert gc.collect() >= 1


def test_a_nested_or_failed_load_leaves_the_outer_block_in_charge() -> None:
    gc.enable()
    with loading():
        with loading():
            pass
        assert not gc.isenabled()
        with pytest.raises(ValueError), loading():
            raise ValueError("bad input")
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    with loading():
        pass
    assert not gc.isenabled()  # it was off before: not switched on behind the caller


RUN = """
import gc, json, sys
import scanner.engine.run as engine
seen = {}
real = engine.run_scan
def watched(*args, **kwargs):
    seen["enabled"], seen["frozen"] = gc.isenabled(), gc.get_freeze_count()
    return real(*args, **kwargs)
engine.run_scan = watched
from scanner.cli.entry import main
try:
    main()
except SystemExit as exc:
    seen["code"] = exc.code
sys.stderr.write(json.dumps(seen))
"""


def test_the_scan_itself_runs_with_the_collector_on() -> None:
    out = subprocess.run([sys.executable, "-c", RUN, "scan", "127.0.0.1", "-p", str(closed_port()),
                          "--format", "json", "--fail-on", "never", "-q"],
                         capture_output=True, text=True, timeout=120)
    seen = json.loads(out.stderr.strip().splitlines()[-1])
    assert seen["code"] == 0
    assert seen["enabled"] is True
    assert seen["frozen"] > 10_000  # the model and the engine, loaded with it off
    assert json.loads(out.stdout)["hosts"][0]["ports"][0]["state"] == "closed"
