"""Reporting API (``POST /api/{campaign,flow}-values-reports``, ``/api/flow-series-reports``).

Request bodies are validated against the spec's request DTOs (type, statistics enum, timeframe,
conversion_metric_id, group_by enum, filter grammar, interval) and results are computed
deterministically from the account's events:

* per message (``$message`` event property; flow messages carry ``$flow`` too) and timeframe:
  ``delivered`` = Received Email, ``bounced`` = Bounced Email, ``failed`` = Dropped Email,
  ``recipients`` = delivered + bounced + failed, ``opens``/``opens_unique`` = Opened Email,
  ``clicks``/``clicks_unique`` = Clicked Email (Klaviyo integration), ``spam_complaints`` = Marked
  Email as Spam, ``unsubscribes``/``unsubscribe_uniques`` = the unsubscribe metric;
  ``conversions``/``conversion_uniques``/``conversion_value`` = events of ``conversion_metric_id``
  attributed (see :meth:`Account.attributions`) to the message; rates are fractions rounded to 4
  places (0.0 when the denominator is 0).
* A row is returned for every message with any non-zero count in the timeframe; group_by must
  include campaign_id+campaign_message_id (flow_id+flow_message_id), so a row is one message.
* Timeframes are resolved in the account timezone. Custom ``{start, end}``: the offsets are ignored
  (wall-clock in the account timezone, as Klaviyo documents), ``start`` is inclusive and ``end`` is
  rounded up to ``hh:59:59`` and inclusive. Relative keys (``last_30_days`` ...) end at today's
  midnight (``today``/``this_*`` end now). Max length: 1 year.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from .filters import Condition, FilterError, _QuotedStr, parse_datetime, parse_filter
from .spec import schema
from .store import Store

MAX_LIST_ITEMS = 100
SEND_CHANNELS = ("email", "sms", "push-notification", "whatsapp")
_CHANNEL_NAME = {"email": "email", "sms": "sms", "mobile_push": "push-notification"}
_LIST_ATTRS = frozenset({"tag_id", "tag_name"})
INTERVAL_MAX_DAYS = {"hourly": 7, "daily": 60, "weekly": 366, "monthly": 364}


class ReportError(Exception):
    """A 400 with ``source.pointer``."""

    def __init__(self, detail: str, pointer: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.pointer = pointer


@dataclass(frozen=True)
class ReportKind:
    operation_id: str
    rtype: str
    subject: str  # "campaign" | "flow"
    series: bool
    request_schema: str

    def attrs_schema(self) -> dict[str, Any]:
        obj = schema(schema(self.request_schema)["properties"]["data"]["$ref"])
        props: dict[str, Any] = obj["properties"]["attributes"]
        return props

    def statistics_enum(self) -> frozenset[str]:
        return frozenset(self.attrs_schema()["properties"]["statistics"]["items"]["enum"])

    def group_by_enum(self) -> tuple[str, ...]:
        return tuple(self.attrs_schema()["properties"]["group_by"]["items"]["enum"])

    def required(self) -> tuple[str, ...]:
        return tuple(self.attrs_schema().get("required", ()))

    @property
    def required_group_by(self) -> tuple[str, ...]:
        return (f"{self.subject}_id", f"{self.subject}_message_id")

    @property
    def default_group_by(self) -> list[str]:
        return [f"{self.subject}_id", f"{self.subject}_message_id", "send_channel"]


KINDS: dict[str, ReportKind] = {
    "query_campaign_values": ReportKind(
        "query_campaign_values", "campaign-values-report", "campaign", False, "CampaignValuesRequestDTO"
    ),
    "query_flow_values": ReportKind(
        "query_flow_values", "flow-values-report", "flow", False, "FlowValuesRequestDTO"
    ),
    "query_flow_series": ReportKind(
        "query_flow_series", "flow-series-report", "flow", True, "FlowSeriesRequestDTO"
    ),
}


@dataclass
class ReportRequest:
    kind: ReportKind
    statistics: list[str]
    start: datetime  # inclusive, account tz
    end: datetime  # exclusive, account tz
    conversion_metric_id: str
    group_by: list[str]
    filters: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (attr, op, values)
    interval: str | None = None


# --------------------------------------------------------------------------- timeframes
def account_tz(acc: Store) -> ZoneInfo:
    return ZoneInfo(str(acc.account_info.get("timezone") or "UTC"))


def _add_months(dt: datetime, months: int) -> datetime:
    idx = dt.year * 12 + dt.month - 1 + months
    return dt.replace(year=idx // 12, month=idx % 12 + 1, day=1)


def resolve_timeframe(acc: Store, tf: Any) -> tuple[datetime, datetime]:
    """``[start, end)`` in the account timezone for a ``{key}`` or ``{start, end}`` timeframe."""
    tz = account_tz(acc)
    if not isinstance(tf, dict):
        raise ReportError(
            "'timeframe' must be an object with 'key' or 'start' and 'end'.", "/data/attributes/timeframe"
        )
    if "key" in tf:
        key = tf["key"]
        keys = schema("Timeframe")["properties"]["key"]["enum"]
        if key not in keys:
            raise ReportError(
                f"'{key}' is not a valid timeframe key. Valid keys are: {', '.join(keys)}.",
                "/data/attributes/timeframe/key",
            )
        now = acc.now.astimezone(tz)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        monday = today - timedelta(days=today.weekday())
        month0 = today.replace(day=1)
        year0 = month0.replace(month=1)
        ranges: dict[str, tuple[datetime, datetime]] = {
            "today": (today, now),
            "yesterday": (today - timedelta(days=1), today),
            "last_7_days": (today - timedelta(days=7), today),
            "last_30_days": (today - timedelta(days=30), today),
            "last_90_days": (today - timedelta(days=90), today),
            "last_365_days": (today - timedelta(days=365), today),
            "this_week": (monday, now),
            "last_week": (monday - timedelta(days=7), monday),
            "this_month": (month0, now),
            "last_month": (_add_months(month0, -1), month0),
            "last_3_months": (_add_months(month0, -3), month0),
            "last_12_months": (_add_months(month0, -12), month0),
            "this_year": (year0, now),
            "last_year": (year0.replace(year=year0.year - 1), year0),
        }
        start, end = ranges[key]
        return _normalise(start, tz), _normalise(end, tz)
    if set(tf) != {"start", "end"}:
        raise ReportError(
            "'timeframe' must have either 'key' or both 'start' and 'end'.", "/data/attributes/timeframe"
        )
    out: list[datetime] = []
    for name in ("start", "end"):
        try:
            if not isinstance(tf[name], str):
                raise ValueError
            dt = parse_datetime(tf[name])
        except ValueError:
            raise ReportError(
                f"'{tf[name]}' is not a valid datetime.", f"/data/attributes/timeframe/{name}"
            ) from None
        out.append(dt.replace(tzinfo=None))  # the offset is ignored: wall clock in the account tz
    start = out[0].replace(tzinfo=tz)
    # the end is rounded up to hh:59:59 and inclusive -> exclusive bound at the next full hour
    end = out[1].replace(minute=0, second=0, microsecond=0, tzinfo=tz) + timedelta(hours=1)
    if end <= start:
        raise ReportError("The timeframe 'start' must be before 'end'.", "/data/attributes/timeframe")
    if end - start > timedelta(days=366):
        raise ReportError("The timeframe cannot be longer than 1 year.", "/data/attributes/timeframe")
    return _normalise(start, tz), _normalise(end, tz)


def _normalise(dt: datetime, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(dt.timestamp(), tz)


def buckets(start: datetime, end: datetime, interval: str) -> list[datetime]:
    """Bucket starts of a series (account-tz wall clock), the first floored to the interval unit."""
    tz = start.tzinfo
    naive = start.replace(tzinfo=None)
    if interval == "hourly":
        cur = naive.replace(minute=0, second=0, microsecond=0)
    else:
        cur = naive.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "monthly":
        cur = cur.replace(day=1)
    if interval == "weekly":
        cur -= timedelta(days=cur.weekday())
    out: list[datetime] = []
    end_naive = end.replace(tzinfo=None)
    while cur < end_naive:
        out.append(cur.replace(tzinfo=tz))
        if interval == "hourly":
            cur += timedelta(hours=1)
        elif interval == "daily":
            cur += timedelta(days=1)
        elif interval == "weekly":
            cur += timedelta(days=7)
        else:
            cur = _add_months(cur, 1)
    return out


# --------------------------------------------------------------------------- body validation
def _attributes(kind: ReportKind, body: Any) -> dict[str, Any]:
    """The request's ``data.attributes``: a JSON:API document of the right type, known and required names."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise ReportError("The request body must be a JSON:API document with a 'data' object.", "/data")
    data = body["data"]
    if data.get("type") != kind.rtype:
        raise ReportError(
            f"'{data.get('type')}' is not a valid type for this endpoint; expected '{kind.rtype}'.",
            "/data/type",
        )
    attrs = data.get("attributes")
    if not isinstance(attrs, dict):
        raise ReportError("'attributes' is required.", "/data/attributes")
    known = set(kind.attrs_schema()["properties"])
    for name in attrs:
        if name not in known:
            raise ReportError(f"'{name}' is not a valid attribute.", f"/data/attributes/{name}")
    for name in kind.required():
        if attrs.get(name) is None:
            raise ReportError(f"'{name}' is a required field.", f"/data/attributes/{name}")
    return attrs


