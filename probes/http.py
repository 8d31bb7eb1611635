"""The HTTP follow-up probe: web consoles, DICOMweb and PACS REST APIs.

Never sent to a port that answered DICOM (in the clear or inside TLS): a legacy DICOM
stack can die from an HTTP request. It runs on services whose first bytes were HTTP
(``svc.name == "http"``) and on services that speak TLS (HTTPS, certificate not
verified: the TLS probe judges the certificate).

Only GET requests, each on its own connection through the host's gate, whose answer
proves exposure: status code, a few headers, the title of ``/``, the product's own
version from Orthanc's ``/system``, and the number of entries of a JSON array (queries
ask for ``limit=1``). At most ``_MAX_BODY`` bytes of a body are read and every body is
discarded once those facts are taken from it: no patient data is stored.

Requests, per web service: ``/``, then those of ``scanner/data/web_products.yaml``
(Orthanc's ``/system``, DICOMweb QIDO-RS and WADO-URI, dcm4chee-arc's QIDO-RS base),
which also says how the answers name the product; then the identified product's own API
requests (on Orthanc ``/patients`` and ``/studies``). With ``--intrusive`` and a product
that asks for credentials, one request with its documented default user, recording only
whether it worked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scanner.model.http_observations import HttpCheck, HttpSummary
from scanner.model.shorthand import is_decimal

if TYPE_CHECKING:
    from probes.context import ProbeContext, ServiceState
    from probes.web_products import WebSignature

_MAX_HEAD = 16384
_MAX_BODY = 4096
_NO_BODY = (204, 304)  # answers without a body (RFC 9110 6.4.1): whole as they stand
_SKIP = ("dicom", "dicom-tls")  # never send HTTP to a port that answered DICOM

_TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


@dataclass
class Answer:
    """One HTTP answer; ``body`` is at most ``_MAX_BODY`` bytes and never leaves this module."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = False
    detail: str = ""
    elapsed_ms: float = 0.0


def client_context() -> ssl.SSLContext:
    """HTTPS without verification: the TLS probe judges the certificate, not this one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def parse_head(head: bytes) -> tuple[int | None, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/\d(?:\.\d)? (\d{3})", lines[0])
    if not m:
        return None, {}
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip():
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return int(m.group(1)), headers


def dechunk(data: bytes) -> tuple[bytes, bool]:
    """Chunked transfer coding: the payload read so far and whether the last chunk came."""
    out = bytearray()
    rest = data
    while True:
        line, sep, after = rest.partition(b"\r\n")
        if not sep:
            return bytes(out), False
        try:
            size = int(line.split(b";")[0].strip() or b"x", 16)
        except ValueError:
            return bytes(out), False
        if size == 0:
            return bytes(out), True
        if len(after) < size:
            out += after
            return bytes(out), False
        out += after[:size]
        rest = after[size + 2 :]


def page_title(body: bytes) -> str | None:
    m = _TITLE_RE.search(body)
    if not m:
        return None
    text = html.unescape(m.group(1).decode("utf-8", "replace"))
    return " ".join(text.split())[:120] or None


def json_of(answer: Answer) -> Any:
    if not answer.complete or "json" not in answer.headers.get("content-type", ""):
        return None
    try:
        return json.loads(answer.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # [[[[... 2,048 deep fits 4 KiB
        return None


def count_items(answer: Answer) -> int | None:
    if answer.status == 204:
        return 0
    data = json_of(answer)
    return len(data) if isinstance(data, list) else None


def _host_header(ctx: ProbeContext, port: int) -> str:
    name = ctx.state.hostname or ctx.host
    if ":" in name:
        name = f"[{name}]"
    return f"{name}:{port}"


async def http_get(
    ctx: ProbeContext, port: int, tls: bool, path: str, auth: tuple[str, str] | None = None
) -> Answer:
    """One GET on a new connection inside the host's gate; reads at most a few KB."""
    from scanner import __version__

    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {_host_header(ctx, port)}",
        f"User-Agent: dicomscan/{__version__}",
        "Accept: */*",
        "Connection: close",
    ]
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    timeouts = ctx.settings.timeouts
    started = time.perf_counter()
    answer = Answer()
    async with ctx.gate.slot():
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    ctx.host,
                    port,
                    ssl=client_context() if tls else None,
                    ssl_handshake_timeout=timeouts.dicom if tls else None,
                ),
                timeouts.connect + (timeouts.dicom if tls else 0),
            )
        except (OSError, TimeoutError) as exc:
            answer.detail = f"connection failed: {type(exc).__name__}"
            answer.elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
            return answer
        try:
            writer.write(request)
            await writer.drain()
            await asyncio.wait_for(_read(reader, answer), timeouts.dicom)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            answer.detail = answer.detail or f"no complete answer: {type(exc).__name__}"
            answer.complete = False
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
    answer.elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    return answer


async def _read(reader: asyncio.StreamReader, answer: Answer) -> None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await reader.read(4096)
        if not chunk:
            answer.detail = "closed before the end of the headers"
            break
        buf += chunk
        if len(buf) > _MAX_HEAD:
            answer.detail = "headers longer than 16 KB"
            break
    head, _, rest = buf.partition(b"\r\n\r\n")
    answer.status, answer.headers = parse_head(head)
    if answer.status is None:
        answer.detail = answer.detail or "not an HTTP answer"
        return
    chunked = "chunked" in answer.headers.get("transfer-encoding", "").lower()
    length_text = answer.headers.get("content-length", "")
    length = int(length_text) if is_decimal(length_text) else None
    want = (
        _MAX_BODY + 64 if chunked else min(length if length is not None else _MAX_BODY, _MAX_BODY)
    )
    eof = False
    while len(rest) < want:
        chunk = await reader.read(want - len(rest))
        if not chunk:
            eof = True
            break
        rest += chunk
    if chunked:
        answer.body, answer.complete = dechunk(rest)
        answer.body = answer.body[:_MAX_BODY]
    else:
        answer.body = rest[:_MAX_BODY]
        if length is not None:
            answer.complete = length <= _MAX_BODY and len(rest) >= length
        else:  # delimited by the end of the connection
            answer.complete = eof


