"""The shipped data tables are parsed once and then read from the user's cache folder
(scanner/model/data_cache.py): a scan with a warm cache never imports PyYAML."""

from __future__ import annotations

import datetime
import os
import socket
from pathlib import Path

from scanner.model.data_cache import shipped_yaml
from tests.test_startup_imports import loaded_by

TABLE = "rules:\n  - id: dicom-cleartext\n    severity: medium\n    references: [a, b]\n"


def test_parsed_once_then_read_from_the_cache(tmp_path: Path) -> None:
    assert shipped_yaml(TABLE, tmp_path) == {
        "rules": [{"id": "dicom-cleartext", "severity": "medium", "references": ["a", "b"]}]}
    [cached] = tmp_path.glob("data-*.marshal")
    # The cache answers by the text's hash: what it holds is what is returned.
    import marshal

    cached.write_bytes(marshal.dumps({"from": "the cache"}))
    assert shipped_yaml(TABLE, tmp_path) == {"from": "the cache"}
    # Another text is another entry.
    assert shipped_yaml(TABLE + "extra: 1\n", tmp_path)["extra"] == 1
    assert len(list(tmp_path.glob("data-*.marshal"))) == 2


def test_a_bad_cache_is_parsed_again_and_rewritten(tmp_path: Path) -> None:
    expected = shipped_yaml(TABLE, tmp_path)
    [cached] = tmp_path.glob("data-*.marshal")
    for bad in (b"", b"\x00garbage", b"\xe9"):
        cached.write_bytes(bad)
        assert shipped_yaml(TABLE, tmp_path) == expected
    import marshal

    assert marshal.loads(cached.read_bytes()) == expected


def test_what_marshal_cannot_hold_or_no_folder_only_costs_the_parse(tmp_path: Path) -> None:
    dated = "advisories:\n  - id: X\n    published: 2026-01-31\n"
    assert shipped_yaml(dated, tmp_path) == {
        "advisories": [{"id": "X", "published": datetime.date(2026, 1, 31)}]}
    assert list(tmp_path.glob("data-*.marshal")) == []
    blocked = tmp_path / "a-file"
    blocked.write_text("where the cache folder would be")
    assert shipped_yaml(TABLE, blocked)["rules"][0]["id"] == "dicom-cleartext"


def test_a_scan_with_a_warm_cache_never_imports_yaml(tmp_path: Path) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    args = ("127.0.0.1", "-p", str(srv.getsockname()[1]), "--profile", "fast")
    try:
        cold, warm = loaded_by(*args, env=env), loaded_by(*args, env=env)
    finally:
        srv.close()
    assert "scanner.rules.evaluate" in cold and "yaml" in cold  # the tables were read
    assert "scanner.rules.evaluate" in warm and "yaml" not in warm
    assert list((tmp_path / "dicomscan").glob("data-*.marshal"))
