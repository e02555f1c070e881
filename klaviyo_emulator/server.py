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

from . import registry
from . import reports as REP
from .account import Account, AccountSpec
from .events import get_event_field
from .filters import Condition, FilterError, first_future_datetime, matches, parse_filter, validate
from .handlers import Handler, IndexableSource, Live, sort_value
from .jsonapi import BASE, Ctx, NotFound, Record, Serializer, data_shape, included_shapes, related, serializer
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
def handler_for(operation_id: str, revision: str = SPEC_REVISION) -> Handler:
    return registry.HANDLERS_BY_REVISION[revision][operation_id]


def _routes(revision: str = SPEC_REVISION) -> list[Operation]:
    ops = operations(revision)
    return [ops[oid] for oid in registry.HANDLERS_BY_REVISION[revision] if oid in ops]


# --------------------------------------------------------------------------- query parsing
@dataclass
class Query:
    page_size: int | None
    sort: str | None
    conditions: list[Condition]
    cursor: tuple[Any, ...] | None
    ctx: Ctx


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


def _check_names(op: Operation, params: dict[str, str]) -> None:
    for name in params:
        if name not in op.query_params:
            raise invalid(f"'{name}' is not a valid query parameter for this endpoint.", name)


def _page_size(op: Operation, params: dict[str, str]) -> int | None:
    if op.page_size is None:
        return None
    default, lo, hi = op.page_size
    raw = params.get("page[size]")
    if raw is None:
        return default
    try:
        size = int(raw)
    except ValueError:
        raise invalid(f"'{raw}' is not a valid integer.", "page[size]") from None
    if not lo <= size <= hi:
        raise invalid(f"Page size must be an integer between {lo} and {hi}.", "page[size]")
    return size


def _sort(op: Operation, params: dict[str, str]) -> str | None:
    sort = params.get("sort")
    if sort is not None and (op.sort is None or sort not in op.sort):
        allowed = ", ".join(op.sort or ())
        raise invalid(f"'{sort}' is not a valid sort field. Valid sort fields are: {allowed}.", "sort")
    return sort


def _listed(value: str, allowed: frozenset[str], parameter: str, complaint: str) -> list[str]:
    """The comma-separated values of a parameter, each checked against its enum."""
    wanted = [v for v in value.split(",") if v]
    bad = [v for v in wanted if v not in allowed]
    if bad:
        raise invalid(f"'{bad[0]}' {complaint}", parameter)
    return wanted


def _ctx(op: Operation, params: dict[str, str]) -> Ctx:
    """Sparse fieldsets, additional fields and includes of a request."""
    ctx = Ctx()
    for name, value in params.items():
        if name.startswith("fields["):
            rtype = name[7:-1]
            complaint = f"is not a valid field for the resource '{rtype}'."
            ctx.fields[rtype] = _listed(value, op.fields.get(rtype, frozenset()), name, complaint)
        elif name.startswith("additional-fields["):
            rtype = name[18:-1]
            complaint = f"is not a valid additional field for '{rtype}'."
            allowed = op.additional_fields.get(rtype, frozenset())
            ctx.additional[rtype] = set(_listed(value, allowed, name, complaint))
    if "include" in params:
        complaint = "is not a valid related resource to include."
        ctx.include = set(_listed(params["include"], op.include or frozenset(), "include", complaint))
    return ctx


def _conditions(op: Operation, params: dict[str, str]) -> list[Condition]:
    if "filter" not in params:
        return []
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
    return conditions


def _check_required_filters(handler: Handler, conditions: list[Condition]) -> None:
    one_of = handler.required_filter_one_of
    if one_of and not any(c.field in one_of for c in conditions):
        names = " or ".join(f"'{f}'" for f in one_of)
        raise invalid(f"A filter on {names} is required.", "filter")
    for req in handler.required_filters:
        if not any(c.field == req and c.op == "equals" and not c.is_list for c in conditions):
            raise invalid(f"A filter on '{req}' is required (e.g. equals({req},'email')).", "filter")


