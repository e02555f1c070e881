"""Catalog (categories, items, variants), coupons and codes, forms and versions, images: seeding,
resources and GET operations. Seeded with their own RNG so the entities before them stay the same."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from .handlers import All, Handler, children
from .jsonapi import Record, Resource
from .store import CROCKFORD, SHORT_ID_CHARS, Store, random_datetime

_PREFIX = "$custom:::$default:::"
_CATEGORY_NAMES = ["Apparel", "Home", "Outdoor", "Accessories", "Gifts", "Sale", "Kids", "Beauty"]
_ADJECTIVES = ["Ocean Blue", "Classic", "Vintage", "Organic", "Deluxe", "Everyday", "Trail", "Cozy"]
_NOUNS = ["Shirt", "Mug", "Backpack", "Candle", "Scarf", "Bottle", "Jacket", "Lamp"]
_SIZES = ["SMALL", "MEDIUM", "LARGE", "XL"]
_COUPONS = [
    ("10OFF", "10% off for purchases over $50"),
    ("FREESHIP", "Free shipping"),
    ("WELCOME15", "15% off the first order"),
    ("VIP20", "20% off for VIP customers"),
    ("BDAY5", "$5 birthday gift"),
]
_CODE_STATUSES = ["UNASSIGNED", "ASSIGNED_TO_PROFILE", "USED", "UNASSIGNED", "PROCESSING"]
_FORM_NAMES = ["Newsletter Popup", "Cyber Monday Deals", "Footer Signup", "Exit Intent", "Spin to Win"]
_FORM_TYPES = ["popup", "embed", "flyout", "full_page", "banner"]
_IMAGE_FORMATS = ["png", "jpeg", "gif"]


# --------------------------------------------------------------------------- seeding
def _seed_categories(acc: Store, rng: random.Random) -> None:
    start, end = acc.start, acc.spec.end
    for i in range(acc.spec.catalog_categories):
        name = _CATEGORY_NAMES[i % len(_CATEGORY_NAMES)] + ("" if i < len(_CATEGORY_NAMES) else f" {i}")
        ext = "CAT-" + name.upper().replace(" ", "-")
        c = random_datetime(rng, start, end - timedelta(days=30))
        acc.catalog_categories_by_id[_PREFIX + ext] = {
            "id": _PREFIX + ext,
            "external_id": ext,
            "name": name,
            "created": c,
            "updated": random_datetime(rng, c, end),
            "item_ids": [],
        }


def _add_variants(acc: Store, rng: random.Random, item: dict[str, Any], ext: str) -> None:
    title = item["title"]
    for size in _SIZES[: rng.randint(0, max(0, acc.spec.max_variants_per_item))]:
        vid = f"{_PREFIX}{ext}-VARIANT-{size}"
        vc = random_datetime(rng, item["created"], acc.spec.end)
        acc.catalog_variants_by_id[vid] = {
            "id": vid,
            "external_id": f"{ext}-VARIANT-{size}",
            "title": f"{title} {size.title()}",
            "description": f"{title}, size {size.lower()}.",
            "sku": f"{ext}-{size[:2]}",
            "inventory_policy": rng.choice([0, 1, 2]),
            "inventory_quantity": float(rng.randint(0, 100)),
            "price": item["price"],
            "url": item["url"],
            "image_full_url": item["image_full_url"],
            "image_thumbnail_url": item["image_thumbnail_url"],
            "images": list(item["images"]),
            "custom_metadata": None,
            "published": bool(item["published"]) and size != "XL",
            "created": vc,
            "updated": random_datetime(rng, vc, acc.spec.end),
            "item_id": item["id"],
        }
        item["variant_ids"].append(vid)


def _seed_items(acc: Store, rng: random.Random) -> None:
    cat_ids = list(acc.catalog_categories_by_id)
    for i in range(acc.spec.catalog_items):
        ext = f"ITEM-{i + 1:03d}"
        title = f"{_ADJECTIVES[i % len(_ADJECTIVES)]} {_NOUNS[(i * 3) % len(_NOUNS)]}"
        c = random_datetime(rng, acc.start, acc.spec.end - timedelta(days=7))
        price = round(rng.uniform(8, 150), 2)
        cats = sorted(rng.sample(cat_ids, min(len(cat_ids), rng.randint(1, 2)))) if cat_ids else []
        item: dict[str, Any] = {
            "id": _PREFIX + ext,
            "external_id": ext,
            "title": title,
            "description": f"{title}, a synthetic catalog item.",
            "price": price,
            "url": f"https://example.com/products/{ext.lower()}",
            "image_full_url": f"https://example.com/img/{ext.lower()}-full.jpg",
            "image_thumbnail_url": f"https://example.com/img/{ext.lower()}-thumb.jpg",
            "images": [f"https://example.com/img/{ext.lower()}-{n}.jpg" for n in range(1, 3)],
            "custom_metadata": {"Top Pick": i % 4 == 0} if i % 2 == 0 else None,
            "published": i % 5 != 4,
            "created": c,
            "updated": random_datetime(rng, c, acc.spec.end),
            "category_ids": cats,
            "variant_ids": [],
        }
        acc.catalog_items_by_id[item["id"]] = item
        for cid in cats:
            acc.catalog_categories_by_id[cid]["item_ids"].append(item["id"])
        _add_variants(acc, rng, item, ext)


def _seed_coupons(acc: Store, rng: random.Random) -> None:
    end = acc.spec.end
    pids = sorted(acc.profiles_by_id)
    for i in range(acc.spec.coupons):
        code, desc = _COUPONS[i % len(_COUPONS)]
        cid = code if i < len(_COUPONS) else f"{code}{i}"
        acc.coupons_by_id[cid] = {
            "id": cid,
            "external_id": cid,
            "description": desc if i % 3 != 2 else None,
            "monitor_configuration": {"low_balance_threshold": 100 * (i + 1)} if i % 2 == 0 else None,
            "code_ids": [],
        }
        for _ in range(acc.spec.coupon_codes_per_coupon):
            unique = "".join(rng.choice(CROCKFORD) for _ in range(12))
            status = rng.choice(_CODE_STATUSES)
            assigned = pids and status in ("ASSIGNED_TO_PROFILE", "USED")
            acc.coupon_codes_by_id[f"{cid}-{unique}"] = {
                "id": f"{cid}-{unique}",
                "unique_code": unique,
                "expires_at": random_datetime(rng, end - timedelta(days=60), end + timedelta(days=365)),
                "status": status,
                "coupon_id": cid,
                "profile_id": rng.choice(pids) if assigned else None,
            }
            acc.coupons_by_id[cid]["code_ids"].append(f"{cid}-{unique}")


def _add_form_versions(acc: Store, rng: random.Random, form: dict[str, Any], i: int, seq: int) -> int:
    ab = form["ab_test"]
    for v in range(2 if ab else 1):
        seq += rng.randint(1, 900)
        vc = random_datetime(rng, form["created_at"], form["updated_at"] + timedelta(seconds=1))
        acc.form_versions_by_id[str(seq)] = {
            "id": str(seq),
            "form_id": form["id"],
            "form_type": _FORM_TYPES[i % len(_FORM_TYPES)],
            "variation_name": f"Variation {'AB'[v]}",
            "ab_test": {"variation_name": f"Variation {'AB'[v]}"} if ab else None,
            "status": form["status"] if v == 0 else "draft",
            "created_at": vc,
            "updated_at": random_datetime(rng, vc, acc.spec.end),
        }
        form["version_ids"].append(str(seq))
    return seq


def _seed_forms(acc: Store, rng: random.Random) -> None:
    version_seq = 1234560
    for i in range(acc.spec.forms):
        fid = "".join(rng.choice(SHORT_ID_CHARS) for _ in range(6))
        c = random_datetime(rng, acc.start, acc.spec.end - timedelta(days=14))
        form: dict[str, Any] = {
            "id": fid,
            "name": _FORM_NAMES[i % len(_FORM_NAMES)] + ("" if i < len(_FORM_NAMES) else f" {i}"),
            "status": "live" if i % 4 != 3 else "draft",
            "ab_test": i % 3 == 1,
            "created_at": c,
            "updated_at": random_datetime(rng, c, acc.spec.end),
            "version_ids": [],
        }
        acc.forms_by_id[fid] = form
        version_seq = _add_form_versions(acc, rng, form, i, version_seq)


def _seed_images(acc: Store, rng: random.Random) -> None:
    image_seq = 100
    for i in range(acc.spec.images):
        image_seq += rng.randint(1, 50)
        imid = str(image_seq)
        fmt = _IMAGE_FORMATS[i % len(_IMAGE_FORMATS)]
        acc.images_by_id[imid] = {
            "id": imid,
            "name": f"{['hero', 'banner', 'logo', 'product', 'promo'][i % 5]}-{i + 1}.{fmt}",
            "image_url": f"https://d3k81ch9hvuctc.cloudfront.net/company/AbC123/images/{imid}.{fmt}",
            "format": fmt,
            "size": rng.randint(2_000, 900_000),
            "hidden": i % 6 == 5,
            "updated_at": random_datetime(rng, acc.start, acc.spec.end),
        }


def seed_catalog_coupons_forms_images(acc: Store) -> None:
    """Catalog, coupons, forms and images, from one RNG of their own."""
    rng = random.Random(f"extras-{acc.spec.seed}")
    for step in (_seed_categories, _seed_items, _seed_coupons, _seed_forms, _seed_images):
        step(acc, rng)


# --------------------------------------------------------------------------- resources and GETs
_CATALOG_FIELDS = {
    "ids": "id",
    "category.id": "category_ids",
    "item.id": "item_id",
    "coupon.id": "coupon_id",
    "profile.id": "profile_id",
}


def get_catalog_field(r: Record, f: str) -> Any:
    """Getter for catalog/coupon resources: maps filter names (``ids``, ``item.id``...) to record keys."""
    if f == "item.id" and "item_ids" in r:
        return r["item_ids"]
    return r.get(_CATALOG_FIELDS.get(f, f))


RESOURCES = [
    Resource("catalog-item", "catalog_items_by_id", to_many={"variants": "variant_ids"}),
    Resource("catalog-variant", "catalog_variants_by_id"),
    Resource("catalog-category", "catalog_categories_by_id", collection="catalog-categories"),
    Resource("coupon", "coupons_by_id"),
    Resource("coupon-code", "coupon_codes_by_id"),
    Resource("form", "forms_by_id"),
    Resource("form-version", "form_versions_by_id"),
    Resource("image", "images_by_id"),
]

HANDLERS = {
    "get_catalog_items": Handler("catalog-item", All("catalog_items_by_id"), get_catalog_field),
    "get_catalog_variants": Handler("catalog-variant", All("catalog_variants_by_id"), get_catalog_field),
    "get_catalog_categories": Handler("catalog-category", All("catalog_categories_by_id"), get_catalog_field),
    "get_coupons": Handler("coupon", All("coupons_by_id")),
    "get_coupon_codes": Handler(
        "coupon-code",
        All("coupon_codes_by_id"),
        get_catalog_field,
        required_filter_one_of=("coupon.id", "profile.id"),
    ),
    "get_forms": Handler("form", All("forms_by_id")),
    "get_versions_for_form": Handler(
        "form-version", children("forms_by_id", "version_ids", "form_versions_by_id")
    ),
    "get_images": Handler("image", All("images_by_id")),
}
