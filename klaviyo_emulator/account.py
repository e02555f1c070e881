"""A seeded, deterministic synthetic Klaviyo account plus mutation and ground-truth helpers."""

from __future__ import annotations

import bisect
import hashlib
import random
import string
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

UTC = timezone.utc
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
SUPPRESSION_REASONS = ("HARD_BOUNCE", "INVALID_EMAIL", "SPAM_COMPLAINT", "UNSUBSCRIBE", "USER_SUPPRESSED")
CHANNELS = ("email", "sms", "mobile_push")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_SHORT = string.ascii_letters + string.digits
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


def fmt_dt(dt: datetime | None) -> str | None:
    """Klaviyo's datetime format: ``2024-03-05T10:11:12+00:00``."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat()


@dataclass
class AccountSpec:
    """Size and shape of the synthetic account (everything derives from ``seed``)."""

    seed: int = 1
    profiles: int = 200
    events: int = 3000
    lists: int = 4
    large_list_members: int = 150
    segments: int = 3
    campaigns_per_channel: int = 4
    flows: int = 3
    templates: int = 4
    tags: int = 4
    years: int = 3
    end: datetime = field(default_factory=lambda: datetime(2026, 11, 1, tzinfo=UTC))
    unsubscribe_metric_name: str = "Unsubscribed from Email Marketing"
    decoy_metrics: bool = True
    catalog_categories: int = 4
    catalog_items: int = 12
    max_variants_per_item: int = 3
    coupons: int = 3
    coupon_codes_per_coupon: int = 8
    forms: int = 4
    images: int = 8
    attribution_window_days: int = 30


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


class Account:
    """In-memory Klaviyo account. All public methods are thread-safe.

    Every mutation bumps :attr:`version`; the server caches sorted paging indexes per version. Code
    that edits records in place (``account.profiles_by_id[pid]["updated"] = ...``) must call
    :meth:`bump` afterwards, or large collections may be paged in their old order.
    """

    def __init__(self, spec: AccountSpec | None = None) -> None:
        self.spec = spec or AccountSpec()
        if self.spec.end.tzinfo is None:
            self.spec.end = self.spec.end.replace(tzinfo=UTC)
        self.lock = threading.RLock()
        self.now: datetime = self.spec.end
        self._rng = random.Random(self.spec.seed)
        self.version = 0
        self.account_info: dict[str, Any] = {}
        self.metrics_by_id: dict[str, dict[str, Any]] = {}
        self.events_by_id: dict[str, dict[str, Any]] = {}
        self.event_index: list[tuple[int, str]] = []  # sorted (timestamp, id)
        self.metric_index: dict[str, list[tuple[int, str]]] = {}
        # (base url, with attribution ids) -> (account version, event id -> JSON)
        self.event_fragments: dict[tuple[str, bool], tuple[int, dict[str, str]]] = {}
        self.page_indexes: dict[tuple[Any, ...], Any] = {}  # server's sorted paging indexes
        self.profiles_by_id: dict[str, dict[str, Any]] = {}
        self.lists_by_id: dict[str, dict[str, Any]] = {}
        self.segments_by_id: dict[str, dict[str, Any]] = {}
        self.campaigns_by_id: dict[str, dict[str, Any]] = {}
        self.campaign_messages_by_id: dict[str, dict[str, Any]] = {}
        self.flows_by_id: dict[str, dict[str, Any]] = {}
        self.flow_actions_by_id: dict[str, dict[str, Any]] = {}
        self.flow_messages_by_id: dict[str, dict[str, Any]] = {}
        self.templates_by_id: dict[str, dict[str, Any]] = {}
        self.tags_by_id: dict[str, dict[str, Any]] = {}
        self.tag_groups_by_id: dict[str, dict[str, Any]] = {}
        self.attributions_by_id: dict[str, dict[str, Any]] = {}
        self.catalog_categories_by_id: dict[str, dict[str, Any]] = {}
        self.catalog_items_by_id: dict[str, dict[str, Any]] = {}
        self.catalog_variants_by_id: dict[str, dict[str, Any]] = {}
        self.coupons_by_id: dict[str, dict[str, Any]] = {}
        self.coupon_codes_by_id: dict[str, dict[str, Any]] = {}
        self.forms_by_id: dict[str, dict[str, Any]] = {}
        self.form_versions_by_id: dict[str, dict[str, Any]] = {}
        self.images_by_id: dict[str, dict[str, Any]] = {}
        self.push_tokens_by_id: dict[str, dict[str, Any]] = {}
        self._used_ids: set[str] = set()
        self._flow_action_seq = 81234560
        self._generate()

    # ------------------------------------------------------------------ ids
    def _uniq(self, make: Any) -> str:
        while True:
            value = str(make())
            if value not in self._used_ids:
                self._used_ids.add(value)
                return value

    def _short_id(self) -> str:
        return self._uniq(lambda: "".join(self._rng.choice(_SHORT) for _ in range(6)))

    def _ulid(self, dt: datetime) -> str:
        def make() -> str:
            ms = int(dt.timestamp() * 1000)
            head = "".join(_CROCKFORD[(ms >> (5 * i)) & 31] for i in range(9, -1, -1))
            return head + "".join(self._rng.choice(_CROCKFORD) for _ in range(16))

        return self._uniq(make)

    def _uuid(self) -> str:
        return self._uniq(lambda: str(uuid.UUID(int=self._rng.getrandbits(128), version=4)))

    def _rand_dt(self, start: datetime, end: datetime) -> datetime:
        span = max(1, int((end - start).total_seconds()))
        return start + timedelta(seconds=self._rng.randrange(span))

    # ------------------------------------------------------------ generation
    def _generate(self) -> None:
        sp = self.spec
        rng = self._rng
        end = sp.end
        start = end - timedelta(days=365 * sp.years)
        self.start = start
        self.account_info = {
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
        created = start - timedelta(days=30)
        for name, key, _w in _METRIC_WEIGHTS:
            if key == "api" and not sp.decoy_metrics:
                continue
            real = sp.unsubscribe_metric_name if name == "__UNSUB__" else name
            self._add_metric(real, key, created)
        # tag groups and tags
        groups = []
        for i, (gname, excl, default) in enumerate([("Default", False, True), ("Season", True, False)]):
            gid = self._short_id() if i else "default"
            groups.append(gid)
            self.tag_groups_by_id[gid] = {
                "id": gid,
                "name": gname,
                "exclusive": excl,
                "default": default,
            }
        for i in range(sp.tags):
            tid = self._uuid()
            self.tags_by_id[tid] = {
                "id": tid,
                "name": ["Promo", "Newsletter", "Winter", "VIP", "Onboarding", "Summer"][i % 6]
                + ("" if i < 6 else f" {i}"),
                "tag_group_id": groups[i % len(groups)],
            }
        tag_ids = list(self.tags_by_id)
        # templates
        for i in range(sp.templates):
            tid = self._short_id()
            c = self._rand_dt(start, end)
            self.templates_by_id[tid] = {
                "id": tid,
                "name": f"Template {i + 1}",
                "editor_type": "SYSTEM_DRAGGABLE" if i % 2 == 0 else "CODE",
                "html": f"<html><body><h1>Template {i + 1}</h1></body></html>",
                "text": f"Template {i + 1}",
                "amp": None,
                "created": c,
                "updated": self._rand_dt(c, end),
            }
        # profiles
        self.add_profiles(sp.profiles, _initial=True)
        pids = sorted(self.profiles_by_id)
        for i, reason in enumerate(SUPPRESSION_REASONS):
            if i < len(pids):
                p = self.profiles_by_id[pids[i * 3 % len(pids)]]
                if not p["suppression"]:
                    self._suppress(p, reason, self._rand_dt(p["created"], end), bump=False)
        for pid in pids:
            p = self.profiles_by_id[pid]
            if not p["suppression"] and rng.random() < 0.04:
                self._suppress(
                    p, rng.choice(SUPPRESSION_REASONS), self._rand_dt(p["created"], end), bump=False
                )
        # lists
        for i in range(sp.lists):
            lid = self._short_id()
            c = self._rand_dt(start, start + timedelta(days=60))
            if i == 0:
                members: list[str] = []
                name = "Empty List"
            elif i == 1:
                members = rng.sample(pids, min(sp.large_list_members, len(pids)))
                name = "Newsletter"
            else:
                members = rng.sample(pids, min(len(pids), rng.randint(3, 25)))
                name = f"Small List {i - 1}"
            self.lists_by_id[lid] = {
                "id": lid,
                "name": name,
                "created": c,
                "updated": self._rand_dt(c, end),
                "opt_in_process": "double_opt_in" if i % 2 else "single_opt_in",
                "members": {
                    pid: self._rand_dt(max(c, self.profiles_by_id[pid]["created"]), end) for pid in members
                },
                "tag_ids": [tag_ids[i % len(tag_ids)]] if tag_ids and i % 2 else [],
            }
        # segments
        for i in range(sp.segments):
            sid = self._short_id()
            c = self._rand_dt(start, start + timedelta(days=60))
            if i == 0:
                members = rng.sample(pids, len(pids) * 3 // 5)
                name = "Engaged (90 days)"
            elif i == sp.segments - 1 and sp.segments > 2:
                members = []
                name = "Empty Segment"
            else:
                members = rng.sample(pids, min(len(pids), rng.randint(2, 20)))
                name = f"Segment {i}"
            self.segments_by_id[sid] = {
                "id": sid,
                "name": name,
                "created": c,
                "updated": self._rand_dt(c, end),
                "is_active": i != 1,
                "is_processing": False,
                "is_starred": i == 0,
                "members": {
                    pid: self._rand_dt(max(c, self.profiles_by_id[pid]["created"]), end) for pid in members
                },
                "tag_ids": [tag_ids[0]] if tag_ids and i == 0 else [],
            }
        # campaigns
        for channel in CHANNELS:
            for _ in range(sp.campaigns_per_channel):
                self.add_campaign(channel, at=self._rand_dt(start, end - timedelta(days=1)), _bump=False)
        # flows
        metric_trigger = self.metric_id("Placed Order", "shopify")
        for i in range(sp.flows):
            fid = self._short_id()
            c = self._rand_dt(start, end - timedelta(days=5))
            trig = ["Metric", "Added to List", "Date Based"][i % 3]
            flow = {
                "id": fid,
                "name": ["Welcome Series", "Post-Purchase", "Birthday", "Winback"][i % 4]
                + ("" if i < 4 else f" {i}"),
                "status": ["live", "draft", "manual"][i % 3],
                "archived": i == 2,
                "created": c,
                "updated": self._rand_dt(c, end),
                "trigger_type": trig,
                "trigger_metric_id": metric_trigger if trig == "Metric" else None,
                "trigger_list_id": (
                    list(self.lists_by_id)[1]
                    if trig == "Added to List" and len(self.lists_by_id) > 1
                    else None
                ),
                "action_ids": [],
                "tag_ids": [tag_ids[(i + 1) % len(tag_ids)]] if tag_ids else [],
            }
            self.flows_by_id[fid] = flow
            kinds = (
                ["time-delay", "send-email", "send-sms"]
                if i % 2 == 0
                else ["send-email", "time-delay", "send-email"]
            )
            for kind in kinds:
                self._add_flow_action(flow, kind)
        # events
        self._seed_events(sp.events, start, end)
        # everything below uses its own RNG so the entities above stay identical across versions
        self._generate_extras(start, end)
        self._compute_attributions()
        from .push_tokens import seed_push_tokens  # here: it imports this module (through resources)

        seed_push_tokens(self)
        from .more_data import seed  # reviews, custom objects, recipient estimations (own RNG)

        seed(self)

    # ------------------------------------------------ catalog/coupons/forms/images
    def _generate_extras(self, start: datetime, end: datetime) -> None:
        sp = self.spec
        rng = random.Random(f"extras-{sp.seed}")

        def rdt(a: datetime, b: datetime) -> datetime:
            span = max(1, int((b - a).total_seconds()))
            return a + timedelta(seconds=rng.randrange(span))

        prefix = "$custom:::$default:::"
        cat_names = ["Apparel", "Home", "Outdoor", "Accessories", "Gifts", "Sale", "Kids", "Beauty"]
        for i in range(sp.catalog_categories):
            name = cat_names[i % len(cat_names)] + ("" if i < len(cat_names) else f" {i}")
            ext = "CAT-" + name.upper().replace(" ", "-")
            c = rdt(start, end - timedelta(days=30))
            self.catalog_categories_by_id[prefix + ext] = {
                "id": prefix + ext,
                "external_id": ext,
                "name": name,
                "created": c,
                "updated": rdt(c, end),
                "item_ids": [],
            }
        cat_ids = list(self.catalog_categories_by_id)
        adjs = ["Ocean Blue", "Classic", "Vintage", "Organic", "Deluxe", "Everyday", "Trail", "Cozy"]
        nouns = ["Shirt", "Mug", "Backpack", "Candle", "Scarf", "Bottle", "Jacket", "Lamp"]
        sizes = ["SMALL", "MEDIUM", "LARGE", "XL"]
        for i in range(sp.catalog_items):
            ext = f"ITEM-{i + 1:03d}"
            iid = prefix + ext
            title = f"{adjs[i % len(adjs)]} {nouns[(i * 3) % len(nouns)]}"
            c = rdt(start, end - timedelta(days=7))
            price = round(rng.uniform(8, 150), 2)
            cats = sorted(rng.sample(cat_ids, min(len(cat_ids), rng.randint(1, 2)))) if cat_ids else []
            url = f"https://example.com/products/{ext.lower()}"
            item: dict[str, Any] = {
                "id": iid,
                "external_id": ext,
                "title": title,
                "description": f"{title}, a synthetic catalog item.",
                "price": price,
                "url": url,
                "image_full_url": f"https://example.com/img/{ext.lower()}-full.jpg",
                "image_thumbnail_url": f"https://example.com/img/{ext.lower()}-thumb.jpg",
                "images": [f"https://example.com/img/{ext.lower()}-{n}.jpg" for n in range(1, 3)],
                "custom_metadata": {"Top Pick": i % 4 == 0} if i % 2 == 0 else None,
                "published": i % 5 != 4,
                "created": c,
                "updated": rdt(c, end),
                "category_ids": cats,
                "variant_ids": [],
            }
            self.catalog_items_by_id[iid] = item
            for cid in cats:
                self.catalog_categories_by_id[cid]["item_ids"].append(iid)
            for size in sizes[: rng.randint(0, max(0, sp.max_variants_per_item))]:
                vext = f"{ext}-VARIANT-{size}"
                vc = rdt(c, end)
                self.catalog_variants_by_id[prefix + vext] = {
                    "id": prefix + vext,
                    "external_id": vext,
                    "title": f"{title} {size.title()}",
                    "description": f"{title}, size {size.lower()}.",
                    "sku": f"{ext}-{size[:2]}",
                    "inventory_policy": rng.choice([0, 1, 2]),
                    "inventory_quantity": float(rng.randint(0, 100)),
                    "price": price,
                    "url": url,
                    "image_full_url": item["image_full_url"],
                    "image_thumbnail_url": item["image_thumbnail_url"],
                    "images": list(item["images"]),
                    "custom_metadata": None,
                    "published": bool(item["published"]) and size != "XL",
                    "created": vc,
                    "updated": rdt(vc, end),
                    "item_id": iid,
                }
                item["variant_ids"].append(prefix + vext)
        # coupons and codes
        coupon_names = [
            ("10OFF", "10% off for purchases over $50"),
            ("FREESHIP", "Free shipping"),
            ("WELCOME15", "15% off the first order"),
            ("VIP20", "20% off for VIP customers"),
            ("BDAY5", "$5 birthday gift"),
        ]
        pids = sorted(self.profiles_by_id)
        statuses = ["UNASSIGNED", "ASSIGNED_TO_PROFILE", "USED", "UNASSIGNED", "PROCESSING"]
        for i in range(sp.coupons):
            code, desc = coupon_names[i % len(coupon_names)]
            cid = code if i < len(coupon_names) else f"{code}{i}"
            self.coupons_by_id[cid] = {
                "id": cid,
                "external_id": cid,
                "description": desc if i % 3 != 2 else None,
                "monitor_configuration": {"low_balance_threshold": 100 * (i + 1)} if i % 2 == 0 else None,
                "code_ids": [],
            }
            for _ in range(sp.coupon_codes_per_coupon):
                unique = "".join(rng.choice(_CROCKFORD) for _ in range(12))
                status = rng.choice(statuses)
                ccid = f"{cid}-{unique}"
                self.coupon_codes_by_id[ccid] = {
                    "id": ccid,
                    "unique_code": unique,
                    "expires_at": rdt(end - timedelta(days=60), end + timedelta(days=365)),
                    "status": status,
                    "coupon_id": cid,
                    "profile_id": (
                        rng.choice(pids) if pids and status in ("ASSIGNED_TO_PROFILE", "USED") else None
                    ),
                }
                self.coupons_by_id[cid]["code_ids"].append(ccid)
        # forms + versions
        form_names = ["Newsletter Popup", "Cyber Monday Deals", "Footer Signup", "Exit Intent", "Spin to Win"]
        form_types = ["popup", "embed", "flyout", "full_page", "banner"]
        version_seq = 1234560
        for i in range(sp.forms):
            fid = "".join(rng.choice(_SHORT) for _ in range(6))
            c = rdt(start, end - timedelta(days=14))
            ab = i % 3 == 1
            form: dict[str, Any] = {
                "id": fid,
                "name": form_names[i % len(form_names)] + ("" if i < len(form_names) else f" {i}"),
                "status": "live" if i % 4 != 3 else "draft",
                "ab_test": ab,
                "created_at": c,
                "updated_at": rdt(c, end),
                "version_ids": [],
            }
            self.forms_by_id[fid] = form
            for v in range(2 if ab else 1):
                version_seq += rng.randint(1, 900)
                vid = str(version_seq)
                vc = rdt(c, form["updated_at"] + timedelta(seconds=1))
                self.form_versions_by_id[vid] = {
                    "id": vid,
                    "form_id": fid,
                    "form_type": form_types[i % len(form_types)],
                    "variation_name": f"Variation {'AB'[v]}",
                    "ab_test": {"variation_name": f"Variation {'AB'[v]}"} if ab else None,
                    "status": form["status"] if v == 0 else "draft",
                    "created_at": vc,
                    "updated_at": rdt(vc, end),
                }
                form["version_ids"].append(vid)
        # images
        formats = ["png", "jpeg", "gif"]
        image_seq = 100
        for i in range(sp.images):
            image_seq += rng.randint(1, 50)
            imid = str(image_seq)
            fmt = formats[i % len(formats)]
            name = f"{['hero', 'banner', 'logo', 'product', 'promo'][i % 5]}-{i + 1}.{fmt}"
            self.images_by_id[imid] = {
                "id": imid,
                "name": name,
                "image_url": f"https://d3k81ch9hvuctc.cloudfront.net/company/AbC123/images/{imid}.{fmt}",
                "format": fmt,
                "size": rng.randint(2_000, 900_000),
                "hidden": i % 6 == 5,
                "updated_at": rdt(start, end),
            }

    # ------------------------------------------------------------ attributions
    def _compute_attributions(self) -> None:
        """Attribute each conversion (Placed Order) to the last email open/click with a ``$message``.

        A conversion is attributed when the same profile opened or clicked a campaign or flow message
        within ``attribution_window_days`` before it (last touch). Derived from the events only.
        """
        self.attributions_by_id.clear()
        for ev in self.events_by_id.values():
            ev["attribution_ids"] = []
        engage = {self.metric_id("Opened Email"), self.metric_id("Clicked Email")} - {None}
        order = self.metric_id("Placed Order", "shopify")
        window = self.spec.attribution_window_days * 86400
        last: dict[str, dict[str, Any]] = {}
        for _ts, eid in self.event_index:
            ev = self.events_by_id[eid]
            pid = ev["profile_id"]
            if pid is None:
                continue
            if ev["metric_id"] in engage and "$message" in ev["event_properties"]:
                last[pid] = ev
            elif ev["metric_id"] == order and pid in last:
                touch = last[pid]
                if ev["timestamp"] - touch["timestamp"] <= window:
                    self._attribute(ev, touch)

    def _attribute(self, ev: dict[str, Any], touch: dict[str, Any]) -> None:
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
        if msg_id in self.flow_messages_by_id:
            rec["flow_message_id"] = msg_id
            rec["flow_id"] = self.flow_messages_by_id[msg_id]["flow_id"]
        elif msg_id in self.campaign_messages_by_id:
            rec["campaign_message_id"] = msg_id
            rec["campaign_id"] = self.campaign_messages_by_id[msg_id]["campaign_id"]
        else:
            return
        self.attributions_by_id[aid] = rec
        ev["attribution_ids"].append(aid)

    def _add_metric(self, name: str, integration_key: str, created: datetime) -> str:
        mid = self._short_id()
        integ = INTEGRATIONS.get(integration_key) or {
            "object": "integration",
            "id": self._short_id(),
            "key": integration_key,
            "name": integration_key.title(),
            "category": "Custom",
        }
        self.metrics_by_id[mid] = {
            "id": mid,
            "name": name,
            "created": created,
            "updated": created,
            "integration": dict(integ),
        }
        self.metric_index[mid] = []
        return mid

    def _add_flow_action(self, flow: dict[str, Any], kind: str) -> None:
        self._flow_action_seq += self._rng.randint(1, 500)
        aid = str(self._flow_action_seq)
        c = flow["created"]
        action = {
            "id": aid,
            "flow_id": flow["id"],
            "action_type": kind,
            "status": "live" if flow["status"] == "live" else "draft",
            "created": c,
            "updated": self._rand_dt(c, flow["updated"] + timedelta(seconds=1)),
            "message_ids": [],
        }
        self.flow_actions_by_id[aid] = action
        flow["action_ids"].append(aid)
        if kind in ("send-email", "send-sms"):
            mid = self._short_id()
            channel = "email" if kind == "send-email" else "sms"
            tmpl = (
                self._rng.choice(sorted(self.templates_by_id))
                if self.templates_by_id and channel == "email"
                else None
            )
            self.flow_messages_by_id[mid] = {
                "id": mid,
                "action_id": aid,
                "flow_id": flow["id"],
                "name": f"{flow['name']} {channel} #{len(action['message_ids']) + 1}",
                "channel": channel,
                "created": c,
                "updated": action["updated"],
                "template_id": tmpl,
            }
            action["message_ids"].append(mid)

    def _seed_events(self, count: int, start: datetime, end: datetime) -> None:
        rng = self._rng
        choices: list[str] = []
        weights: list[int] = []
        for name, key, w in _METRIC_WEIGHTS:
            real = self.spec.unsubscribe_metric_name if name == "__UNSUB__" else name
            mid = self.metric_id(real, key)
            if mid and w:
                choices.append(mid)
                weights.append(w)
        picks = rng.choices(choices, weights=weights, k=count)
        for mid in picks:
            self._new_event(mid, self._rand_dt(start, end))
        self.event_index.sort()
        for idx in self.metric_index.values():
            idx.sort()

    def _new_event(self, metric_id: str, dt: datetime, insort: bool = False) -> str:
        rng = self._rng
        dt = dt.replace(microsecond=0)
        pid = rng.choice(self._profile_list) if self._profile_list else None
        name = self.metrics_by_id[metric_id]["name"]
        props: dict[str, Any] = {}
        if "Email" in name:
            props = {
                "Subject": rng.choice(["Big sale", "New arrivals", "We miss you", "Your order"]),
                "Email Domain": "example.com",
                "$ESP": rng.randint(1, 3),
            }
            if self.flow_messages_by_id and rng.random() < 0.3:
                fm = self.flow_messages_by_id[rng.choice(self._flow_message_list)]
                props["$message"] = fm["id"]
                props["$flow"] = fm["flow_id"]
            elif self.campaign_messages_by_id:
                props["$message"] = rng.choice(self._campaign_message_list)
            if name == "Clicked Email":
                props["URL"] = "https://example.com/p/" + str(rng.randint(1, 50))
            if name == "Bounced Email":
                props["Bounce Type"] = rng.choice(["hard", "soft"])
        elif name == "Placed Order":
            props = {
                "$value": round(rng.uniform(5, 400), 2),
                "ItemNames": ["Widget"],
                "$currency_code": "USD",
            }
        elif "List" in name:
            props = {"List": "Newsletter"}
        eid = self._ulid(dt)
        ts = int(dt.timestamp())
        ev = {
            "id": eid,
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=1)),
            "datetime": dt,
            "timestamp": ts,
            "metric_id": metric_id,
            "profile_id": pid,
            "event_properties": props,
        }
        self.events_by_id[eid] = ev
        if insort:
            bisect.insort(self.event_index, (ts, eid))
            bisect.insort(self.metric_index[metric_id], (ts, eid))
        else:
            self.event_index.append((ts, eid))
            self.metric_index[metric_id].append((ts, eid))
        if pid:
            p = self.profiles_by_id[pid]
            if p["last_event_date"] is None or p["last_event_date"] < dt:
                p["last_event_date"] = dt
        return eid

    @property
    def _profile_list(self) -> list[str]:
        cached = getattr(self, "_plist", None)
        if cached is None or len(cached) != len(self.profiles_by_id):
            cached = sorted(self.profiles_by_id)
            self._plist = cached
        return cached

    @property
    def _flow_message_list(self) -> list[str]:
        return sorted(self.flow_messages_by_id)

    @property
    def _campaign_message_list(self) -> list[str]:
        cached = getattr(self, "_cmlist", None)
        if cached is None or len(cached) != len(self.campaign_messages_by_id):
            cached = sorted(self.campaign_messages_by_id)
            self._cmlist = cached
        return cached

    def _suppress(self, p: dict[str, Any], reason: str, at: datetime, bump: bool = True) -> None:
        p["suppression"] = [{"reason": reason, "timestamp": at}]
        p["consent"] = "UNSUBSCRIBED"
        p["consent_timestamp"] = at
        if bump:
            p["updated"] = at

    def _bump(self) -> None:
        self.version += 1

    def bump(self) -> None:
        """Mark the account as changed (after editing records in place)."""
        with self.lock:
            self._bump()

    # -------------------------------------------------------- ground truth
    @property
    def metrics(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(m, integration=dict(m["integration"])) for m in self.metrics_by_id.values()]

    def metric_id(self, name: str, integration_key: str = "klaviyo") -> str | None:
        with self.lock:
            for m in self.metrics_by_id.values():
                if m["name"] == name and m["integration"]["key"] == integration_key:
                    return str(m["id"])
        return None

    def _event_view(self, ev: dict[str, Any]) -> dict[str, Any]:
        return {
            k: ev[k]
            for k in ("id", "uuid", "datetime", "timestamp", "metric_id", "profile_id", "event_properties")
        }

    def events_for_metric(self, metric_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                self._event_view(self.events_by_id[eid]) for _, eid in self.metric_index.get(metric_id, [])
            ]

    def all_events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self._event_view(self.events_by_id[eid]) for _, eid in self.event_index]

    def profile_ids(self) -> set[str]:
        with self.lock:
            return set(self.profiles_by_id)

    def profile(self, profile_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.profiles_by_id[profile_id])

    def suppressed_profiles(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            return {
                pid: [dict(s) for s in p["suppression"]]
                for pid, p in self.profiles_by_id.items()
                if p["suppression"]
            }

    def list_ids(self) -> list[str]:
        with self.lock:
            return list(self.lists_by_id)

    def list_members(self, list_id: str) -> dict[str, datetime]:
        with self.lock:
            return dict(self.lists_by_id[list_id]["members"])

    def segment_ids(self) -> list[str]:
        with self.lock:
            return list(self.segments_by_id)

    def segment_members(self, segment_id: str) -> dict[str, datetime]:
        with self.lock:
            return dict(self.segments_by_id[segment_id]["members"])

    def campaigns(self, channel: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                dict(c) for c in self.campaigns_by_id.values() if channel is None or c["channel"] == channel
            ]

    def flows(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(f) for f in self.flows_by_id.values()]

    def flow_actions(self, flow_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(self.flow_actions_by_id[a]) for a in self.flows_by_id[flow_id]["action_ids"]]

    def flow_messages(self, action_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                dict(self.flow_messages_by_id[m]) for m in self.flow_actions_by_id[action_id]["message_ids"]
            ]

    def attributions(self, event_id: str | None = None) -> list[dict[str, Any]]:
        """Attribution records (optionally of one event): id, event_id, attributed_event_id,
        campaign_id, campaign_message_id, flow_id, flow_message_id."""
        with self.lock:
            if event_id is not None:
                ids = self.events_by_id[event_id].get("attribution_ids", [])
                return [dict(self.attributions_by_id[a]) for a in ids]
            return [dict(a) for a in self.attributions_by_id.values()]

    def catalog_items(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(i) for i in self.catalog_items_by_id.values()]

    def catalog_variants(self, item_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                dict(v)
                for v in self.catalog_variants_by_id.values()
                if item_id is None or v["item_id"] == item_id
            ]

    def catalog_categories(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.catalog_categories_by_id.values()]

    def coupons(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.coupons_by_id.values()]

    def coupon_codes(self, coupon_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                dict(c)
                for c in self.coupon_codes_by_id.values()
                if coupon_id is None or c["coupon_id"] == coupon_id
            ]

    def forms(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(f) for f in self.forms_by_id.values()]

    def form_versions(self, form_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(self.form_versions_by_id[v]) for v in self.forms_by_id[form_id]["version_ids"]]

    def images(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(i) for i in self.images_by_id.values()]

    def campaign_values(
        self,
        statistics: list[str],
        timeframe: dict[str, Any],
        conversion_metric_id: str,
        group_by: list[str] | None = None,
        filter: str | None = None,  # noqa: A002
    ) -> dict[str, Any]:
        """Expected ``data.attributes`` (all pages) of ``POST /api/campaign-values-reports``."""
        from .reports import ground_truth

        return ground_truth(
            self, "query_campaign_values", statistics, timeframe, conversion_metric_id, group_by, filter
        )

    def flow_values(
        self,
        statistics: list[str],
        timeframe: dict[str, Any],
        conversion_metric_id: str,
        group_by: list[str] | None = None,
        filter: str | None = None,  # noqa: A002
    ) -> dict[str, Any]:
        """Expected ``data.attributes`` (all pages) of ``POST /api/flow-values-reports``."""
        from .reports import ground_truth

        return ground_truth(
            self, "query_flow_values", statistics, timeframe, conversion_metric_id, group_by, filter
        )

    def flow_series(
        self,
        statistics: list[str],
        timeframe: dict[str, Any],
        conversion_metric_id: str,
        interval: str,
        group_by: list[str] | None = None,
        filter: str | None = None,  # noqa: A002
    ) -> dict[str, Any]:
        """Expected ``data.attributes`` (all pages) of ``POST /api/flow-series-reports``."""
        from .reports import ground_truth

        return ground_truth(
            self, "query_flow_series", statistics, timeframe, conversion_metric_id, group_by, filter, interval
        )

    # ------------------------------------------------------------ mutations
    def add_events(
        self,
        count: int,
        metric_name: str = "Clicked Email",
        integration_key: str = "klaviyo",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[str]:
        """Add ``count`` events of a metric, datetimes in ``[start, end)`` (default: the day before now)."""
        with self.lock:
            mid = self.metric_id(metric_name, integration_key)
            if mid is None:
                raise KeyError(f"no metric {metric_name!r} for integration {integration_key!r}")
            end = end or self.now
            start = start or end - timedelta(days=1)
            ids = [self._new_event(mid, self._rand_dt(start, end), insort=True) for _ in range(count)]
            self._bump()
            return ids

    def add_profiles(self, count: int, _initial: bool = False) -> list[str]:
        """Create ``count`` profiles (created/updated = now)."""
        with self.lock:
            rng = self._rng
            ids = []
            for _ in range(count):
                n = len(self.profiles_by_id) + 1
                if _initial:
                    created = self._rand_dt(self.start, self.spec.end - timedelta(days=2))
                    updated = self._rand_dt(created, self.spec.end)
                else:
                    created = updated = self.now
                pid = self._ulid(created)
                first, last = rng.choice(_FIRST), rng.choice(_LAST)
                city = rng.choice(_CITIES)
                self.profiles_by_id[pid] = {
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
                ids.append(pid)
            self._bump()
            return ids

    def update_profiles(self, ids_or_count: Iterable[str] | int, at: datetime | None = None) -> list[str]:
        """Set ``updated`` to ``at``/now and change a custom property of the given (or first N) profiles."""
        with self.lock:
            at = at or self.now
            if isinstance(ids_or_count, int):
                ids = sorted(self.profiles_by_id)[:ids_or_count]
            else:
                ids = list(ids_or_count)
            for pid in ids:
                p = self.profiles_by_id[pid]
                p["updated"] = at
                p["properties"] = dict(
                    p["properties"], lifetime_orders=p["properties"].get("lifetime_orders", 0) + 1
                )
            self._bump()
            return ids

    def add_list_member(self, list_id: str, profile_id: str, joined_at: datetime | None = None) -> None:
        with self.lock:
            lst = self.lists_by_id[list_id]
            lst["members"][profile_id] = joined_at or self.now
            lst["updated"] = joined_at or self.now
            self._bump()

    def remove_list_member(self, list_id: str, profile_id: str) -> None:
        with self.lock:
            lst = self.lists_by_id[list_id]
            lst["members"].pop(profile_id, None)
            lst["updated"] = self.now
            self._bump()

    def suppress_profile(self, profile_id: str, reason: str, at: datetime | None = None) -> None:
        if reason not in SUPPRESSION_REASONS:
            raise ValueError(f"reason must be one of {SUPPRESSION_REASONS}")
        with self.lock:
            self._suppress(self.profiles_by_id[profile_id], reason, at or self.now)
            self._bump()

    def unsuppress_profile(self, profile_id: str, at: datetime | None = None) -> None:
        with self.lock:
            p = self.profiles_by_id[profile_id]
            p["suppression"] = []
            p["consent"] = "SUBSCRIBED"
            p["consent_timestamp"] = at or self.now
            p["updated"] = at or self.now
            self._bump()

    def delete_list(self, list_id: str) -> None:
        with self.lock:
            del self.lists_by_id[list_id]
            self._bump()

    def add_metric(self, name: str, integration_key: str = "api") -> str:
        with self.lock:
            mid = self._add_metric(name, integration_key, self.now)
            self._bump()
            return mid

    def add_campaign(self, channel: str, at: datetime | None = None, _bump: bool = True) -> str:
        """Create a campaign (with one message) on ``channel``; created_at = updated_at = at/now."""
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}")
        with self.lock:
            rng = self._rng
            at = at or self.now
            cid = self._ulid(at)
            status = rng.choice(["Sent", "Sent", "Draft", "Scheduled", "Cancelled"])
            send_time = at + timedelta(hours=rng.randint(1, 48)) if status in ("Sent", "Scheduled") else None
            list_ids = sorted(self.lists_by_id)
            n = sum(1 for c in self.campaigns_by_id.values() if c["channel"] == channel) + 1
            camp: dict[str, Any] = {
                "id": cid,
                "channel": channel,
                "name": f"{channel.replace('_', ' ').title()} Campaign {n}",
                "status": status,
                "archived": status == "Cancelled" and n % 2 == 0,
                "included": list_ids[1:2],
                "excluded": [],
                "created_at": at,
                "updated_at": at if not _bump else at,
                "scheduled_at": send_time - timedelta(hours=1) if send_time else None,
                "send_time": send_time,
                "message_ids": [],
                "tag_ids": [sorted(self.tags_by_id)[n % len(self.tags_by_id)]] if self.tags_by_id else [],
            }
            self.campaigns_by_id[cid] = camp
            mid = self._ulid(at)
            self.campaign_messages_by_id[mid] = {
                "id": mid,
                "campaign_id": cid,
                "channel": channel,
                "label": f"{camp['name']} message",
                "template_id": (
                    sorted(self.templates_by_id)[n % len(self.templates_by_id)]
                    if self.templates_by_id and channel == "email"
                    else None
                ),
                "send_time": send_time,
                "created_at": at,
                "updated_at": at,
            }
            camp["message_ids"].append(mid)
            if _bump:
                self._bump()
            return cid

    def update_campaign(self, campaign_id: str, at: datetime | None = None, **changes: Any) -> None:
        """Set ``updated_at`` to at/now and apply attribute changes (e.g. status="Sent", archived=True)."""
        with self.lock:
            camp = self.campaigns_by_id[campaign_id]
            camp.update(changes)
            camp["updated_at"] = at or self.now
            self._bump()