def _cursor(params: dict[str, str], sort: str | None) -> tuple[Any, ...] | None:
    if "page[cursor]" not in params:
        return None
    try:
        data = _unb64(params["page[cursor]"])
        cursor = (str(data["s"]), tuple(data["k"][0]), str(data["k"][1]))
        if data["s"] != (sort or ""):
            # not documented: a cursor only makes sense with the sort it was made for
            raise ValueError("sort mismatch")
    except Exception:
        raise invalid_cursor() from None
    return cursor


def parse_query(op: Operation, handler: Handler, params: dict[str, str]) -> Query:
    """Validate a GET's query against the operation's spec, in the order Klaviyo reports errors."""
    _check_names(op, params)
    page_size = _page_size(op, params)
    sort = _sort(op, params)
    ctx = _ctx(op, params)
    conditions = _conditions(op, params)
    _check_required_filters(handler, conditions)
    missing = sorted(op.required_query - set(params))
    if missing:
        raise invalid(f"'{missing[0]}' is a required query parameter.", missing[0])
    return Query(page_size, sort, conditions, _cursor(params, sort), ctx)


# --------------------------------------------------------------------------- pagination
def _keyed(
    records: list[Record], handler: Handler, sort: str | None
) -> list[tuple[tuple[Any, ...], str, Record]]:
    field_name = (sort or handler.default_sort or "id").lstrip("-")
    if field_name == "id":
        return [((1, r["id"]), r["id"], r) for r in records]
    return [(sort_value(handler.getter(r, field_name)), r["id"], r) for r in records]


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
) -> tuple[list[Record], tuple[Any, ...] | None]:
    src = handler.source
    if q.page_size is not None and isinstance(src, IndexableSource):
        live = src.live(acc, parent)
        if live.size >= INDEX_MIN_RECORDS:
            return _page_indexed(acc, handler, q, parent, live)
    return page_full(acc, handler, q, parent)


def _after_cursor(keys: list[tuple[Any, str]], cursor: tuple[Any, str], desc: bool) -> int:
    """Where a page resumes in sorted ``keys``: the first key after the cursor's."""
    if not desc:
        return bisect.bisect_right(keys, cursor)
    # keys are descending: find first key strictly below the cursor
    lo, hi = 0, len(keys)
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid] >= cursor:
            lo = mid + 1
        else:
            hi = mid
    return lo


def page_full(
    acc: Account, handler: Handler, q: Query, parent: str | None
) -> tuple[list[Record], tuple[Any, ...] | None]:
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
        start = _after_cursor([(t[0], t[1]) for t in keyed], (q.cursor[1], q.cursor[2]), desc)
    size = q.page_size if q.page_size is not None else len(keyed)
    chunk = keyed[start : start + size]
    nxt = None
    if q.page_size is not None and start + size < len(keyed) and chunk:
        nxt = (chunk[-1][0], chunk[-1][1])
    return [t[2] for t in chunk], nxt


def _sort_index(
    acc: Account, handler: Handler, parent: str | None, field_name: str, live: Live
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
    acc: Account, handler: Handler, q: Query, parent: str | None, live: Live
) -> tuple[list[Record], tuple[Any, ...] | None]:
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
            bound = sort_value(c.value)
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
    fetch: Callable[[str], Record | None],
    conditions: list[Condition],
    getter: Callable[[Record, str], Any],
) -> tuple[list[Record], Any | None]:
    """One page from ``keys[start:end]`` (sorted ``(sort key, id)`` pairs; walked backwards when
    ``desc``), resuming after ``cursor_key``: the records matching every condition, and the key of the
    page's last record when another match follows (``None`` on the last page)."""
    if cursor_key is not None:
        if desc:
            end = min(end, bisect.bisect_left(keys, cursor_key))
        else:
            start = max(start, bisect.bisect_right(keys, cursor_key))
    out: list[Record] = []
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


