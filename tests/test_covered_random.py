"""Deduplicating targets (``Covered`` in scanner/engine/spans.py) gives the same result on
large random lists as a plain set of addresses would: every ``take`` returns exactly the
addresses of its interval not taken before, as maximal runs in order, also with blocks
so small that most takes cross them. Its speed (no longer quadratic: README, "Bad input,
fifth pass") is not asserted here, as it could flake on a loaded machine; its results are."""

from __future__ import annotations

import ipaddress
import random

import pytest

from scanner.engine import spans
from scanner.engine.spans import Covered
from scanner.engine.targets import build_targets


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted numbers as maximal runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


@pytest.mark.parametrize(("seed", "load", "steps"),
                         [(1, 512, 70_000), (2, 512, 70_000), (3, 512, 70_000),
                          (4, 2, 20_000), (5, 3, 20_000)])
def test_take_matches_a_set_on_a_large_random_list(
        seed: int, load: int, steps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny blocks (load 2 or 3) make most takes cross, split and empty blocks.
    monkeypatch.setattr(spans, "_LOAD", load)
    rng = random.Random(seed)
    universe = 300_000 if steps > 20_000 else 60_000  # repeats, touching and overlapping
    covered, seen = Covered(), set()
    for step in range(steps):
        first = rng.randrange(universe)
        last = first if rng.random() < 0.8 else min(universe, first + rng.randrange(60))
        family = (4, "") if step % 7 else (6, "eth0")  # families are kept apart
        got = covered.take(family, first, last)
        fresh = [n for n in range(first, last + 1) if (family, n) not in seen]
        assert got == _runs(fresh), (step, first, last)
        seen.update((family, n) for n in fresh)
    # one interval over everything: what is left is exactly the complement
    for family in ((4, ""), (6, "eth0")):
        left = covered.take(family, 0, universe)
        assert left == _runs([n for n in range(universe + 1) if (family, n) not in seen])
        assert covered.take(family, 0, universe) == []


def test_65536_random_single_addresses_keep_their_order_once_each() -> None:
    rng = random.Random(7)
    numbers = rng.sample(range(1 << 24), 65_536)
    numbers += rng.sample(numbers, 1000)  # repeats, later in the list
    specs = [str(ipaddress.IPv4Address((10 << 24) + n)) for n in numbers]
    got = build_targets(specs, max_addresses=65_536).addresses
    assert got == list(dict.fromkeys(specs))
    assert len(got) == 65_536
