"""Typed observations of the HTTP probe and of the remote-access banner parser.

Kept apart from ``scanner.model.observations`` (which adds these classes to its
``Observation`` union) and importing nothing from it, so there is no import cycle.
No returned data is ever stored: only status codes, selected headers, the page
title of ``/``, a product's self-declared name and version, and item counts.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HttpCheck(_Frozen):
    """One GET request and what came back (status and headers; no body is kept)."""

    kind: Literal["http-check"] = "http-check"
    scheme: str = Field(description="http or https")
    path: str
    purpose: str = Field(
        description="root, product (identification), dicomweb, rest-api or default-credentials"
    )
    status: int | None = Field(default=None, description="HTTP status; None when no answer")
    server: str | None = Field(default=None, description="the Server header")
    content_type: str | None = None
    auth_realm: str | None = Field(
        default=None, description="the WWW-Authenticate challenge of a 401, as sent"
    )
    title: str | None = Field(default=None, description="<title> of an HTML answer (root only)")
    items: int | None = Field(
        default=None,
        description="entries in a JSON array answer (queries ask for limit=1); the entries "
        "themselves are discarded",
    )
    with_credentials: bool = Field(
        default=False, description="sent with documented default credentials (--intrusive)"
    )
    detail: str = ""
    elapsed_ms: float = 0.0
    body_complete: bool | None = Field(
        default=None,
        description="the body arrived whole (false: it never ended, or outgrew the read cap)",
    )

    @property
    def answered_2xx(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused_auth(self) -> bool:
        return self.status in (401, 403)


class HttpSummary(_Frozen):
    """The verdict-free summary of one web service."""

    kind: Literal["http-summary"] = "http-summary"
    scheme: str = Field(description="http or https")
    tls: bool
    status: int | None = Field(default=None, description="status of GET /")
    server: str | None = None
    title: str | None = None
    product: str | None = Field(default=None, description="PACS software identified, if any")
    version: str | None = Field(default=None, description="its release, when it discloses it")
    identified_by: str | None = Field(default=None, description="which answer named the product")
    auth_challenge: bool = Field(default=False, description="some request was answered 401/403")
    default_credentials_tried: bool = False
    default_credentials_accepted: bool | None = Field(
        default=None, description="None when not tried (needs --intrusive)"
    )
    requests: int = 0


class ServiceBannerInfo(_Frozen):
    """What a remote-access or HL7 service disclosed in answer to our A-ASSOCIATE-RQ
    (or that it answered at all); parsed from the ``banner`` observation, no new traffic."""

    kind: Literal["service-banner"] = "service-banner"
    protocol: str = Field(description="ssh, ftp, telnet, vnc, rdp, smb, rpc or hl7-mllp")
    category: str = Field(description="remote-access or hl7")
    answered: bool = Field(description="the service sent bytes back")
    banner: str | None = Field(default=None, description="first line, printable")
    protocol_version: str | None = Field(
        default=None, description="SSH protocol version (2.0) or RFB version (3.8)"
    )
    software: str | None = Field(
        default=None, description="SSH software version (e.g. OpenSSH_9.2p1) or FTP greeting"
    )
    comment: str | None = Field(default=None, description="SSH comment (e.g. Debian-2+deb12u10)")


HTTP_OBSERVATIONS = (HttpCheck, HttpSummary, ServiceBannerInfo)
