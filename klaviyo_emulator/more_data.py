"""Reviews, custom objects, campaign recipient estimations, one segment (with `profile_count`), and the
lower rate tiers Klaviyo applies to some `additional-fields`: seeding, serializers and handlers.

Registered with one line each in ``server.HANDLERS`` and one seeding call in ``Account._generate``.
Everything here draws from its own random generator, so the rest of the account stays as it was.
"""

from __future__ import annotations

import functools
import random
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import resources as R
from .account import Account, fmt_dt
from .spec import Operation, RateLimit, load_spec

if TYPE_CHECKING:
    from .server import Handler

REVIEWS = 250  # more than two pages of 100, so incremental reads can be seen to stop early
# (title, records): more records than a page holds for one type
OBJECT_TYPES = (("Vehicle", 130), ("Loyalty Membership", 40))
REVIEW_STATUSES = ("published", "featured", "unpublished", "pending", "rejected")
_HEX = "0123456789abcdef"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def seed(acc: Account) -> None:
    """Adds reviews, custom object types with their records, and each campaign's recipient estimate."""
    rng = random.Random(f"more-data-{acc.spec.seed}")
    end = acc.spec.end
    start = end - timedelta(days=365 * acc.spec.years)
    acc.reviews_by_id = {}  # type: ignore[attr-defined]
    items = sorted(acc.catalog_items_by_id)
    events = sorted(acc.events_by_id)
    profiles = sorted(acc.profiles_by_id)
    for i in range(REVIEWS):
        rid = "".join(rng.choice(_HEX) for _ in range(32))
        created = _between(rng, start, end)
        item_id = items[i % len(items)] if items else None
        review_type = ("review", "rating", "question", "store")[i % 4]
        email = acc.profiles_by_id[profiles[i % len(profiles)]]["email"] if profiles else None
        acc.reviews_by_id[rid] = {  # type: ignore[attr-defined]
            "id": rid,
            "email": email,
            "status": REVIEW_STATUSES[i % len(REVIEW_STATUSES)],
            "verified": i % 3 == 0,
            "review_type": review_type,
            "created": created,
            "updated": _between(rng, created, end),
            "images": [f"https://example.com/reviews/{rid}/{n}.jpg" for n in range(i % 3)],
            "product": None
            if item_id is None or review_type == "store"
            else {
                "url": f"https://example.com/products/{i}",
                "name": acc.catalog_items_by_id[item_id]["title"],
                "image_url": None,
                "external_id": acc.catalog_items_by_id[item_id]["external_id"],
            },
            "rating": None if review_type == "question" else 1 + i % 5,
            "author": f"Reviewer {i}",
            "content": f"Review {i}: {'great' if i % 2 else 'fine'} — ünïcode ✓",
            "title": f"Title {i}",
            "smart_quote": None,
            "public_reply": None
            if i % 4
            else {"content": "Thank you!", "author": "Store", "updated": fmt_dt(_between(rng, created, end))},
            "item_id": None if review_type == "store" else item_id,
            "event_ids": [events[i % len(events)]] if events else [],
        }
    acc.object_types_by_id = {}  # type: ignore[attr-defined]
    acc.object_records_by_type = {}  # type: ignore[attr-defined]
    for title, count in OBJECT_TYPES:
        created = _between(rng, start, end)
        tid = _ulid(rng, created)
        acc.object_types_by_id[tid] = {  # type: ignore[attr-defined]
            "id": tid,
            "title": title,
            "description": f"The store's {title.lower()} records",
            "status": "active",
            "namespace": "custom-objects",
            "created_at": created,
            "updated_at": _between(rng, created, end),
        }
        records = {}
        for n in range(count):
            rid = f"{tid}:::{title.lower().replace(' ', '-')}-{n}"
            records[rid] = {
                "id": rid,
                "record_properties": {
                    "external_id": f"{n}",
                    "name": f"{title} {n}",
                    "score": rng.randint(0, 1000),
                    "active": n % 2 == 0,
                    "tags": ["a", "b"][: n % 3],
                    "Größe": {"value": n * 1.5},
                },
            }
        acc.object_records_by_type[tid] = records  # type: ignore[attr-defined]
    acc.recipient_estimations_by_id = {  # type: ignore[attr-defined]
        cid: {"id": cid, "estimated_recipient_count": rng.randint(0, 50_000)} for cid in acc.campaigns_by_id
    }


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(1, int((end - start).total_seconds()))
    return (start + timedelta(seconds=rng.randrange(span))).replace(microsecond=0)


def _ulid(rng: random.Random, at: datetime) -> str:
    ms = int(at.timestamp() * 1000)
    head = "".join(_CROCKFORD[(ms >> (5 * i)) & 31] for i in range(9, -1, -1))
    return head + "".join(rng.choice(_CROCKFORD) for _ in range(16))


# ------------------------------------------------------------------------------------ serializers
def ser_review(acc: Account, r: R.Record, ctx: R.Ctx) -> R.Record:
    path = f"reviews/{r['id']}"
    status: dict[str, Any] = {"value": r["status"]}
    if r["status"] == "rejected":
        status["rejection_reason"] = {"reason": "fake", "status_explanation": "Not a customer"}
    attrs = {
        "email": r["email"],
        "status": status,
        "verified": r["verified"],
        "review_type": r["review_type"],
        "created": fmt_dt(r["created"]),
        "updated": fmt_dt(r["updated"]),
        "images": list(r["images"]),
        "product": r["product"],
        "rating": r["rating"],
        "author": r["author"],
        "content": r["content"],
        "title": r["title"],
        "smart_quote": r["smart_quote"],
        "public_reply": r["public_reply"],
    }
    # the spec marks these nullable beside a `$ref`, which OpenAPI 3.0 ignores: omitted when empty
    for name in ("product", "public_reply"):
        if attrs[name] is None:
            del attrs[name]
    rels = {
        "events": R.rel_many(path, "events", "event", r["event_ids"] if "events" in ctx.include else None),
    }
    if r["item_id"] is not None:
        rels["item"] = R.rel_one(path, "item", "catalog-item", r["item_id"])
    return R.resource("review", r["id"], attrs, rels, ctx, path)


