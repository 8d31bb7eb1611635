"""Shipped hardening baselines (YAML data only), installed as ``dicomscan_baselines``."""
