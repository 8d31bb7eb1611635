"""Active probes: each measures and returns typed observations, never verdicts."""