def _statistics(kind: ReportKind, stats: Any) -> list[str]:
    if not isinstance(stats, list) or not stats:
        raise ReportError("'statistics' must be a non-empty list.", "/data/attributes/statistics")
    allowed = kind.statistics_enum()
    for st in stats:
        if st not in allowed:
            raise ReportError(f"'{st}' is not a valid statistic.", "/data/attributes/statistics")
    return list(dict.fromkeys(stats))


def _group_by(kind: ReportKind, group_by: Any) -> list[str]:
    if group_by is None:
        group_by = kind.default_group_by
    if not isinstance(group_by, list):
        raise ReportError("'group_by' must be a list.", "/data/attributes/group_by")
    allowed = kind.group_by_enum()
    for g in group_by:
        if g not in allowed:
            raise ReportError(
                f"'{g}' is not a valid group_by. Allowed: {', '.join(allowed)}.", "/data/attributes/group_by"
            )
    if any(g not in group_by for g in kind.required_group_by):
        raise ReportError(
            f"The following group by attributes are required: {', '.join(kind.required_group_by)}.",
            "/data/attributes/group_by",
        )
    return list(dict.fromkeys(group_by))


def _interval(kind: ReportKind, interval: Any, start: datetime, end: datetime) -> str:
    enum = kind.attrs_schema()["properties"]["interval"]["enum"]
    if interval not in enum:
        raise ReportError(
            f"'{interval}' is not a valid interval. Valid: {', '.join(enum)}.", "/data/attributes/interval"
        )
    limit = INTERVAL_MAX_DAYS[interval]
    if end - start > timedelta(days=limit):
        raise ReportError(
            f"If {interval} is used, the timeframe cannot be longer than {limit} days.",
            "/data/attributes/interval",
        )
    return str(interval)