@dataclass
class _EventRange:
    """What the index can answer of an events filter: the metrics and the ``(timestamp, id)`` bounds."""

    metric_ids: list[str] | None = None
    lo: tuple[int, str] = (-(2**62), "")
    hi: tuple[int, str] = (2**62, "\uffff")

    def narrow(self, c: Condition) -> bool:
        """Narrow the range by one condition; False when the index cannot answer it."""
        if c.field == "metric_id" and c.op == "equals":
            vals = list(c.value) if c.is_list else [c.value]
            self.metric_ids = vals if self.metric_ids is None else [m for m in self.metric_ids if m in vals]
            return True
        if c.field not in ("datetime", "timestamp") or c.op not in _RANGE_OPS:
            return False
        secs = c.value.timestamp() if c.field == "datetime" else float(c.value)
        # timestamps are whole seconds: translate to an integer bound on the index
        if c.op == "greater-or-equal":
            self.lo = max(self.lo, (math.ceil(secs), ""))
        elif c.op == "greater-than":
            self.lo = max(self.lo, (math.floor(secs) + 1, ""))
        elif c.op == "less-than":
            self.hi = min(self.hi, (math.ceil(secs), ""))
        else:
            self.hi = min(self.hi, (math.floor(secs) + 1, ""))
        return True

    def index(self, acc: Account) -> list[tuple[int, str]]:
        if self.metric_ids is None:
            return acc.event_index
        if len(self.metric_ids) == 1:
            return acc.metric_index.get(self.metric_ids[0], [])
        return sorted(x for m in dict.fromkeys(self.metric_ids) for x in acc.metric_index.get(m, []))


def page_events(acc: Account, q: Query) -> tuple[list[Record], tuple[Any, ...] | None]:
    """Fast path: per-metric sorted (timestamp, id) index + bisect for ranges and the cursor."""
    span = _EventRange()
    rest = [c for c in q.conditions if not span.narrow(c)]
    index = span.index(acc)
    start = bisect.bisect_left(index, span.lo)
    end = bisect.bisect_left(index, span.hi)
    desc = bool(q.sort and q.sort.startswith("-"))
    cursor_key = (int(q.cursor[1][1]), q.cursor[2]) if q.cursor is not None else None
    out, last_key = _take_page(
        index, start, end, desc, cursor_key, q.page_size or 200, acc.events_by_id.get, rest, get_event_field
    )
    return out, (((1, last_key[0]), last_key[1]) if last_key else None)


# --------------------------------------------------------------------------- serialisation
def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _data_serializer(operation_id: str, revision: str, rtype: str) -> Serializer:
    return serializer(registry.RESOURCES[revision][rtype], data_shape(operation_id, revision))


def _event_fragments(acc: Account, records: list[Record], ctx: Ctx, base: str, revision: str) -> str:
    """The data of an events page from a cache of each event's final JSON fragment (links already
    absolute) per base URL, revision and shape (attribution ids listed or not), dropped whenever the
    account changes: events are most of what a client reads."""
    key = (base, revision, "attributions" in ctx.include)
    version, frags = acc.event_fragments.get(key, (None, {}))
    if version != acc.version:
        frags = {}
        acc.event_fragments[key] = (acc.version, frags)
    render = _data_serializer("get_events", revision, "event")
    parts = []
    for ev in records:
        frag = frags.get(ev["id"])
        if frag is None:
            frag = _dumps(render(acc, ev, ctx)).replace(BASE, base)
            frags[ev["id"]] = frag
        parts.append(frag)
    return "[" + ",".join(parts) + "]"


