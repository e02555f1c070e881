"""Profiles, lists and segments: seeding, mutations, their resources and GET operations."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .handlers import All, Handler, Members, one
from .jsonapi import Record, Resource
from .store import Store, fmt_dt

SUPPRESSION_REASONS = ("HARD_BOUNCE", "INVALID_EMAIL", "SPAM_COMPLAINT", "UNSUBSCRIBE", "USER_SUPPRESSED")
_FIRST = [
    "Ada",
    "Ben",
    "Cleo",
    "Dan",
    "Eve",
    "Finn",
    "Gia",
    "Hugo",
    "Iris",
    "Jon",
    "Kai",
    "Lea",
    "Max",
    "Nia",
]
_LAST = ["Smith", "Jones", "Khan", "Garcia", "Chen", "Novak", "Rossi", "Silva", "Moreau", "Berg"]
_CITIES = [
    ("Boston", "MA", "United States", "02110", "America/New_York", 42.3601, -71.0589),
    ("Denver", "CO", "United States", "80202", "America/Denver", 39.7392, -104.9903),
    ("London", None, "United Kingdom", "EC1A 1BB", "Europe/London", 51.5072, -0.1276),
    ("Berlin", None, "Germany", "10115", "Europe/Berlin", 52.52, 13.405),
]


# --------------------------------------------------------------------------- seeding and mutations
def _new_profile(acc: Store, n: int, created: datetime, updated: datetime) -> dict[str, Any]:
    rng = acc.rng
    pid = acc.ulid(created)
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    city = rng.choice(_CITIES)
    return {
        "id": pid,
        "email": None if n % 17 == 0 else f"{first.lower()}.{last.lower()}{n}@example.com",
        "phone_number": None if n % 3 == 0 else f"+1617555{n % 10000:04d}",
        "external_id": None if n % 5 == 0 else f"ext-{n}",
        "first_name": first,
        "last_name": last,
        "organization": None if n % 4 else "Acme Corp",
        "locale": rng.choice(["en-US", "en-GB", "de-DE"]),
        "title": None if n % 6 else "Buyer",
        "image": None,
        "created": created,
        "updated": updated,
        "last_event_date": None,
        "location": {
            "address1": f"{rng.randint(1, 999)} Main St",
            "address2": None,
            "city": city[0],
            "country": city[2],
            "latitude": city[5],
            "longitude": city[6],
            "region": city[1],
            "zip": city[3],
            "timezone": city[4],
            "ip": f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        },
        "properties": {
            "plan": rng.choice(["free", "pro", "enterprise"]),
            "lifetime_orders": rng.randint(0, 20),
            "vip": rng.random() < 0.1,
        },
        "suppression": [],
        "consent": "SUBSCRIBED" if n % 7 else "NEVER_SUBSCRIBED",
        "consent_timestamp": created,
        "sms_consent": "SUBSCRIBED" if n % 3 == 1 else "NEVER_SUBSCRIBED",
    }


def add_profiles(acc: Store, count: int, initial: bool = False) -> list[str]:
    """Create ``count`` profiles: spread over the account's history when seeding, else created now."""
    ids = []
    for _ in range(count):
        if initial:
            created = acc.rand_dt(acc.start, acc.spec.end - timedelta(days=2))
            updated = acc.rand_dt(created, acc.spec.end)
        else:
            created = updated = acc.now
        profile = _new_profile(acc, len(acc.profiles_by_id) + 1, created, updated)
        acc.profiles_by_id[profile["id"]] = profile
        ids.append(profile["id"])
    return ids


def suppress(p: dict[str, Any], reason: str, at: datetime, touch: bool = True) -> None:
    p["suppression"] = [{"reason": reason, "timestamp": at}]
    p["consent"] = "UNSUBSCRIBED"
    p["consent_timestamp"] = at
    if touch:
        p["updated"] = at


def seed_profiles(acc: Store) -> None:
    """The profiles, one of each suppression reason and ~4% more suppressed at random."""
    add_profiles(acc, acc.spec.profiles, initial=True)
    pids = sorted(acc.profiles_by_id)
    end = acc.spec.end
    for i, reason in enumerate(SUPPRESSION_REASONS):
        if i < len(pids):
            p = acc.profiles_by_id[pids[i * 3 % len(pids)]]
            if not p["suppression"]:
                suppress(p, reason, acc.rand_dt(p["created"], end), touch=False)
    for pid in pids:
        p = acc.profiles_by_id[pid]
        if not p["suppression"] and acc.rng.random() < 0.04:
            suppress(p, acc.rng.choice(SUPPRESSION_REASONS), acc.rand_dt(p["created"], end), touch=False)