def parse_request(acc: Store, kind: ReportKind, body: Any) -> ReportRequest:
    attrs = _attributes(kind, body)
    stats = _statistics(kind, attrs["statistics"])
    start, end = resolve_timeframe(acc, attrs["timeframe"])
    mid = attrs["conversion_metric_id"]
    if not isinstance(mid, str) or mid not in acc.metrics_by_id:
        raise ReportError(f"Metric with id '{mid}' does not exist.", "/data/attributes/conversion_metric_id")
    req = ReportRequest(kind, stats, start, end, mid, _group_by(kind, attrs.get("group_by")))
    if attrs.get("filter") is not None:
        req.filters = _parse_report_filter(kind, attrs["filter"])
    if kind.series:
        req.interval = _interval(kind, attrs["interval"], start, end)
    return req


def _report_condition(c: Condition, pointer: str) -> tuple[str, str, list[str]]:
    """One condition of a report filter, checked as Klaviyo checks it: operator, list-ness, values."""
    ops = ("contains-any", "contains-all") if c.field in _LIST_ATTRS else ("equals", "contains-any")
    if c.op not in ops:
        raise ReportError(
            f"Invalid filter provided: operator '{c.op}' is not supported for '{c.field}'.", pointer
        )
    values = c.value if c.is_list else [c.value]
    if c.op.startswith("contains") != c.is_list:
        raise ReportError(f"Invalid filter provided: '{c.op}' on '{c.field}' expects a list.", pointer)
    if not values or len(values) > MAX_LIST_ITEMS:
        raise ReportError(f"Max of {MAX_LIST_ITEMS} items per list filter.", pointer)
    if not all(isinstance(v, _QuotedStr) for v in values):
        raise ReportError(f"Invalid filter provided: '{c.field}' expects quoted strings.", pointer)
    bad = [v for v in values if v not in SEND_CHANNELS] if c.field == "send_channel" else []
    if bad:
        raise ReportError(
            f"'{bad[0]}' is not a valid send_channel; allowed: {', '.join(SEND_CHANNELS)}.", pointer
        )
    return c.field, c.op, [str(v) for v in values]


