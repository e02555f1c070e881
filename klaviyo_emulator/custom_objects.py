"""Custom objects: `GET /api/object-types` and `GET /api/object-types/{id}/object-records`.

Each object type holds more records than a page of 100, with properties of every JSON kind (and a
non-ASCII name), so a source has to page and keep them as they are.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from .handlers import All, Handler
from .jsonapi import NotFound, Record, Resource
from .store import CROCKFORD, Store

OBJECT_TYPES = (("Vehicle", 130), ("Loyalty Membership", 40))  # (title, number of records)


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(1, int((end - start).total_seconds()))
    return (start + timedelta(seconds=rng.randrange(span))).replace(microsecond=0)


def _ulid(rng: random.Random, at: datetime) -> str:
    ms = int(at.timestamp() * 1000)
    head = "".join(CROCKFORD[(ms >> (5 * i)) & 31] for i in range(9, -1, -1))
    return head + "".join(rng.choice(CROCKFORD) for _ in range(16))


def seed(acc: Store) -> None:
    """The object types and their records, from their own RNG (every other record unchanged)."""
    rng = random.Random(f"custom-objects-{acc.spec.seed}")
    end = acc.spec.end
    for title, count in OBJECT_TYPES:
        created = _between(rng, acc.start, end)
        type_id = _ulid(rng, created)
        acc.object_types_by_id[type_id] = {
            "id": type_id,
            "title": title,
            "description": f"The store's {title.lower()} records",
            "status": "active",
            "namespace": "custom-objects",
            "created_at": created,
            "updated_at": _between(rng, created, end),
        }
        slug = title.lower().replace(" ", "-")
        acc.object_records_by_type[type_id] = {
            f"{type_id}:::{slug}-{n}": {
                "id": f"{type_id}:::{slug}-{n}",
                "record_properties": {
                    "external_id": f"{n}",
                    "name": f"{title} {n}",
                    "score": rng.randint(0, 1000),
                    "active": n % 2 == 0,
                    "tags": ["a", "b"][: n % 3],
                    "Größe": {"value": n * 1.5},
                },
            }
            for n in range(count)
        }


def _records_of_type(acc: Store, type_id: str | None) -> list[Record]:
    records = acc.object_records_by_type.get(type_id or "")
    if records is None:
        raise NotFound(type_id)
    return list(records.values())


RESOURCES = [
    Resource("object-type", "object_types_by_id"),
    # records live per type (object_records_by_type); nothing includes them, so no flat table is needed
    Resource("object-record", "object_records_by_type"),
]

HANDLERS = {
    "get_object_types": Handler("object-type", All("object_types_by_id")),
    "get_records_for_object_type": Handler("object-record", _records_of_type),
}
