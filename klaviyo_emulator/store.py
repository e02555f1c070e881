"""The account's storage: its size (:class:`AccountSpec`), record tables, clock, RNG and id makers.

The domain modules (``profiles``, ``events``, ``messaging``, ``catalog``) seed and change these
tables; :class:`~klaviyo_emulator.account.Account` is the public face over them.
"""

from __future__ import annotations

import random
import string
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

UTC = timezone.utc
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SHORT_ID_CHARS = string.ascii_letters + string.digits
Table = dict[str, dict[str, Any]]


def fmt_dt(dt: datetime | None) -> str | None:
    """Klaviyo's datetime format: ``2024-03-05T10:11:12+00:00``."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat()


def random_datetime(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(1, int((end - start).total_seconds()))
    return start + timedelta(seconds=rng.randrange(span))


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


class Store:
    """In-memory record tables of one account, keyed by id, plus what seeding and mutations share."""

    def __init__(self, spec: AccountSpec | None = None) -> None:
        self.spec = spec or AccountSpec()
        if self.spec.end.tzinfo is None:
            self.spec.end = self.spec.end.replace(tzinfo=UTC)
        self.lock = threading.RLock()
        self.now: datetime = self.spec.end
        self.start: datetime = self.spec.end - timedelta(days=365 * self.spec.years)
        self.rng = random.Random(self.spec.seed)
        self.version = 0
        self.account_info: dict[str, Any] = {}
        self.metrics_by_id: Table = {}
        self.events_by_id: Table = {}
        self.event_index: list[tuple[int, str]] = []  # sorted (timestamp, id)
        self.metric_index: dict[str, list[tuple[int, str]]] = {}
        # (base url, revision, with attribution ids) -> (account version, event id -> JSON)
        self.event_fragments: dict[tuple[str, str, bool], tuple[int, dict[str, str]]] = {}
        self.page_indexes: dict[tuple[Any, ...], Any] = {}  # server's sorted paging indexes
        self.sorted_ids: dict[str, list[str]] = {}  # table name -> its sorted ids (seeding's picks)
        self.profiles_by_id: Table = {}
        self.lists_by_id: Table = {}
        self.segments_by_id: Table = {}
        self.campaigns_by_id: Table = {}
        self.campaign_messages_by_id: Table = {}
        self.flows_by_id: Table = {}
        self.flow_actions_by_id: Table = {}
        self.flow_messages_by_id: Table = {}
        self.templates_by_id: Table = {}
        self.tags_by_id: Table = {}
        self.tag_groups_by_id: Table = {}
        self.attributions_by_id: Table = {}
        self.catalog_categories_by_id: Table = {}
        self.catalog_items_by_id: Table = {}
        self.catalog_variants_by_id: Table = {}
        self.coupons_by_id: Table = {}
        self.coupon_codes_by_id: Table = {}
        self.forms_by_id: Table = {}
        self.form_versions_by_id: Table = {}
        self.images_by_id: Table = {}
        self.push_tokens_by_id: Table = {}
        self.reviews_by_id: Table = {}
        self.object_types_by_id: Table = {}
        self.object_records_by_type: dict[str, Table] = {}  # object type id -> its records by id
        self.recipient_estimations_by_id: Table = {}  # campaign id -> its recipient estimation
        self.flow_action_seq = 81234560
        self._used_ids: set[str] = set()

    # ------------------------------------------------------------------ ids
    def _uniq(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if value not in self._used_ids:
                self._used_ids.add(value)
                return value

    def short_id(self) -> str:
        return self._uniq(lambda: "".join(self.rng.choice(SHORT_ID_CHARS) for _ in range(6)))

    def ulid(self, dt: datetime) -> str:
        def make() -> str:
            ms = int(dt.timestamp() * 1000)
            head = "".join(CROCKFORD[(ms >> (5 * i)) & 31] for i in range(9, -1, -1))
            return head + "".join(self.rng.choice(CROCKFORD) for _ in range(16))

        return self._uniq(make)

    def uuid4(self) -> str:
        return self._uniq(lambda: str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))

    def rand_dt(self, start: datetime, end: datetime) -> datetime:
        return random_datetime(self.rng, start, end)

    def sorted_table_ids(self, table: str) -> list[str]:
        """The sorted ids of ``<table>_by_id``, cached until the table's size changes."""
        records: Table = getattr(self, f"{table}_by_id")
        cached = self.sorted_ids.get(table)
        if cached is None or len(cached) != len(records):
            cached = sorted(records)
            self.sorted_ids[table] = cached
        return cached

    # ------------------------------------------------------------ lookups
    def metric_id(self, name: str, integration_key: str = "klaviyo") -> str | None:
        with self.lock:
            for m in self.metrics_by_id.values():
                if m["name"] == name and m["integration"]["key"] == integration_key:
                    return str(m["id"])
        return None

    def _bump(self) -> None:
        self.version += 1

    def bump(self) -> None:
        """Mark the account as changed (after editing records in place)."""
        with self.lock:
            self._bump()