def _parse_report_filter(kind: ReportKind, text: Any) -> list[tuple[str, str, list[str]]]:
    pointer = "/data/attributes/filter"
    if not isinstance(text, str):
        raise ReportError("'filter' must be a string.", pointer)
    try:
        conds = parse_filter(text)
    except FilterError as exc:
        raise ReportError(str(exc), pointer) from None
    allowed = set(kind.group_by_enum())
    seen: set[str] = set()
    out: list[tuple[str, str, list[str]]] = []
    for c in conds:
        if c.field not in allowed:
            raise ReportError(f"Invalid filter provided: filtering on '{c.field}' is not supported.", pointer)
        if c.field in seen:
            raise ReportError(f"Only one filter can be used per attribute ('{c.field}').", pointer)
        seen.add(c.field)
        out.append(_report_condition(c, pointer))
    return out


# --------------------------------------------------------------------------- computation
_COUNTS = (
    "delivered",
    "bounced",
    "failed",
    "opens",
    "clicks",
    "spam_complaints",
    "unsubscribes",
    "conversions",
)
_UNIQUES = ("opens_unique", "clicks_unique", "unsubscribe_uniques", "conversion_uniques")


@dataclass
class _Acc:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTS, 0))
    uniques: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in _UNIQUES})
    value: float = 0.0

    def empty(self) -> bool:
        return not any(self.counts.values())


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def statistics(a: _Acc, channel: str, wanted: list[str]) -> dict[str, float | int]:
    c = a.counts
    u = {k: len(v) for k, v in a.uniques.items()}
    recipients = c["delivered"] + c["bounced"] + c["failed"]
    sms = channel == "sms"
    spend = round(c["delivered"] * 0.01, 2) if sms else 0.0
    value = round(a.value, 2)
    full: dict[str, float | int] = {
        "recipients": recipients,
        "delivered": c["delivered"],
        "bounced": c["bounced"],
        "failed": c["failed"],
        "bounced_or_failed": c["bounced"] + c["failed"],
        "opens": c["opens"],
        "opens_unique": u["opens_unique"],
        "clicks": c["clicks"],
        "clicks_unique": u["clicks_unique"],
        "spam_complaints": c["spam_complaints"],
        "unsubscribes": c["unsubscribes"],
        "unsubscribe_uniques": u["unsubscribe_uniques"],
        "conversions": c["conversions"],
        "conversion_uniques": u["conversion_uniques"],
        "conversion_value": value,
        "delivery_rate": _ratio(c["delivered"], recipients),
        "bounce_rate": _ratio(c["bounced"], recipients),
        "failed_rate": _ratio(c["failed"], recipients),
        "bounced_or_failed_rate": _ratio(c["bounced"] + c["failed"], recipients),
        "open_rate": _ratio(u["opens_unique"], c["delivered"]),
        "click_rate": _ratio(u["clicks_unique"], c["delivered"]),
        "click_to_open_rate": _ratio(u["clicks_unique"], u["opens_unique"]),
        "spam_complaint_rate": _ratio(c["spam_complaints"], c["delivered"]),
        "unsubscribe_rate": _ratio(u["unsubscribe_uniques"], c["delivered"]),
        "conversion_rate": _ratio(u["conversion_uniques"], c["delivered"]),
        "average_order_value": round(value / c["conversions"], 2) if c["conversions"] else 0.0,
        "revenue_per_recipient": round(value / recipients, 2) if recipients else 0.0,
        "message_segment_count_sum": c["delivered"] if sms else 0,
        "text_message_credit_usage_amount": c["delivered"] if sms else 0,
        "text_message_spend": spend,
        "text_message_roi": round(value / spend, 4) if spend else 0.0,
    }
    return {k: full[k] for k in wanted}


