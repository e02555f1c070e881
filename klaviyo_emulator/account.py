"""A seeded, deterministic synthetic Klaviyo account plus mutation and ground-truth helpers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from . import events, messaging, profiles, registry
from .reports import ground_truth
from .store import AccountSpec, Store, fmt_dt

__all__ = ["Account", "AccountSpec", "fmt_dt"]


class Account(Store):
    """In-memory Klaviyo account. All public methods are thread-safe.

    Every mutation bumps :attr:`version`; the server caches sorted paging indexes per version. Code
    that edits records in place (``account.profiles_by_id[pid]["updated"] = ...``) must call
    :meth:`bump` afterwards, or large collections may be paged in their old order.
    """

    def __init__(self, spec: AccountSpec | None = None) -> None:
        super().__init__(spec)
        registry.seed(self)

    # -------------------------------------------------------- ground truth
    @property
    def metrics(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(m, integration=dict(m["integration"])) for m in self.metrics_by_id.values()]

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

    def reviews(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.reviews_by_id.values()]

    def object_types(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(t) for t in self.object_types_by_id.values()]

    def object_records(self, object_type_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.object_records_by_type[object_type_id].values()]

    def recipient_estimation(self, campaign_id: str) -> int:
        """The ``estimated_recipient_count`` of a campaign."""
        with self.lock:
            return int(self.recipient_estimations_by_id[campaign_id]["estimated_recipient_count"])

    def campaign_values(
        self,
        statistics: list[str],
        timeframe: dict[str, Any],
        conversion_metric_id: str,
        group_by: list[str] | None = None,
        filter: str | None = None,  # noqa: A002
    ) -> dict[str, Any]:
        """Expected ``data.attributes`` (all pages) of ``POST /api/campaign-values-reports``."""
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
            ids = [events.new_event(self, mid, self.rand_dt(start, end), insort=True) for _ in range(count)]
            self._bump()
            return ids

    def add_profiles(self, count: int) -> list[str]:
        """Create ``count`` profiles (created/updated = now)."""
        with self.lock:
            ids = profiles.add_profiles(self, count)
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
        if reason not in profiles.SUPPRESSION_REASONS:
            raise ValueError(f"reason must be one of {profiles.SUPPRESSION_REASONS}")
        with self.lock:
            profiles.suppress(self.profiles_by_id[profile_id], reason, at or self.now)
            self._bump()

    def unsuppress_profile(self, profile_id: str, at: datetime | None = None) -> None:
        with self.lock:
            p = self.profiles_by_id[profile_id]
            p["suppression"] = []
            p["consent"] = "SUBSCRIBED"
            p["consent_timestamp"] = at or self.now
            p["updated"] = at or self.now
            self._bump()

    def delete_profile(self, profile_id: str) -> None:
        """Delete a profile: it leaves every list and segment and is no longer listed (events stay)."""
        with self.lock:
            profiles.delete_profile(self, profile_id)
            self._bump()

    def add_lists(self, count: int, members_each: int) -> list[str]:
        """Add ``count`` lists (``Bench00``...) of ``members_each`` of the account's profiles in turn."""
        with self.lock:
            ids = profiles.add_lists(self, count, members_each)
            self._bump()
            return ids

    def delete_list(self, list_id: str) -> None:
        with self.lock:
            del self.lists_by_id[list_id]
            self._bump()

    def add_metric(self, name: str, integration_key: str = "api") -> str:
        with self.lock:
            mid = events.add_metric(self, name, integration_key, self.now)
            self._bump()
            return mid

    def add_campaign(self, channel: str, at: datetime | None = None) -> str:
        """Create a campaign (with one message) on ``channel``; created_at = updated_at = at/now."""
        if channel not in messaging.CHANNELS:
            raise ValueError(f"channel must be one of {messaging.CHANNELS}")
        with self.lock:
            cid = messaging.add_campaign(self, channel, at or self.now)
            self._bump()
            return cid

    def update_campaign(self, campaign_id: str, at: datetime | None = None, **changes: Any) -> None:
        """Set ``updated_at`` to at/now and apply attribute changes (e.g. status="Sent", archived=True)."""
        with self.lock:
            camp = self.campaigns_by_id[campaign_id]
            camp.update(changes)
            camp["updated_at"] = at or self.now
            self._bump()
