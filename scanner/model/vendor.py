"""Which vendor made a device, from what it disclosed, each piece with its source."""

from enum import StrEnum

from pydantic import Field

from scanner.model.base import Frozen, empty_list


class VendorEvidenceKind(StrEnum):
    UID_ROOT = "uid-root"  # the implementation class UID sits under the vendor's org root
    VERSION_NAME = "version-name"  # the implementation version name
    MAC_VENDOR = "mac-vendor"  # the registrant of the MAC's OUI block
    BANNER = "banner"  # a web page, service banner or SNMP sysDescr naming the product


class VendorEvidence(Frozen):
    kind: VendorEvidenceKind
    value: str = Field(description="what the device disclosed")
    matched: str = Field(description="the table row's UID root or pattern")
    confidence: str = Field(description="high, medium or low, from the row")
    source: str = Field(description="where the row's fact comes from")


class VendorIdentity(Frozen):
    vendor: str
    family: str | None = Field(default=None, description="product family, when evidence allows")
    confidence: str = Field(description="high, medium or low: the best evidence, high when "
                            "two kinds of evidence agree")
    evidence: list[VendorEvidence] = Field(default_factory=empty_list)
