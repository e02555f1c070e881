"""The account's own record, metrics, events and attributions: seeding, mutations, resources, GETs."""

from __future__ import annotations

import bisect
import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

from .handlers import All, Handler, one
from .jsonapi import Record, Resource
from .store import Store

KLAVIYO_INTEGRATION = {
    "object": "integration",
    "id": "0rG4eQ",
    "key": "klaviyo",
    "name": "Klaviyo",
    "category": "Internal",
}
INTEGRATIONS: dict[str, dict[str, str]] = {
    "klaviyo": KLAVIYO_INTEGRATION,
    "shopify": {
        "object": "integration",
        "id": "0eMvjm",
        "key": "shopify",
        "name": "Shopify",
        "category": "eCommerce",
    },
    "api": {"object": "integration", "id": "7FtS4J", "key": "api", "name": "API", "category": "API"},
}
# Relative weight of each seeded metric in the event stream (Dropped Email: none).
_METRIC_WEIGHTS: list[tuple[str, str, int]] = [
    ("Received Email", "klaviyo", 40),
    ("Opened Email", "klaviyo", 24),
    ("Clicked Email", "klaviyo", 9),
    ("Bounced Email", "klaviyo", 3),
    ("Dropped Email", "klaviyo", 0),
    ("Marked Email as Spam", "klaviyo", 1),
    ("__UNSUB__", "klaviyo", 2),
    ("Subscribed to List", "klaviyo", 4),
    ("Unsubscribed from List", "klaviyo", 2),
    ("Placed Order", "shopify", 8),
    ("Clicked Email", "api", 3),
]
ACCOUNT_INFO: dict[str, Any] = {
    "id": "AbC123",
    "test_account": False,
    "contact_information": {
        "default_sender_name": "Emulated Store",
        "default_sender_email": "hello@example.com",
        "website_url": "https://example.com",
        "organization_name": "Emulated Store Inc.",
        "street_address": {
            "address1": "125 Summer St",
            "address2": "Floor 6",
            "city": "Boston",
            "region": "MA",
            "country": "US",
            "zip": "02110",
        },
    },
    "industry": "Retail",
    "timezone": "America/New_York",
    "preferred_currency": "USD",
    "public_api_key": "AbC123",
    "locale": "en-US",
}


# --------------------------------------------------------------------------- seeding and mutations
def _metric_name(acc: Store, name: str) -> str:
    return acc.spec.unsubscribe_metric_name if name == "__UNSUB__" else name


def add_metric(acc: Store, name: str, integration_key: str, created: datetime) -> str:
    mid = acc.short_id()
    integ = INTEGRATIONS.get(integration_key) or {
        "object": "integration",
        "id": acc.short_id(),
        "key": integration_key,
        "name": integration_key.title(),
        "category": "Custom",
    }
    acc.metrics_by_id[mid] = {
        "id": mid,
        "name": name,
        "created": created,
        "updated": created,
        "integration": dict(integ),
    }
    acc.metric_index[mid] = []
    return mid


def seed_account_and_metrics(acc: Store) -> None:
    """The account's record and its metrics (the ``api`` decoy only with ``decoy_metrics``)."""
    acc.account_info = dict(ACCOUNT_INFO, contact_information=dict(ACCOUNT_INFO["contact_information"]))
    created = acc.start - timedelta(days=30)
    for name, key, _w in _METRIC_WEIGHTS:
        if key == "api" and not acc.spec.decoy_metrics:
            continue
        add_metric(acc, _metric_name(acc, name), key, created)


def _email_properties(acc: Store, name: str) -> dict[str, Any]:
    rng = acc.rng
    props: dict[str, Any] = {
        "Subject": rng.choice(["Big sale", "New arrivals", "We miss you", "Your order"]),
        "Email Domain": "example.com",
        "$ESP": rng.randint(1, 3),
    }
    if acc.flow_messages_by_id and rng.random() < 0.3:
        fm = acc.flow_messages_by_id[rng.choice(acc.sorted_table_ids("flow_messages"))]
        props["$message"] = fm["id"]
        props["$flow"] = fm["flow_id"]
    elif acc.campaign_messages_by_id:
        props["$message"] = rng.choice(acc.sorted_table_ids("campaign_messages"))
    if name == "Clicked Email":
        props["URL"] = "https://example.com/p/" + str(rng.randint(1, 50))
    if name == "Bounced Email":
        props["Bounce Type"] = rng.choice(["hard", "soft"])
    return props


def _event_properties(acc: Store, name: str) -> dict[str, Any]:
    if "Email" in name:
        return _email_properties(acc, name)
    if name == "Placed Order":
        return {"$value": round(acc.rng.uniform(5, 400), 2), "ItemNames": ["Widget"], "$currency_code": "USD"}
    if "List" in name:
        return {"List": "Newsletter"}
    return {}