def delete_profile(acc: Store, profile_id: str) -> None:
    """Delete a profile as Klaviyo's deletion request does: it leaves every list and segment (whose
    ``updated`` moves to now), its push tokens go, and it is no longer listed. Its events stay."""
    del acc.profiles_by_id[profile_id]
    for group in (*acc.lists_by_id.values(), *acc.segments_by_id.values()):
        if group["members"].pop(profile_id, None) is not None:
            group["updated"] = acc.now
    for token_id in [t for t, token in acc.push_tokens_by_id.items() if token["profile_id"] == profile_id]:
        del acc.push_tokens_by_id[token_id]


def add_lists(acc: Store, count: int, members_each: int) -> list[str]:
    """Add ``count`` lists ``Bench00``, ``Bench01``, ... of ``members_each`` members each (the account's
    profiles in turn, joined a minute apart from a year ago), e.g. for benchmarks of large lists."""
    profile_ids = sorted(acc.profiles_by_id)
    start = acc.now - timedelta(days=365)
    ids = []
    for n in range(count):
        list_id = f"Bench{n:02d}"
        chosen = [profile_ids[(n * members_each + i) % len(profile_ids)] for i in range(members_each)]
        acc.lists_by_id[list_id] = {
            "id": list_id,
            "name": f"Benchmark list {n + 1}",
            "created": start,
            "updated": acc.now,
            "opt_in_process": "single_opt_in",
            "members": {pid: start + timedelta(seconds=i * 60) for i, pid in enumerate(chosen)},
            "tag_ids": [],
        }
        ids.append(list_id)
    return ids


def _members(acc: Store, pids: list[str], since: datetime) -> dict[str, datetime]:
    return {pid: acc.rand_dt(max(since, acc.profiles_by_id[pid]["created"]), acc.spec.end) for pid in pids}


def seed_lists(acc: Store) -> None:
    """An empty list, a large "Newsletter" and small lists."""
    sp, rng = acc.spec, acc.rng
    pids = sorted(acc.profiles_by_id)
    tag_ids = list(acc.tags_by_id)
    for i in range(sp.lists):
        lid = acc.short_id()
        c = acc.rand_dt(acc.start, acc.start + timedelta(days=60))
        if i == 0:
            members: list[str] = []
            name = "Empty List"
        elif i == 1:
            members = rng.sample(pids, min(sp.large_list_members, len(pids)))
            name = "Newsletter"
        else:
            members = rng.sample(pids, min(len(pids), rng.randint(3, 25)))
            name = f"Small List {i - 1}"
        acc.lists_by_id[lid] = {
            "id": lid,
            "name": name,
            "created": c,
            "updated": acc.rand_dt(c, sp.end),
            "opt_in_process": "double_opt_in" if i % 2 else "single_opt_in",
            "members": _members(acc, members, c),
            "tag_ids": [tag_ids[i % len(tag_ids)]] if tag_ids and i % 2 else [],
        }


