"""A sensor bundle that is damaged, mixed up or from another centre: one line and exit 2
before the sensor dials. Its TLS files were a traceback (ssl.SSLError) when not PEM, and
a certificate another CA signed, or another sensor's, was dialled and refused for ever."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fleet_harness import dicomscan
from tests.test_fleet_inputs import one_line_error


@pytest.fixture(scope="module")
def centres(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two centres: the first with sensors s1 and s2, the second with its own s1."""
    root = tmp_path_factory.mktemp("centres")
    for name, sensors in (("a", ("s1", "s2")), ("b", ("s1",))):
        out = dicomscan("central", "init", str(root / name), "--listen", "127.0.0.1:4999")
        assert out.returncode == 0, out.stderr
        for sensor in sensors:
            assert dicomscan("central", "add-sensor", str(root / name), sensor, "--scope",
                             "127.0.0.0/8").returncode == 0
    return root / "a", root / "b"


def _damage(bundle: Path, how: str, a: Path, b: Path) -> None:
    if how == "key-not-pem":
        (bundle / "sensor.key").write_text("garbage\n")
    elif how == "ca-not-pem":
        (bundle / "ca.pem").write_text("garbage\n")
    elif how == "cert-not-pem":
        (bundle / "sensor.pem").write_bytes(b"\x00" * 100)
    elif how == "other-centre-ca":
        shutil.copy(b / "sensors" / "s1" / "ca.pem", bundle / "ca.pem")
    elif how == "other-centre-cert":
        for part in ("sensor.pem", "sensor.key"):
            shutil.copy(b / "sensors" / "s1" / part, bundle / part)
    elif how == "other-sensor-key":
        shutil.copy(a / "sensors" / "s2" / "sensor.key", bundle / "sensor.key")
    elif how == "other-sensor-cert":
        for part in ("sensor.pem", "sensor.key"):
            shutil.copy(a / "sensors" / "s2" / part, bundle / part)
    elif how == "encrypted-key":
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key((bundle / "sensor.key").read_bytes(), None)
        (bundle / "sensor.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")))


CASES = [
    ("key-not-pem", "sensor.key is not an unencrypted PEM private key"),
    ("ca-not-pem", "ca.pem is not a PEM certificate"),
    ("cert-not-pem", "sensor.pem is not a PEM certificate"),
    ("encrypted-key", "sensor.key is not an unencrypted PEM private key"),
    ("other-centre-ca", "sensor.pem was not issued by the bundle's ca.pem"),
    ("other-centre-cert", "sensor.pem was not issued by the bundle's ca.pem"),
    ("other-sensor-key", "sensor.key is not the key of sensor.pem"),
    ("other-sensor-cert", "sensor.pem is the certificate of s2@dicomscan.fleet, not of "
                          "sensor 's1'"),
]


@pytest.mark.parametrize(("how", "words"), CASES, ids=[c[0] for c in CASES])
def test_damaged_or_foreign_bundle_is_refused_before_dialling(
        how: str, words: str, centres: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = centres
    bundle = tmp_path / "s1"
    shutil.copytree(a / "sensors" / "s1", bundle)
    _damage(bundle, how, a, b)
    # Nothing listens on 127.0.0.1:4999: a bundle that passed would dial until the timeout.
    one_line_error(dicomscan("sensor", str(bundle), timeout=20), 2, f"sensor bundle {bundle}: "
                   f"{words}")


def test_add_sensor_where_the_bundle_folder_cannot_be_made(tmp_path: Path) -> None:
    """A file in place of DIR/sensors was a FileExistsError traceback (exit 1)."""
    root = tmp_path / "c"
    assert dicomscan("central", "init", str(root), "--listen", "127.0.0.1:4999"
                     ).returncode == 0
    (root / "sensors").write_text("")
    one_line_error(dicomscan("central", "add-sensor", str(root), "s1", "--scope",
                             "127.0.0.0/8"), 2,
                   f"cannot make the bundle folder in {root / 'sensors'}: File exists")
    assert "s1" not in (root / "central.json").read_text()


@pytest.mark.peers
@pytest.mark.skipif(shutil.which("nats-server") is None, reason="needs nats-server")
def test_bundle_of_another_centre_stops_at_the_handshake(centres: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    """A whole bundle of another centre (its CA, certificate and key agree) dialled a real
    central whose certificate its CA did not sign: it retried for ever, one warning now
    and then. It now stops with exit 2 and the reason."""
    import json

    from tests.fleet_harness import Fleet

    fleet = Fleet(tmp_path / "fleet")
    fleet.add_sensor("s1", "127.0.0.0/8")
    fleet.start_central()
    try:
        bundle = tmp_path / "s1"
        shutil.copytree(centres[1] / "sensors" / "s1", bundle)
        doc = json.loads((bundle / "sensor.json").read_text())
        doc["servers"] = [f"tls://127.0.0.1:{fleet.port}"]
        (bundle / "sensor.json").write_text(json.dumps(doc))
        one_line_error(dicomscan("sensor", str(bundle), timeout=30), 2,
                       f"central at tls://127.0.0.1:{fleet.port} fails the certificate "
                       f"check of bundle {bundle}: unable to get local issuer certificate")
        # this centre's own bundle still connects
        fleet.start_sensor("s1")
        fleet.wait_sensor_ready("s1")
    finally:
        fleet.stop()
