"""HTTP server, request validation, pagination and fault injection."""

from __future__ import annotations

import base64
import bisect
import contextlib
import functools
import json
import math
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from . import membership
from . import push_tokens as PT
from . import reports as REP
from . import resources as R
from .account import Account, AccountSpec
from .filters import Condition, FilterError, first_future_datetime, matches, parse_filter, validate
from .ratelimit import RateLimiter
from .spec import REVISIONS, SPEC_REVISION, Operation, operations, post_operations

JSONAPI = "application/vnd.api+json"
DEFAULT_API_KEY = "pk_emulator_test_key_0000000000000000"


@dataclass
class EmulatorConfig:
    """Emulator knobs; all fields may be changed at runtime through ``emu.config``."""

    account: AccountSpec = field(default_factory=AccountSpec)
    api_key: str = DEFAULT_API_KEY
    host: str = "127.0.0.1"
    port: int = 0
    revisions: set[str] = field(default_factory=lambda: set(REVISIONS))  # revisions served
    denied_scopes: set[str] = field(default_factory=set)
    rate_limit_scale: float = 1.0
    latency_ms: float = 0.0
    latency_per_record_ms: float = 0.0
    fault_seed: int = 0
    fault_429_rate: float = 0.0
    fault_retry_after: int = 1
    fault_5xx_rate: float = 0.0
    fault_drop_rate: float = 0.0
    fault_bad_json_rate: float = 0.0
    report_page_size: int = 500  # results per page of the reporting endpoints (page_cursor)
    # base URL written into links (self, next, related); None = the address the request came to.
    # "https://a.klaviyo.com/api" hands out links exactly as Klaviyo writes them, for clients that
    # only read the cursor out of links.next (Klaviyo's SDK looks for "https://" there)
    links_base_url: str | None = None


@dataclass
class Fault:
    """An injected failure: an HTTP status (429/5xx/...), a dropped connection or a corrupt body."""

    status: int | None = None
    drop: bool = False
    bad_json: bool = False
    retry_after: int | None = None
    body: dict[str, Any] | None = None  # a 200 whose body is this document instead (e.g. no `data`)


@dataclass
class RequestInfo:
    method: str
    path: str
    operation_id: str | None
    query: dict[str, str]
    index: int


@dataclass
class RequestLogEntry:
    method: str
    path: str
    operation_id: str | None
    query: dict[str, str]
    status: int
    records: int
    elapsed_s: float
    fault: str | None = None
    target: str = ""  # the request line's target as received: path and raw query string


class _Drop(Exception):
    """Close the connection without a response."""


class HTTPError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def error_body(
    status: int, code: str, title: str, detail: str, source: dict[str, str] | None = None
) -> dict[str, Any]:
    err: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "status": status,
        "code": code,
        "title": title,
        "detail": detail,
    }
    err["source"] = source if source is not None else {"pointer": "/data/"}
    return {"errors": [err]}


def invalid(detail: str, parameter: str) -> HTTPError:
    return HTTPError(400, error_body(400, "invalid", "Invalid input.", detail, {"parameter": parameter}))


def not_found(detail: str = "Not found.") -> HTTPError:
    return HTTPError(404, error_body(404, "not_found", "Not found.", detail))


def throttled_body(seconds: int) -> dict[str, Any]:
    unit = "second" if seconds == 1 else "seconds"
    body = error_body(
        429,
        "throttled",
        "Request was throttled.",
        f"Request was throttled. Expected available in {seconds} {unit}.",
        {"pointer": "/data"},
    )
    body["errors"][0]["links"] = {
        "type": "https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling#rate-limits"
    }
    body["errors"][0]["meta"] = {}
    return body


