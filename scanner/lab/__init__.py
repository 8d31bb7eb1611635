"""A lab of real DICOM peers on loopback, for the tests and ``dicomscan demo``."""

from scanner.lab.peers import (
    PeerInfo,
    PeerStartError,
    RunningPeer,
    available_starters,
    free_port,
    lab,
    start_ctn_simple_storage,
    start_dcmqrscp,
    start_orthanc,
    start_pynetdicom_scp,
    start_storescp,
    which_available,
)

__all__ = [
    "PeerInfo",
    "PeerStartError",
    "RunningPeer",
    "available_starters",
    "free_port",
    "lab",
    "start_ctn_simple_storage",
    "start_dcmqrscp",
    "start_orthanc",
    "start_pynetdicom_scp",
    "start_storescp",
    "which_available",
]
