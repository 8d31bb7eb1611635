"""A service's observations, validated and serialised through a schema built on first use.

The observation models (DICOM, TLS, HTTP, SMB, RDP, SNMP: about thirty classes) are a
third of what pydantic builds at start-up, and a scan that finds nothing open never
makes one. So ``Service.observations`` does not carry their schema in its own: the
field's validator and serialiser hand a non-empty list to one ``TypeAdapter`` over the
``Observation`` union, made (and the models imported) the first time a list has
anything in it. An empty list costs nothing. Validation, the JSON form and the JSON
Schema are those of ``list[Observation]``, so saved scans and ``dicomscan schema`` are
unchanged.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic_core import core_schema

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter
    from pydantic.json_schema import JsonSchemaValue


@cache
def _adapter() -> TypeAdapter[list[Any]]:
    from pydantic import TypeAdapter

    from scanner.model.observations import Observation

    return TypeAdapter(list[Observation])


def _validate(value: Any) -> list[Any]:
    if isinstance(value, list) and not value:
        return []
    # Errors keep their location inside the list; the field adds its own name.
    return _adapter().validate_python(value)


def _serialise(value: list[Any], info: core_schema.SerializationInfo) -> Any:
    if not value:
        return []
    return _adapter().dump_python(
        value, mode="json" if info.mode == "json" else "python", by_alias=bool(info.by_alias),
        exclude_none=info.exclude_none, exclude_defaults=info.exclude_defaults,
        exclude_unset=info.exclude_unset, round_trip=info.round_trip,
    )


class LazyObservations:
    """Pydantic hooks for ``Annotated[list[Any], LazyObservations()]``."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _serialise, info_arg=True, return_schema=core_schema.list_schema()
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(_adapter().core_schema)
