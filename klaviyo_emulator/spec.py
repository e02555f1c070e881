"""Load Klaviyo's OpenAPI spec into a per-operation table that drives request validation.

Everything the emulator validates (allowed query parameters, page[size] bounds, sort enums,
sparse-fieldset enums, include enums, additional-fields, filter fields/operators, rate limits
and scopes) is read from the spec here, so every endpoint behaves consistently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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
    # (parameter, value, limits): a lower tier for requests that send ``value`` in ``parameter``
    parameter_tiers: tuple[tuple[str, str, tuple[RateLimit, ...]], ...] = ()

    def limits_for(self, params: dict[str, str]) -> tuple[str, tuple[RateLimit, ...]]:
        """The rate-limit bucket and limits of a request: the operation's own, or the first lower tier
        whose parameter value it sends (counted in a bucket of its own, e.g. ``get_list+profile_count``)."""
        for name, value, limits in self.parameter_tiers:
            if value in params.get(name, "").split(","):
                return f"{self.operation_id}+{value}", limits
        return self.operation_id, self.rate_limits


# The spec states these tiers only in an operation's description, e.g. get_profiles: "Rate limits when
# using the `additional-fields[profile]=predictive_analytics` parameter in your API request:<br>Burst:
# `10/s`<br>Steady: `150/m`" (get_list/get_segment: profile_count at 1/s and 15/m)
_TIER = re.compile(
    r"Rate limits when using the `([^`=]+)=([^`]+)` parameter in your API request:<br>"
    r"Burst: `(\d+/\w)`<br>Steady: `(\d+/\w)`"
)


def _parameter_tiers(description: str) -> tuple[tuple[str, str, tuple[RateLimit, ...]], ...]:
    return tuple(
        (name, value, (RateLimit.parse(burst), RateLimit.parse(steady)))
        for name, value, burst, steady in _TIER.findall(description)
    )


def _path_regex(path: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(path))
    return re.compile("^" + pattern + "/?$")


def _enum_of(schema: dict[str, Any]) -> list[Any]:
    if "items" in schema:
        schema = schema["items"]
    return list(schema.get("enum", []))


def _filter_field(name: str, spec: dict[str, Any], filter_example: str) -> FilterField:
    """One field of ``x-klaviyo-filters``: its operators by value form and its value type."""
    ops = spec.get("operators", {})
    value = spec.get("value", {}) or {}
    vtype = value.get("type", "")
    if vtype == "string" and value.get("format") == "date-time":
        vtype = "datetime"
    enum = value.get("enum")
    single_ops = set(ops.get("single", []))
    if not single_ops and "equals" in ops.get("list", []) and f"equals({name},'" in filter_example:
        # erratum: the operation's own filter example uses the single-value form, e.g.
        # get_coupon_codes ``equals(coupon.id,'10OFF')``, although only list operators are declared.
        single_ops.add("equals")
    return FilterField(
        name=name,
        single=frozenset(single_ops),
        list=frozenset(ops.get("list", [])),
        none=frozenset(ops.get("none", [])),
        value_type=vtype,
        enum=tuple(enum) if enum else None,
    )


def _page_size(schema: dict[str, Any] | None) -> tuple[int, int, int] | None:
    if schema is None:
        return None
    return (
        int(schema.get("default", schema.get("maximum", 100))),
        int(schema.get("minimum", 1)),
        int(schema.get("maximum", 100)),
    )


def _enums(query: dict[str, dict[str, Any]], prefix: str) -> dict[str, frozenset[str]]:
    """``{"profile": {...}}`` of parameters like ``fields[profile]`` (``prefix`` = ``"fields["``)."""
    return {
        name[len(prefix) : -1]: frozenset(_enum_of(schema))
        for name, schema in query.items()
        if name.startswith(prefix)
    }


def _response_ref(op: dict[str, Any]) -> str:
    try:
        return str(op["responses"]["200"]["content"]["application/vnd.api+json"]["schema"]["$ref"])
    except KeyError:
        return ""


def _build_operation(path: str, op: dict[str, Any]) -> Operation:
    params = [p for p in op.get("parameters", []) if p.get("in") == "query"]
    query: dict[str, dict[str, Any]] = {p["name"]: p.get("schema", {}) for p in params}
    filter_example = str(query.get("filter", {}).get("example", ""))
    filters = {
        name: _filter_field(name, spec, filter_example)
        for name, spec in (op.get("x-klaviyo-filters") or {}).items()
    }
    rl = op.get("x-klaviyo-ratelimit") or {}
    return Operation(
        operation_id=op["operationId"],
        path=path,
        regex=_path_regex(path),
        query_params=query,
        required_query=frozenset(p["name"] for p in params if p.get("required")),
        page_size=_page_size(query.get("page[size]")),
        sort=tuple(_enum_of(query["sort"])) if "sort" in query else None,
        fields=_enums(query, "fields["),
        include=frozenset(_enum_of(query["include"])) if "include" in query else None,
        additional_fields=_enums(query, "additional-fields["),
        filters=filters,
        rate_limits=tuple(RateLimit.parse(rl[k]) for k in ("burst", "steady", "daily") if k in rl),
        scopes=tuple(op.get("x-klaviyo-scopes", [])),
        response_schema_ref=_response_ref(op),
        parameter_tiers=_parameter_tiers(str(op.get("description", ""))),
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


@cache
def post_operations(revision: str = SPEC_REVISION) -> dict[str, Operation]:
    """All POST operations of the spec (the reporting endpoints), keyed by operationId."""
    table: dict[str, Operation] = {}
    for path, item in load_spec(revision)["paths"].items():
        op = item.get("post")
        if op:
            built = _build_operation(path, op)
            table[built.operation_id] = built
    return table


def schema(name_or_ref: str, revision: str = SPEC_REVISION) -> dict[str, Any]:
    """A component schema by name or ``#/components/schemas/...`` reference."""
    result: dict[str, Any] = load_spec(revision)["components"]["schemas"][name_or_ref.rsplit("/", 1)[-1]]
    return result