def _metric_roles(acc: Store) -> dict[str, str]:
    roles = {
        "Received Email": "delivered",
        "Bounced Email": "bounced",
        "Dropped Email": "failed",
        "Opened Email": "opens",
        "Clicked Email": "clicks",
        "Marked Email as Spam": "spam_complaints",
        acc.spec.unsubscribe_metric_name: "unsubscribes",
    }
    out: dict[str, str] = {}
    for name, role in roles.items():
        mid = acc.metric_id(name)
        if mid:
            out[mid] = role
    return out


_UNIQUE_OF = {
    "opens": "opens_unique",
    "clicks": "clicks_unique",
    "unsubscribes": "unsubscribe_uniques",
    "conversions": "conversion_uniques",
}


def _message_info(acc: Store, subject: str, msg_id: str) -> dict[str, Any] | None:
    if subject == "campaign":
        m = acc.campaign_messages_by_id.get(msg_id)
        if m is None:
            return None
        camp = acc.campaigns_by_id.get(m["campaign_id"], {})
        tag_ids = list(camp.get("tag_ids", []))
        return {
            "campaign_id": m["campaign_id"],
            "campaign_message_id": msg_id,
            "campaign_message_name": m["label"],
            "send_channel": _CHANNEL_NAME.get(m["channel"], m["channel"]),
            "tag_ids": tag_ids,
            "tag_names": [acc.tags_by_id[t]["name"] for t in tag_ids if t in acc.tags_by_id],
        }
    fm = acc.flow_messages_by_id.get(msg_id)
    if fm is None:
        return None
    flow = acc.flows_by_id.get(fm["flow_id"], {})
    tag_ids = list(flow.get("tag_ids", []))
    return {
        "flow_id": fm["flow_id"],
        "flow_message_id": msg_id,
        "flow_message_name": fm["name"],
        "flow_name": flow.get("name"),
        "send_channel": _CHANNEL_NAME.get(fm["channel"], fm["channel"]),
        "tag_ids": tag_ids,
        "tag_names": [acc.tags_by_id[t]["name"] for t in tag_ids if t in acc.tags_by_id],
    }


def _grouping_value(info: dict[str, Any], key: str) -> Any:
    if key == "tag_id":
        return info["tag_ids"][0] if info["tag_ids"] else None
    if key == "tag_name":
        return info["tag_names"][0] if info["tag_names"] else None
    return info.get(key)


def _passes(info: dict[str, Any], filters: list[tuple[str, str, list[str]]]) -> bool:
    for attr, op, values in filters:
        if attr in _LIST_ATTRS:
            have = set(info["tag_ids"] if attr == "tag_id" else info["tag_names"])
            ok = bool(have & set(values)) if op == "contains-any" else set(values) <= have
        else:
            ok = info.get(attr) in values
        if not ok:
            return False
    return True


def _accumulate(
    acc: Store, subject: str, conversion_metric_id: str, start_ts: int, end_ts: int
) -> dict[str, _Acc]:
    """Per-message accumulators for events with ``start_ts <= timestamp < end_ts``."""
    roles = _metric_roles(acc)
    out: dict[str, _Acc] = {}
    table = acc.campaign_messages_by_id if subject == "campaign" else acc.flow_messages_by_id
    for mid, role in roles.items():
        index = acc.metric_index.get(mid, [])
        lo = bisect.bisect_left(index, (start_ts, ""))
        hi = bisect.bisect_left(index, (end_ts, ""))
        for _ts, eid in index[lo:hi]:
            ev = acc.events_by_id[eid]
            msg = ev["event_properties"].get("$message")
            if msg not in table:
                continue
            a = out.setdefault(msg, _Acc())
            a.counts[role] += 1
            if role in _UNIQUE_OF and ev["profile_id"]:
                a.uniques[_UNIQUE_OF[role]].add(ev["profile_id"])
    index = acc.metric_index.get(conversion_metric_id, [])
    lo = bisect.bisect_left(index, (start_ts, ""))
    hi = bisect.bisect_left(index, (end_ts, ""))
    key = f"{subject}_message_id"
    for _ts, eid in index[lo:hi]:
        ev = acc.events_by_id[eid]
        for aid in ev.get("attribution_ids", []):
            msg = acc.attributions_by_id[aid].get(key)
            if msg is None or msg not in table:
                continue
            a = out.setdefault(msg, _Acc())
            a.counts["conversions"] += 1
            if ev["profile_id"]:
                a.uniques["conversion_uniques"].add(ev["profile_id"])
            val = ev["event_properties"].get("$value")
            if isinstance(val, (int, float)):
                a.value += float(val)
    return out


