"""Cipher-suite table (IANA codes and names) and its BCP 195 (RFC 9325) classification.

Only the IANA name is stored: key exchange, authentication, cipher, mode and MAC are
read from the name's grammar (``TLS_{KX}_WITH_{CIPHER}_{MAC}``, or ``TLS_{CIPHER}_{HASH}``
for TLS 1.3), so the table cannot disagree with itself. PSK and SRP suites are left
out: a server only selects them when the client has credentials for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

# (code, IANA name). Codes are the IANA TLS Cipher Suites registry values.
_SUITES = """
0000 TLS_NULL_WITH_NULL_NULL
0001 TLS_RSA_WITH_NULL_MD5
0002 TLS_RSA_WITH_NULL_SHA
0003 TLS_RSA_EXPORT_WITH_RC4_40_MD5
0004 TLS_RSA_WITH_RC4_128_MD5
0005 TLS_RSA_WITH_RC4_128_SHA
0006 TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5
0007 TLS_RSA_WITH_IDEA_CBC_SHA
0008 TLS_RSA_EXPORT_WITH_DES40_CBC_SHA
0009 TLS_RSA_WITH_DES_CBC_SHA
000A TLS_RSA_WITH_3DES_EDE_CBC_SHA
000B TLS_DH_DSS_EXPORT_WITH_DES40_CBC_SHA
000C TLS_DH_DSS_WITH_DES_CBC_SHA
000D TLS_DH_DSS_WITH_3DES_EDE_CBC_SHA
000E TLS_DH_RSA_EXPORT_WITH_DES40_CBC_SHA
000F TLS_DH_RSA_WITH_DES_CBC_SHA
0010 TLS_DH_RSA_WITH_3DES_EDE_CBC_SHA
0011 TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA
0012 TLS_DHE_DSS_WITH_DES_CBC_SHA
0013 TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA
0014 TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA
0015 TLS_DHE_RSA_WITH_DES_CBC_SHA
0016 TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA
0017 TLS_DH_anon_EXPORT_WITH_RC4_40_MD5
0018 TLS_DH_anon_WITH_RC4_128_MD5
0019 TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA
001A TLS_DH_anon_WITH_DES_CBC_SHA
001B TLS_DH_anon_WITH_3DES_EDE_CBC_SHA
002F TLS_RSA_WITH_AES_128_CBC_SHA
0030 TLS_DH_DSS_WITH_AES_128_CBC_SHA
0031 TLS_DH_RSA_WITH_AES_128_CBC_SHA
0032 TLS_DHE_DSS_WITH_AES_128_CBC_SHA
0033 TLS_DHE_RSA_WITH_AES_128_CBC_SHA
0034 TLS_DH_anon_WITH_AES_128_CBC_SHA
0035 TLS_RSA_WITH_AES_256_CBC_SHA
0036 TLS_DH_DSS_WITH_AES_256_CBC_SHA
0037 TLS_DH_RSA_WITH_AES_256_CBC_SHA
0038 TLS_DHE_DSS_WITH_AES_256_CBC_SHA
0039 TLS_DHE_RSA_WITH_AES_256_CBC_SHA
003A TLS_DH_anon_WITH_AES_256_CBC_SHA
003B TLS_RSA_WITH_NULL_SHA256
003C TLS_RSA_WITH_AES_128_CBC_SHA256
003D TLS_RSA_WITH_AES_256_CBC_SHA256
003E TLS_DH_DSS_WITH_AES_128_CBC_SHA256
003F TLS_DH_RSA_WITH_AES_128_CBC_SHA256
0040 TLS_DHE_DSS_WITH_AES_128_CBC_SHA256
0041 TLS_RSA_WITH_CAMELLIA_128_CBC_SHA
0044 TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA
0045 TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA
0046 TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA
0062 TLS_RSA_EXPORT1024_WITH_DES_CBC_SHA
0063 TLS_DHE_DSS_EXPORT1024_WITH_DES_CBC_SHA
0064 TLS_RSA_EXPORT1024_WITH_RC4_56_SHA
0065 TLS_DHE_DSS_EXPORT1024_WITH_RC4_56_SHA
0066 TLS_DHE_DSS_WITH_RC4_128_SHA
0067 TLS_DHE_RSA_WITH_AES_128_CBC_SHA256
0068 TLS_DH_DSS_WITH_AES_256_CBC_SHA256
0069 TLS_DH_RSA_WITH_AES_256_CBC_SHA256
006A TLS_DHE_DSS_WITH_AES_256_CBC_SHA256
006B TLS_DHE_RSA_WITH_AES_256_CBC_SHA256
006C TLS_DH_anon_WITH_AES_128_CBC_SHA256
006D TLS_DH_anon_WITH_AES_256_CBC_SHA256
0084 TLS_RSA_WITH_CAMELLIA_256_CBC_SHA
0087 TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA
0088 TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA
0089 TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA
0096 TLS_RSA_WITH_SEED_CBC_SHA
009A TLS_DHE_RSA_WITH_SEED_CBC_SHA
009C TLS_RSA_WITH_AES_128_GCM_SHA256
009D TLS_RSA_WITH_AES_256_GCM_SHA384
009E TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
009F TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
00A0 TLS_DH_RSA_WITH_AES_128_GCM_SHA256
00A1 TLS_DH_RSA_WITH_AES_256_GCM_SHA384
00A2 TLS_DHE_DSS_WITH_AES_128_GCM_SHA256
00A3 TLS_DHE_DSS_WITH_AES_256_GCM_SHA384
00A6 TLS_DH_anon_WITH_AES_128_GCM_SHA256
00A7 TLS_DH_anon_WITH_AES_256_GCM_SHA384
00BA TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256
00BD TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA256
00BE TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256
00BF TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA256
00C0 TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256
00C3 TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA256
00C4 TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256
00C5 TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA256
1301 TLS_AES_128_GCM_SHA256
1302 TLS_AES_256_GCM_SHA384
1303 TLS_CHACHA20_POLY1305_SHA256
1304 TLS_AES_128_CCM_SHA256
1305 TLS_AES_128_CCM_8_SHA256
C001 TLS_ECDH_ECDSA_WITH_NULL_SHA
C002 TLS_ECDH_ECDSA_WITH_RC4_128_SHA
C003 TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA
C004 TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA
C005 TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA
C006 TLS_ECDHE_ECDSA_WITH_NULL_SHA
C007 TLS_ECDHE_ECDSA_WITH_RC4_128_SHA
C008 TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA
C009 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
C00A TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
C00B TLS_ECDH_RSA_WITH_NULL_SHA
C00C TLS_ECDH_RSA_WITH_RC4_128_SHA
C00D TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA
C00E TLS_ECDH_RSA_WITH_AES_128_CBC_SHA
C00F TLS_ECDH_RSA_WITH_AES_256_CBC_SHA
C010 TLS_ECDHE_RSA_WITH_NULL_SHA
C011 TLS_ECDHE_RSA_WITH_RC4_128_SHA
C012 TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA
C013 TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
C014 TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
C015 TLS_ECDH_anon_WITH_NULL_SHA
C016 TLS_ECDH_anon_WITH_RC4_128_SHA
C017 TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA
C018 TLS_ECDH_anon_WITH_AES_128_CBC_SHA
C019 TLS_ECDH_anon_WITH_AES_256_CBC_SHA
C023 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
C024 TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384
C025 TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256
C026 TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384
C027 TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
C028 TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384
C029 TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256
C02A TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384
C02B TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
C02C TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
C02D TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256
C02E TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384
C02F TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
C030 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
C031 TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256
C032 TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384
C050 TLS_RSA_WITH_ARIA_128_GCM_SHA256
C051 TLS_RSA_WITH_ARIA_256_GCM_SHA384
C052 TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256
C053 TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384
C056 TLS_DHE_DSS_WITH_ARIA_128_GCM_SHA256
C057 TLS_DHE_DSS_WITH_ARIA_256_GCM_SHA384
C05C TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256
C05D TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384
C060 TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256
C061 TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384
C072 TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256
C073 TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384
C076 TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256
C077 TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384
C07A TLS_RSA_WITH_CAMELLIA_128_GCM_SHA256
C07B TLS_RSA_WITH_CAMELLIA_256_GCM_SHA384
C07C TLS_DHE_RSA_WITH_CAMELLIA_128_GCM_SHA256
C07D TLS_DHE_RSA_WITH_CAMELLIA_256_GCM_SHA384
C086 TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_GCM_SHA256
C087 TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_GCM_SHA384
C08A TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256
C08B TLS_ECDHE_RSA_WITH_CAMELLIA_256_GCM_SHA384
C09C TLS_RSA_WITH_AES_128_CCM
C09D TLS_RSA_WITH_AES_256_CCM
C09E TLS_DHE_RSA_WITH_AES_128_CCM
C09F TLS_DHE_RSA_WITH_AES_256_CCM
C0A0 TLS_RSA_WITH_AES_128_CCM_8
C0A1 TLS_RSA_WITH_AES_256_CCM_8
C0A2 TLS_DHE_RSA_WITH_AES_128_CCM_8
C0A3 TLS_DHE_RSA_WITH_AES_256_CCM_8
C0AC TLS_ECDHE_ECDSA_WITH_AES_128_CCM
C0AD TLS_ECDHE_ECDSA_WITH_AES_256_CCM
C0AE TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8
C0AF TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8
CCA8 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
CCA9 TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
CCAA TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256
"""

# RFC 9325 §4.2: the four RECOMMENDED TLS 1.2 suites.
RFC9325_RECOMMENDED = frozenset({0xC02F, 0xC030, 0xC02B, 0xC02C})
# The four suites PS3.15 B.10/B.11 make mandatory (RFC 7525's recommended set).
BCP195_ND_MANDATORY = frozenset({0x009E, 0x009F, 0xC02F, 0xC030})
# Further suites B.11 (Extended BCP 195) allows; "no other cipher suites shall be used".
BCP195_EX_OPTIONAL = frozenset({0xC07D, 0xC07C, 0xC02C, 0xC087, 0xC08B, 0xC02B, 0xC086, 0xC08A})
# TLS 1.2 suites of B.13 as DCMTK 3.6.8+ implements it (the standard's table was unreadable).
B13_PERMITTED = frozenset(
    {0xC08A, 0xC086, 0xC0AC, 0xC0AE, 0xC02F, 0xC02B, 0xC08B, 0xC087,
     0xCCA8, 0xCCA9, 0xC0AD, 0xC0AF, 0xC030, 0xC02C}
)  # fmt: skip
TLS13_SUITES = (0x1301, 0x1302, 0x1303, 0x1304, 0x1305)
AES_PROFILE_SUITE = 0x002F  # TLS_RSA_WITH_AES_128_CBC_SHA, retired B.3
BASIC_PROFILE_SUITE = 0x000A  # TLS_RSA_WITH_3DES_EDE_CBC_SHA, retired B.1
RENEGOTIATION_SCSV = 0x00FF


class Grade(StrEnum):
    """Where a suite stands in RFC 9325, worst first."""

    INSECURE = "insecure"  # MUST NOT: NULL, RC4, export, < 112-bit, anonymous
    WEAK = "weak"  # SHOULD NOT: 3DES, static RSA/DH/ECDH key exchange
    DISCOURAGED = "discouraged"  # CBC without encrypt-then-MAC, DHE in TLS 1.2
    ACCEPTABLE = "acceptable"  # forward-secret AEAD outside the recommended list
    RECOMMENDED = "recommended"  # RFC 9325 §4.2 and the TLS 1.3 suites

    @property
    def rank(self) -> int:
        return list(Grade).index(self)


@dataclass(frozen=True)
class SuiteInfo:
    code: int
    name: str
    kex: str  # RSA, DH, DHE, ECDH, ECDHE, NULL, or "TLS13" (negotiated separately)
    auth: str  # RSA, DSS, ECDSA, anon, NULL, or "TLS13"
    cipher: str  # e.g. AES_128_GCM
    bits: int  # effective symmetric strength
    mode: str  # aead, cbc, stream, null
    mac: str  # MD5, SHA (SHA-1), SHA256, SHA384, or AEAD
    tls12_only: bool
    weaknesses: tuple[str, ...]
    grade: Grade


_BITS = (
    ("NULL", 0), ("RC4_40", 40), ("RC2_CBC_40", 40), ("DES40", 40), ("RC4_56", 56),
    ("DES_CBC", 56), ("3DES", 112), ("IDEA", 128), ("SEED", 128), ("CHACHA20", 256),
    ("_128", 128), ("_256", 256), ("RC4_128", 128),
)  # fmt: skip
_NAME = re.compile(r"^TLS_(?P<kx>.+?)_WITH_(?P<body>.+)$")
_MAC = re.compile(r"_(MD5|SHA|SHA256|SHA384)$")


def _strength(cipher: str) -> int:
    for marker, bits in _BITS:
        if marker in cipher:
            return bits
    return 0


def _parse(code: int, name: str) -> SuiteInfo:
    m = _NAME.match(name)
    if m is None:  # TLS 1.3: TLS_<AEAD>_<HASH>, key exchange negotiated by extensions
        cipher = name.removeprefix("TLS_").rsplit("_", 1)[0]
        return SuiteInfo(code, name, "TLS13", "TLS13", cipher, _strength(cipher), "aead",
                         "AEAD", False, (), Grade.RECOMMENDED if code <= 0x1303
                         else Grade.ACCEPTABLE)  # fmt: skip
    kx_full, body = m.group("kx"), m.group("body")
    export = "EXPORT" in kx_full
    kx_base = kx_full.split("_EXPORT")[0]
    kex, _, auth = kx_base.partition("_")
    auth = auth or ("NULL" if kex == "NULL" else "RSA")
    mac_match = _MAC.search(body)
    aead = any(x in body for x in ("GCM", "CCM", "POLY1305"))
    mac = "AEAD" if aead else (mac_match.group(1) if mac_match else "NULL")
    cipher = body[: mac_match.start()] if mac_match else body
    bits = _strength(cipher)
    mode = (
        "aead" if aead else "null" if cipher == "NULL" else "stream" if "RC4" in cipher else "cbc"
    )
    tls12_only = aead or (mac in ("SHA256", "SHA384"))

    weak: list[str] = []
    if cipher == "NULL":
        weak.append("null-cipher")
    if export:
        weak.append("export")
    if "RC4" in cipher:
        weak.append("rc4")
    if cipher.startswith(("DES", "DES40")):
        weak.append("des")
    if "3DES" in cipher:
        weak.append("3des")
    if auth == "anon" or kex == "NULL":
        weak.append("anonymous")
    if kex == "RSA" or (kex in ("DH", "ECDH") and auth != "anon"):  # static keys; anon DH is
        weak.append("no-forward-secrecy")  # ephemeral, its flaw is "anonymous"
    if 0 < bits < 112:
        weak.append("below-112-bit")
    if mode == "cbc":
        weak.append("cbc")
    if kex == "DHE":
        weak.append("dhe")
    if mac == "MD5":
        weak.append("md5-mac")
    return SuiteInfo(code, name, kex, auth, cipher, bits, mode, mac, tls12_only,
                     tuple(weak), _grade(code, set(weak)))  # fmt: skip


def _grade(code: int, weak: set[str]) -> Grade:
    if weak & {"null-cipher", "export", "rc4", "des", "anonymous", "below-112-bit"}:
        return Grade.INSECURE
    if weak & {"3des", "no-forward-secrecy"}:
        return Grade.WEAK
    if weak & {"cbc", "dhe"}:
        return Grade.DISCOURAGED
    return Grade.RECOMMENDED if code in RFC9325_RECOMMENDED else Grade.ACCEPTABLE


@cache
def table() -> dict[int, SuiteInfo]:
    out: dict[int, SuiteInfo] = {}
    for line in _SUITES.strip().splitlines():
        code_hex, name = line.split()
        code = int(code_hex, 16)
        out[code] = _parse(code, name)
    return out


def info(code: int) -> SuiteInfo:
    """The suite's entry; an unknown code (a server picking something we never offered)
    gets a placeholder graded by nothing we know."""
    known = table().get(code)
    if known is not None:
        return known
    return SuiteInfo(code, f"UNKNOWN_0x{code:04X}", "?", "?", "?", 0, "?", "?", False,
                     ("unknown",), Grade.WEAK)  # fmt: skip


def suites_for(version: int) -> list[int]:
    """Suites worth offering in a ClientHello for one protocol version (0x0300..0x0304).

    Strongest first, so a server that honours client order still answers with a real
    preference; the enumeration removes each selected suite in turn anyway.
    """
    if version >= 0x0304:
        return list(TLS13_SUITES)
    pool = [s for s in table().values() if s.kex != "TLS13" and s.code != 0x0000]
    if version < 0x0303:
        pool = [s for s in pool if not s.tls12_only]
    pool.sort(key=lambda s: (-s.grade.rank, -s.bits, s.code))
    return [s.code for s in pool]