def server_error_body(status: int) -> dict[str, Any]:
    titles = {
        500: "A server error occurred.",
        502: "Bad gateway.",
        503: "Service unavailable.",
        504: "Gateway timeout.",
    }
    codes = {500: "error", 502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout"}
    return error_body(
        status,
        codes.get(status, "error"),
        titles.get(status, "A server error occurred."),
        "An unexpected error occurred. Please try again later.",
    )


# --------------------------------------------------------------------------- operation table
@dataclass
class Handler:
    serializer: R.Serializer
    getter: R.Getter
    source: Callable[[Account, str | None], list[R.Record]]
    single: bool = False
    default_sort: str | None = None
    includes: dict[str, Callable[[Account, R.Record], list[tuple[R.Serializer, R.Record]]]] = field(
        default_factory=dict
    )
    required_filters: tuple[str, ...] = ()
    # at least one of these fields must be filtered on (any operator), e.g. coupon-codes
    required_filter_one_of: tuple[str, ...] = ()


def _child(mapping: str, key: str) -> Callable[[Account, str | None], list[R.Record]]:
    def src(acc: Account, pid: str | None) -> list[R.Record]:
        parent = getattr(acc, mapping).get(pid or "")
        if parent is None:
            raise R.NotFound(pid)
        return list(parent[key])

    return src


@dataclass
class _Live:
    """Random access to the current records of a (possibly large) collection, for indexed paging."""

    key: tuple[Any, ...]  # names the collection in the account's index cache
    stamp: tuple[int, ...]  # changes whenever the collection may have changed
    size: int
    get: Callable[[str], R.Record | None]  # id -> record as the source would return it, None if gone


class _IndexableSource:
    """A data source whose records can also be fetched one by one by id (see :func:`page_generic`)."""

    def __call__(self, acc: Account, pid: str | None) -> list[R.Record]:  # pragma: no cover
        raise NotImplementedError

    def live(self, acc: Account, pid: str | None) -> _Live:  # pragma: no cover
        raise NotImplementedError


class _All(_IndexableSource):
    """Every record of an ``acc.<mapping>`` table."""

    def __init__(self, mapping: str) -> None:
        self.mapping = mapping

    def __call__(self, acc: Account, pid: str | None) -> list[R.Record]:
        return list(getattr(acc, self.mapping).values())

    def live(self, acc: Account, pid: str | None) -> _Live:
        table: dict[str, R.Record] = getattr(acc, self.mapping)
        return _Live(("all", self.mapping), (acc.version, len(table)), len(table), table.get)


class _Members(_IndexableSource):
    """The member profiles of a list/segment, each a copy with its ``joined_group_at``."""

    def __init__(self, mapping: str) -> None:
        self.mapping = mapping

    def _group(self, acc: Account, pid: str | None) -> dict[str, Any]:
        group: dict[str, Any] | None = getattr(acc, self.mapping).get(pid or "")
        if group is None:
            raise R.NotFound(pid)
        return group

    def __call__(self, acc: Account, pid: str | None) -> list[R.Record]:
        group = self._group(acc, pid)
        return [
            dict(acc.profiles_by_id[p], joined_group_at=j)
            for p, j in group["members"].items()
            if p in acc.profiles_by_id
        ]

    def live(self, acc: Account, pid: str | None) -> _Live:
        members: dict[str, Any] = self._group(acc, pid)["members"]
        profiles = acc.profiles_by_id

        def get(rid: str) -> R.Record | None:
            if rid not in members or rid not in profiles:
                return None
            return dict(profiles[rid], joined_group_at=members[rid])

        stamp = (acc.version, len(members), len(profiles))
        return _Live(("members", self.mapping, pid), stamp, len(members), get)


def _one(mapping: str) -> Callable[[Account, str | None], list[R.Record]]:
    def src(acc: Account, pid: str | None) -> list[R.Record]:
        rec = getattr(acc, mapping).get(pid or "")
        if rec is None:
            raise R.NotFound(pid)
        return [rec]

    return src


def _inc_ids(
    ser: R.Serializer, mapping: str, key: str
) -> Callable[[Account, R.Record], list[tuple[R.Serializer, R.Record]]]:
    def inc(acc: Account, rec: R.Record) -> list[tuple[R.Serializer, R.Record]]:
        ids = rec.get(key)
        if ids is None:
            return []
        if isinstance(ids, str):
            ids = [ids]
        table = getattr(acc, mapping)
        return [(ser, table[i]) for i in ids if i in table]

    return inc


def _inc_flows(key: str) -> Callable[[Account, R.Record], list[tuple[R.Serializer, R.Record]]]:
    def inc(acc: Account, rec: R.Record) -> list[tuple[R.Serializer, R.Record]]:
        return [(R.ser_flow, f) for f in acc.flows_by_id.values() if f.get(key) == rec["id"]]

    return inc


def _none(acc: Account, rec: R.Record) -> list[tuple[R.Serializer, R.Record]]:
    return []


def _campaign_messages_src(acc: Account, pid: str | None) -> list[R.Record]:
    camp = acc.campaigns_by_id.get(pid or "")
    if camp is None:
        raise R.NotFound(pid)
    return [acc.campaign_messages_by_id[m] for m in camp["message_ids"]]


def _flow_actions_src(acc: Account, pid: str | None) -> list[R.Record]:
    flow = acc.flows_by_id.get(pid or "")
    if flow is None:
        raise R.NotFound(pid)
    return [acc.flow_actions_by_id[a] for a in flow["action_ids"]]


def _flow_messages_src(acc: Account, pid: str | None) -> list[R.Record]:
    act = acc.flow_actions_by_id.get(pid or "")
    if act is None:
        raise R.NotFound(pid)
    return [acc.flow_messages_by_id[m] for m in act["message_ids"]]


_TAG_INC = _inc_ids(R.ser_tag, "tags_by_id", "tag_ids")


def _form_versions_src(acc: Account, pid: str | None) -> list[R.Record]:
    form = acc.forms_by_id.get(pid or "")
    if form is None:
        raise R.NotFound(pid)
    return [acc.form_versions_by_id[v] for v in form["version_ids"]]


HANDLERS: dict[str, Handler] = {
    "get_accounts": Handler(R.ser_account, R.get_plain, lambda acc, pid: [acc.account_info]),
    "get_metrics": Handler(
        R.ser_metric,
        R.get_metric_field,
        _All("metrics_by_id"),
        includes={"flow-triggers": _inc_flows("trigger_metric_id")},
    ),
    "get_metric": Handler(
        R.ser_metric,
        R.get_metric_field,
        _one("metrics_by_id"),
        single=True,
        includes={"flow-triggers": _inc_flows("trigger_metric_id")},
    ),
    "get_events": Handler(
        R.ser_event,
        R.get_event_field,
        lambda acc, pid: [],
        default_sort="datetime",
        includes={
            "metric": _inc_ids(R.ser_metric, "metrics_by_id", "metric_id"),
            "profile": _inc_ids(R.ser_profile, "profiles_by_id", "profile_id"),
            "attributions": _inc_ids(R.ser_attribution, "attributions_by_id", "attribution_ids"),
        },
    ),
    "get_profiles": Handler(
        R.ser_profile,
        R.get_profile_field,
        _All("profiles_by_id"),
        includes={"conversations": _none, "push-tokens": _none},
    ),
    "get_lists": Handler(
        R.ser_list,
        R.get_plain,
        _All("lists_by_id"),
        includes={"tags": _TAG_INC, "flow-triggers": _inc_flows("trigger_list_id")},
    ),
    "get_list": Handler(
        R.ser_list,
        R.get_plain,
        _one("lists_by_id"),
        single=True,
        includes={"tags": _TAG_INC, "flow-triggers": _inc_flows("trigger_list_id")},
    ),
    "get_profiles_for_list": Handler(R.ser_profile, R.get_profile_field, _Members("lists_by_id")),
    "get_profile_ids_for_list": Handler(
        R.ser_relationship_profile, R.get_profile_field, _Members("lists_by_id")
    ),
    "get_segments": Handler(
        R.ser_segment,
        R.get_plain,
        _All("segments_by_id"),
        includes={"tags": _TAG_INC, "flow-triggers": _none},
    ),
    "get_profiles_for_segment": Handler(R.ser_profile, R.get_profile_field, _Members("segments_by_id")),
    "get_profile_ids_for_segment": Handler(
        R.ser_relationship_profile, R.get_profile_field, _Members("segments_by_id")
    ),
    "get_campaigns": Handler(
        R.ser_campaign,
        R.get_campaign_field,
        _All("campaigns_by_id"),
        includes={
            "campaign-messages": _inc_ids(R.ser_campaign_message, "campaign_messages_by_id", "message_ids"),
            "tags": _TAG_INC,
        },
        required_filters=("messages.channel",),
    ),
    "get_messages_for_campaign": Handler(
        R.ser_campaign_message,
        R.get_plain,
        _campaign_messages_src,
        includes={
            "campaign": _inc_ids(R.ser_campaign, "campaigns_by_id", "campaign_id"),
            "template": _inc_ids(R.ser_template, "templates_by_id", "template_id"),
            "image": _none,
        },
    ),
    "get_flows": Handler(
        R.ser_flow,
        R.get_plain,
        _All("flows_by_id"),
        includes={
            "flow-actions": _inc_ids(R.ser_flow_action, "flow_actions_by_id", "action_ids"),
            "tags": _TAG_INC,
        },
    ),
    "get_actions_for_flow": Handler(R.ser_flow_action, R.get_plain, _flow_actions_src),
    "get_flow_action_messages": Handler(R.ser_flow_message, R.get_plain, _flow_messages_src),
    "get_templates": Handler(R.ser_template, R.get_plain, _All("templates_by_id")),
    "get_tags": Handler(
        R.ser_tag,
        R.get_plain,
        _All("tags_by_id"),
        includes={"tag-group": _inc_ids(R.ser_tag_group, "tag_groups_by_id", "tag_group_id")},
    ),
    "get_tag_groups": Handler(R.ser_tag_group, R.get_plain, _All("tag_groups_by_id")),
    "get_catalog_items": Handler(
        R.ser_catalog_item,
        R.get_catalog_field,
        _All("catalog_items_by_id"),
        includes={"variants": _inc_ids(R.ser_catalog_variant, "catalog_variants_by_id", "variant_ids")},
    ),
    "get_catalog_variants": Handler(
        R.ser_catalog_variant, R.get_catalog_field, _All("catalog_variants_by_id")
    ),
    "get_catalog_categories": Handler(
        R.ser_catalog_category, R.get_catalog_field, _All("catalog_categories_by_id")
    ),
    "get_coupons": Handler(R.ser_coupon, R.get_plain, _All("coupons_by_id")),
    "get_coupon_codes": Handler(
        R.ser_coupon_code,
        R.get_catalog_field,
        _All("coupon_codes_by_id"),
        includes={"coupon": _inc_ids(R.ser_coupon, "coupons_by_id", "coupon_id")},
        required_filter_one_of=("coupon.id", "profile.id"),
    ),
    "get_forms": Handler(R.ser_form, R.get_plain, _All("forms_by_id")),
    "get_versions_for_form": Handler(R.ser_form_version, R.get_plain, _form_versions_src),
    "get_images": Handler(R.ser_image, R.get_plain, _All("images_by_id")),
    "get_push_tokens": Handler(PT.ser_push_token, PT.get_push_token_field, _All("push_tokens_by_id")),
}
HANDLERS.update(membership.handlers())  # get_segment (profile_count)


def _omni_messages_src(acc: Account, pid: str | None) -> list[R.Record]:
    """Every campaign message, with the status its campaign gives it (a 2026-10-15 filter/sort field)."""
    return [
        dict(m, status=R.omni_status(acc.campaigns_by_id[m["campaign_id"]]))
        for m in acc.campaign_messages_by_id.values()
    ]


def _omni_campaign_messages_src(acc: Account, pid: str | None) -> list[R.Record]:
    return [
        dict(m, status=R.omni_status(acc.campaigns_by_id[m["campaign_id"]]))
        for m in _campaign_messages_src(acc, pid)
    ]


_OMNI_MESSAGE_INC = _inc_ids(R.ser_omni_campaign_message, "campaign_messages_by_id", "message_ids")

# Operations whose behaviour differs by revision: 2026-10-15's omnichannel Campaigns API (no channel
# filter, new shapes, a /campaign-messages collection). Everything else is served as in HANDLERS.
REVISION_HANDLERS: dict[str, dict[str, Handler]] = {
    "2026-10-15": {
        "get_campaigns": Handler(
            R.ser_omni_campaign,
            R.get_omni_campaign_field,
            _All("campaigns_by_id"),
            includes={"campaign-messages": _OMNI_MESSAGE_INC, "campaign-audiences": _none},
        ),
        "get_campaign_messages": Handler(
            R.ser_omni_campaign_message,
            R.get_omni_message_field,
            _omni_messages_src,
            includes={
                "campaign": _inc_ids(R.ser_omni_campaign, "campaigns_by_id", "campaign_id"),
                "campaign-variations": _none,
            },
        ),
        "get_messages_for_campaign": Handler(
            R.ser_omni_campaign_message, R.get_omni_message_field, _omni_campaign_messages_src
        ),
    }
}


def handler_for(operation_id: str, revision: str = SPEC_REVISION) -> Handler:
    return REVISION_HANDLERS.get(revision, {}).get(operation_id) or HANDLERS[operation_id]


def _routes(revision: str = SPEC_REVISION) -> list[Operation]:
    ops = operations(revision)
    served = {**HANDLERS, **REVISION_HANDLERS.get(revision, {})}
    return [ops[oid] for oid in served if oid in ops]


# --------------------------------------------------------------------------- query parsing
@dataclass
class Query:
    page_size: int | None
    sort: str | None
    conditions: list[Condition]
    cursor: tuple[Any, ...] | None
    ctx: R.Ctx


def _b64(data: Any) -> str:
    # plain base64 with padding, like the cursor in Klaviyo's SDK README, so links.next carries an
    # encoded '=' (%3D) that a client must decode exactly once
    return base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _unb64(text: str) -> Any:
    """Decode a page cursor as leniently as Klaviyo does.

    Observed, not documented: Klaviyo's Python SDK (``klaviyo-api``, ``_page_cursor_update``) cuts the
    cursor out of ``links.next`` after ``page%5Bcursor%5D``, so it keeps the ``=`` in front, and
    URL-decodes it before sending it again; the SDK has paged this way since 1.2.1 (the fix of
    klaviyo/klaviyo-api-python#9), so Klaviyo accepts such cursors. Hence stray ``=`` at either end
    and missing or extra padding are accepted. A cursor whose padding arrives URL-encoded twice
    (``%253D``; presumably what the SDK sent before 1.2.1, when Klaviyo answered some of its cursors
    "Invalid cursor provided.", #9) does not decode and is rejected.
    """
    cleaned = text.strip().strip("=")
    return json.loads(base64.b64decode(cleaned + "=" * (-len(cleaned) % 4)))


def invalid_cursor() -> HTTPError:
    """Klaviyo's answer to a page cursor it cannot use, as quoted from a real response in
    klaviyo/klaviyo-api-python#9 (2023-02-11): 400, detail "Invalid cursor provided.", source
    ``{"pointer": "/data/"}``."""
    return HTTPError(
        400, error_body(400, "invalid", "Invalid input.", "Invalid cursor provided.", {"pointer": "/data/"})
    )


def parse_query(op: Operation, handler: Handler, params: dict[str, str]) -> Query:
    for name in params:
        if name not in op.query_params:
            raise invalid(f"'{name}' is not a valid query parameter for this endpoint.", name)
    page_size: int | None = None
    if op.page_size is not None:
        default, lo, hi = op.page_size
        page_size = default
        if "page[size]" in params:
            raw = params["page[size]"]
            try:
                page_size = int(raw)
            except ValueError:
                raise invalid(f"'{raw}' is not a valid integer.", "page[size]") from None
            if not lo <= page_size <= hi:
                raise invalid(f"Page size must be an integer between {lo} and {hi}.", "page[size]")
    sort = params.get("sort")
    if sort is not None and (op.sort is None or sort not in op.sort):
        allowed = ", ".join(op.sort or ())
        raise invalid(f"'{sort}' is not a valid sort field. Valid sort fields are: {allowed}.", "sort")
    ctx = R.Ctx(operation_id=op.operation_id)
    for name, value in params.items():
        if name.startswith("fields["):
            rtype = name[7:-1]
            wanted = [v for v in value.split(",") if v]
            bad = [v for v in wanted if v not in op.fields.get(rtype, frozenset())]
            if bad:
                raise invalid(f"'{bad[0]}' is not a valid field for the resource '{rtype}'.", name)
            ctx.fields[rtype] = wanted
        elif name.startswith("additional-fields["):
            rtype = name[18:-1]
            wanted = [v for v in value.split(",") if v]
            bad = [v for v in wanted if v not in op.additional_fields.get(rtype, frozenset())]
            if bad:
                raise invalid(f"'{bad[0]}' is not a valid additional field for '{rtype}'.", name)
            ctx.additional[rtype] = set(wanted)
    if "include" in params:
        wanted = [v for v in params["include"].split(",") if v]
        bad = [v for v in wanted if v not in (op.include or frozenset())]
        if bad:
            raise invalid(f"'{bad[0]}' is not a valid related resource to include.", "include")
        ctx.include = set(wanted)
    conditions: list[Condition] = []
    if "filter" in params:
        try:
            conditions = validate(parse_filter(params["filter"]), op.filters)
        except FilterError as exc:
            raise invalid(str(exc), "filter") from None
        future = first_future_datetime(conditions, datetime.now(timezone.utc))
        if future is not None:
            future_cond, future_value = future
            when = future_value.astimezone(timezone.utc)
            detail = f"End date may not be in the future: {when:%Y-%m-%dT%H:%M:%S}"
            raise HTTPError(
                400, error_body(400, "invalid", "Invalid input.", detail, {"pointer": future_cond.field})
            )
    if handler.required_filter_one_of and not any(
        c.field in handler.required_filter_one_of for c in conditions
    ):
        names = " or ".join(f"'{f}'" for f in handler.required_filter_one_of)
        raise invalid(f"A filter on {names} is required.", "filter")
    for req in handler.required_filters:
        if not any(c.field == req and c.op == "equals" and not c.is_list for c in conditions):
            raise invalid(f"A filter on '{req}' is required (e.g. equals({req},'email')).", "filter")
    missing = sorted(op.required_query - set(params))
    if missing:
        raise invalid(f"'{missing[0]}' is a required query parameter.", missing[0])
    cursor = None
    if "page[cursor]" in params:
        try:
            data = _unb64(params["page[cursor]"])
            cursor = (str(data["s"]), tuple(data["k"][0]), str(data["k"][1]))
            if data["s"] != (sort or ""):
                # not documented: a cursor only makes sense with the sort it was made for
                raise ValueError("sort mismatch")
        except Exception:
            raise invalid_cursor() from None
    return Query(page_size, sort, conditions, cursor, ctx)


# --------------------------------------------------------------------------- pagination
def _keyed(
    records: list[R.Record], handler: Handler, sort: str | None
) -> list[tuple[tuple[Any, ...], str, R.Record]]:
    field_name = (sort or handler.default_sort or "id").lstrip("-")
    if field_name == "id":
        return [((1, r["id"]), r["id"], r) for r in records]
    return [(R.sort_value(handler.getter(r, field_name)), r["id"], r) for r in records]


# Collections with at least this many records are paged through a cached sorted index (below it,
# the whole collection is filtered and sorted per request, which is cheap for small tables).
INDEX_MIN_RECORDS = 1000


@dataclass
class _SortIndex:
    """One collection's records in ascending (sort value, id) order, valid for one ``stamp``."""

    stamp: tuple[int, ...]
    keys: list[tuple[tuple[Any, ...], str]]
    # every value of the sort field is an aware datetime or None: datetime range filters on the
    # sort field can be bisected (sort_value is monotonic in the datetime)
    datetimes: bool


def page_generic(
    acc: Account, handler: Handler, q: Query, parent: str | None
) -> tuple[list[R.Record], tuple[Any, ...] | None]:
    src = handler.source
    if q.page_size is not None and isinstance(src, _IndexableSource):
        live = src.live(acc, parent)
        if live.size >= INDEX_MIN_RECORDS:
            return _page_indexed(acc, handler, q, parent, live)
    return page_full(acc, handler, q, parent)


def page_full(
    acc: Account, handler: Handler, q: Query, parent: str | None
) -> tuple[list[R.Record], tuple[Any, ...] | None]:
    """Filter and sort the whole collection, then cut out the page (the reference behaviour)."""
    records = handler.source(acc, parent)
    if q.conditions:
        records = [
            r for r in records if all(matches(c, functools.partial(handler.getter, r)) for c in q.conditions)
        ]
    keyed = _keyed(records, handler, q.sort)
    desc = bool(q.sort and q.sort.startswith("-"))
    keyed.sort(key=lambda t: (t[0], t[1]), reverse=desc)
    start = 0
    if q.cursor is not None:
        ck = (q.cursor[1], q.cursor[2])
        keys = [(t[0], t[1]) for t in keyed]
        if desc:
            # keys are descending: find first key strictly below the cursor
            lo, hi = 0, len(keys)
            while lo < hi:
                mid = (lo + hi) // 2
                if keys[mid] >= ck:
                    lo = mid + 1
                else:
                    hi = mid
            start = lo
        else:
            start = bisect.bisect_right(keys, ck)
    size = q.page_size if q.page_size is not None else len(keyed)
    chunk = keyed[start : start + size]
    nxt = None
    if q.page_size is not None and start + size < len(keyed) and chunk:
        nxt = (chunk[-1][0], chunk[-1][1])
    return [t[2] for t in chunk], nxt


def _sort_index(
    acc: Account, handler: Handler, parent: str | None, field_name: str, live: _Live
) -> _SortIndex:
    cache_key = (*live.key, handler.getter, field_name)
    idx: _SortIndex | None = acc.page_indexes.get(cache_key)
    if idx is not None and idx.stamp == live.stamp:
        return idx
    records = handler.source(acc, parent)
    keyed = _keyed(records, handler, field_name)
    keys = sorted((t[0], t[1]) for t in keyed)
    datetimes = field_name != "id" and all(
        v is None or (isinstance(v, datetime) and v.tzinfo is not None)
        for v in (handler.getter(r, field_name) for r in records)
    )
    idx = _SortIndex(live.stamp, keys, datetimes)
    acc.page_indexes[cache_key] = idx
    return idx


def _page_indexed(
    acc: Account, handler: Handler, q: Query, parent: str | None, live: _Live
) -> tuple[list[R.Record], tuple[Any, ...] | None]:
    """Same result as :func:`page_full`, in O(page + log n) for a range on the sort field.

    Resume from the cursor by bisection in the cached index, narrow datetime range filters on the
    sort field by bisection too, and evaluate every condition (on the live record) only while
    walking forward until the page, plus one more match for ``next``, is found.
    """
    field_name = (q.sort or handler.default_sort or "id").lstrip("-")
    desc = bool(q.sort and q.sort.startswith("-"))
    idx = _sort_index(acc, handler, parent, field_name, live)
    keys = idx.keys
    start, end = 0, len(keys)
    if idx.datetimes:
        for c in q.conditions:
            if c.field != field_name or c.is_list or not isinstance(c.value, datetime):
                continue
            bound = R.sort_value(c.value)
            if c.op in ("greater-than", "greater-or-equal"):
                start = max(start, bisect.bisect_left(keys, (bound,)))
            elif c.op in ("less-than", "less-or-equal"):
                end = min(end, bisect.bisect_left(keys, ((bound[0], bound[1] + 1),)))
            elif c.op == "equals":
                start = max(start, bisect.bisect_left(keys, (bound,)))
                end = min(end, bisect.bisect_left(keys, ((bound[0], bound[1] + 1),)))
    cursor_key = (q.cursor[1], q.cursor[2]) if q.cursor is not None else None
    return _take_page(
        keys, start, end, desc, cursor_key, q.page_size or 0, live.get, q.conditions, handler.getter
    )


def _take_page(
    keys: list[Any],
    start: int,
    end: int,
    desc: bool,
    cursor_key: Any | None,
    size: int,
    fetch: Callable[[str], R.Record | None],
    conditions: list[Condition],
    getter: Callable[[R.Record, str], Any],
) -> tuple[list[R.Record], Any | None]:
    """One page from ``keys[start:end]`` (sorted ``(sort key, id)`` pairs; walked backwards when
    ``desc``), resuming after ``cursor_key``: the records matching every condition, and the key of the
    page's last record when another match follows (``None`` on the last page)."""
    if cursor_key is not None:
        if desc:
            end = min(end, bisect.bisect_left(keys, cursor_key))
        else:
            start = max(start, bisect.bisect_right(keys, cursor_key))
    out: list[R.Record] = []
    last: Any | None = None
    for i in range(end - 1, start - 1, -1) if desc else range(start, end):
        rec = fetch(keys[i][1])
        if rec is None:
            continue
        if conditions and not all(matches(c, functools.partial(getter, rec)) for c in conditions):
            continue
        if len(out) == size:
            return out, last
        out.append(rec)
        last = keys[i]
    return out, None


_RANGE_OPS = {"greater-than", "greater-or-equal", "less-than", "less-or-equal"}


def page_events(acc: Account, q: Query) -> tuple[list[R.Record], tuple[Any, ...] | None]:
    """Fast path: per-metric sorted (timestamp, id) index + bisect for ranges and the cursor."""
    metric_ids: list[str] | None = None
    lo: tuple[int, str] = (-(2**62), "")
    hi: tuple[int, str] = (2**62, "\uffff")
    rest: list[Condition] = []
    for c in q.conditions:
        if c.field == "metric_id" and c.op == "equals":
            vals = list(c.value) if c.is_list else [c.value]
            metric_ids = vals if metric_ids is None else [m for m in metric_ids if m in vals]
        elif c.field in ("datetime", "timestamp") and c.op in _RANGE_OPS:
            v = c.value
            secs = v.timestamp() if c.field == "datetime" else float(v)
            # timestamps are whole seconds: translate to an integer bound on the index
            if c.op == "greater-or-equal":
                lo = max(lo, (math.ceil(secs), ""))
            elif c.op == "greater-than":
                lo = max(lo, (math.floor(secs) + 1, ""))
            elif c.op == "less-than":
                hi = min(hi, (math.ceil(secs), ""))
            else:
                hi = min(hi, (math.floor(secs) + 1, ""))
        else:
            rest.append(c)
    if metric_ids is None:
        index = acc.event_index
    elif len(metric_ids) == 1:
        index = acc.metric_index.get(metric_ids[0], [])
    else:
        index = sorted(x for m in dict.fromkeys(metric_ids) for x in acc.metric_index.get(m, []))
    start = bisect.bisect_left(index, lo)
    end = bisect.bisect_left(index, hi)
    desc = bool(q.sort and q.sort.startswith("-"))
    cursor_key = (int(q.cursor[1][1]), q.cursor[2]) if q.cursor is not None else None
    out, last_key = _take_page(
        index, start, end, desc, cursor_key, q.page_size or 200, acc.events_by_id.get, rest, R.get_event_field
    )
    return out, (((1, last_key[0]), last_key[1]) if last_key else None)


# --------------------------------------------------------------------------- the emulator
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: Emulator


class Emulator:
    """A running (or startable) Klaviyo API emulator."""

    def __init__(self, config: EmulatorConfig | None = None, account: Account | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.account = account or Account(self.config.account)
        self.request_log: list[RequestLogEntry] = []
        self.fault_hook: Callable[[RequestInfo], Fault | None] | None = None
        self.rate_limiter = RateLimiter()
        self._log_lock = threading.Lock()
        self._fault_lock = threading.Lock()
        self._fault_rng = random.Random(self.config.fault_seed)
        self._fail_queue: list[Fault] = []
        self._counter = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        unknown = set(self.config.revisions) - set(REVISIONS)
        if unknown:
            raise ValueError(
                f"The emulator has no spec for revision(s) {sorted(unknown)}; it serves {list(REVISIONS)}."
            )
        self._routes = {rev: _routes(rev) for rev in REVISIONS}
        self._post_routes: dict[str, list[Operation]] = {}
        for rev in REVISIONS:
            posts = post_operations(rev)
            self._post_routes[rev] = [posts[oid] for oid in REP.KINDS if oid in posts]

    # ---- lifecycle
    def start(self) -> Emulator:
        srv = _Server((self.config.host, self.config.port), _RequestHandler)
        srv.emulator = self
        self._server = srv
        self._thread = threading.Thread(target=srv.serve_forever, name="klaviyo-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}/api"

    @property
    def api_key(self) -> str:
        return self.config.api_key

    def headers(self, revision: str = SPEC_REVISION) -> dict[str, str]:
        """Headers a well-behaved client sends."""
        return {
            "Authorization": f"Klaviyo-API-Key {self.config.api_key}",
            "revision": revision,
            "Accept": JSONAPI,
        }

    # ---- log & faults
    def clear_log(self) -> None:
        with self._log_lock:
            self.request_log.clear()

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        drop: bool = False,
        bad_json: bool = False,
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``n`` routed requests fail with ``status`` (or drop / corrupt the body)."""
        with self._fault_lock:
            self._fail_queue.extend(
                Fault(
                    status=None if (drop or bad_json) else status,
                    drop=drop,
                    bad_json=bad_json,
                    retry_after=retry_after,
                )
                for _ in range(n)
            )

    def _pick_fault(self, info: RequestInfo) -> Fault | None:
        if self.fault_hook is not None:
            f = self.fault_hook(info)
            if f is not None:
                return f
        cfg = self.config
        with self._fault_lock:
            if self._fail_queue:
                return self._fail_queue.pop(0)
            r = self._fault_rng
            if cfg.fault_drop_rate and r.random() < cfg.fault_drop_rate:
                return Fault(drop=True)
            if cfg.fault_429_rate and r.random() < cfg.fault_429_rate:
                return Fault(status=429, retry_after=cfg.fault_retry_after)
            if cfg.fault_5xx_rate and r.random() < cfg.fault_5xx_rate:
                return Fault(status=r.choice([500, 502, 503]))
            if cfg.fault_bad_json_rate and r.random() < cfg.fault_bad_json_rate:
                return Fault(bad_json=True)
        return None

    def _log(self, entry: RequestLogEntry) -> None:
        with self._log_lock:
            self.request_log.append(entry)

    def _next_index(self) -> int:
        with self._log_lock:
            self._counter += 1
            return self._counter

    # ---- request processing
    def route(
        self, path: str, method: str = "GET", revision: str | None = None
    ) -> tuple[Operation, str | None] | None:
        """The operation (and path id) of ``path`` in ``revision``; in any revision when None."""
        for rev in (revision,) if revision is not None else (SPEC_REVISION, *REVISIONS):
            for op in self._routes[rev] if method == "GET" else self._post_routes[rev]:
                m = op.regex.match(path)
                if m:
                    return op, (m.group(1) if m.groups() else None)
        return None

    def build_body(
        self,
        op: Operation,
        parent: str | None,
        params: dict[str, str],
        raw_query: str,
        path: str,
        base: str,
        revision: str = SPEC_REVISION,
    ) -> tuple[str, int]:
        handler = handler_for(op.operation_id, revision)
        q = parse_query(op, handler, params)
        acc = self.account
        with acc.lock:
            try:
                if op.operation_id == "get_events":
                    records, nxt = page_events(acc, q)
                else:
                    records, nxt = page_generic(acc, handler, q, parent)
            except R.NotFound:
                raise not_found(f"A resource with id '{parent}' was not found.") from None
            ctx = q.ctx
            fast = op.operation_id == "get_events" and "event" not in ctx.fields
            if fast:
                # cache of each event's final JSON fragment (links already absolute) per base URL and
                # per shape (attribution ids listed or not), dropped whenever the account changes
                shape = (base, "attributions" in ctx.include)
                version, frags = acc.event_fragments.get(shape, (None, {}))
                if version != acc.version:
                    frags = {}
                    acc.event_fragments[shape] = (acc.version, frags)
                parts = []
                for ev in records:
                    frag = frags.get(ev["id"])
                    if frag is None:
                        frag = json.dumps(R.ser_event(acc, ev, ctx), separators=(",", ":")).replace(
                            R.BASE, base
                        )
                        frags[ev["id"]] = frag
                    parts.append(frag)
                data_json = "[" + ",".join(parts) + "]"
            else:
                docs = [handler.serializer(acc, r, ctx) for r in records]
                if handler.single:
                    data_json = json.dumps(docs[0], separators=(",", ":"))
                else:
                    data_json = json.dumps(docs, separators=(",", ":"))
            included_json = None
            if ctx.include:
                seen: set[tuple[Any, str]] = set()
                inc_docs: list[dict[str, Any]] = []
                inc_ctx = R.Ctx(fields=ctx.fields)
                for r in records:
                    for name in sorted(ctx.include):
                        fn = handler.includes.get(name)
                        if fn is None:
                            continue
                        for ser, rec in fn(acc, r):
                            key = (ser, rec["id"])  # a serializer makes one type: no need to build the doc
                            if key not in seen:
                                seen.add(key)
                                inc_docs.append(ser(acc, rec, inc_ctx))
                included_json = json.dumps(inc_docs, separators=(",", ":"))
        self_url = base + path[len("/api") :] + (("?" + raw_query) if raw_query else "")
        links: dict[str, Any] = {"self": self_url}
        if not handler.single:
            next_url = None
            if nxt is not None:
                cursor = _b64({"s": q.sort or "", "k": [list(nxt[0]), nxt[1]]})
                np = {k: v for k, v in params.items() if k != "page[cursor]"}
                np["page[cursor]"] = cursor
                next_url = base + path[len("/api") :] + "?" + urlencode(np, quote_via=quote, safe="")
            links = {"self": self_url, "next": next_url, "prev": None}
        body = '{"data":' + data_json + ',"links":' + json.dumps(links, separators=(",", ":"))
        if included_json is not None:
            body += ',"included":' + included_json
        body += "}"
        if R.BASE in body:
            body = body.replace(R.BASE, base)
        return body, len(records)

    def build_report(
        self, op: Operation, params: dict[str, str], raw_body: bytes, raw_query: str, path: str, base: str
    ) -> tuple[str, int]:
        """Validate a reporting request body and compute its (paged) results."""
        kind = REP.KINDS[op.operation_id]
        for name in params:
            if name not in op.query_params:
                raise invalid(f"'{name}' is not a valid query parameter for this endpoint.", name)
        fields: list[str] | None = None
        fkey = f"fields[{kind.rtype}]"
        if fkey in params:
            fields = [v for v in params[fkey].split(",") if v]
            bad = [v for v in fields if v not in op.fields.get(kind.rtype, frozenset())]
            if bad:
                raise invalid(f"'{bad[0]}' is not a valid field for the resource '{kind.rtype}'.", fkey)
        offset = 0
        if "page_cursor" in params:
            try:
                offset = int(_unb64(params["page_cursor"])["o"])
                if offset < 0:
                    raise ValueError(offset)
            except Exception:
                # Klaviyo's reporting cursors are not documented: answered like a bad page[cursor]
                raise invalid_cursor() from None
        try:
            body = json.loads(raw_body.decode("utf-8")) if raw_body else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HTTPError(
                400,
                error_body(400, "parse_error", "Malformed request.", "JSON parse error.", {"pointer": "/"}),
            ) from None
        acc = self.account
        with acc.lock:
            try:
                req = REP.parse_request(acc, kind, body)
            except REP.ReportError as exc:
                raise HTTPError(
                    400, error_body(400, "invalid", "Invalid input.", exc.detail, {"pointer": exc.pointer})
                ) from None
            out = REP.compute(acc, req)
        results = out["results"]
        size = max(1, self.config.report_page_size)
        page = results[offset : offset + size]
        attrs: dict[str, Any] = {"results": page}
        if "date_times" in out:
            attrs["date_times"] = out["date_times"]
        if fields is not None:
            attrs = {k: v for k, v in attrs.items() if k in fields}
        self_url = base + path[len("/api") :] + (("?" + raw_query) if raw_query else "")
        next_url = None
        if offset + size < len(results):
            np = {k: v for k, v in params.items() if k != "page_cursor"}
            np["page_cursor"] = _b64({"o": offset + size})
            next_url = base + path[len("/api") :] + "?" + urlencode(np, quote_via=quote, safe="")
        doc = {
            "data": {"type": kind.rtype, "attributes": attrs, "relationships": REP.relationships(req, page)},
            "links": {"self": self_url, "next": next_url},
        }
        return json.dumps(doc, separators=(",", ":")), len(page)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", JSONAPI)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _reject(self, method: str) -> None:
        emu = self.server.emulator
        t0 = time.perf_counter()
        path = urlsplit(self.path).path
        body = json.dumps(
            error_body(405, "method_not_allowed", "Method not allowed.", f'Method "{method}" not allowed.')
        ).encode()
        self._send(405, body)
        emu._log(RequestLogEntry(method, path, None, {}, 405, 0, time.perf_counter() - t0))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:  # noqa: N802
        body = self._read_body()
        path = urlsplit(self.path).path
        if self.server.emulator.route(path, "POST") is None:
            self._reject("POST")
            return
        self._handle("POST", body)

    def do_PUT(self) -> None:  # noqa: N802
        self._read_body()
        self._reject("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._read_body()
        self._reject("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._reject("DELETE")

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if self.server.emulator.route(path) is None and self.server.emulator.route(path, "POST") is not None:
            self._reject("GET")
            return
        self._handle("GET", b"")

    def _handle(self, method: str, raw_body: bytes) -> None:
        emu = self.server.emulator
        cfg = emu.config
        t0 = time.perf_counter()
        parts = urlsplit(self.path)
        path = parts.path
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        op_id: str | None = None
        status = 500
        records = 0
        fault_name: str | None = None
        response: tuple[int, bytes, dict[str, str]] | None
        try:
            routed = emu.route(path, method)
            if routed is None:
                raise not_found(f"The path {path} could not be found.")
            op, parent = routed
            op_id = op.operation_id
            auth = self.headers.get("Authorization", "")
            if auth != f"Klaviyo-API-Key {cfg.api_key}":
                body = {
                    "errors": [
                        {
                            "id": str(uuid.uuid4()),
                            "status": 401,
                            "code": "not_authenticated",
                            "title": "Authentication credentials were not provided.",
                            "detail": "Missing or invalid private key.",
                            "source": {"pointer": "/data/"},
                        }
                    ]
                }
                raise HTTPError(401, body)
            revision = self.headers.get("revision")
            if not revision:
                raise HTTPError(
                    400,
                    error_body(
                        400,
                        "invalid",
                        "Invalid input.",
                        "Missing required header: 'revision'.",
                        {"parameter": "revision"},
                    ),
                )
            # Observed by Klaviyo's own swift SDK team (klaviyo/klaviyo-swift-sdk#730): a revision the
            # operation does not exist in (retired, unknown, or before the operation existed) gets 404
            # "No valid revisions found for method". (Klaviyo's deprecation policy also allows 410 for
            # retired revisions; the 404 is what was seen.)
            routed = emu.route(path, method, revision) if revision in cfg.revisions else None
            if routed is None:
                raise not_found(f"No valid revisions found for method {op_id} at revision {revision}.")
            op, parent = routed
            op_id = op.operation_id
            for scope in op.scopes:
                if scope in cfg.denied_scopes:
                    raise HTTPError(
                        403,
                        error_body(
                            403,
                            "permission_denied",
                            "You do not have permission to perform this action.",
                            f"This API key is missing required scopes: {scope}.",
                        ),
                    )
            limiter_key, limits = membership.rate_limits(op_id, params, op.rate_limits)  # profile_count tier
            decision = emu.rate_limiter.check(limiter_key, auth, limits, cfg.rate_limit_scale)
            if not decision.allowed:
                raise HTTPError(
                    429, throttled_body(decision.retry_after), {"Retry-After": str(decision.retry_after)}
                )
            fault = emu._pick_fault(RequestInfo(method, path, op_id, params, emu._next_index()))
            if fault is not None:
                if fault.drop:
                    fault_name = "drop"
                    status = 0
                    raise _Drop()
                if fault.status is not None:
                    fault_name = f"status_{fault.status}"
                    if fault.status == 429:
                        ra = fault.retry_after if fault.retry_after is not None else cfg.fault_retry_after
                        raise HTTPError(429, throttled_body(ra), {"Retry-After": str(ra)})
                    if fault.status >= 500:
                        raise HTTPError(fault.status, server_error_body(fault.status))
                    raise HTTPError(
                        fault.status, error_body(fault.status, "error", "Injected error.", "Injected error.")
                    )
            host = self.headers.get("Host") or f"{cfg.host}:{emu.port}"
            base = (cfg.links_base_url or f"http://{host}/api").rstrip("/")
            if method == "POST":
                body_text, records = emu.build_report(op, params, raw_body, parts.query, path, base)
            else:
                body_text, records = emu.build_body(op, parent, params, parts.query, path, base, revision)
            payload = body_text.encode()
            if fault is not None and fault.bad_json:
                fault_name = "bad_json"
                payload = payload[: max(12, len(payload) // 2)] if len(payload) > 24 else b'{"data":[{"type":'
            if fault is not None and fault.body is not None:
                fault_name = "body"
                payload = json.dumps(fault.body).encode()
            headers = {}
            if decision.limit:
                headers = {
                    "RateLimit-Limit": str(decision.limit),
                    "RateLimit-Remaining": str(decision.remaining),
                    "RateLimit-Reset": str(decision.reset),
                }
            status = 200
            response = (200, payload, headers)
        except _Drop:
            response = None
        except HTTPError as exc:
            status = exc.status
            response = (exc.status, json.dumps(exc.body).encode(), exc.headers)
        except Exception as exc:  # pragma: no cover - defensive
            status = 500
            body = server_error_body(500)
            body["errors"][0]["detail"] = f"Emulator error: {exc!r}"
            response = (500, json.dumps(body).encode(), {})
        self._sleep(records)
        # log before responding so a client that got its response always finds the entry
        emu._log(
            RequestLogEntry(
                method, path, op_id, params, status, records, time.perf_counter() - t0, fault_name, self.path
            )
        )
        if response is None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(*response)

    def _sleep(self, records: int) -> None:
        cfg = self.server.emulator.config
        delay = cfg.latency_ms / 1000.0 + cfg.latency_per_record_ms * records / 1000.0
        if delay > 0:
            time.sleep(delay)


@contextmanager
def run_emulator(config: EmulatorConfig | None = None) -> Iterator[Emulator]:
    """Start an emulator on 127.0.0.1 (free port by default) in a daemon thread; stop it on exit."""
    emu = Emulator(config).start()
    try:
        yield emu
    finally:
        emu.stop()