def _rows(acc: Store, req: ReportRequest, total: dict[str, _Acc]) -> list[tuple[str, dict[str, Any]]]:
    """The messages with any count in the timeframe that pass the filter, by message id."""
    rows: list[tuple[str, dict[str, Any]]] = []
    for msg in sorted(total):
        if total[msg].empty():
            continue
        info = _message_info(acc, req.kind.subject, msg)
        if info is not None and _passes(info, req.filters):
            rows.append((msg, info))
    return rows


def _series(
    acc: Store, req: ReportRequest, rows: list[tuple[str, dict[str, Any]]], interval: str
) -> dict[str, Any]:
    start_ts, end_ts = int(req.start.timestamp()), int(req.end.timestamp())
    starts = buckets(req.start, req.end, interval)
    bounds = [max(start_ts, int(b.timestamp())) for b in starts] + [end_ts]
    per_bucket = [
        _accumulate(acc, req.kind.subject, req.conversion_metric_id, lo, min(end_ts, hi))
        for lo, hi in pairwise(bounds)
    ]
    results: list[dict[str, Any]] = []
    for msg, info in rows:
        series: dict[str, list[float | int]] = {s: [] for s in req.statistics}
        for pb in per_bucket:
            for k, v in statistics(pb.get(msg, _Acc()), info["send_channel"], req.statistics).items():
                series[k].append(v)
        results.append(
            {"groupings": {g: _grouping_value(info, g) for g in req.group_by}, "statistics": series}
        )
    return {"results": results, "date_times": [b.isoformat() for b in starts]}


def compute(acc: Store, req: ReportRequest) -> dict[str, Any]:
    """``{"results": [...]}`` (+ ``date_times`` for series), rows sorted by message id."""
    start_ts, end_ts = int(req.start.timestamp()), int(req.end.timestamp())
    total = _accumulate(acc, req.kind.subject, req.conversion_metric_id, start_ts, end_ts)
    rows = _rows(acc, req, total)
    if req.interval is not None:
        return _series(acc, req, rows, req.interval)
    results = [
        {
            "groupings": {g: _grouping_value(info, g) for g in req.group_by},
            "statistics": statistics(total[msg], info["send_channel"], req.statistics),
        }
        for msg, info in rows
    ]
    return {"results": results}


def relationships(req: ReportRequest, results: list[dict[str, Any]]) -> dict[str, Any]:
    subject = req.kind.subject
    ids = list(dict.fromkeys(r["groupings"][f"{subject}_id"] for r in results))
    rels: dict[str, Any] = {f"{subject}s": {"data": [{"type": subject, "id": i} for i in ids]}}
    if subject == "flow":
        mids = list(dict.fromkeys(r["groupings"]["flow_message_id"] for r in results))
        rels["flow-messages"] = {"data": [{"type": "flow-message", "id": i} for i in mids]}
    return rels


def ground_truth(
    acc: Store,
    operation_id: str,
    statistics: list[str],
    timeframe: dict[str, Any],
    conversion_metric_id: str,
    group_by: list[str] | None = None,
    filter: str | None = None,  # noqa: A002
    interval: str | None = None,
) -> dict[str, Any]:
    """What the report endpoint returns (all pages) for the given request attributes."""
    kind = KINDS[operation_id]
    attrs: dict[str, Any] = {
        "statistics": statistics,
        "timeframe": timeframe,
        "conversion_metric_id": conversion_metric_id,
    }
    if group_by is not None:
        attrs["group_by"] = group_by
    if filter is not None:
        attrs["filter"] = filter
    if interval is not None:
        attrs["interval"] = interval
    with acc.lock:
        req = parse_request(acc, kind, {"data": {"type": kind.rtype, "attributes": attrs}})
        return compute(acc, req)