def _included(
    acc: Account, operation_id: str, revision: str, rtype: str, records: list[Record], ctx: Ctx
) -> str | None:
    """The ``included`` array of a compound document (None when nothing was asked to be included)."""
    if not ctx.include:
        return None
    resources = registry.RESOURCES[revision]
    primary, shape = resources[rtype], data_shape(operation_id, revision)
    shapes = included_shapes(operation_id, revision)
    inc_ctx = Ctx(fields=ctx.fields)
    seen: set[tuple[str, str]] = set()
    docs: list[Record] = []
    for rec in records:
        for name in sorted(ctx.include):
            related_type, ids = related(acc, primary, shape, rec, name)
            table = getattr(acc, resources[related_type].table) if ids else {}
            for rid in ids:
                if (related_type, rid) in seen or rid not in table:
                    continue
                seen.add((related_type, rid))
                docs.append(
                    serializer(resources[related_type], shapes[related_type])(acc, table[rid], inc_ctx)
                )
    return _dumps(docs)


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
            except NotFound:
                raise not_found(f"A resource with id '{parent}' was not found.") from None
            if op.operation_id == "get_events" and "event" not in q.ctx.fields:
                data_json = _event_fragments(acc, records, q.ctx, base, revision)
            else:
                render = _data_serializer(op.operation_id, revision, handler.resource)
                docs = [render(acc, r, q.ctx) for r in records]
                data_json = _dumps(docs[0] if handler.single else docs)
            included_json = _included(acc, op.operation_id, revision, handler.resource, records, q.ctx)
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
        body = '{"data":' + data_json + ',"links":' + _dumps(links)
        if included_json is not None:
            body += ',"included":' + included_json
        body += "}"
        if BASE in body:
            body = body.replace(BASE, base)
        return body, len(records)

    def build_report(
        self, op: Operation, params: dict[str, str], raw_body: bytes, raw_query: str, path: str, base: str
    ) -> tuple[str, int]:
        """Validate a reporting request body and compute its (paged) results."""
        kind = REP.KINDS[op.operation_id]
        _check_names(op, params)
        fields = _report_fields(op, kind.rtype, params)
        offset = _report_offset(params)
        body = _json_body(raw_body)
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


def _report_fields(op: Operation, rtype: str, params: dict[str, str]) -> list[str] | None:
    fkey = f"fields[{rtype}]"
    if fkey not in params:
        return None
    complaint = f"is not a valid field for the resource '{rtype}'."
    return _listed(params[fkey], op.fields.get(rtype, frozenset()), fkey, complaint)


def _report_offset(params: dict[str, str]) -> int:
    if "page_cursor" not in params:
        return 0
    try:
        offset = int(_unb64(params["page_cursor"])["o"])
        if offset < 0:
            raise ValueError(offset)
    except Exception:
        # Klaviyo's reporting cursors are not documented: answered like a bad page[cursor]
        raise invalid_cursor() from None
    return offset


def _json_body(raw_body: bytes) -> Any:
    try:
        return json.loads(raw_body.decode("utf-8")) if raw_body else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HTTPError(
            400,
            error_body(400, "parse_error", "Malformed request.", "JSON parse error.", {"pointer": "/"}),
        ) from None


@dataclass
class _Exchange:
    """One request as it goes through the checks, and what its log entry says about it."""

    method: str
    path: str
    query: str
    params: dict[str, str]
    op_id: str | None = None
    status: int = 500
    records: int = 0
    fault: str | None = None


def _unauthenticated() -> HTTPError:
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
    return HTTPError(401, body)


def _admit(
    emu: Emulator, ex: _Exchange, auth: str, revision: str | None
) -> tuple[Operation, str | None, str]:
    """The operation, path id and revision of a request with a known path, a valid key, a revision
    the operation exists in and the scopes it needs."""
    cfg = emu.config
    routed = emu.route(ex.path, ex.method)
    if routed is None:
        raise not_found(f"The path {ex.path} could not be found.")
    ex.op_id = routed[0].operation_id
    if auth != f"Klaviyo-API-Key {cfg.api_key}":
        raise _unauthenticated()
    if not revision:
        detail = "Missing required header: 'revision'."
        raise HTTPError(400, error_body(400, "invalid", "Invalid input.", detail, {"parameter": "revision"}))
    # Observed by Klaviyo's own swift SDK team (klaviyo/klaviyo-swift-sdk#730): a revision the
    # operation does not exist in (retired, unknown, or before the operation existed) gets 404
    # "No valid revisions found for method". (Klaviyo's deprecation policy also allows 410 for
    # retired revisions; the 404 is what was seen.)
    routed = emu.route(ex.path, ex.method, revision) if revision in cfg.revisions else None
    if routed is None:
        raise not_found(f"No valid revisions found for method {ex.op_id} at revision {revision}.")
    op, parent = routed
    ex.op_id = op.operation_id
    denied = [scope for scope in op.scopes if scope in cfg.denied_scopes]
    if denied:
        title = "You do not have permission to perform this action."
        detail = f"This API key is missing required scopes: {denied[0]}."
        raise HTTPError(403, error_body(403, "permission_denied", title, detail))
    return op, parent, revision


