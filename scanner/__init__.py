"""dicomscan: a DICOM network and device hardening scanner."""

__version__ = "0.1.0"