def _check(
    scheme: str,
    path: str,
    purpose: str,
    answer: Answer,
    *,
    title: bool = False,
    with_credentials: bool = False,
) -> HttpCheck:
    h = answer.headers
    return HttpCheck(
        scheme=scheme,
        path=path,
        purpose=purpose,
        status=answer.status,
        server=h.get("server"),
        content_type=h.get("content-type"),
        auth_realm=h.get("www-authenticate") if answer.status == 401 else None,
        title=page_title(answer.body) if title else None,
        items=count_items(answer) if purpose in ("dicomweb", "rest-api") else None,
        with_credentials=with_credentials,
        detail=answer.detail,
        elapsed_ms=answer.elapsed_ms,
        body_complete=answer.complete if answer.status is not None else None,
    )


@dataclass
class Identity:
    product: str | None = None
    version: str | None = None
    by: str | None = None


def _signature_matches(sig: WebSignature, path: str, answer: Answer) -> Identity | None:
    if answer.status not in sig.status:
        return None
    if not sig.headers and not answer.complete and answer.status not in _NO_BODY:
        return None  # a status alone, on a body that never ended: a catch-all, not a product
    for name, pattern in sig.headers.items():
        if not re.search(pattern, answer.headers.get(name, "")):
            return None
    said = [f"{answer.status}"] + [f"{n} {answer.headers[n]!r}" for n in sig.headers]
    version = None
    if sig.json_keys or sig.version_key:
        data = json_of(answer)
        if not isinstance(data, dict) or any(k not in data for k in sig.json_keys):
            return None
        if sig.version_key is not None:
            version = data.get(sig.version_key)
            if not isinstance(version, str):
                return None
        said = [k for k in (*sig.json_keys, *sig.json_also) if k in data]
    return Identity(sig.product, version, f"GET {path}: {', '.join(said)}")


def identify(answers: dict[str, Answer]) -> Identity:
    """The PACS software behind a web service, from what it says about itself, by the
    signatures of ``scanner/data/web_products.yaml`` in their order."""
    from probes.web_products import web_table

    for sig in web_table().signatures:
        candidates = [sig.path] if sig.path is not None else list(answers)
        for path in candidates:
            if path in answers and (ident := _signature_matches(sig, path, answers[path])):
                return ident
    return Identity()


async def run_http_probe(ctx: ProbeContext, svc: ServiceState) -> None:
    if svc.name in _SKIP:
        return
    if svc.name == "http":
        tls = False
    elif svc.tls:
        tls = True
    else:
        return
    scheme = "https" if tls else "http"
    root = await http_get(ctx, svc.port, tls, "/")
    svc.observations.append(_check(scheme, "/", "root", root, title=True))
    if root.status is None:
        return  # not an HTTP server (e.g. another protocol inside TLS)
    # The product table (YAML and its models, ~20 ms) loads only once a web server answers.
    from probes.web_products import web_table

    table = web_table()
    paths = [r.path for r in table.requests]
    answers = dict(
        zip(
            paths,
            await asyncio.gather(*(http_get(ctx, svc.port, tls, p) for p in paths)),
            strict=True,
        )
    )
    answers["/"] = root
    checks = [_check(scheme, r.path, r.purpose, answers[r.path]) for r in table.requests]
    ident = identify(answers)
    product = table.product(ident.product)
    if product is not None and product.api_requests:
        api = product.api_requests
        rest = await asyncio.gather(*(http_get(ctx, svc.port, tls, p) for p in api))
        checks += [_check(scheme, p, "rest-api", a) for p, a in zip(api, rest, strict=True)]
    requests = 1 + len(checks)
    challenged = root.status in (401, 403) or any(c.refused_auth for c in checks)
    accepted: bool | None = None
    tried = False
    creds = product.default_credentials if product is not None else None
    if ctx.settings.intrusive and product is not None and creds is not None and challenged:
        tried = True
        answer = await http_get(ctx, svc.port, tls, creds.path, auth=(creds.user, creds.password))
        requests += 1
        check = _check(scheme, creds.path, "default-credentials", answer, with_credentials=True)
        note = f"{product.product}'s documented default user"
        checks.append(check.model_copy(update={"detail": note}))
        accepted = None if answer.status is None else answer.status == 200
        if accepted and ident.version is None:
            logged_in = identify({creds.path: answer})
            if logged_in.product == ident.product and logged_in.version is not None:
                ident.version = logged_in.version
                by = (logged_in.by or "").replace(f"GET {creds.path}:", "", 1).strip()
                ident.by = f"GET {creds.path} with the default credentials: {by}"
    svc.observations.extend(checks)
    svc.observations.append(
        HttpSummary(
            scheme=scheme,
            tls=tls,
            status=root.status,
            server=root.headers.get("server"),
            title=page_title(root.body),
            product=ident.product,
            version=ident.version,
            identified_by=ident.by,
            auth_challenge=challenged,
            default_credentials_tried=tried,
            default_credentials_accepted=accepted,
            requests=requests,
        )
    )
    if ident.product is not None:
        svc.product = ident.product
        svc.version = ident.version


async def http_probe(ctx: ProbeContext, svc: ServiceState) -> None:
    await run_http_probe(ctx, svc)