def new_event(acc: Store, metric_id: str, dt: datetime, insort: bool = False) -> str:
    """One event of a random profile; ``insort`` keeps the indexes sorted (after seeding)."""
    rng = acc.rng
    dt = dt.replace(microsecond=0)
    profiles = acc.sorted_table_ids("profiles")
    pid = rng.choice(profiles) if profiles else None
    props = _event_properties(acc, acc.metrics_by_id[metric_id]["name"])
    eid = acc.ulid(dt)
    ts = int(dt.timestamp())
    acc.events_by_id[eid] = {
        "id": eid,
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=1)),
        "datetime": dt,
        "timestamp": ts,
        "metric_id": metric_id,
        "profile_id": pid,
        "event_properties": props,
    }
    if insort:
        bisect.insort(acc.event_index, (ts, eid))
        bisect.insort(acc.metric_index[metric_id], (ts, eid))
    else:
        acc.event_index.append((ts, eid))
        acc.metric_index[metric_id].append((ts, eid))
    if pid:
        p = acc.profiles_by_id[pid]
        if p["last_event_date"] is None or p["last_event_date"] < dt:
            p["last_event_date"] = dt
    return eid


def seed_events(acc: Store) -> None:
    """``spec.events`` events over the account's history, metrics picked by weight."""
    choices: list[str] = []
    weights: list[int] = []
    for name, key, w in _METRIC_WEIGHTS:
        mid = acc.metric_id(_metric_name(acc, name), key)
        if mid and w:
            choices.append(mid)
            weights.append(w)
    picks = acc.rng.choices(choices, weights=weights, k=acc.spec.events)
    for mid in picks:
        new_event(acc, mid, acc.rand_dt(acc.start, acc.spec.end))
    acc.event_index.sort()
    for idx in acc.metric_index.values():
        idx.sort()


def _attribute(acc: Store, ev: dict[str, Any], touch: dict[str, Any]) -> None:
    msg_id = touch["event_properties"]["$message"]
    aid = hashlib.md5(f"{ev['id']}:{touch['id']}".encode()).hexdigest()  # noqa: S324 - an id, not security
    rec: dict[str, Any] = {
        "id": aid,
        "event_id": ev["id"],
        "attributed_event_id": touch["id"],
        "campaign_id": None,
        "campaign_message_id": None,
        "flow_id": None,
        "flow_message_id": None,
    }
    if msg_id in acc.flow_messages_by_id:
        rec["flow_message_id"] = msg_id
        rec["flow_id"] = acc.flow_messages_by_id[msg_id]["flow_id"]
    elif msg_id in acc.campaign_messages_by_id:
        rec["campaign_message_id"] = msg_id
        rec["campaign_id"] = acc.campaign_messages_by_id[msg_id]["campaign_id"]
    else:
        return
    acc.attributions_by_id[aid] = rec
    ev["attribution_ids"].append(aid)


def compute_attributions(acc: Store) -> None:
    """Attribute each conversion (Placed Order) to the last email open/click with a ``$message``.

    A conversion is attributed when the same profile opened or clicked a campaign or flow message
    within ``attribution_window_days`` before it (last touch). Derived from the events only.
    """
    acc.attributions_by_id.clear()
    for ev in acc.events_by_id.values():
        ev["attribution_ids"] = []
    engage = {acc.metric_id("Opened Email"), acc.metric_id("Clicked Email")} - {None}
    order = acc.metric_id("Placed Order", "shopify")
    window = acc.spec.attribution_window_days * 86400
    last: dict[str, dict[str, Any]] = {}
    for _ts, eid in acc.event_index:
        ev = acc.events_by_id[eid]
        pid = ev["profile_id"]
        if pid is None:
            continue
        if ev["metric_id"] in engage and "$message" in ev["event_properties"]:
            last[pid] = ev
        elif ev["metric_id"] == order and pid in last and ev["timestamp"] - last[pid]["timestamp"] <= window:
            _attribute(acc, ev, last[pid])


# --------------------------------------------------------------------------- resources and GETs
def _metric_flow_triggers(acc: Store, m: Record) -> list[str]:
    return [f["id"] for f in acc.flows_by_id.values() if f.get("trigger_metric_id") == m["id"]]


def get_event_field(e: Record, f: str) -> Any:
    if f == "profile":
        return e["profile_id"]
    if f == "metric":
        return e["metric_id"]
    return e.get(f)


def get_metric_field(m: Record, f: str) -> Any:
    if f.startswith("integration."):
        return m["integration"].get(f.split(".", 1)[1])
    return m.get(f)


RESOURCES = [
    Resource("account", "account_info"),
    Resource("metric", "metrics_by_id", to_many={"flow-triggers": _metric_flow_triggers}),
    Resource("event", "events_by_id", to_many={"attributions": "attribution_ids"}),
    Resource("attribution", "attributions_by_id", relationship_links=False),
]

HANDLERS = {
    "get_accounts": Handler("account", lambda acc, pid: [acc.account_info]),
    "get_metrics": Handler("metric", All("metrics_by_id"), get_metric_field),
    "get_metric": Handler("metric", one("metrics_by_id"), get_metric_field, single=True),
    # paged by server.page_events over the sorted event indexes, not through this source
    "get_events": Handler("event", lambda acc, pid: [], get_event_field, default_sort="datetime"),
}
