"""TLS probe: versions, suites, certificate, mutual TLS and DICOM inside TLS."""

from probes.tls.probe import DEFAULT_OPTIONS, TlsOptions, make_tls_probe, tls_probe

__all__ = ["DEFAULT_OPTIONS", "TlsOptions", "make_tls_probe", "tls_probe"]