def seed_segments(acc: Store) -> None:
    """A large active segment, small ones (the second inactive) and an empty last one."""
    sp, rng = acc.spec, acc.rng
    pids = sorted(acc.profiles_by_id)
    tag_ids = list(acc.tags_by_id)
    for i in range(sp.segments):
        sid = acc.short_id()
        c = acc.rand_dt(acc.start, acc.start + timedelta(days=60))
        if i == 0:
            members = rng.sample(pids, len(pids) * 3 // 5)
            name = "Engaged (90 days)"
        elif i == sp.segments - 1 and sp.segments > 2:
            members = []
            name = "Empty Segment"
        else:
            members = rng.sample(pids, min(len(pids), rng.randint(2, 20)))
            name = f"Segment {i}"
        acc.segments_by_id[sid] = {
            "id": sid,
            "name": name,
            "created": c,
            "updated": acc.rand_dt(c, sp.end),
            "is_active": i != 1,
            "is_processing": False,
            "is_starred": i == 0,
            "members": _members(acc, members, c),
            "tag_ids": [tag_ids[0]] if tag_ids and i == 0 else [],
        }


# --------------------------------------------------------------------------- what Klaviyo computes
def subscriptions(acc: Store, p: Record) -> dict[str, Any]:
    suppressed = bool(p["suppression"])
    ts = fmt_dt(p["consent_timestamp"])
    sms = p["sms_consent"] == "SUBSCRIBED"
    return {
        "email": {
            "marketing": {
                "can_receive_email_marketing": not suppressed and p["email"] is not None,
                "consent": p["consent"],
                "consent_timestamp": ts,
                "last_updated": ts,
                "method": "PREFERENCE_PAGE" if p["consent"] != "NEVER_SUBSCRIBED" else None,
                "method_detail": None,
                "custom_method_detail": None,
                "double_optin": None,
                "suppression": [
                    {"reason": s["reason"], "timestamp": fmt_dt(s["timestamp"])} for s in p["suppression"]
                ],
                "list_suppressions": [],
            }
        },
        "sms": {
            "marketing": {
                "can_receive_sms_marketing": sms and p["phone_number"] is not None,
                "consent": p["sms_consent"],
                "consent_timestamp": fmt_dt(p["created"]) if sms else None,
                "method": "TEXT" if sms else None,
                "method_detail": "JOIN" if sms else None,
                "last_updated": fmt_dt(p["created"]),
            },
            "transactional": {
                "can_receive_sms_transactional": p["phone_number"] is not None,
                "consent": "SUBSCRIBED" if p["phone_number"] is not None else "NEVER_SUBSCRIBED",
                "consent_timestamp": None,
                "method": None,
                "method_detail": None,
                "last_updated": fmt_dt(p["created"]),
            },
        },
        "mobile_push": {
            "marketing": {
                "can_receive_push_marketing": False,
                "consent": "NEVER_SUBSCRIBED",
                "consent_timestamp": None,
            }
        },
    }


def predictive_analytics(acc: Store, p: Record) -> dict[str, Any]:
    orders = float(p["properties"].get("lifetime_orders", 0))
    return {
        "historic_clv": round(orders * 42.5, 2),
        "predicted_clv": round(orders * 10.0, 2),
        "total_clv": round(orders * 52.5, 2),
        "historic_number_of_orders": orders,
        "predicted_number_of_orders": round(orders / 4, 2),
        "average_days_between_orders": 30.0 if orders else None,
        "average_order_value": 42.5 if orders else None,
        "churn_probability": 0.35,
        "expected_date_of_next_order": None,
        "ranked_channel_affinity": None,
    }


def _no_ids(acc: Store, rec: Record) -> list[str]:
    return []


def _list_flow_triggers(acc: Store, lst: Record) -> list[str]:
    return [f["id"] for f in acc.flows_by_id.values() if f.get("trigger_list_id") == lst["id"]]


def _segment_definition(acc: Store, _segment: Record) -> dict[str, Any]:
    return {"condition_groups": []}


def get_profile_field(p: Record, f: str) -> Any:
    if f.startswith("subscriptions.email.marketing.suppression."):
        key = f.rsplit(".", 1)[1]
        return [s[key] for s in p["suppression"]]
    if f.startswith("subscriptions.email.marketing.list_suppressions."):
        return []
    if f in ("_kx", "push_token"):
        return None
    if f == "profile_id":
        return p["id"]
    return p.get(f)


RESOURCES = [
    Resource(
        "profile",
        "profiles_by_id",
        computed={"subscriptions": subscriptions, "predictive_analytics": predictive_analytics},
        to_many={"push-tokens": _no_ids, "conversations": _no_ids},
    ),
    Resource(
        "list",
        "lists_by_id",
        computed={"profile_count": lambda acc, lst: len(lst["members"])},
        to_many={"tags": "tag_ids", "flow-triggers": _list_flow_triggers},
    ),
    Resource(
        "segment",
        "segments_by_id",
        computed={"definition": _segment_definition, "profile_count": lambda acc, seg: len(seg["members"])},
        to_many={"tags": "tag_ids", "flow-triggers": _no_ids},
    ),
]

HANDLERS = {
    "get_profiles": Handler("profile", All("profiles_by_id"), get_profile_field),
    "get_lists": Handler("list", All("lists_by_id")),
    "get_list": Handler("list", one("lists_by_id"), single=True),
    "get_profiles_for_list": Handler("profile", Members("lists_by_id"), get_profile_field),
    "get_profile_ids_for_list": Handler("profile", Members("lists_by_id"), get_profile_field),
    "get_segments": Handler("segment", All("segments_by_id")),
    "get_segment": Handler("segment", one("segments_by_id"), single=True),
    "get_profiles_for_segment": Handler("profile", Members("segments_by_id"), get_profile_field),
    "get_profile_ids_for_segment": Handler("profile", Members("segments_by_id"), get_profile_field),
}
