"""The web product table (``scanner/data/web_products.yaml``): which requests the HTTP
probe sends and how their answers identify PACS software. Data, not code: adding a
product touches only the YAML file.
"""

import re
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scanner.model.base import empty_dict, empty_list
from scanner.model.data_cache import shipped_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WebRequest(_Strict):
    path: str = Field(pattern=r"^/")
    purpose: Literal["product", "dicomweb"]


class WebSignature(_Strict):
    id: str
    product: str
    certainty: Literal["src", "obs"]
    source: str
    path: str | None = Field(default=None, description="only this request's answer")
    status: list[int] = Field(min_length=1)
    headers: dict[str, str] = Field(
        default_factory=empty_dict, description="header name -> regex searched in its value"
    )
    json_keys: list[str] = Field(default_factory=empty_list)
    json_also: list[str] = Field(default_factory=empty_list)
    version_key: str | None = None

    @field_validator("headers")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern in value.values():
            re.compile(pattern)
        return {k.lower(): v for k, v in value.items()}


class DefaultCredentials(_Strict):
    path: str = Field(pattern=r"^/")
    user: str
    password: str
    source: str


class WebProduct(_Strict):
    product: str
    api_requests: list[str] = Field(default_factory=empty_list)
    default_credentials: DefaultCredentials | None = None


class WebTable(_Strict):
    requests: list[WebRequest]
    signatures: list[WebSignature]
    products: list[WebProduct] = Field(default_factory=empty_list)

    def product(self, name: str | None) -> WebProduct | None:
        return next((p for p in self.products if p.product == name), None)


@cache
def web_table() -> WebTable:
    text = (resources.files("scanner") / "data" / "web_products.yaml").read_text()
    return WebTable.model_validate(shipped_yaml(text))
