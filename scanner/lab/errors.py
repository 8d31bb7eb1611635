"""Errors of the loopback lab."""

from __future__ import annotations


class PeerStartError(RuntimeError):
    """A peer did not start: its binary failed, exited, or never listened on loopback."""

    def __init__(self, name: str, reason: str, log_tail: str = "") -> None:
        message = f"{name}: {reason}"
        if log_tail:
            message += f"\n--- last lines of its log ---\n{log_tail}"
        super().__init__(message)
        self.name = name
        self.reason = reason
        self.log_tail = log_tail