def ser_object_type(acc: Account, t: R.Record, ctx: R.Ctx) -> R.Record:
    path = f"object-types/{t['id']}"
    attrs = {
        "title": t["title"],
        "description": t["description"],
        "status": t["status"],
        "namespace": t["namespace"],
        "created_at": fmt_dt(t["created_at"]),
        "updated_at": fmt_dt(t["updated_at"]),
    }
    rels = {"schema-versions": R.rel_many(path, "schema-versions")}
    return R.resource("object-type", t["id"], attrs, rels, ctx, path)


def ser_object_record(acc: Account, rec: R.Record, ctx: R.Ctx) -> R.Record:
    attrs = {"record_properties": rec["record_properties"]}
    return R.resource("object-record", rec["id"], attrs, None, ctx, f"object-records/{rec['id']}")


def ser_recipient_estimation(acc: Account, e: R.Record, ctx: R.Ctx) -> R.Record:
    attrs = {"estimated_recipient_count": e["estimated_recipient_count"]}
    return R.resource(
        "campaign-recipient-estimation",
        e["id"],
        attrs,
        None,
        ctx,
        f"campaign-recipient-estimations/{e['id']}",
    )


def ser_segment(acc: Account, seg: R.Record, ctx: R.Ctx) -> R.Record:
    """A segment as `GET /api/segments/{id}` gives it, with `profile_count` when asked for."""
    res = R.ser_segment(acc, seg, ctx)
    if "profile_count" in ctx.additional.get("segment", set()):
        res["attributes"]["profile_count"] = len(seg["members"])
    return res


def get_review_field(r: R.Record, f: str) -> Any:
    if f == "item.id":
        return r["item_id"]
    return r.get(f)


# --------------------------------------------------------------------------------------- sources
def _all(mapping: str) -> Any:
    def src(acc: Account, pid: str | None) -> list[R.Record]:
        return list(getattr(acc, mapping).values())

    return src


def _one(mapping: str) -> Any:
    def src(acc: Account, pid: str | None) -> list[R.Record]:
        record = getattr(acc, mapping).get(pid or "")
        if record is None:
            raise R.NotFound(pid)
        return [record]

    return src


def _records(acc: Account, pid: str | None) -> list[R.Record]:
    records = acc.object_records_by_type.get(pid or "")  # type: ignore[attr-defined]
    if records is None:
        raise R.NotFound(pid)
    return list(records.values())


def _no_includes(acc: Account, rec: R.Record) -> list[tuple[R.Serializer, R.Record]]:
    return []


def handlers(handler: type[Handler]) -> dict[str, Handler]:
    """The operations served here (``Handler`` is passed in: server.py imports this module)."""
    return {
        "get_reviews": handler(
            ser_review,
            get_review_field,
            _all("reviews_by_id"),
            includes={"events": _no_includes},
        ),
        "get_segment": handler(
            ser_segment,
            R.get_plain,
            _one("segments_by_id"),
            single=True,
            includes={"tags": _no_includes, "flow-triggers": _no_includes},
        ),
        "get_object_types": handler(
            ser_object_type,
            R.get_plain,
            _all("object_types_by_id"),
            includes={"current-schema": _no_includes, "draft-schema": _no_includes},
        ),
        "get_records_for_object_type": handler(ser_object_record, R.get_plain, _records),
        "get_campaign_recipient_estimation": handler(
            ser_recipient_estimation, R.get_plain, _one("recipient_estimations_by_id"), single=True
        ),
    }


# ------------------------------------------------------------------------------------ rate tiers
# "Rate limits when using the `additional-fields[profile]=predictive_analytics` parameter in your API
# request:<br>Burst: `10/s`<br>Steady: `150/m`" - the spec states these tiers only in the description
_TIER = re.compile(
    r"Rate limits when using the `additional-fields\[(\w+)\]=(\w+)` parameter.*?Burst: `(\d+/\w)`.*?"
    r"Steady: `(\d+/\w)`",
    re.S,
)


@functools.cache
def _tiers(revision: str, path: str, method: str) -> dict[tuple[str, str], tuple[RateLimit, ...]]:
    description = str(load_spec(revision)["paths"][path][method.lower()].get("description", ""))
    return {
        (kind, value): (RateLimit.parse(burst), RateLimit.parse(steady))
        for kind, value, burst, steady in _TIER.findall(description)
    }


def rate_limits(op: Operation, params: dict[str, str], revision: str) -> tuple[str, tuple[RateLimit, ...]]:
    """The rate-limit bucket and limits of this request: the operation's own, or the lower tier its
    description gives an `additional-fields` value (counted in a bucket of its own)."""
    for (kind, value), limits in _tiers(revision, op.path, op.method).items():
        if value in params.get(f"additional-fields[{kind}]", "").split(","):
            return f"{op.operation_id}+{value}", limits
    return op.operation_id, op.rate_limits
