"""Load Klaviyo's OpenAPI spec into a per-operation table that drives request validation.

Everything the emulator validates (allowed query parameters, page[size] bounds, sort enums,
sparse-fieldset enums, include enums, additional-fields, filter fields/operators, rate limits
and scopes) is read from the spec here, so every endpoint behaves consistently.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

# one spec file per served revision; 2026-10-15's is derived (see openapi-2026-10-15-subset.SOURCE.txt)
SPEC_PATHS = {
    "2026-07-15": Path(__file__).with_name("openapi-2026-07-15-subset.json"),
    "2026-10-15": Path(__file__).with_name("openapi-2026-10-15-subset.json"),
}
REVISIONS = tuple(SPEC_PATHS)
SPEC_REVISION = "2026-07-15"  # the default revision (the one the source pins)
SPEC_PATH = SPEC_PATHS[SPEC_REVISION]

_WINDOW_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class RateLimit:
    """One fixed window: at most ``limit`` requests per ``window_s`` seconds."""

    limit: int
    window_s: int

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        count, unit = text.strip().split("/")
        return cls(int(count), _WINDOW_SECONDS[unit.strip()[0]])


@dataclass(frozen=True)
class FilterField:
    """Allowed operators of one filterable field (from ``x-klaviyo-filters``)."""

    name: str
    single: frozenset[str]
    list: frozenset[str]
    none: frozenset[str]
    value_type: str  # "string" | "number" | "boolean" | "datetime" | ""
    enum: tuple[Any, ...] | None = None


@dataclass
class Operation:
    """Validation facts for one GET operation, built from the spec."""

    operation_id: str
    path: str  # e.g. "/api/lists/{id}/profiles"
    regex: re.Pattern[str]
    query_params: dict[str, dict[str, Any]]
    required_query: frozenset[str]
    page_size: tuple[int, int, int] | None  # (default, minimum, maximum)
    sort: tuple[str, ...] | None
    fields: dict[str, frozenset[str]]  # resource type -> allowed sparse fields
    include: frozenset[str] | None
    additional_fields: dict[str, frozenset[str]]
    filters: dict[str, FilterField]
    rate_limits: tuple[RateLimit, ...]
    scopes: tuple[str, ...]
    response_schema_ref: str = ""
    method: str = "GET"
    request_schema_ref: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_cursor(self) -> bool:
        return "page[cursor]" in self.query_params


def _path_regex(path: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(path))
    return re.compile("^" + pattern + "/?$")


def _enum_of(schema: dict[str, Any]) -> list[Any]:
    if "items" in schema:
        schema = schema["items"]
    return list(schema.get("enum", []))


def _build_operation(path: str, op: dict[str, Any], method: str = "get") -> Operation:
    query: dict[str, dict[str, Any]] = {}
    required: set[str] = set()
    page_size: tuple[int, int, int] | None = None
    sort: tuple[str, ...] | None = None
    fields: dict[str, frozenset[str]] = {}
    include: frozenset[str] | None = None
    additional: dict[str, frozenset[str]] = {}
    for param in op.get("parameters", []):
        if param.get("in") != "query":
            continue
        name = param["name"]
        schema = param.get("schema", {})
        query[name] = schema
        if param.get("required"):
            required.add(name)
        if name == "page[size]":
            page_size = (
                int(schema.get("default", schema.get("maximum", 100))),
                int(schema.get("minimum", 1)),
                int(schema.get("maximum", 100)),
            )
        elif name == "sort":
            sort = tuple(_enum_of(schema))
        elif name == "include":
            include = frozenset(_enum_of(schema))
        elif name.startswith("fields["):
            fields[name[7:-1]] = frozenset(_enum_of(schema))
        elif name.startswith("additional-fields["):
            additional[name[18:-1]] = frozenset(_enum_of(schema))
    filters: dict[str, FilterField] = {}
    filter_example = str(query.get("filter", {}).get("example", ""))
    for fname, spec in (op.get("x-klaviyo-filters") or {}).items():
        ops = spec.get("operators", {})
        value = spec.get("value", {}) or {}
        vtype = value.get("type", "")
        if vtype == "string" and value.get("format") == "date-time":
            vtype = "datetime"
        enum = value.get("enum")
        single_ops = set(ops.get("single", []))
        if not single_ops and "equals" in ops.get("list", []) and f"equals({fname},'" in filter_example:
            # erratum: the operation's own filter example uses the single-value form, e.g.
            # get_coupon_codes ``equals(coupon.id,'10OFF')``, although only list operators are declared.
            single_ops.add("equals")
        filters[fname] = FilterField(
            name=fname,
            single=frozenset(single_ops),
            list=frozenset(ops.get("list", [])),
            none=frozenset(ops.get("none", [])),
            value_type=vtype,
            enum=tuple(enum) if enum else None,
        )
    rl = op.get("x-klaviyo-ratelimit") or {}
    limits = tuple(RateLimit.parse(rl[k]) for k in ("burst", "steady", "daily") if k in rl)
    ref = ""
    with contextlib.suppress(KeyError):
        ref = op["responses"]["200"]["content"]["application/vnd.api+json"]["schema"]["$ref"]
    request_ref = ""
    with contextlib.suppress(KeyError):
        request_ref = op["requestBody"]["content"]["application/vnd.api+json"]["schema"]["$ref"]
    return Operation(
        operation_id=op["operationId"],
        path=path,
        regex=_path_regex(path),
        query_params=query,
        required_query=frozenset(required),
        page_size=page_size,
        sort=sort,
        fields=fields,
        include=include,
        additional_fields=additional,
        filters=filters,
        rate_limits=limits,
        scopes=tuple(op.get("x-klaviyo-scopes", [])),
        response_schema_ref=ref,
        method=method.upper(),
        request_schema_ref=request_ref,
    )


@cache
def load_spec(revision: str = SPEC_REVISION) -> dict[str, Any]:
    """The raw spec JSON of one revision (cached)."""
    with SPEC_PATHS[revision].open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@cache
def operations(revision: str = SPEC_REVISION) -> dict[str, Operation]:
    """All GET operations of the spec, keyed by operationId."""
    table: dict[str, Operation] = {}
    for path, item in load_spec(revision)["paths"].items():
        op = item.get("get")
        if op:
            built = _build_operation(path, op)
            table[built.operation_id] = built
    return table


def operation_for_path(path: str, revision: str = SPEC_REVISION) -> dict[str, Operation]:
    """Operations keyed by spec path template."""
    return {op.path: op for op in operations(revision).values() if op.path == path}


@cache
def post_operations(revision: str = SPEC_REVISION) -> dict[str, Operation]:
    """All POST operations of the spec (the reporting endpoints), keyed by operationId."""
    table: dict[str, Operation] = {}
    for path, item in load_spec(revision)["paths"].items():
        op = item.get("post")
        if op:
            built = _build_operation(path, op, "post")
            table[built.operation_id] = built
    return table


def schema(name_or_ref: str, revision: str = SPEC_REVISION) -> dict[str, Any]:
    """A component schema by name or ``#/components/schemas/...`` reference."""
    result: dict[str, Any] = load_spec(revision)["components"]["schemas"][name_or_ref.rsplit("/", 1)[-1]]
    return result