def _raise_fault(fault: Fault, cfg: EmulatorConfig, ex: _Exchange) -> None:
    """Fail as an injected drop or status fault says (faults on the body are :func:`_tamper`'s)."""
    if fault.drop:
        ex.fault = "drop"
        raise _Drop()
    if fault.status is None:
        return
    ex.fault = f"status_{fault.status}"
    if fault.status == 429:
        ra = fault.retry_after if fault.retry_after is not None else cfg.fault_retry_after
        raise HTTPError(429, throttled_body(ra), {"Retry-After": str(ra)})
    if fault.status >= 500:
        raise HTTPError(fault.status, server_error_body(fault.status))
    raise HTTPError(fault.status, error_body(fault.status, "error", "Injected error.", "Injected error."))


def _tamper(payload: bytes, fault: Fault, ex: _Exchange) -> bytes:
    """A 200's body as an injected fault corrupts (truncates) or replaces it."""
    if fault.bad_json:
        ex.fault = "bad_json"
        payload = payload[: max(12, len(payload) // 2)] if len(payload) > 24 else b'{"data":[{"type":'
    if fault.body is not None:
        ex.fault = "body"
        payload = json.dumps(fault.body).encode()
    return payload


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
        t0 = time.perf_counter()
        parts = urlsplit(self.path)
        ex = _Exchange(method, parts.path, parts.query, dict(parse_qsl(parts.query, keep_blank_values=True)))
        response: tuple[int, bytes, dict[str, str]] | None
        try:
            response = self._respond(ex, raw_body)
            ex.status = 200
        except _Drop:
            ex.status = 0
            response = None
        except HTTPError as exc:
            ex.status = exc.status
            response = (exc.status, json.dumps(exc.body).encode(), exc.headers)
        except Exception as exc:  # pragma: no cover - defensive
            ex.status = 500
            body = server_error_body(500)
            body["errors"][0]["detail"] = f"Emulator error: {exc!r}"
            response = (500, json.dumps(body).encode(), {})
        self._sleep(ex.records)
        # log before responding so a client that got its response always finds the entry
        emu._log(
            RequestLogEntry(
                method,
                ex.path,
                ex.op_id,
                ex.params,
                ex.status,
                ex.records,
                time.perf_counter() - t0,
                ex.fault,
                self.path,
            )
        )
        if response is None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(*response)

    def _respond(self, ex: _Exchange, raw_body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """The 200 of a request that passes every check (each failing check raises its error)."""
        emu = self.server.emulator
        cfg = emu.config
        auth = self.headers.get("Authorization", "")
        op, parent, revision = _admit(emu, ex, auth, self.headers.get("revision"))
        bucket, limits = op.limits_for(ex.params)  # some parameter values have a lower tier of their own
        decision = emu.rate_limiter.check(bucket, auth, limits, cfg.rate_limit_scale)
        if not decision.allowed:
            ra = decision.retry_after
            raise HTTPError(429, throttled_body(ra), {"Retry-After": str(ra)})
        fault = emu._pick_fault(RequestInfo(ex.method, ex.path, ex.op_id, ex.params, emu._next_index()))
        if fault is not None:
            _raise_fault(fault, cfg, ex)
        host = self.headers.get("Host") or f"{cfg.host}:{emu.port}"
        base = (cfg.links_base_url or f"http://{host}/api").rstrip("/")
        if ex.method == "POST":
            body_text, ex.records = emu.build_report(op, ex.params, raw_body, ex.query, ex.path, base)
        else:
            body_text, ex.records = emu.build_body(op, parent, ex.params, ex.query, ex.path, base, revision)
        payload = body_text.encode() if fault is None else _tamper(body_text.encode(), fault, ex)
        headers = {}
        if decision.limit:
            headers = {
                "RateLimit-Limit": str(decision.limit),
                "RateLimit-Remaining": str(decision.remaining),
                "RateLimit-Reset": str(decision.reset),
            }
        return 200, payload, headers

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
