"""Reviews (`GET /api/reviews`): product, store and question reviews of the account, seeded and served.

Attributes as the 2026-07-15 spec's `ReviewResponseDTOObjectResource`; the operation filters on
`created`, `rating`, `id`, `item.id`, `content`, `status`, `review_type`, `verified`, sorts on `created`,
`rating`, `updated` (not filterable: a source reading incrementally must sort by it and stop early).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from .handlers import All, Handler
from .jsonapi import Record, Resource
from .store import Store, fmt_dt

REVIEWS = 250  # more than two pages of 100, so incremental reads can be seen to stop early
STATUSES = ("published", "featured", "unpublished", "pending", "rejected")
TYPES = ("review", "rating", "question", "store")
_HEX = "0123456789abcdef"


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(1, int((end - start).total_seconds()))
    return (start + timedelta(seconds=rng.randrange(span))).replace(microsecond=0)


def seed(acc: Store) -> None:
    """Reviews of the catalog items by the account's profiles, from their own RNG (others unchanged)."""
    rng = random.Random(f"reviews-{acc.spec.seed}")
    end = acc.spec.end
    items = sorted(acc.catalog_items_by_id)
    event_ids = sorted(acc.events_by_id)
    profile_ids = sorted(acc.profiles_by_id)
    for i in range(REVIEWS):
        rid = "".join(rng.choice(_HEX) for _ in range(32))
        created = _between(rng, acc.start, end)
        review_type = TYPES[i % len(TYPES)]
        item_id = items[i % len(items)] if items and review_type != "store" else None
        item = acc.catalog_items_by_id[item_id] if item_id else None
        acc.reviews_by_id[rid] = {
            "id": rid,
            "email": acc.profiles_by_id[profile_ids[i % len(profile_ids)]]["email"] if profile_ids else None,
            "status": STATUSES[i % len(STATUSES)],
            "verified": i % 3 == 0,
            "review_type": review_type,
            "created": created,
            "updated": _between(rng, created, end),
            "images": [f"https://example.com/reviews/{rid}/{n}.jpg" for n in range(i % 3)],
            "product": None
            if item is None
            else {
                "url": f"https://example.com/products/{i}",
                "name": item["title"],
                "image_url": None,
                "external_id": item["external_id"],
            },
            "rating": None if review_type == "question" else 1 + i % 5,
            "author": f"Reviewer {i}",
            "content": f"Review {i}: {'great' if i % 2 else 'fine'} — ünïcode ✓",
            "title": f"Title {i}",
            "smart_quote": None,
            "public_reply": None
            if i % 4
            else {"content": "Thank you!", "author": "Store", "updated": fmt_dt(_between(rng, created, end))},
            "item_id": item_id,
            "event_ids": [event_ids[i % len(event_ids)]] if event_ids else [],
        }


def _status(acc: Store, review: Record) -> dict[str, Any]:
    status: dict[str, Any] = {"value": review["status"]}
    if review["status"] == "rejected":
        status["rejection_reason"] = {"reason": "fake", "status_explanation": "Not a customer"}
    return status


def get_review_field(review: Record, name: str) -> Any:
    return review["item_id"] if name == "item.id" else review.get(name)


RESOURCES = [
    Resource(
        "review",
        "reviews_by_id",
        computed={"status": _status},
        to_one={"item": "item_id"},
        to_many={"events": "event_ids"},
    )
]

HANDLERS = {"get_reviews": Handler("review", All("reviews_by_id"), get_review_field)}
