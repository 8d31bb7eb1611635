"""``-v``: the engine's log on stderr, with every secret redacted on the way out.

The engine already leaves secrets out of what it logs; this filter is the second fence,
for any message (a library's, an exception's text) that might carry one.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scanner.model import ScanSettings

REDACTED = "[redacted]"


class Redact(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        record.msg, record.args = text, None
        return True


def secrets_of(settings: ScanSettings) -> list[str]:
    """The client key's path and the default passwords the intrusive web check may try."""
    from probes.web_products import web_table

    out = [settings.client_key or ""]
    out += [p.default_credentials.password for p in web_table().products
            if p.default_credentials is not None]
    return out


# The engine's own log, and what the probes noted about odd peers (a library's warning
# while decoding a peer's PDU, for one): kept off stderr unless -v asks for it.
_LOGGERS = {"dicomscan": logging.INFO, "probes": logging.DEBUG}


def enable(settings: ScanSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dicomscan: %(message)s"))
    handler.addFilter(Redact(secrets_of(settings)))
    for name, level in _LOGGERS.items():
        log = logging.getLogger(name)
        log.addHandler(handler)
        log.setLevel(level)
